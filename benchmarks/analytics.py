"""Analytics benchmark: the A/B statistics and the retention cohort matrix, daskflow vs DuckDB.

Two product-analytics questions on a sample lake (``daskflow generate /tmp/lake-medium --scale
medium``: 24M listens), each answered twice from the same Parquet files:

- **A/B statistics**: per variant of the planted experiment, the sufficient statistics of
  ``configs/ab.yaml``'s two metrics: ``converted`` (a conversion within 14 days of
  assignment, a proportion) and ``listen_hours`` (the sum of ``ms_played`` within 14 days,
  with the 14 days before assignment as the CUPED covariate): units, sum x, sum x^2, sum c,
  sum c^2, sum xc. daskflow: ``assignment_units`` + ``abtest_sufficient_stats``.
- **Retention**: the day-by-day cohort matrix by first activity ("on day N" and "on or after
  day N"), a day being active with a listen of 30 s or more. daskflow: ``activity_kpis``,
  which computes DAU/WAU/MAU and the lifecycle in the same pass as well (its only entry
  point); DuckDB computes the matrix alone.

daskflow runs on a LocalCluster of ``--workers`` worker processes with one thread each;
DuckDB in this process with ``--workers`` threads. Every repeat checks that both sides give
the same numbers (integers exactly, float sums to a relative 1e-9). To see whether time grows
linearly with rows, the listens are cut to the last quarter, half and all of the lake's days
(``--fractions``; the last days, so the experiment's windows stay in the data).

How it is measured (warm page cache, CPU seconds of every process of a side, peak memory,
medians) is ``_versus_duckdb.py``'s; here the workers are not restarted between runs (a
restart timed out on the loaded shared machine).

    python benchmarks/analytics.py --lake /tmp/lake-medium --repeat 3
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from _versus_duckdb import arguments, compare  # benchmarks/ is the script's directory

WITHIN_DAYS, PRE_DAYS, MIN_MS = 14, 14, 30_000


# -- the two sides -------------------------------------------------------------------------


def daskflow_abtest(lake: Path, since: str, client: Any) -> pd.DataFrame:
    from daskflow.analytics import MetricSpec, abtest_sufficient_stats, assignment_units
    from daskflow.io import read_table

    units, _ = assignment_units(read_table(str(lake / "experiments")), unit="user_id", variant="variant",
                                time="assigned_at", control="control", client=client)
    sources = {"listens": read_table(str(lake / "listens"), columns=["user_id", "ts", "ms_played"],
                                     filters=[("date", ">=", since)]),
               "conversions": read_table(str(lake / "conversions"))}
    metrics = {"converted": MetricSpec("conversions", "proportion", WITHIN_DAYS),
               "listen_hours": MetricSpec("listens", "mean", WITHIN_DAYS, value="ms_played",
                                          pre_days=PRE_DAYS)}
    stats, _ = abtest_sufficient_stats(units, sources, metrics, unit="user_id", variant="variant",
                                       assigned="assigned_at", client=client)
    rows = []
    for variant in sorted(stats["converted"]):
        conv, hours = stats["converted"][variant], stats["listen_hours"][variant]
        rows.append({"variant": variant, "n": conv.n, "conv_x": conv.sum_x, "conv_x2": conv.sum_x2,
                     "x": hours.sum_x, "x2": hours.sum_x2, "c": hours.sum_c, "c2": hours.sum_c2,
                     "xc": hours.sum_xc})
    return pd.DataFrame(rows)


def duckdb_abtest(lake: Path, since: str, con: Any) -> pd.DataFrame:
    sql = f"""
    WITH units AS (
        SELECT user_id, variant, min(assigned_at) AS assigned_at
        FROM read_parquet('{lake}/experiments/*.parquet') GROUP BY user_id, variant),
    listens AS (
        SELECT u.user_id,
               sum(CASE WHEN l.ts >= u.assigned_at AND l.ts < u.assigned_at + INTERVAL {WITHIN_DAYS} DAY
                        THEN l.ms_played ELSE 0 END)::DOUBLE AS x,
               sum(CASE WHEN l.ts < u.assigned_at AND l.ts >= u.assigned_at - INTERVAL {PRE_DAYS} DAY
                        THEN l.ms_played ELSE 0 END)::DOUBLE AS c
        FROM read_parquet('{lake}/listens/*/*.parquet', hive_partitioning = true) l
        JOIN units u USING (user_id)
        WHERE l.date >= '{since}'
        GROUP BY u.user_id),
    conversions AS (
        SELECT u.user_id,
               max(CASE WHEN v.ts >= u.assigned_at AND v.ts < u.assigned_at + INTERVAL {WITHIN_DAYS} DAY
                        THEN 1 ELSE 0 END)::DOUBLE AS x
        FROM read_parquet('{lake}/conversions/*.parquet') v JOIN units u USING (user_id)
        GROUP BY u.user_id)
    SELECT u.variant, count(*)::DOUBLE AS n,
           sum(coalesce(v.x, 0)) AS conv_x, sum(pow(coalesce(v.x, 0), 2)) AS conv_x2,
           sum(coalesce(l.x, 0)) AS x, sum(pow(coalesce(l.x, 0), 2)) AS x2,
           sum(coalesce(l.c, 0)) AS c, sum(pow(coalesce(l.c, 0), 2)) AS c2,
           sum(coalesce(l.x, 0) * coalesce(l.c, 0)) AS xc
    FROM units u LEFT JOIN listens l USING (user_id) LEFT JOIN conversions v USING (user_id)
    GROUP BY u.variant ORDER BY u.variant"""
    return con.execute(sql).df()


def daskflow_retention(lake: Path, since: str, client: Any) -> pd.DataFrame:
    from daskflow.analytics import activity_kpis
    from daskflow.io import read_table

    events = read_table(str(lake / "listens"), columns=["user_id", "ts", "ms_played"],
                        filters=[("date", ">=", since)])
    tables = activity_kpis(events, user="user_id", time="ts", where=[("ms_played", ">=", MIN_MS)],
                           retention_period="day", client=client)
    matrix = tables.retention[["cohort", "offset", "cohort_users", "retained", "retained_on_or_after"]]
    return matrix.assign(cohort=matrix["cohort"].astype("datetime64[s]"))


def duckdb_retention(lake: Path, since: str, con: Any) -> pd.DataFrame:
    listens = f"read_parquet('{lake}/listens/*/*.parquet', hive_partitioning = true)"
    sql = f"""
    WITH days AS (
        SELECT DISTINCT user_id, CAST(ts AS DATE) AS day FROM {listens}
        WHERE date >= '{since}' AND ms_played >= {MIN_MS}),
    users AS (SELECT user_id, min(day) AS cohort, max(day) AS last FROM days GROUP BY user_id),
    sizes AS (SELECT cohort, count(*) AS cohort_users FROM users GROUP BY cohort),
    cells AS (SELECT u.cohort, d.day - u.cohort AS k, count(*) AS retained
              FROM days d JOIN users u USING (user_id) GROUP BY ALL),
    ends AS (SELECT cohort, last - cohort AS k, count(*) AS n FROM users GROUP BY ALL),
    span AS (SELECT CAST(max(ts) AS DATE) AS last_day FROM {listens} WHERE date >= '{since}'),
    grid AS (SELECT s.cohort, s.cohort_users, r.range AS k FROM sizes s, span,
             range(0, 10000) r WHERE r.range <= span.last_day - s.cohort)
    SELECT g.cohort, g.k AS "offset", g.cohort_users, coalesce(c.retained, 0) AS retained,
           sum(coalesce(e.n, 0)) OVER (PARTITION BY g.cohort ORDER BY g.k DESC) AS retained_on_or_after
    FROM grid g LEFT JOIN cells c USING (cohort, k) LEFT JOIN ends e USING (cohort, k)
    ORDER BY g.cohort, g.k"""
    frame = con.execute(sql).df()
    return frame.assign(cohort=pd.to_datetime(frame["cohort"]).astype("datetime64[s]"))


QUESTIONS = {"abtest": ("A/B statistics", daskflow_abtest, duckdb_abtest),
             "retention": ("retention matrix", daskflow_retention, duckdb_retention)}


def _import_daskflow() -> None:
    import daskflow.analytics  # noqa: F401
    import daskflow.io  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--questions", nargs="+", choices=sorted(QUESTIONS), default=sorted(QUESTIONS))
    args = parser.parse_args(argv)
    questions = {QUESTIONS[key][0]: QUESTIONS[key][1:] for key in args.questions}
    # Not restarted between runs: a restart timed out on the loaded shared machine.
    compare("analytics", args, questions, warm=sorted(args.lake.rglob("*.parquet")),
            imports=_import_daskflow, restart=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

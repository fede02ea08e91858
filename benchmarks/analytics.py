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

Timings exclude cluster start-up and imports (the workers import daskflow before the clock
starts); the files are read once beforehand (warm page cache). Worker peak memory is the
largest resident set of a worker process while the run's work runs, sampled every 50 ms (the
workers are not restarted between runs: a restart timed out on the loaded shared machine).
CPU seconds are user + system of every process of a side (this process, which hosts the
scheduler, and for daskflow the workers). Results print as a markdown table and are written as
JSON under ``benchmarks/results/`` (git-ignored).

    python benchmarks/analytics.py --lake /tmp/lake-medium --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
from _sampler import ProcessRssSampler  # benchmarks/ is the script's directory

RESULTS_DIR = Path(__file__).resolve().parent / "results"
WITHIN_DAYS, PRE_DAYS, MIN_MS = 14, 14, 30_000
_MIB = 2**20


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


def check_equal(ours: pd.DataFrame, theirs: pd.DataFrame, what: str) -> None:
    """Same rows, integers exactly, floats to a relative 1e-9 (sums in another order)."""
    ours, theirs = ours.reset_index(drop=True), theirs[list(ours.columns)].reset_index(drop=True)
    if len(ours) != len(theirs):
        raise AssertionError(f"{what}: daskflow has {len(ours)} rows, DuckDB {len(theirs)}")
    for column in ours.columns:
        a, b = ours[column].to_numpy(), theirs[column].to_numpy()
        if np.issubdtype(a.dtype, np.number) and np.issubdtype(b.dtype, np.number):
            same = np.allclose(a.astype(float), b.astype(float), rtol=1e-9, atol=0)
        else:
            same = bool((a == b).all())
        if not same:
            raise AssertionError(f"{what}: column {column} differs:\n{ours[column]}\n{theirs[column]}")


# -- measuring ---------------------------------------------------------------------------


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        times = process.cpu_times()
        total += times.user + times.system
    return total


def _workers(client: Any) -> list[psutil.Process]:
    pids = client.run(os.getpid)
    return [psutil.Process(pid) for pid in pids.values()]


def _import_daskflow() -> None:
    import daskflow.analytics  # noqa: F401
    import daskflow.io  # noqa: F401


def run_daskflow(task: Callable[..., pd.DataFrame], lake: Path, since: str, client: Any
                 ) -> tuple[pd.DataFrame, dict[str, Any]]:
    client.run(_import_daskflow)  # workers import daskflow before the clock starts, not during
    processes = [psutil.Process(), *_workers(client)]
    cpu = _cpu_seconds(processes)
    with ProcessRssSampler() as sampler:
        start = time.perf_counter()
        result = task(lake, since, client)
        seconds = time.perf_counter() - start
    return result, {"seconds": seconds, "cpu_seconds": _cpu_seconds(processes) - cpu,
                    "worker_peak_mib": max(sampler.peak.values(), default=0) / _MIB,
                    "load_average_1min": round(os.getloadavg()[0], 2)}


class _OwnRss(ProcessRssSampler):
    """The RSS of this process (DuckDB runs in it)."""

    def _list_workers(self) -> list[Any]:
        return [self._me]


def run_duckdb(task: Callable[..., pd.DataFrame], lake: Path, since: str, threads: int
               ) -> tuple[pd.DataFrame, dict[str, Any]]:
    import duckdb

    con = duckdb.connect(config={"threads": threads})
    con.execute("SET TimeZone = 'UTC'")
    me = psutil.Process()
    cpu = _cpu_seconds([me])
    with _OwnRss() as sampler:
        start = time.perf_counter()
        result = task(lake, since, con)
        seconds = time.perf_counter() - start
    con.close()
    return result, {"seconds": seconds, "cpu_seconds": _cpu_seconds([me]) - cpu,
                    "process_peak_mib": max(sampler.peak.values(), default=0) / _MIB,
                    "load_average_1min": round(os.getloadavg()[0], 2)}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"median_seconds": statistics.median(r["seconds"] for r in runs),
            "median_cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs), "runs": runs}


QUESTIONS = {"A/B statistics": (daskflow_abtest, duckdb_abtest),
             "retention matrix": (daskflow_retention, duckdb_retention)}


def markdown(report: dict[str, Any]) -> str:
    lines = ["| question | days | listens | daskflow s | DuckDB s | ratio | daskflow CPU s | DuckDB CPU s "
             "| CPU ratio | worker peak MiB | load 1 min |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in report["results"]:
        ours, theirs = row["daskflow"], row["duckdb"]
        peak = max(r["worker_peak_mib"] for r in ours["runs"])
        loads = [r["load_average_1min"] for r in ours["runs"] + theirs["runs"]]
        lines.append(
            f"| {row['question']} | {row['days']} | {row['listens']:,} | {ours['median_seconds']:.2f} | "
            f"{theirs['median_seconds']:.2f} | {ours['median_seconds'] / theirs['median_seconds']:.1f}x | "
            f"{ours['median_cpu_seconds']:.1f} | {theirs['median_cpu_seconds']:.1f} | "
            f"{ours['median_cpu_seconds'] / theirs['median_cpu_seconds']:.1f}x | {peak:,.0f} | "
            f"{min(loads):.1f}-{max(loads):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", type=Path, default=Path("/tmp/lake-medium"),
                        help="a lake from `daskflow generate LAKE --scale medium` (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per side and size (median)")
    parser.add_argument("--workers", type=int, default=2, help="daskflow workers / DuckDB threads")
    parser.add_argument("--memory-limit", default="4GiB", help="per daskflow worker (default: %(default)s)")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 1.0],
                        help="share of the lake's days (the last ones) the listens are cut to")
    parser.add_argument("--questions", nargs="+", choices=["abtest", "retention"],
                        default=["abtest", "retention"])
    args = parser.parse_args(argv)
    import duckdb

    from daskflow.cluster import connect

    manifest = json.loads((args.lake / "_lake.json").read_text())
    start_day, n_days = pd.Timestamp(manifest["start_date"]), int(manifest["n_days"])
    for path in sorted(args.lake.rglob("*.parquet")):  # a warm page cache for both sides
        path.read_bytes()
    con = duckdb.connect()
    wanted = {"abtest": "A/B statistics", "retention": "retention matrix"}
    report: dict[str, Any] = {
        "lake": str(args.lake), "machine": platform.platform(), "cpus": os.cpu_count(),
        "duckdb": duckdb.__version__, "workers": args.workers, "memory_limit": args.memory_limit,
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()], "results": []}
    with connect("local", n_workers=args.workers, threads_per_worker=1, memory_limit=args.memory_limit,
                 dashboard_address=":0") as client:
        for fraction in args.fractions:
            days = max(1, round(n_days * fraction))
            since = str((start_day + pd.Timedelta(days=n_days - days)).date())
            listens = con.execute(f"SELECT count(*) FROM read_parquet('{args.lake}/listens/*/*.parquet', "
                                  f"hive_partitioning = true) WHERE date >= '{since}'").fetchone()[0]
            for key in args.questions:
                question = wanted[key]
                ours_task, theirs_task = QUESTIONS[question]
                ours_runs, theirs_runs = [], []
                for repeat in range(args.repeat):
                    ours, ours_run = run_daskflow(ours_task, args.lake, since, client)
                    theirs, theirs_run = run_duckdb(theirs_task, args.lake, since, args.workers)
                    check_equal(ours, theirs, f"{question}, {days} days, repeat {repeat}")
                    ours_runs.append(ours_run)
                    theirs_runs.append(theirs_run)
                    print(f"{question} {days} days #{repeat}: daskflow {ours_run['seconds']:.2f}s "
                          f"(CPU {ours_run['cpu_seconds']:.1f}s), DuckDB {theirs_run['seconds']:.2f}s "
                          f"(CPU {theirs_run['cpu_seconds']:.1f}s), equal", flush=True)
                report["results"].append({"question": question, "days": days, "since": since,
                                          "listens": int(listens), "daskflow": summarise(ours_runs),
                                          "duckdb": summarise(theirs_runs)})
    report["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    table = markdown(report)
    print(table)
    print(f"load average at start {report['load_average_at_start']}, at end {report['load_average_at_end']}")
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"analytics-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2, default=float))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

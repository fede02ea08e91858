"""Feature benchmark: a per-user table of listening aggregates, daskflow's generic layer vs DuckDB.

On a sample lake (``daskflow generate /tmp/lake-medium --scale medium``:
24M listens, 200,000 users): the house-ad-like behaviour features of every user of the
``users`` table, as of a cutoff (the day after the last listen), over two windows (the last
7 days and all): listens, listening time, distinct tracks and artists, active days,
sessions (a new one after 30 minutes of silence), the share of each platform, and the days
since the first and the last listen.

- daskflow: :func:`daskflow.features.tabular.build_aggregates` with one
  :class:`AggregateSpec` (what ``features.aggregates`` runs) on a LocalCluster of
  ``--workers`` worker processes with one thread each;
- DuckDB: the same table in SQL (``SQL`` below: ``FILTER`` clauses for the windows, ``lag``
  over each user's listens for the sessions) on the same files with ``--workers`` threads.

Every repeat checks the two tables are equal (integers exactly, floats to a relative
1e-9). To see whether time grows linearly with rows, the listens are cut to the last
quarter, half and all of the lake's days (``--fractions``). How it is measured is
``_versus_duckdb.py``'s; the workers are restarted before each daskflow repeat, so each
worker peak memory figure belongs to one run.

    python benchmarks/features.py --lake /tmp/lake-medium --repeat 3
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pandas as pd
from _versus_duckdb import arguments, compare  # benchmarks/ is the script's directory

PLATFORMS = ("mobile", "desktop", "web", "tablet")
GAP_MINUTES = 30


def spec() -> Any:
    from daskflow.features.tabular import AggregateSpec

    return AggregateSpec("listens", id="user_id", time="ts", windows=("7d", "all"), sum=("ms_played",),
                         nunique=("track_id", "artist_id"), active_days=True, recency=True,
                         share=(("platform", PLATFORMS),), session_gap_minutes=GAP_MINUTES)


def daskflow_features(lake: Path, since: str, client: Any, *, cutoff: pd.Timestamp) -> pd.DataFrame:
    from daskflow.features.tabular import build_aggregates
    from daskflow.io import read_table

    one = spec()
    listens = read_table(str(lake / "listens"), columns=one.columns, filters=[("date", ">=", since)])
    users = read_table(str(lake / "users"), columns=["user_id"])
    result = build_aggregates(users, {"listens": listens}, id_column="user_id", specs=[one], cutoff=cutoff,
                              client=client)
    frame = result.frame.compute()
    frame["user_id"] = frame["user_id"].astype(str)
    return frame.sort_values("user_id").reset_index(drop=True)


def _window_columns(window: str, start: str) -> list[str]:
    inside = f"ts >= {start}"
    shares = [f"coalesce(count(*) FILTER (WHERE {inside} AND platform = '{p}') / "
              f"nullif(count(*) FILTER (WHERE {inside}), 0), 0) AS listens_share_platform_{p}_{window}"
              for p in PLATFORMS]
    return [
        f"count(*) FILTER (WHERE {inside}) AS listens_count_{window}",
        f"coalesce(sum(ms_played) FILTER (WHERE {inside}), 0) AS listens_sum_ms_played_{window}",
        f"count(DISTINCT track_id) FILTER (WHERE {inside}) AS listens_nunique_track_id_{window}",
        f"count(DISTINCT artist_id) FILTER (WHERE {inside}) AS listens_nunique_artist_id_{window}",
        f"count(DISTINCT day) FILTER (WHERE {inside}) AS listens_active_days_{window}",
        # A session starts at a listen whose previous one (in the window) is missing or more than
        # the gap before it; a previous listen before the window's start is not in the window.
        f"count(*) FILTER (WHERE {inside} AND (prev IS NULL OR prev < {start} OR "
        f"ts - prev > INTERVAL {GAP_MINUTES} MINUTE)) AS listens_sessions_{window}",
        *shares]


def sql(lake: Path, since: str, cutoff: pd.Timestamp) -> str:
    stamp = f"TIMESTAMP '{cutoff.tz_localize(None)}'"
    week = f"({stamp} - INTERVAL 7 DAY)"
    columns = [*_window_columns("7d", week), *_window_columns("all", "TIMESTAMP '1970-01-01'")]
    names = [c.rsplit(" AS ", 1)[1] for c in columns]
    defaults = ", ".join(f"coalesce(a.{n}, 0) AS {n}" for n in names)
    return f"""
    WITH listens AS (
        SELECT user_id, ts, ms_played, track_id, artist_id, platform, CAST(ts AS DATE) AS day,
               lag(ts) OVER (PARTITION BY user_id ORDER BY ts) AS prev
        FROM read_parquet('{lake}/listens/*/*.parquet', hive_partitioning = true)
        WHERE date >= '{since}' AND ts < {stamp}),
    per_user AS (
        SELECT user_id, {", ".join(columns)},
               epoch_ms({stamp} - max(ts)) / 86400000.0 AS days_since_last,
               epoch_ms({stamp} - min(ts)) / 86400000.0 AS days_since_first
        FROM listens GROUP BY user_id),
    span AS (SELECT epoch_ms({stamp} - min(ts)) / 86400000.0 AS longest FROM listens)
    SELECT u.user_id, {defaults},
           coalesce(a.days_since_last, span.longest) AS listens_days_since_last,
           coalesce(a.days_since_first, span.longest) AS listens_days_since_first
    FROM read_parquet('{lake}/users/*.parquet') u LEFT JOIN per_user a USING (user_id), span
    ORDER BY u.user_id"""


def duckdb_features(lake: Path, since: str, con: Any, *, cutoff: pd.Timestamp) -> pd.DataFrame:
    frame = con.execute(sql(lake, since, cutoff)).df()
    frame["user_id"] = frame["user_id"].astype(str)
    return frame


def _import_daskflow() -> None:
    import daskflow.features.tabular  # noqa: F401
    import daskflow.io  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__.split("\n\n")[0]).parse_args(argv)
    manifest = json.loads((args.lake / "_lake.json").read_text())
    last_day = pd.Timestamp(manifest["start_date"]) + pd.Timedelta(days=int(manifest["n_days"]))
    cutoff = last_day.tz_localize("UTC")  # the day after the last
    question = (functools.partial(daskflow_features, cutoff=cutoff),
                functools.partial(duckdb_features, cutoff=cutoff))
    warm = sorted(args.lake.glob("listens/*/*.parquet")) + sorted(args.lake.glob("users/*.parquet"))
    compare("features", args, {"house-ad features": question}, warm=warm, imports=_import_daskflow,
            restart=True, report={"cutoff": str(cutoff)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

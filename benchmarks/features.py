"""Feature benchmark: a per-user table of listening aggregates, daskflow's generic layer vs DuckDB.

Issue 11's question on a sample lake (``daskflow generate /tmp/lake-medium --scale medium``:
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
quarter, half and all of the lake's days (``--fractions``). Timings exclude cluster
start-up and imports; the files are read once beforehand (warm page cache) and the workers
are restarted before each daskflow repeat, so each worker peak memory figure belongs to one
run. CPU seconds are user + system of every process of a side. Results print as a markdown
table and are written as JSON under ``benchmarks/results/`` (git-ignored).

    python benchmarks/features.py --lake /tmp/lake-medium --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import pandas as pd
from _sampler import ProcessRssSampler
from analytics import _cpu_seconds, _OwnRss, _workers, check_equal, summarise  # same directory

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PLATFORMS = ("mobile", "desktop", "web", "tablet")
GAP_MINUTES = 30
_MIB = 2**20


def spec() -> Any:
    from daskflow.features.tabular import AggregateSpec

    return AggregateSpec("listens", id="user_id", time="ts", windows=("7d", "all"), sum=("ms_played",),
                         nunique=("track_id", "artist_id"), active_days=True, recency=True,
                         share=(("platform", PLATFORMS),), session_gap_minutes=GAP_MINUTES)


def daskflow_features(lake: Path, since: str, cutoff: pd.Timestamp, client: Any) -> pd.DataFrame:
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


def duckdb_features(lake: Path, since: str, cutoff: pd.Timestamp, con: Any) -> pd.DataFrame:
    frame = con.execute(sql(lake, since, cutoff)).df()
    frame["user_id"] = frame["user_id"].astype(str)
    return frame


def run_daskflow(lake: Path, since: str, cutoff: pd.Timestamp, client: Any
                 ) -> tuple[pd.DataFrame, dict[str, Any]]:
    import psutil

    client.restart()
    client.run(_import_daskflow)
    processes = [psutil.Process(), *_workers(client)]
    cpu = _cpu_seconds(processes)
    with ProcessRssSampler() as sampler:
        start = time.perf_counter()
        result = daskflow_features(lake, since, cutoff, client)
        seconds = time.perf_counter() - start
    return result, {"seconds": seconds, "cpu_seconds": _cpu_seconds(processes) - cpu,
                    "worker_peak_mib": max(sampler.peak.values(), default=0) / _MIB,
                    "load_average_1min": round(os.getloadavg()[0], 2)}


def _import_daskflow() -> None:
    import daskflow.features.tabular  # noqa: F401
    import daskflow.io  # noqa: F401


def run_duckdb(lake: Path, since: str, cutoff: pd.Timestamp, threads: int
               ) -> tuple[pd.DataFrame, dict[str, Any]]:
    import duckdb
    import psutil

    con = duckdb.connect(config={"threads": threads})
    con.execute("SET TimeZone = 'UTC'")
    me = psutil.Process()
    cpu = _cpu_seconds([me])
    with _OwnRss() as sampler:
        start = time.perf_counter()
        result = duckdb_features(lake, since, cutoff, con)
        seconds = time.perf_counter() - start
    con.close()
    return result, {"seconds": seconds, "cpu_seconds": _cpu_seconds([me]) - cpu,
                    "process_peak_mib": max(sampler.peak.values(), default=0) / _MIB,
                    "load_average_1min": round(os.getloadavg()[0], 2)}


def markdown(report: dict[str, Any]) -> str:
    lines = ["| days | listens | daskflow s | DuckDB s | ratio | daskflow CPU s | DuckDB CPU s | CPU ratio "
             "| worker peak MiB | DuckDB peak MiB | load 1 min |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in report["results"]:
        ours, theirs = row["daskflow"], row["duckdb"]
        peak = max(r["worker_peak_mib"] for r in ours["runs"])
        their_peak = max(r["process_peak_mib"] for r in theirs["runs"])
        loads = [r["load_average_1min"] for r in ours["runs"] + theirs["runs"]]
        lines.append(
            f"| {row['days']} | {row['listens']:,} | {ours['median_seconds']:.2f} | "
            f"{theirs['median_seconds']:.2f} | {ours['median_seconds'] / theirs['median_seconds']:.2f}x | "
            f"{ours['median_cpu_seconds']:.1f} | {theirs['median_cpu_seconds']:.1f} | "
            f"{ours['median_cpu_seconds'] / theirs['median_cpu_seconds']:.2f}x | {peak:,.0f} | "
            f"{their_peak:,.0f} | {min(loads):.1f}-{max(loads):.1f} |")
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
    args = parser.parse_args(argv)
    import duckdb

    from daskflow.cluster import connect

    manifest = json.loads((args.lake / "_lake.json").read_text())
    start_day, n_days = pd.Timestamp(manifest["start_date"]), int(manifest["n_days"])
    cutoff = (start_day + pd.Timedelta(days=n_days)).tz_localize("UTC")  # the day after the last
    for path in sorted(args.lake.glob("listens/*/*.parquet")) + sorted(args.lake.glob("users/*.parquet")):
        path.read_bytes()  # a warm page cache for both sides
    con = duckdb.connect()
    report: dict[str, Any] = {
        "lake": str(args.lake), "machine": platform.platform(), "cpus": os.cpu_count(),
        "duckdb": duckdb.__version__, "workers": args.workers, "memory_limit": args.memory_limit,
        "cutoff": str(cutoff), "load_average_at_start": [round(v, 2) for v in os.getloadavg()], "results": []}
    with connect("local", n_workers=args.workers, threads_per_worker=1, memory_limit=args.memory_limit,
                 dashboard_address=":0") as client:
        for fraction in args.fractions:
            days = max(1, round(n_days * fraction))
            since = str((start_day + pd.Timedelta(days=n_days - days)).date())
            listens = con.execute(f"SELECT count(*) FROM read_parquet('{args.lake}/listens/*/*.parquet', "
                                  f"hive_partitioning = true) WHERE date >= '{since}'").fetchone()[0]
            ours_runs, theirs_runs = [], []
            for repeat in range(args.repeat):
                ours, ours_run = run_daskflow(args.lake, since, cutoff, client)
                theirs, theirs_run = run_duckdb(args.lake, since, cutoff, args.workers)
                check_equal(ours, theirs, f"{days} days, repeat {repeat}")
                ours_runs.append(ours_run)
                theirs_runs.append(theirs_run)
                print(f"{days} days #{repeat}: daskflow {ours_run['seconds']:.2f}s (CPU "
                      f"{ours_run['cpu_seconds']:.1f}s), DuckDB {theirs_run['seconds']:.2f}s (CPU "
                      f"{theirs_run['cpu_seconds']:.1f}s), equal ({len(ours):,} users x "
                      f"{ours.shape[1] - 1} features)", flush=True)
            report["results"].append({"days": days, "since": since, "listens": int(listens),
                                      "daskflow": summarise(ours_runs), "duckdb": summarise(theirs_runs)})
    report["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    table = markdown(report)
    print(table)
    print(f"load average at start {report['load_average_at_start']}, at end {report['load_average_at_end']}")
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"features-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2, default=float))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

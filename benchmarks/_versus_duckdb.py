"""The frame shared by the benchmarks that answer a question twice: daskflow on a LocalCluster, DuckDB.

A *question* is a pair of functions ``(ours, theirs)``: ``ours(lake, since, client)`` and
``theirs(lake, since, con)`` each return the answer as a DataFrame, for the listens from day
``since`` on. :func:`compare` runs every question on the last ``--fractions`` of the lake's
days, alternating the two sides ``--repeat`` times, checks every pair of answers are equal
(integers exactly, floats to a relative 1e-9) and reports medians of wall and CPU seconds, the
peak memory of each side and the load average, as a markdown table and as JSON under
``benchmarks/results/`` (git-ignored).

Timings exclude cluster start-up and imports (the workers import daskflow before the clock
starts); the lake's files are read once beforehand (a warm page cache). Worker peak memory is
the largest resident set of a worker process while the run's work runs, sampled every 50 ms;
with ``restart=True`` the workers are restarted before each daskflow run, so each peak
belongs to one run. CPU seconds are user + system of every process of a side (this process,
which hosts the scheduler and DuckDB, and for daskflow the workers).
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
_MIB = 2**20

Question = tuple[Callable[..., pd.DataFrame], Callable[..., pd.DataFrame]]


def arguments(description: str) -> argparse.ArgumentParser:
    """The options every comparison takes; a benchmark adds its own before parsing."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", type=Path, default=Path("/tmp/lake-medium"),
                        help="a lake from `daskflow generate LAKE --scale medium` (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per side and size (median)")
    parser.add_argument("--workers", type=int, default=2, help="daskflow workers / DuckDB threads")
    parser.add_argument("--memory-limit", default="4GiB", help="per daskflow worker (default: %(default)s)")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 1.0],
                        help="share of the lake's days (the last ones) the listens are cut to")
    return parser


def compare(name: str, args: argparse.Namespace, questions: dict[str, Question], *,
            warm: list[Path], imports: Callable[[], None], restart: bool,
            report: dict[str, Any] | None = None) -> dict[str, Any]:
    """Runs every question at every fraction of the lake's days; prints and writes the report."""
    import duckdb

    from daskflow.cluster import connect

    manifest = json.loads((args.lake / "_lake.json").read_text())
    start_day, n_days = pd.Timestamp(manifest["start_date"]), int(manifest["n_days"])
    for path in warm:
        path.read_bytes()
    con = duckdb.connect()
    report = {"lake": str(args.lake), "machine": platform.platform(), "cpus": os.cpu_count(),
              "duckdb": duckdb.__version__, "workers": args.workers, "memory_limit": args.memory_limit,
              **(report or {}), "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
              "results": []}
    with connect("local", n_workers=args.workers, threads_per_worker=1, memory_limit=args.memory_limit,
                 dashboard_address=":0") as client:
        for fraction in args.fractions:
            days = max(1, round(n_days * fraction))
            since = str((start_day + pd.Timedelta(days=n_days - days)).date())
            listens = con.execute(f"SELECT count(*) FROM read_parquet('{args.lake}/listens/*/*.parquet', "
                                  f"hive_partitioning = true) WHERE date >= '{since}'").fetchone()[0]
            for question, (ours_task, theirs_task) in questions.items():
                ours_runs, theirs_runs = [], []
                for repeat in range(args.repeat):
                    ours, ours_run = run_daskflow(ours_task, args.lake, since, client, imports=imports,
                                                  restart=restart)
                    theirs, theirs_run = run_duckdb(theirs_task, args.lake, since, args.workers)
                    check_equal(ours, theirs, f"{question}, {days} days, repeat {repeat}")
                    ours_runs.append(ours_run)
                    theirs_runs.append(theirs_run)
                    print(f"{question} {days} days #{repeat}: daskflow {ours_run['seconds']:.2f}s "
                          f"(CPU {ours_run['cpu_seconds']:.1f}s), DuckDB {theirs_run['seconds']:.2f}s "
                          f"(CPU {theirs_run['cpu_seconds']:.1f}s), equal ({len(ours):,} rows x "
                          f"{ours.shape[1]} columns)", flush=True)
                report["results"].append({"question": question, "days": days, "since": since,
                                          "listens": int(listens), "daskflow": summarise(ours_runs),
                                          "duckdb": summarise(theirs_runs)})
    report["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    print(markdown(report))
    print(f"load average at start {report['load_average_at_start']}, at end {report['load_average_at_end']}")
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2, default=float))
    print(f"written {out}")
    return report


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


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"median_seconds": statistics.median(r["seconds"] for r in runs),
            "median_cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs), "runs": runs}


def markdown(report: dict[str, Any]) -> str:
    lines = ["| question | days | listens | daskflow s | DuckDB s | ratio | daskflow CPU s | DuckDB CPU s "
             "| CPU ratio | worker peak MiB | DuckDB peak MiB | load 1 min |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in report["results"]:
        ours, theirs = row["daskflow"], row["duckdb"]
        peak = max(r["peak_mib"] for r in ours["runs"])
        their_peak = max(r["peak_mib"] for r in theirs["runs"])
        loads = [r["load_average_1min"] for r in ours["runs"] + theirs["runs"]]
        lines.append(
            f"| {row['question']} | {row['days']} | {row['listens']:,} | {ours['median_seconds']:.2f} | "
            f"{theirs['median_seconds']:.2f} | {ours['median_seconds'] / theirs['median_seconds']:.2f}x | "
            f"{ours['median_cpu_seconds']:.1f} | {theirs['median_cpu_seconds']:.1f} | "
            f"{ours['median_cpu_seconds'] / theirs['median_cpu_seconds']:.2f}x | {peak:,.0f} | "
            f"{their_peak:,.0f} | {min(loads):.1f}-{max(loads):.1f} |")
    return "\n".join(lines)


# -- measuring ---------------------------------------------------------------------------


def run_daskflow(task: Callable[..., pd.DataFrame], lake: Path, since: str, client: Any, *,
                 imports: Callable[[], None], restart: bool) -> tuple[pd.DataFrame, dict[str, Any]]:
    if restart:
        client.restart()
    client.run(imports)  # workers import daskflow before the clock starts, not during
    processes = [psutil.Process(), *_workers(client)]
    return _timed(task, (lake, since, client), processes, ProcessRssSampler())


def run_duckdb(task: Callable[..., pd.DataFrame], lake: Path, since: str, threads: int
               ) -> tuple[pd.DataFrame, dict[str, Any]]:
    import duckdb

    con = duckdb.connect(config={"threads": threads})
    con.execute("SET TimeZone = 'UTC'")
    try:
        return _timed(task, (lake, since, con), [psutil.Process()], _OwnRss())
    finally:
        con.close()


def _timed(task: Callable[..., pd.DataFrame], task_args: tuple[Any, ...], processes: list[psutil.Process],
           sampler: ProcessRssSampler) -> tuple[pd.DataFrame, dict[str, Any]]:
    cpu = _cpu_seconds(processes)
    with sampler:
        start = time.perf_counter()
        result = task(*task_args)
        seconds = time.perf_counter() - start
    return result, {"seconds": seconds, "cpu_seconds": _cpu_seconds(processes) - cpu,
                    "peak_mib": max(sampler.peak.values(), default=0) / _MIB,
                    "load_average_1min": round(os.getloadavg()[0], 2)}


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        times = process.cpu_times()
        total += times.user + times.system
    return total


def _workers(client: Any) -> list[psutil.Process]:
    pids = client.run(os.getpid)
    return [psutil.Process(pid) for pid in pids.values()]


class _OwnRss(ProcessRssSampler):
    """The RSS of this process (DuckDB runs in it)."""

    def _list_workers(self) -> list[Any]:
        return [self._me]

"""Ingest benchmark: a Parquet listens table -> the blocked interaction matrix.

Measures daskflow's ingest path (``read_table`` + ``build_interactions`` on a
``LocalCluster`` whose workers have a memory limit) against the *floor*: the same files
read with pyarrow in one process, IDs factorised with pandas, duplicate (user, item)
pairs summed with a sort + ``reduceat`` (or a pandas groupby), and CSR matrices built
with scipy. Both sides produce the same thing: the users x items matrix of float32
counts with the latest timestamp of every entry, and its transpose (daskflow's item
blocks). Every repeat checks that both agree on shape and number of non-zeros;
``--verify`` compares the matrices entry by entry.

Timings exclude cluster startup, worker restarts and imports; the Parquet files are read
once beforehand so that neither side pays for a cold page cache. Workers are restarted
before every daskflow repeat and the floor runs in a fresh process every repeat, so each
peak memory figure belongs to one run. CPU seconds (user + system, all processes of a
side) are reported beside wall time: on a shared machine they vary much less.

Run ``python benchmarks/ingest.py --help``. Results are printed as a markdown table and
written as JSON under ``benchmarks/results/`` (git-ignored), where the lake is generated
on first use and reused afterwards.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pyarrow.dataset as pads
import scipy.sparse as sp
from _sampler import Poller  # benchmarks/ is the script's directory

RESULTS_DIR = Path(__file__).resolve().parent / "results"
COLUMNS = ["user_id", "track_id", "ts"]
_MIB = 2**20


# -- measuring ---------------------------------------------------------------------------


def _high_water_mark(pid: int) -> int | None:
    """Peak resident set size of a process in bytes, from ``/proc`` (Linux only)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time used so far by some processes."""
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


class PeakRss(Poller):
    """Sample the resident memory of some processes from a background thread.

    Sampling every ``interval`` seconds can miss a short spike, so on exit the kernel's
    high-water mark is read too for the processes whose whole life is the measured run
    (``whole_life``: freshly restarted workers).
    """

    def __init__(self, pids: dict[str, int], *, interval: float = 0.02,
                 whole_life: Sequence[str] = ()) -> None:
        self.pids = dict(pids)
        self.whole_life = tuple(whole_life)
        self.peaks = dict.fromkeys(self.pids, 0)
        self._processes = {name: psutil.Process(pid) for name, pid in self.pids.items()}
        super().__init__(interval)

    def poll(self) -> None:
        for name, process in self._processes.items():
            try:
                self.peaks[name] = max(self.peaks[name], process.memory_info().rss)
            except psutil.Error:  # a worker was killed: the run reports the restart
                pass

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        for name in self.whole_life:
            self.peaks[name] = max(self.peaks[name], _high_water_mark(self.pids[name]) or 0)


# -- the floor: one process, pyarrow + pandas + scipy ---------------------------------------


@dataclass(frozen=True)
class FloorMatrices:
    """What the floor builds: the content of daskflow's user and item blocks."""

    n_rows: int
    user_ids: pd.Index
    item_ids: pd.Index
    users: sp.csr_matrix        # users x items, float32 counts
    users_last_ts: np.ndarray   # int64 ms, aligned with users.data
    items: sp.csr_matrix        # items x users (the transpose)
    items_last_ts: np.ndarray


def build_floor(listens_dir: str, method: str = "numpy") -> FloorMatrices:
    """Build the interaction matrix and its transpose in this process, as plainly as possible.

    ``method="numpy"`` sums duplicate (user, item) pairs with one sort and ``reduceat``;
    ``method="pandas"`` with ``groupby(...).agg(["size", "max"])``, the textbook way, which
    is about three times slower here; the faster one is the floor by default.
    """
    table = pads.dataset(listens_dir, format="parquet", partitioning="hive").to_table(columns=COLUMNS)
    user_codes, user_ids = pd.factorize(table.column("user_id").to_pandas(), sort=True)
    item_codes, item_ids = pd.factorize(table.column("track_id").to_pandas(), sort=True)
    ts = table.column("ts").to_numpy().astype("datetime64[ms]").astype(np.int64)
    n_rows, n_users, n_items = table.num_rows, len(user_ids), len(item_ids)
    del table
    # One int64 key per (user, item) in row-major order: sorted keys are CSR order.
    key = user_codes.astype(np.int64) * n_items + item_codes
    del user_codes, item_codes
    if method == "pandas":
        grouped = pd.DataFrame({"key": key, "ts": ts}).groupby("key", sort=True)["ts"].agg(["size", "max"])
        unique_keys = grouped.index.to_numpy()
        counts = grouped["size"].to_numpy().astype(np.float32)
        last_ts = grouped["max"].to_numpy()
    else:
        order = np.argsort(key)
        key, ts = key[order], ts[order]
        del order
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        unique_keys = key[starts]
        counts = np.diff(np.r_[starts, len(key)]).astype(np.float32)
        last_ts = np.maximum.reduceat(ts, starts)
    rows = unique_keys // n_items
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_users), out=indptr[1:])
    users = sp.csr_matrix((counts, (unique_keys % n_items).astype(np.int32), indptr),
                          shape=(n_users, n_items))
    # The transpose, carrying the entries' positions so that last_ts can follow them.
    positions = sp.csr_matrix((np.arange(users.nnz, dtype=np.int64), users.indices, users.indptr),
                              shape=users.shape).T.tocsr()
    items = sp.csr_matrix((counts[positions.data], positions.indices, positions.indptr),
                          shape=positions.shape)
    return FloorMatrices(n_rows, user_ids, item_ids, users, last_ts, items, last_ts[positions.data])


def _floor_child(listens_dir: str, method: str) -> dict[str, Any]:
    """One timed floor run, in a fresh process so that its peak memory is its own."""
    start, cpu_start = time.perf_counter(), time.process_time()
    result = build_floor(listens_dir, method)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak = _high_water_mark(os.getpid()) or psutil.Process().memory_info().rss
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "rows": result.n_rows,
            "nnz": int(result.users.nnz), "shape": [len(result.user_ids), len(result.item_ids)],
            "peak_rss": peak}


def run_floor(listens_dir: str, method: str) -> dict[str, Any]:
    # "spawn": the child starts from an empty interpreter, not from a copy of this one.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        pool.submit(int).result()  # interpreter and imports ready before the clock starts
        return pool.submit(_floor_child, listens_dir, method).result()


# -- daskflow ------------------------------------------------------------------------------


def _warm_worker() -> int:
    """Import what the tasks need, so that a restarted worker does not time its imports."""
    import dask.dataframe  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import daskflow.features  # noqa: F401

    return os.getpid()


def _spilled_bytes(dask_worker: Any) -> int:
    metrics = getattr(dask_worker.data, "cumulative_metrics", {})
    return int(metrics.get(("disk-write", "bytes"), 0))


def run_daskflow(client: Any, listens_dir: str, block_size: int) -> tuple[dict[str, Any], Any]:
    """One timed daskflow run on freshly restarted workers: (figures, the matrix)."""
    from distributed import futures_of, wait

    from daskflow.features import build_interactions
    from daskflow.io import read_table

    client.restart()
    workers = sorted(client.run(_warm_worker).values())
    pids = {f"worker {i}": pid for i, pid in enumerate(workers)} | {"driver": os.getpid()}
    cpu_start = {name: _cpu_seconds([pid]) for name, pid in pids.items()}
    with PeakRss(pids, whole_life=[name for name in pids if name != "driver"]) as memory:
        start = time.perf_counter()
        listens = read_table(listens_dir, columns=COLUMNS)
        matrix = build_interactions(listens, weight="count", time_col="ts", block_size=block_size,
                                    client=client)
        # build_interactions has waited for the user blocks (to count nnz), not the item blocks.
        wait(futures_of(list(matrix.user_blocks) + list(matrix.item_blocks)))
        seconds = time.perf_counter() - start
    cpu = {name: _cpu_seconds([pid]) - cpu_start[name] for name, pid in pids.items()}
    restarted = sorted(client.run(os.getpid).values()) != workers
    record = {"seconds": seconds, "cpu_seconds": sum(cpu.values()),
              # The driver process also runs the scheduler and the nannies.
              "driver_cpu_seconds": cpu["driver"],
              "nnz": matrix.nnz, "shape": list(matrix.shape),
              "n_user_blocks": len(matrix.user_blocks), "n_item_blocks": len(matrix.item_blocks),
              "worker_peak_rss": max(v for k, v in memory.peaks.items() if k != "driver"),
              "driver_peak_rss": memory.peaks["driver"],
              "spilled_bytes": sum(client.run(_spilled_bytes).values()),
              "worker_restarted": restarted}
    return record, matrix


def verify(matrix: Any, floor: FloorMatrices, client: Any) -> None:
    """Exit with a message if daskflow's matrix differs from the floor's in any ID, entry or time."""

    def gather(blocks: Sequence[Any]) -> tuple[sp.csr_matrix, np.ndarray]:
        parts = client.gather(client.compute(list(blocks)))
        return sp.vstack([b.csr for b in parts], format="csr"), np.concatenate([b.last_ts for b in parts])

    failed = []
    sides = [("users", matrix.user_blocks, floor.users, floor.users_last_ts),
             ("items", matrix.item_blocks, floor.items, floor.items_last_ts)]
    for side, blocks, expected, expected_ts in sides:
        found, found_ts = gather(blocks)
        if found.shape != expected.shape or found.dtype != expected.dtype:
            failed.append(f"{side} shape/dtype")
            continue
        failed += [f"{side} {name}" for name, a, b in [("indptr", found.indptr, expected.indptr),
                                                        ("indices", found.indices, expected.indices),
                                                        ("data", found.data, expected.data),
                                                        ("last_ts", found_ts, expected_ts)]
                   if not np.array_equal(a, b)]
    for side, ids, expected_ids in [("user", matrix.user_ids, floor.user_ids),
                                    ("item", matrix.item_ids, floor.item_ids)]:
        if not np.array_equal(np.asarray(ids, dtype=object), np.asarray(expected_ids, dtype=object)):
            failed.append(f"{side} ids")
    if failed:
        raise SystemExit(f"daskflow's matrix differs from the floor's: {', '.join(failed)}")
    print("verify: daskflow's user and item blocks equal the floor's matrices exactly", flush=True)


# -- orchestration -------------------------------------------------------------------------


def ensure_lake(lake: Path, scale: str, cluster: dict[str, Any]) -> dict[str, Any]:
    """Generate the lake unless a complete one is there already; return its manifest."""
    manifest = lake / "_lake.json"
    if not manifest.exists():
        from daskflow.cluster import connect
        from daskflow.sample import generate_lake

        print(f"generating a {scale} lake at {lake} (once; later runs reuse it)...", flush=True)
        start = time.perf_counter()
        with connect("local", **cluster) as client:
            generate_lake(str(lake), scale=scale, format="parquet", seed=0, client=client)
        print(f"generated in {time.perf_counter() - start:.0f}s", flush=True)
    return json.loads(manifest.read_text())


def warm_page_cache(listens_dir: Path) -> int:
    """Read every file once, so that the first timed run does not pay for the disk."""
    return sum(len(path.read_bytes()) for path in sorted(listens_dir.rglob("*.parquet")))


def summarise(records: list[dict[str, Any]], rows: int) -> dict[str, Any]:
    median = statistics.median(r["seconds"] for r in records)
    return {"median_seconds": median, "rows_per_second": rows / median,
            "median_cpu_seconds": statistics.median(r["cpu_seconds"] for r in records),
            "seconds": [r["seconds"] for r in records], "runs": records}


def markdown(result: dict[str, Any]) -> str:
    rows, floor, ours = result["rows"], result["floor"], result["daskflow"]
    workers = f"{result['n_workers']} workers x {result['threads_per_worker']} thread"
    return "\n".join([
        "| side | rows | median s | rows/s | median CPU s | peak memory |",
        "|---|---:|---:|---:|---:|---|",
        f"| floor (1 process, {result['floor_method']}) | {rows:,} | {floor['median_seconds']:.1f} | "
        f"{floor['rows_per_second']:,.0f} | {floor['median_cpu_seconds']:.1f} | "
        f"process {floor['peak_rss_mib']:,.0f} MiB |",
        f"| daskflow ({workers}, limit {result['memory_limit']}) | {rows:,} | "
        f"{ours['median_seconds']:.1f} | {ours['rows_per_second']:,.0f} | {ours['median_cpu_seconds']:.1f} | "
        f"worker {ours['worker_peak_rss_mib']:,.0f} MiB, driver {ours['driver_peak_rss_mib']:,.0f} MiB |",
        "",
        f"ratio daskflow/floor (rows/s): **{result['ratio']:.2f}** "
        f"(per repeat: {', '.join(f'{r:.2f}' for r in result['ratio_per_repeat'])})",
    ])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time Parquet -> blocked interaction matrix: daskflow on a LocalCluster against "
                    "a one-process pyarrow + pandas + scipy floor, on the same files in the same run.")
    parser.add_argument("--lake", type=Path, default=None,
                        help="sample lake directory, generated there if missing "
                             "(default: benchmarks/results/lake-SCALE-parquet)")
    parser.add_argument("--scale", default="medium", choices=["small", "medium", "large"],
                        help="scale of the lake to generate when it is missing (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed runs of each side, alternating; medians are reported "
                             "(default: %(default)s)")
    parser.add_argument("--n-workers", type=int, default=2,
                        help="LocalCluster worker processes (default: %(default)s)")
    parser.add_argument("--threads-per-worker", type=int, default=1,
                        help="threads per worker (default: %(default)s)")
    parser.add_argument("--memory-limit", default="3GiB",
                        help="memory limit of each worker (dask spills at 70%%, pauses at 80%% and "
                             "restarts the worker at 95%%; default: %(default)s)")
    parser.add_argument("--block-size", type=int, default=50_000,
                        help="users (and items) per block of the matrix (default: %(default)s)")
    parser.add_argument("--floor-method", default="numpy", choices=["numpy", "pandas"],
                        help="how the floor sums duplicate (user, item) pairs: sort + reduceat, or "
                             "a pandas groupby (slower, so a weaker floor); default: %(default)s")
    parser.add_argument("--only", choices=["floor", "daskflow"], default=None,
                        help="run one side only (e.g. to profile it); no ratio then")
    parser.add_argument("--verify", action="store_true",
                        help="after the first daskflow run, build the floor in this process too and "
                             "check that the matrices are equal entry by entry (needs memory for both)")
    parser.add_argument("--output", type=Path, default=None,
                        help="JSON file for the results (default: benchmarks/results/ingest-SCALE.json)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    lake = args.lake or RESULTS_DIR / f"lake-{args.scale}-parquet"
    cluster = {"n_workers": args.n_workers, "threads_per_worker": args.threads_per_worker,
               "memory_limit": args.memory_limit, "dashboard_address": ":0"}
    manifest = ensure_lake(lake, args.scale, cluster)
    load_at_start = os.getloadavg()
    listens_dir = lake / "listens"
    rows = int(manifest["rows"]["listens"])
    print(f"lake {lake}: {rows:,} listen rows, {warm_page_cache(listens_dir) / _MIB:,.0f} MiB of "
          "Parquet (page cache warmed)", flush=True)

    from daskflow.cluster import connect

    floor_runs: list[dict[str, Any]] = []
    daskflow_runs: list[dict[str, Any]] = []
    with connect("local", **cluster) as client:
        for repeat in range(args.repeat):
            label = f"[{repeat + 1}/{args.repeat}]"
            # The two sides alternate, so that the machine's ups and downs hit both alike.
            if args.only != "daskflow":
                run = run_floor(str(listens_dir), args.floor_method)
                # The 1-minute load average just after the run: how busy the machine was.
                run["load_average_1min"] = round(os.getloadavg()[0], 2)
                floor_runs.append(run)
                print(f"{label} floor    {run['seconds']:7.2f}s  cpu {run['cpu_seconds']:6.1f}s  "
                      f"peak {run['peak_rss'] / _MIB:,.0f} MiB  load {run['load_average_1min']:.1f}",
                      flush=True)
            if args.only != "floor":
                run, matrix = run_daskflow(client, str(listens_dir), args.block_size)
                run["load_average_1min"] = round(os.getloadavg()[0], 2)
                daskflow_runs.append(run)
                print(f"{label} daskflow {run['seconds']:7.2f}s  cpu {run['cpu_seconds']:6.1f}s "
                      f"(driver {run['driver_cpu_seconds']:.1f}s)  load {run['load_average_1min']:.1f}  "
                      "worker peak "
                      f"{run['worker_peak_rss'] / _MIB:,.0f} MiB, driver peak "
                      f"{run['driver_peak_rss'] / _MIB:,.0f} MiB, "
                      f"spilled {run['spilled_bytes'] / _MIB:,.0f} MiB", flush=True)
                if run["worker_restarted"]:
                    print("warning: a worker was restarted during the run (memory limit reached?)",
                          flush=True)
                if args.verify and repeat == 0:
                    verify(matrix, build_floor(str(listens_dir), args.floor_method), client)
                del matrix  # frees the blocks on the cluster before the next run
            if floor_runs and daskflow_runs:
                floor, ours = floor_runs[-1], daskflow_runs[-1]
                if (floor["nnz"], floor["shape"]) != (ours["nnz"], ours["shape"]):
                    raise SystemExit(f"the two sides disagree: the floor has {floor['shape']} with "
                                     f"{floor['nnz']} non-zeros, daskflow {ours['shape']} with "
                                     f"{ours['nnz']} non-zeros")

    result: dict[str, Any] = {
        "benchmark": "ingest", "command": " ".join([Path(sys.executable).name] + sys.argv),
        "lake": str(lake), "scale": manifest.get("scale"), "rows": rows,
        "machine": {"cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                    else psutil.cpu_count(),
                    "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
                    # The machine may be shared: its load says how much the figures can be trusted.
                    "load_average_1_5_15": {"start": [round(x, 2) for x in load_at_start],
                                            "end": [round(x, 2) for x in os.getloadavg()]},
                    "python": platform.python_version(), "platform": platform.platform()},
        "n_workers": args.n_workers, "threads_per_worker": args.threads_per_worker,
        "memory_limit": args.memory_limit, "block_size": args.block_size,
        "floor_method": args.floor_method, "repeat": args.repeat,
    }
    if floor_runs:
        result["floor"] = summarise(floor_runs, rows) | {
            "peak_rss_mib": max(r["peak_rss"] for r in floor_runs) / _MIB}
    if daskflow_runs:
        result["daskflow"] = summarise(daskflow_runs, rows) | {
            "worker_peak_rss_mib": max(r["worker_peak_rss"] for r in daskflow_runs) / _MIB,
            "driver_peak_rss_mib": max(r["driver_peak_rss"] for r in daskflow_runs) / _MIB,
            "any_worker_restarted": any(r["worker_restarted"] for r in daskflow_runs)}
    if floor_runs and daskflow_runs:
        result["ratio"] = result["daskflow"]["rows_per_second"] / result["floor"]["rows_per_second"]
        result["ratio_per_repeat"] = [f["seconds"] / d["seconds"] for f, d in zip(floor_runs, daskflow_runs)]
    output = args.output or RESULTS_DIR / f"ingest-{manifest.get('scale', 'lake')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    if "ratio" in result:
        print("\n" + markdown(result))
    print(f"\nresults written to {output}")
    return 0


if __name__ == "__main__":  # LocalCluster workers and the floor's process re-import this file
    sys.exit(main())

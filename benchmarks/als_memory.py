"""Fit ImplicitALS on the medium sample lake with workers whose memory is far below the data.

    python benchmarks/als_memory.py --lake benchmarks/results/lake-medium-parquet \
        --block-size 2500 --workers 1 --threads 2 --memory-limit 327MiB --streamed

Phase 1 (once, with roomy workers): read the listens, build the blocked interaction matrix and
save it (``save_interactions``) under benchmarks/results/. Phase 2, timed: a fresh
LocalCluster whose workers have a small ``memory_limit`` fits ALS on it in one of two modes:

- persisted (default): ``load_interactions`` reads every block into worker memory, ALS
  persists its confidence blocks beside them, and Dask spills what does not fit;
- ``--streamed``: ``load_interactions(persist=False)`` reads nothing; each half-step's tasks
  read their block's counts from the files, make the confidences and solve, so worker
  memory holds only the factors and the blocks being solved (no spilling of the matrix).

Reports the interaction data against the workers' total memory, counted the same way in both
modes: the matrix blocks (both orientations, with their latest-time arrays) plus ALS's
confidence blocks. Also what a streamed fit reads and builds every iteration (the count
arrays, without latest times, and the confidences). Then the idle and peak RSS of every
worker (peak from the scheduler's heartbeat metrics and from /proc every 0.05 s), the bytes
spilled to disk, whether any worker was lost, the load average and s/iteration. Prints one
JSON document (and writes it to ``--output`` if given).
"""

from __future__ import annotations

import _thread
import argparse
import json
import os
import time
import zipfile
from pathlib import Path

import dask
import numpy as np
from _sampler import Poller, ProcessRssSampler, RssSampler  # noqa: E402 - benchmarks/ is the script's directory


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lake", default="benchmarks/results/lake-medium-parquet",
                        help="a lake written by `daskflow generate --scale medium` (generated if missing)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="threads per worker")
    parser.add_argument("--memory-limit", default="300MiB", help="per worker")
    parser.add_argument("--factors", type=int, default=40)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--block-size", type=int, default=10_000)
    parser.add_argument("--streamed", action="store_true",
                        help="load_interactions(persist=False): ALS reads the blocks every half-step")
    parser.add_argument("--malloc-arena-max", type=int, default=None,
                        help="MALLOC_ARENA_MAX of the worker processes (glibc; default: glibc's 8 x cores)")
    parser.add_argument("--output", default=None, help="also write the JSON report here")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before the run is stopped")
    parser.add_argument("--target", type=float, default=0.4,
                        help="distributed.worker.memory.target: spill when *managed* memory passes it")
    parser.add_argument("--spill", type=lambda v: False if v == "off" else float(v), default=0.5,
                        help="distributed.worker.memory.spill: spill when *process* memory passes it, "
                             "down to target ('off': only the managed-memory target applies)")
    return parser.parse_args()


def stored_array_bytes(saved: str) -> dict[str, int]:
    """Bytes of each array kind over every saved block (both orientations), from the .npy headers."""
    totals: dict[str, int] = {}
    for path in sorted(Path(saved).glob("*/block-*.npz")):
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                with archive.open(info) as handle:
                    version = np.lib.format.read_magic(handle)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read(handle)
                name = info.filename.removesuffix(".npy")
                totals[name] = totals.get(name, 0) + int(np.prod(shape)) * dtype.itemsize
    return totals


class Watchdog(Poller):
    """Interrupts the main thread when a worker process is replaced or the run takes too long."""

    def __init__(self, processes: ProcessRssSampler, n_workers: int, timeout: float) -> None:
        self.processes, self.n_workers, self.timeout = processes, n_workers, timeout
        self.reason: str | None = None
        self._deadline = 0.0
        super().__init__(0.2)

    def __enter__(self) -> Watchdog:
        self._deadline = time.monotonic() + self.timeout
        return super().__enter__()

    def poll(self) -> bool:
        if len(self.processes.peak) > self.n_workers:
            self.reason = "a worker process was killed and restarted (nanny memory limit)"
        elif time.monotonic() > self._deadline:
            self.reason = f"stopped after {self.timeout:.0f} s"
        if self.reason:
            _thread.interrupt_main()
        return self.reason is not None


def worker_malloc_environ() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key.startswith("MALLOC_")}


def worker_rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def main() -> None:
    args = parse_args()
    from dask.utils import parse_bytes

    from daskflow.cluster import connect
    from daskflow.features import build_interactions, load_interactions, save_interactions
    from daskflow.io import read_table
    from daskflow.models import ImplicitALS
    from daskflow.sample import generate_lake

    limit = parse_bytes(args.memory_limit)
    saved = f"{args.lake.rstrip('/')}-matrix-{args.block_size}"
    if not Path(saved).exists():
        with connect("local", n_workers=2, memory_limit="4GiB", dashboard_address=":0") as client:
            if not Path(args.lake).exists():
                generate_lake(args.lake, scale="medium", client=client)
            listens = read_table(f"{args.lake}/listens", columns=["user_id", "track_id", "ts"])
            save_interactions(build_interactions(listens, block_size=args.block_size, client=client),
                              saved, client=client)
    arrays = stored_array_bytes(saved)
    matrix_bytes = arrays["data"] + arrays["indices"] + arrays["indptr"] + arrays["last_ts"]
    count_bytes = arrays["data"] + arrays["indices"] + arrays["indptr"]
    # Spill early and never pause: the data is meant not to fit, and with one worker a paused
    # worker (paused on *process* memory, which spilling cannot lower below the interpreter's
    # own imports) stalls the fit for good. The nanny still kills a worker at 95%.
    memory = {"distributed.worker.memory.target": args.target, "distributed.worker.memory.spill": args.spill,
              "distributed.worker.memory.pause": False, "distributed.worker.memory.terminate": 0.95}
    if args.malloc_arena_max is not None:
        import distributed  # noqa: F401 - registers distributed's config defaults

        environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
        memory["distributed.nanny.pre-spawn-environ"] = {**environ, "MALLOC_ARENA_MAX": args.malloc_arena_max}
    with open(f"{saved}/meta.json") as handle:
        meta = json.load(handle)
    nnz, (n_users, n_items) = meta["nnz"], meta["shape"]
    load_before = os.getloadavg()
    with dask.config.set(memory), connect("local", n_workers=args.workers, threads_per_worker=args.threads,
                                          memory_limit=args.memory_limit, dashboard_address=":0") as client:
        workers_before = set(client.scheduler_info()["workers"])
        idle_rss = client.run(worker_rss)
        malloc_environ = next(iter(client.run(worker_malloc_environ).values()))
        model, error, loaded, finished = None, None, None, None
        with RssSampler(client) as sampler, ProcessRssSampler() as processes:
            # The goal is "no worker killed": stop at the first restart (the nanny would retry
            # for a long while) or after --timeout seconds, and report what happened.
            watchdog = Watchdog(processes, args.workers, args.timeout)
            started = time.perf_counter()
            try:
                with watchdog:
                    matrix = load_interactions(saved, client=client, persist=not args.streamed)
                    loaded = time.perf_counter()
                    model = ImplicitALS(n_factors=args.factors, n_iter=args.iterations, regularization=0.05)
                    model.fit(matrix, client=client)
                    finished = time.perf_counter()
            except KeyboardInterrupt:
                if not watchdog.reason:
                    raise
                error = watchdog.reason
            except Exception as exc:  # noqa: BLE001 - a KilledWorker, a timeout: part of the report
                error = f"{type(exc).__name__}: {exc}"
        workers_after = set(client.scheduler_info()["workers"])
    # ALS's confidence blocks: int32 indices + float32 confidences per entry, int64 indptr per
    # row, for both orientations. Persisted for the whole fit, or built per half-step block by
    # block when streamed.
    confidence_bytes = 8 * 2 * nnz + 8 * (n_users + n_items + 2)
    total_limit = args.workers * limit
    peaks = [*sampler.peak.values(), *processes.peak.values()]
    report = {
        "mode": "streamed" if args.streamed else "persisted",
        "finished": model is not None and finished is not None, "error": error,
        "nnz": nnz, "shape": [n_users, n_items], "factors": args.factors, "block_size": args.block_size,
        "matrix_blocks_bytes": matrix_bytes, "als_confidence_blocks_bytes": confidence_bytes,
        "interaction_data_bytes": matrix_bytes + confidence_bytes,
        "workers": args.workers, "threads_per_worker": args.threads,
        "memory_limit_per_worker": limit, "workers_total_memory": total_limit,
        "ratio_interaction_data_to_memory": round((matrix_bytes + confidence_bytes) / total_limit, 2),
        "count_arrays_bytes": count_bytes,
        "streamed_bytes_per_iteration": count_bytes + confidence_bytes,
        "ratio_streamed_bytes_per_iteration_to_memory": round((count_bytes + confidence_bytes)
                                                              / total_limit, 2),
        "worker_malloc_environ": malloc_environ,
        "memory_config": {key.rsplit(".", 1)[-1]: value for key, value in memory.items()
                          if key.startswith("distributed.worker.memory")},
        "idle_rss_per_worker": {a.rsplit(":", 1)[-1]: v for a, v in idle_rss.items()},
        "peak_rss_per_worker": {a.rsplit(":", 1)[-1]: v for a, v in sampler.peak.items()},
        "peak_rss_per_worker_process_0.05s": {str(pid): v for pid, v in processes.peak.items()},
        "peak_rss_max_fraction_of_limit": round(max(peaks) / limit, 3) if peaks else None,
        "spilled_to_disk_peak_bytes": sum(sampler.spilled.values()),
        "workers_lost": sorted(workers_before - workers_after),
        "worker_processes_seen": len(processes.peak),
        "load_seconds": round(loaded - started, 1) if loaded else None,
        "fit_seconds": round(finished - loaded, 1) if finished else None,
        "seconds_per_iteration": [round(s, 2) for s in model.iteration_seconds_] if model else [],
        "loss_curve": [round(v, 1) for v in model.loss_curve_] if model else [],
        "factors_finite": bool(np.isfinite(model.user_factors_).all()) if finished else None,
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
    }
    print(json.dumps(report, indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Fit ImplicitALS on the medium sample lake with workers whose memory is far below the data.

    python benchmarks/als_memory.py --lake benchmarks/results/lake-medium-parquet \
        --workers 1 --threads 2 --memory-limit 300MiB

Phase 1 (once, with roomy workers): read the listens, build the blocked interaction matrix and
save it (``save_interactions``) under benchmarks/results/. Phase 2, timed: a fresh
LocalCluster whose workers have a small ``memory_limit`` loads the matrix block by block
(each worker reads its blocks from disk) and fits ALS, so Dask must spill. Reports the
interaction data (matrix blocks in both orientations plus ALS's confidence blocks) against
the workers' total memory, the peak RSS of every worker (sampled every 0.2 s), the bytes
spilled to disk, and whether any worker was lost. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import dask
import numpy as np
from _sampler import RssSampler  # noqa: E402 - benchmarks/ is the script's directory


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
    return parser.parse_args()


def block_bytes(block: Any) -> int:
    csr = block.csr
    return int(csr.data.nbytes + csr.indices.nbytes + csr.indptr.nbytes + block.last_ts.nbytes)


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
    # Spill early and never pause: the data is meant not to fit, and with one worker a paused
    # worker (paused on *process* memory, which spilling cannot lower below the interpreter's
    # own ~250 MB) stalls the fit for good. The nanny still kills a worker at 95%.
    memory = {"distributed.worker.memory.target": 0.4, "distributed.worker.memory.spill": 0.5,
              "distributed.worker.memory.pause": False, "distributed.worker.memory.terminate": 0.95}
    with dask.config.set(memory), connect("local", n_workers=args.workers, threads_per_worker=args.threads,
                                          memory_limit=args.memory_limit, dashboard_address=":0") as client:
        workers_before = set(client.scheduler_info()["workers"])
        with RssSampler(client) as sampler:
            started = time.perf_counter()
            matrix = load_interactions(saved, client=client)
            sizes = client.gather(client.compute([dask.delayed(block_bytes)(b)
                                                  for b in matrix.user_blocks + matrix.item_blocks]))
            loaded = time.perf_counter()
            model = ImplicitALS(n_factors=args.factors, n_iter=args.iterations, regularization=0.05)
            model.fit(matrix, client=client)
            finished = time.perf_counter()
        workers_after = set(client.scheduler_info()["workers"])
        matrix_bytes = int(sum(sizes))
        # ALS keeps its own confidence blocks (int32 indices + float32 confidences per entry,
        # int64 indptr per row) for both orientations during the fit.
        confidence_bytes = 8 * 2 * matrix.nnz + 8 * (matrix.n_users + matrix.n_items + 2)
        total_limit = args.workers * limit
        report = {
            "nnz": matrix.nnz, "shape": list(matrix.shape), "factors": args.factors,
            "matrix_blocks_bytes": matrix_bytes, "als_confidence_blocks_bytes": confidence_bytes,
            "interaction_data_bytes": matrix_bytes + confidence_bytes,
            "workers": args.workers, "threads_per_worker": args.threads,
            "memory_limit_per_worker": limit, "workers_total_memory": total_limit,
            "ratio_interaction_data_to_memory": round((matrix_bytes + confidence_bytes) / total_limit, 2),
            "peak_rss_per_worker": {a.rsplit(":", 1)[-1]: v for a, v in sampler.peak.items()},
            "peak_rss_max_fraction_of_limit": round(max(sampler.peak.values()) / limit, 3),
            "spilled_to_disk_peak_bytes": sum(sampler.spilled.values()),
            "workers_lost": sorted(workers_before - workers_after),
            "load_seconds": round(loaded - started, 1), "fit_seconds": round(finished - loaded, 1),
            "seconds_per_iteration": [round(s, 2) for s in model.iteration_seconds_],
            "loss_curve": [round(v, 1) for v in model.loss_curve_],
            "factors_finite": bool(np.isfinite(model.user_factors_).all()),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

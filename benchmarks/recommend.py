"""Recommendation throughput: daskflow vs ``implicit`` on the same factors, same cores.

Both recommend the top ``--n`` items, training items filtered, for ``--users`` random users
from the *same* factors, so the answers must agree (checked on every user). Only the
``recommend`` calls are timed, the two peers alternating call by call; medians of
``--repeat`` calls are reported, with the CPU seconds of each call.

Factors (``--factors-from``):

- ``fitted`` (default): daskflow's ImplicitALS fitted on ``benchmarks/als.py``'s synthetic
  play counts (200k users x 50k items, ~9.8M entries, 64 factors, λ = 0.05, α = 1,
  15 CG iterations), cached under ``benchmarks/results/``. Real ALS factors: item norms
  follow popularity, which daskflow's pruned search relies on.
- ``random``: Gaussian factors (every item of about the same norm): the worst case for
  pruning, where daskflow scores nearly every item, as ``implicit`` always does.

    python benchmarks/recommend.py --users 50000 --repeat 5
    python benchmarks/recommend.py --factors-from random --users 50000 --factors 40 --repeat 5
    python benchmarks/recommend.py --all --repeat 3

``--all`` times ``model.recommend_all(matrix, uri)`` instead: the top-n of *every* user of the
blocked interaction matrix, written to Parquet with the original string IDs, on a
LocalCluster of one worker with two threads (one task per user block), against ``implicit``'s
batched ``recommend`` of the same users in memory (which writes nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--factors-from", choices=["fitted", "random"], default="fitted")
    parser.add_argument("--users", type=int, default=50_000, help="random users recommended for")
    parser.add_argument("--items", type=int, default=50_000, help="items (random factors only)")
    parser.add_argument("--factors", type=int, default=64, help="rank (random: any; fitted: 64)")
    parser.add_argument("--seen", type=int, default=50, help="seen items per user (random factors only)")
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--all", action="store_true",
                        help="time recommend_all over every user of the blocked matrix (fitted factors)")
    parser.add_argument("--block-size", type=int, default=25_000, help="users per block (--all)")
    parser.add_argument("--out", default=str(RESULTS_DIR / "recommend.json"))
    return parser.parse_args()


def fitted_factors() -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """daskflow's factors of als.py's training matrix (fitted once, then cached)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from als import hold_out_one, load_play_counts

    train, _ = hold_out_one(load_play_counts(200_000, 50_000, 10_000_000, 0), seed=0)
    cache = RESULTS_DIR / "recommend-factors-200000x50000-f64.npz"
    if not cache.exists():
        from daskflow.models import ImplicitALS

        model = ImplicitALS(n_factors=64, regularization=0.05, alpha=1.0, confidence="linear",
                            n_iter=15, cg_steps=3, random_state=0, compute_loss=False).fit(train)
        np.savez(cache, users=model.user_factors_, items=model.item_factors_)
    saved = np.load(cache)
    return saved["users"], saved["items"], train


def random_factors(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    rng = np.random.default_rng(0)
    n_users = max(args.users, 1)
    user_factors = rng.normal(0, 0.1, (n_users, args.factors)).astype(np.float32)
    item_factors = rng.normal(0, 0.1, (args.items, args.factors)).astype(np.float32)
    rows = np.repeat(np.arange(n_users), args.seen)
    cols = rng.integers(0, args.items, len(rows))
    seen = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, args.items))
    return user_factors, item_factors, seen


def recommend_all_throughput(args: argparse.Namespace) -> None:
    """``recommend_all`` to Parquet for every user vs implicit's batched recommend, alternating."""
    import shutil
    import tempfile

    import dask.dataframe as dd
    import pandas as pd
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    from daskflow.cluster import connect
    from daskflow.features import build_interactions
    from daskflow.models import ImplicitALS

    user_factors, item_factors, train = fitted_factors()
    coo = train.tocoo()
    # Zero-padded IDs: the matrix's sorted-ID order is the CSR's, so the factors line up.
    user_ids = np.array([f"u{u:07d}" for u in range(train.shape[0])], dtype=object)
    item_ids = np.array([f"i{i:06d}" for i in range(train.shape[1])], dtype=object)
    table = pd.DataFrame({"user_id": user_ids[coo.row], "track_id": item_ids[coo.col],
                          "plays": coo.data.astype(np.float32)})
    theirs = AlternatingLeastSquares(factors=item_factors.shape[1])
    theirs.user_factors, theirs.item_factors = user_factors, item_factors
    everyone = np.arange(train.shape[0])
    wall: dict[str, list[float]] = {"daskflow recommend_all": [], "implicit, BLAS 1 thread": []}
    out = Path(tempfile.mkdtemp(prefix="recommend-all-"))
    load_start = os.getloadavg()
    with connect("local", n_workers=1, threads_per_worker=2, processes=False,
                 dashboard_address=":0") as client:
        matrix = build_interactions(dd.from_pandas(table, npartitions=8), user_col="user_id",
                                    item_col="track_id", weight="plays", time_col=None,
                                    block_size=args.block_size, client=client)
        ours = ImplicitALS(n_factors=item_factors.shape[1])
        ours.user_factors_, ours.item_factors_ = user_factors, item_factors
        ours.user_ids_, ours.item_ids_ = matrix.user_ids, matrix.item_ids
        ours.n_features_in_ = item_factors.shape[0]

        def daskflow_call() -> None:
            shutil.rmtree(out / "top", ignore_errors=True)
            ours.recommend_all(matrix, str(out / "top"), n=args.n)

        def implicit_call() -> None:
            with threadpool_limits(1, "blas"):
                theirs.recommend(everyone, train, N=args.n, filter_already_liked_items=True)

        calls = {"daskflow recommend_all": daskflow_call, "implicit, BLAS 1 thread": implicit_call}
        for call in calls.values():
            call()  # warm-up
        for _ in range(args.repeat):
            for name, call in calls.items():
                started = time.perf_counter()
                call()
                wall[name].append(time.perf_counter() - started)
        written = pd.read_parquet(out / "top")
    shutil.rmtree(out, ignore_errors=True)
    medians = {name: statistics.median(times) for name, times in wall.items()}
    results = {
        "args": vars(args), "users": train.shape[0], "items": train.shape[1],
        "machine": {"load_average_start": load_start, "load_average_end": os.getloadavg()},
        "rows written": len(written), "median_seconds": medians, "seconds": wall,
        "users/s": {name: train.shape[0] / seconds for name, seconds in medians.items()},
        "ratio daskflow recommend_all / implicit users/s":
            medians["implicit, BLAS 1 thread"] / medians["daskflow recommend_all"],
    }
    print(json.dumps({k: v for k, v in results.items() if k != "seconds"}, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


def main() -> None:
    args = parse_args()
    if args.all:
        recommend_all_throughput(args)
        return
    if args.factors_from == "fitted":
        user_factors, item_factors, seen = fitted_factors()
    else:
        user_factors, item_factors, seen = random_factors(args)
    rng = np.random.default_rng(1)
    users = np.sort(rng.choice(user_factors.shape[0], min(args.users, user_factors.shape[0]),
                               replace=False))
    user_seen = seen[users]

    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    from daskflow.models import ImplicitALS

    ours = ImplicitALS(n_factors=item_factors.shape[1])
    ours.user_factors_, ours.item_factors_ = user_factors, item_factors
    ours.user_ids_ = ours.item_ids_ = None
    ours.n_features_in_ = item_factors.shape[0]
    theirs = AlternatingLeastSquares(factors=item_factors.shape[1])
    theirs.user_factors, theirs.item_factors = user_factors, item_factors

    def implicit_with(threads: int):
        def call():
            with threadpool_limits(threads, "blas"):
                return theirs.recommend(users, user_seen, N=args.n, filter_already_liked_items=True)
        return call

    peers = {"daskflow": lambda: ours.recommend(users, user_seen, n=args.n, filter_seen=True),
             "implicit, BLAS 1 thread": implicit_with(1),
             "implicit, BLAS 2 threads": implicit_with(2)}
    answers = {name: call() for name, call in peers.items()}  # warm-up: compilation, pools
    wall: dict[str, list[float]] = {name: [] for name in peers}
    cpu: dict[str, list[float]] = {name: [] for name in peers}
    load_start = os.getloadavg()
    for _ in range(args.repeat):
        for name, call in peers.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            call()
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - started_cpu)

    ours_items, ours_scores = answers["daskflow"]
    their_items, their_scores = answers["implicit, BLAS 1 thread"]
    same = (ours_items == their_items).all(axis=1)
    # float32 scores of both peers differ in the last bits, so near-ties may swap places.
    near_tie = np.isclose(np.sort(ours_scores, axis=1), np.sort(their_scores, axis=1), rtol=1e-5).all(axis=1)
    results = {
        "args": vars(args),
        "machine": {"load_average_start": load_start, "load_average_end": os.getloadavg(),
                    "cpus": os.cpu_count()},
        "users": len(users), "items": item_factors.shape[0], "factors": item_factors.shape[1],
        "median_seconds": {name: statistics.median(times) for name, times in wall.items()},
        "median_cpu_seconds": {name: statistics.median(times) for name, times in cpu.items()},
        "seconds": wall, "cpu_seconds": cpu,
        "users with identical top items": float(same.mean()),
        "users with identical or near-tied top scores": float((same | near_tie).mean()),
    }
    best = min((v for k, v in results["median_seconds"].items() if k.startswith("implicit")))
    best_cpu = min((v for k, v in results["median_cpu_seconds"].items() if k.startswith("implicit")))
    results["users/s"] = {name: len(users) / seconds for name, seconds in results["median_seconds"].items()}
    results["ratio daskflow / implicit users/s (its faster setting)"] = \
        best / results["median_seconds"]["daskflow"]
    results["ratio implicit CPU s / daskflow CPU s (its cheaper setting)"] = \
        best_cpu / results["median_cpu_seconds"]["daskflow"]
    print(json.dumps({k: v for k, v in results.items() if k not in ("seconds", "cpu_seconds")}, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

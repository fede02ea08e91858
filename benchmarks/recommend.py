"""Recommendation throughput: daskflow vs ``implicit`` on the same factors, same cores.

Both recommend the top ``--n`` items for ``--users`` random users from the same random
float32 factors, with each user's ``--seen`` training items filtered. Only ``recommend``
is timed (medians of ``--repeat`` calls); the factors are identical, so the work is too.

    python benchmarks/recommend.py --users 50000 --items 50000 --factors 40 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import scipy.sparse as sp


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--factors", type=int, default=40)
    parser.add_argument("--seen", type=int, default=50, help="training items per user")
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/recommend.json")
    return parser.parse_args()


def timed(function, repeat: int) -> float:
    function()  # warm-up: Numba compilation, thread pools
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    args = parse_args()
    rng = np.random.default_rng(0)
    user_factors = rng.normal(0, 0.1, (args.users, args.factors)).astype(np.float32)
    item_factors = rng.normal(0, 0.1, (args.items, args.factors)).astype(np.float32)
    rows = np.repeat(np.arange(args.users), args.seen)
    cols = rng.integers(0, args.items, len(rows))
    seen = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(args.users, args.items))
    users = np.arange(args.users)
    results = {"machine": {"load_average": os.getloadavg(), "cpus": os.cpu_count()}, "args": vars(args)}

    from daskflow.models import ImplicitALS

    ours = ImplicitALS(n_factors=args.factors)
    ours.user_factors_, ours.item_factors_ = user_factors, item_factors
    ours.user_ids_ = ours.item_ids_ = None
    ours.n_features_in_ = args.items
    results["daskflow"] = timed(lambda: ours.recommend(users, seen, n=args.n), args.repeat)

    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    theirs = AlternatingLeastSquares(factors=args.factors)
    theirs.user_factors, theirs.item_factors = user_factors, item_factors
    for threads in (1, 2):
        with threadpool_limits(threads, "blas"):
            results[f"implicit, BLAS {threads} thread(s)"] = timed(
                lambda: theirs.recommend(users, seen, N=args.n), args.repeat)
    ours_items, _ = ours.recommend(users[:200], seen[:200], n=args.n)
    their_items, _ = theirs.recommend(users[:200], seen[:200], N=args.n)
    results["top items agree (200 users)"] = float((np.sort(ours_items) == np.sort(their_items)).mean())
    best_peer = min(v for k, v in results.items() if k.startswith("implicit"))
    results["users/s daskflow"] = args.users / results["daskflow"]
    results["users/s implicit (its faster setting)"] = args.users / best_peer
    results["ratio daskflow / implicit users/s"] = best_peer / results["daskflow"]
    print(json.dumps(results, indent=2))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()

"""NDCG@10 of daskflow's and implicit's CG ALS over several seeds, on als.py's data and split.

Quality, not speed: both fit 10 iterations at matched hyperparameters (see als.py) from their
own initial factors, seed by seed, and are scored by als.py's shared NDCG@10 scorer. Shows
whether a gap between the two is systematic or the noise of the starting point.

    python benchmarks/als_seeds.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse

from als import confidence, hold_out_one, load_play_counts, ndcg_at_k  # benchmarks/ is the script's directory
from threadpoolctl import threadpool_limits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=10)
    args = parser.parse_args()
    from implicit.cpu.als import AlternatingLeastSquares

    from daskflow.models import ImplicitALS

    train, test = hold_out_one(load_play_counts(200_000, 50_000, 10_000_000, 0), seed=0)
    for seed in args.seeds:
        ours = ImplicitALS(n_factors=64, regularization=0.05, alpha=1.0, confidence="linear",
                           n_iter=args.iterations, cg_steps=3, random_state=seed,
                           compute_loss=False).fit(train)
        with threadpool_limits(1, "blas"):
            theirs = AlternatingLeastSquares(factors=64, regularization=0.05, alpha=1.0,
                                             iterations=args.iterations, calculate_training_loss=False,
                                             random_state=seed, num_threads=2)
            theirs.cg_steps = 3
            theirs.fit(confidence(train, 1.0), show_progress=False)
        a = ndcg_at_k(ours.user_factors_, ours.item_factors_, train, test)
        b = ndcg_at_k(theirs.user_factors, theirs.item_factors, train, test)
        print(f"seed {seed}: NDCG@10 daskflow {a:.4f}, implicit {b:.4f}, ratio {a / b:.4f}", flush=True)


if __name__ == "__main__":
    main()

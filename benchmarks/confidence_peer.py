"""daskflow's A/B statistics against spotify-confidence, in an environment of its own.

spotify-confidence 4.1 requires pandas < 3, so it cannot be installed beside daskflow
(pandas 3). The statistics kernel is plain NumPy/SciPy, so this script loads it by path
and needs neither Dask nor daskflow's other modules::

    python -m venv /tmp/confidence && /tmp/confidence/bin/pip install spotify-confidence
    /tmp/confidence/bin/python benchmarks/confidence_peer.py

It prints the largest absolute difference over 40 random two-variant comparisons
(proportions with ``ZTest``, means with ``StudentsTTest``): difference, its interval and
p-value, and the per-variant point estimates and intervals.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd

KERNELS = Path(__file__).parents[1] / "daskflow" / "analytics" / "_abtest_kernels.py"


def load_kernels() -> object:
    spec = importlib.util.spec_from_file_location("abtest_kernels", KERNELS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import spotify_confidence as confidence

    kernels = load_kernels()
    rng = np.random.default_rng(args.seed)
    worst = {"proportion": 0.0, "mean": 0.0}
    for _ in range(args.trials):
        for kind in ("proportion", "mean"):
            n = rng.integers(200, 5000, 2)
            if kind == "proportion":
                values = [rng.random(n[0]) < 0.1, rng.random(n[1]) < 0.12]
            else:
                values = [rng.lognormal(1, 1, n[0]), rng.lognormal(1.05, 1.1, n[1])]
            stats = [kernels.stats_from_values(v) for v in values]
            frame = pd.DataFrame({"variant": ["control", "treatment"], "num": [s.sum_x for s in stats],
                                  "sq": [s.sum_x2 for s in stats], "den": [s.n for s in stats]})
            test_class = confidence.ZTest if kind == "proportion" else confidence.StudentsTTest
            test = test_class(frame, numerator_column="num", numerator_sum_squares_column="sq",
                              denominator_column="den", categorical_group_columns="variant",
                              interval_size=0.95)
            difference = test.difference(level_1="control", level_2="treatment", absolute=True).iloc[0]
            summary = test.summary().set_index("variant")
            ours = kernels.compare(stats[0], stats[1], kind)
            pairs = [(ours.difference, difference["difference"]), (ours.ci[0], difference["ci_lower"]),
                     (ours.ci[1], difference["ci_upper"]), (ours.p_value, difference["p-value"])]
            for name, interval, mean in (("control", ours.control_ci, ours.control_mean),
                                         ("treatment", ours.treatment_ci, ours.treatment_mean)):
                pairs += [(mean, summary.loc[name, "point_estimate"]),
                          (interval[0], summary.loc[name, "ci_lower"]),
                          (interval[1], summary.loc[name, "ci_upper"])]
            worst[kind] = max(worst[kind], max(abs(a - b) for a, b in pairs))
    print(f"spotify-confidence {confidence.__version__}: largest absolute difference over "
          f"{args.trials} comparisons each: proportions {worst['proportion']:.3g}, means {worst['mean']:.3g}")


if __name__ == "__main__":
    main()

"""Per-block math of the Gaussian Naive Bayes classifier (pure NumPy, no Dask).

Fitting is exact whatever the blocking: each block returns per-class weighted counts,
means and centred sums of squares, and blocks merge with the pairwise update of Chan,
Golub and LeVeque (1979), which stays accurate where the textbook E[x²] − E[x]² cancels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GaussianStats", "gaussian_stats", "merge_gaussian_stats", "gaussian_joint_log_likelihood"]


@dataclass(frozen=True)
class GaussianStats:
    """Sufficient statistics of one or more row blocks, per class (row 0, 1) and overall (row 2).

    ``weight`` are summed sample weights; ``mean`` and ``m2`` (weighted centred sum of
    squares) are per feature. The overall row is unweighted: it sets the variance floor
    the way scikit-learn's ``var_smoothing`` does.
    """

    weight: np.ndarray   # (3,)
    mean: np.ndarray     # (3, n_features)
    m2: np.ndarray       # (3, n_features)


def gaussian_stats(X: np.ndarray, positive: np.ndarray, sample_weight: np.ndarray) -> GaussianStats:
    """Statistics of one block: ``positive`` is 1.0 for the second class, 0.0 for the first."""
    n_features = X.shape[1]
    weight = np.zeros(3)
    mean = np.zeros((3, n_features))
    m2 = np.zeros((3, n_features))
    for row, mask in enumerate((positive == 0, positive == 1, np.ones(len(X), dtype=bool))):
        rows = X[mask]
        w = sample_weight[mask] if row < 2 else np.ones(len(rows))
        total = w.sum()
        if total <= 0:
            continue
        weight[row] = total
        mean[row] = w @ rows / total
        m2[row] = w @ (rows - mean[row]) ** 2
    return GaussianStats(weight, mean, m2)


def merge_gaussian_stats(a: GaussianStats, b: GaussianStats) -> GaussianStats:
    """Combine the statistics of two disjoint sets of rows."""
    weight = a.weight + b.weight
    safe = np.where(weight > 0, weight, 1.0)[:, None]
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.weight[:, None] / safe)
    m2 = a.m2 + b.m2 + delta ** 2 * (a.weight * b.weight)[:, None] / safe
    return GaussianStats(weight, mean, m2)


def gaussian_joint_log_likelihood(X: np.ndarray, log_prior: np.ndarray, theta: np.ndarray,
                                  var: np.ndarray) -> np.ndarray:
    """log P(class) + log P(x | class) for every row and class, shape (n_rows, n_classes)."""
    out = np.empty((X.shape[0], len(log_prior)))
    for c in range(len(log_prior)):
        normaliser = -0.5 * np.sum(np.log(2.0 * np.pi * var[c]))
        out[:, c] = log_prior[c] + normaliser - 0.5 * np.sum((X - theta[c]) ** 2 / var[c], axis=1)
    return out

"""Ranking metrics of one block of users (pure NumPy, no Dask import).

Definitions, for a user with relevant (held-out) set T and recommendation list r_1..r_k,
rel_j = 1[r_j in T]:

- precision@k = sum_j rel_j / k (the standard definition; `implicit`'s "precision"
  divides by min(k, |T|) instead, which is a recall);
- recall@k    = sum_j rel_j / |T|;
- AP@k        = sum_j rel_j * precision@j / min(k, |T|), and MAP@k is its mean;
- NDCG@k      = sum_j rel_j / log2(j + 1)  /  sum_{j <= min(k, |T|)} 1 / log2(j + 1).

- AUC         = the share of (held-out item, never-played item) pairs that the model
  scores in the right order, ties counting half; items in the user's training row are
  left out of the negatives (the ranking AUC of Rendle et al. 2009, BPR).

Users with an empty T are not evaluated. A block returns sums and a user count, so the
means over all users are exact however the users are blocked.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from daskflow.models._top_n_kernels import rows_contain

__all__ = ["ranking_sums", "auc_sums", "METRICS", "CUTOFF_METRICS"]

#: Metrics computed at every cut-off k.
CUTOFF_METRICS = ("precision", "recall", "map", "ndcg")
#: Every ranking metric; "auc" has no cut-off.
METRICS = (*CUTOFF_METRICS, "auc")


def ranking_sums(recommended: np.ndarray, relevant: sp.csr_matrix, ks: tuple[int, ...],
                 metrics: tuple[str, ...] = CUTOFF_METRICS) -> dict[str, float]:
    """Sum each ``metric@k`` over the users of a block that have relevant items.

    Parameters
    ----------
    recommended
        ``(n_users, K)`` item indices, best first, ``K >= max(ks)``; -1 pads.
    relevant
        ``(n_users, n_items)`` held-out items (any non-zero counts as relevant).

    Returns
    -------
    dict
        ``{"precision@5": sum, ..., "n_users": count}``.
    """
    n_relevant = np.diff(relevant.indptr)
    users = np.flatnonzero(n_relevant > 0)
    metrics = tuple(m for m in metrics if m in CUTOFF_METRICS)
    out: dict[str, float] = {"n_users": float(len(users))}
    if len(users) == 0:
        return out | {f"{m}@{k}": 0.0 for m in metrics for k in ks}
    if recommended.shape[1] < max(ks):  # fewer items than the largest cut-off
        padding = np.full((recommended.shape[0], max(ks) - recommended.shape[1]), -1)
        recommended = np.hstack([recommended, padding])
    hits = rows_contain(relevant[users], recommended[users, : max(ks)]).astype(np.float64)
    n_rel = n_relevant[users].astype(np.float64)
    positions = np.arange(1, hits.shape[1] + 1)
    cumulative_hits = np.cumsum(hits, axis=1)
    discount = 1.0 / np.log2(positions + 1)
    ideal = np.cumsum(discount)
    for k in ks:
        top = hits[:, :k]
        n_hits = cumulative_hits[:, k - 1]
        depth = np.minimum(k, n_rel)
        for metric in metrics:
            if metric == "precision":
                value = n_hits / k
            elif metric == "recall":
                value = n_hits / n_rel
            elif metric == "map":
                value = (top * cumulative_hits[:, :k] / positions[:k]).sum(axis=1) / depth
            elif metric == "ndcg":
                value = (top * discount[:k]).sum(axis=1) / ideal[depth.astype(np.int64) - 1]
            else:
                raise ValueError(f"unknown ranking metric {metric!r}: expected one of {METRICS}")
            out[f"{metric}@{k}"] = float(value.sum())
    return out


def auc_sums(scores: np.ndarray, seen: sp.csr_matrix, relevant: sp.csr_matrix) -> tuple[float, int]:
    """Sum of per-user ranking AUC over the rows that have relevant items, and their count.

    ``scores`` is ``(n_users, n_items)``; ``seen`` the training rows (left out of the
    negatives); ``relevant`` the held-out rows (the positives).
    """
    total, users = 0.0, 0
    for row in range(scores.shape[0]):
        positives = relevant.indices[relevant.indptr[row]:relevant.indptr[row + 1]]
        if len(positives) == 0:
            continue
        excluded = np.concatenate([positives, seen.indices[seen.indptr[row]:seen.indptr[row + 1]]])
        negatives = np.sort(np.delete(scores[row], excluded))
        if len(negatives) == 0:
            continue
        pos = scores[row, positives]
        below = np.searchsorted(negatives, pos, side="left")
        ties = np.searchsorted(negatives, pos, side="right") - below
        total += float(np.mean((below + 0.5 * ties) / len(negatives)))
        users += 1
    return total, users

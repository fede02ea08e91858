"""Ranking evaluation of a recommender over row-blocks, on the cluster."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask
import numpy as np

from daskflow._dask import compute, named
from daskflow._errors import DataError, ParameterError
from daskflow.evaluation._ranking_kernels import METRICS, auc_sums, ranking_sums
from daskflow.features import InteractionMatrix

__all__ = ["evaluate_ranking"]


def evaluate_ranking(model: Any, train: InteractionMatrix, test: InteractionMatrix, *,
                     k: Sequence[int] = (5, 10), metrics: Sequence[str] = METRICS,
                     client: Any = None) -> dict[str, float]:
    """Mean ranking metrics of ``model`` over the users that have held-out items.

    Every user block is scored on the cluster: the model recommends ``max(k)`` items
    from the user's training row (seen items filtered) and the block returns metric sums;
    only those sums travel back, never the recommendations.

    Returns
    -------
    dict
        ``{"precision@5": ..., "ndcg@10": ..., "n_users": ...}``.
    """
    ks = tuple(sorted(set(int(v) for v in k)))
    if not ks or ks[0] < 1:
        raise ParameterError(f"ranking cut-offs k must be >= 1, got {list(k)}")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise DataError(f"unknown ranking metric(s) {unknown}: expected some of {', '.join(METRICS)}")
    if train.shape != test.shape or len(train.user_blocks) != len(test.user_blocks):
        raise DataError(f"train {train.shape} and test {test.shape} matrices do not line up: split "
                        "them from one matrix with leave_k_out_split")
    model_task = dask.delayed(model, pure=True)
    parts = [named(_block_sums, "evaluate-ranking")(model_task, tr, te, ks, tuple(metrics))
             for tr, te in zip(train.user_blocks, test.user_blocks)]
    sums = compute(parts, client)  # with progress on the terminal if it takes a while
    total: dict[str, float] = {}
    for part in sums:
        for key, value in part.items():
            total[key] = total.get(key, 0.0) + value
    n_users = total.pop("n_users", 0.0)
    if n_users == 0:
        raise DataError("no user has held-out items to evaluate: the split left every user whole. "
                        "Lower evaluate.min_user_items or check the data")
    means = {f"{m}@{cut}": total[f"{m}@{cut}"] / n_users for m in metrics if m != "auc" for cut in ks}
    if "auc" in metrics:
        means["auc"] = total["auc"] / n_users
    means["n_users"] = int(n_users)
    return means


def _block_sums(model: Any, train_block: Any, test_block: Any, ks: tuple[int, ...],
                metrics: tuple[str, ...]) -> dict[str, float]:
    rows = np.arange(train_block.row_offset, train_block.row_offset + train_block.csr.shape[0])
    recommended, _ = model.recommend_block(train_block.csr, max(ks), filter_seen=True, user_index=rows)
    sums = ranking_sums(recommended, test_block.csr, ks, metrics)
    if "auc" in metrics:
        # Full score rows are needed: take them in slices of about 64 MB.
        n_items = train_block.csr.shape[1]
        step = max(1, (64 * 2**20) // (8 * max(1, n_items)))
        total = 0.0
        for lo in range(0, len(rows), step):
            scores = model.score_block(train_block.csr[lo:lo + step], user_index=rows[lo:lo + step])
            part, _ = auc_sums(scores, train_block.csr[lo:lo + step], test_block.csr[lo:lo + step])
            total += part
        sums["auc"] = total
    return sums

"""Cold-start evaluation: how well items nobody has played are ranked, by three kinds of scorer.

A share of the items that have content is held out entirely: the content model's ALS never
sees them, and predicts their factors from their content. Every cold item's plays are split
at random into two halves (by user-item pair): the *test* half holds the positives; the
other half is what the true-factor upper bound may train on, and is left out of every
scorer's negatives, so all scorers are ranked on the very same pairs. Per user (users with
at least one test pair), over the cold items only:

- ``content``: ALS on the warm items, cold factors from ``ContentToFactors``;
- ``random``: uniform scores (AUC 0.5 in expectation);
- ``content_neighbour_popularity``: the mean log play count of the item's nearest warm
  items by encoded content (cosine), the same for every user: content-free in the sense
  that no content-to-factor model is learnt, only which warm items look alike;
- ``true_factors``: ALS fitted with the cold items' other half of plays (the factors a
  content model tries to predict), the upper bound of what factors can do here.

The matrix is gathered to the driver (``to_scipy``) and the ALS fits run in memory: the
evaluation fits two models on data a recommender experiment already fits on one machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from daskflow._errors import DataError, ParameterError
from daskflow.evaluation._ranking_kernels import auc_sums, ranking_sums
from daskflow.models._top_n_kernels import top_n

__all__ = ["evaluate_cold_items", "COLD_SCORERS"]

#: The scorers, in the order metrics.json lists them.
COLD_SCORERS = ("content", "random", "content_neighbour_popularity", "true_factors")
_SLICE_BYTES = 64 * 2**20


def evaluate_cold_items(model: Any, matrix: Any, item_content: Any, *, share: float = 0.2,
                        k: Sequence[int] = (10,), seed: int = 0, n_neighbours: int = 20,
                        client: Any = None) -> dict[str, Any]:
    """ROC AUC, recall@k and NDCG@k over held-out cold items, for the four scorers.

    Parameters
    ----------
    model : ImplicitALS
        The (unfitted) recommender; cloned for the content model and the upper bound.
    matrix : InteractionMatrix
        All interactions.
    item_content : ItemContent
        The item table and content model (its encoder and regressor are cloned).
    share : float in (0, 1)
        Share of the items with content held out as cold.
    n_neighbours : int
        Warm neighbours averaged by ``content_neighbour_popularity``.

    Returns
    -------
    dict
        ``share``, counts, ``scorers`` (``{name: {"auc", "recall@k", "ndcg@k"}}``), the best
        content-free ``baseline`` (by AUC) and ``gap_closed``, per metric: (content -
        baseline) / (true_factors - baseline), the share of the way from the baseline to
        the upper bound that the content model goes (above 1: past the upper bound).
    """
    from sklearn.base import clone

    from daskflow.models import ItemContent

    if not 0 < share < 1:
        raise DataError(f"the cold item share must be in (0, 1), got {share}: set evaluate.cold_items to "
                        "e.g. 0.2")
    ks = tuple(sorted({int(v) for v in k}))
    if not ks or ks[0] < 1:
        raise ParameterError(f"ranking cut-offs k must be >= 1, got {list(k)}")
    rng = np.random.default_rng([seed, 15])
    X = sp.csr_matrix(matrix.to_scipy(client=client), dtype=np.float32)
    X.sum_duplicates()  # canonical: X.data and the COO entries below are in the same order
    frame = item_content.frame(client=client)
    id_col = item_content.id_col
    content_ids = pd.Index(frame[id_col].astype(str))
    has_content = np.asarray(matrix.item_ids.astype(str).isin(content_ids))
    candidates = np.flatnonzero(has_content)
    if len(candidates) < 2:
        raise DataError(f"only {len(candidates)} item(s) of the interaction matrix have content in the item "
                        f"table (column {id_col!r}): cold-start evaluation needs some to hold out and some "
                        "to learn from; check that the content id column holds the interactions' item IDs")
    n_cold = min(len(candidates) - 1, max(1, int(round(share * len(candidates)))))
    cold = np.sort(rng.choice(candidates, n_cold, replace=False))
    is_cold = np.zeros(X.shape[1], dtype=bool)
    is_cold[cold] = True
    warm = np.flatnonzero(~is_cold)

    # Split the cold items' plays by pair: half for the upper bound, half to test on.
    coo = X.tocoo()
    on_cold = is_cold[coo.col]
    test_pair = on_cold & (rng.random(coo.nnz) < 0.5)
    position = np.full(X.shape[1], -1)
    position[cold] = np.arange(n_cold)

    def cold_part(mask: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((coo.data[mask], (coo.row[mask], position[coo.col[mask]])),
                             shape=(X.shape[0], n_cold))

    test, seen = cold_part(test_pair), cold_part(on_cold & ~test_pair)
    if test.nnz == 0:
        raise DataError(f"the {n_cold} cold item(s) have no plays to test on: raise evaluate.cold_items or "
                        "use more data")
    scores: dict[str, Any] = {}

    # The content model: ALS on the warm items alone; the cold items come from content.
    # Warm items are IDs 0..n_warm-1 of the in-memory fit; cold ones follow.
    ids = pd.Series(np.full(len(frame), -1, dtype=np.int64))
    item_position = pd.Index(matrix.item_ids.astype(str)).get_indexer(content_ids)
    warm_position = np.full(X.shape[1], -1)
    warm_position[warm] = np.arange(len(warm))
    in_matrix = item_position >= 0
    ids[in_matrix] = np.where(is_cold[item_position[in_matrix]],
                              X.shape[1] + position[item_position[in_matrix]],
                              warm_position[item_position[in_matrix]])
    table = frame.assign(**{id_col: ids.to_numpy()})[in_matrix].reset_index(drop=True)
    content_model = clone(model).fit(X[:, warm], item_content=ItemContent(
        table, id_col=id_col, encoder=item_content.encoder, regressor=item_content.regressor))
    rows = content_model.item_ids_.get_indexer(X.shape[1] + np.arange(n_cold))
    scores["content"] = (content_model.user_factors_, content_model.item_factors_[rows])

    # Content-free: random, and the popularity of look-alike warm items.
    encoded = content_model.content_encoder_.transform(table)
    table_ids = table[id_col].to_numpy()
    warm_rows = np.flatnonzero(table_ids < len(warm))
    cold_rows = pd.Index(table_ids).get_indexer(X.shape[1] + np.arange(n_cold))
    plays = np.diff(X[:, warm].tocsc().indptr)[table_ids[warm_rows]]
    scores["random"] = np.random.default_rng([seed, 15, 1])  # fresh uniform scores for every user
    scores["content_neighbour_popularity"] = _neighbour_popularity(encoded[cold_rows], encoded[warm_rows],
                                                                   np.log1p(plays), n_neighbours)
    # The upper bound: ALS that has seen the cold items' other half of plays.
    train = X.copy()
    train.data[test_pair] = 0
    train.eliminate_zeros()
    upper = clone(model).fit(train)
    scores["true_factors"] = (upper.user_factors_, upper.item_factors_[cold])

    results = {name: _metrics(scores[name], seen, test, ks) for name in COLD_SCORERS}
    baseline = max(("random", "content_neighbour_popularity"), key=lambda name: results[name]["auc"])
    gap_closed = {}
    for metric, value in results["content"].items():
        if metric == "n_users":
            continue
        low, high = results[baseline][metric], results["true_factors"][metric]
        gap_closed[metric] = (value - low) / (high - low) if high != low else float("nan")
    return {
        "share": share, "n_cold_items": int(n_cold), "n_warm_items": int(len(warm)),
        "n_items_with_content": int(len(candidates)), "test_pairs": int(test.nnz),
        "n_users": int(results["content"].pop("n_users")),
        "scorers": {name: {key: value for key, value in results[name].items() if key != "n_users"}
                    for name in COLD_SCORERS},
        "baseline": baseline,
        "gap_closed": gap_closed,
    }


def _neighbour_popularity(cold: sp.csr_matrix, warm: sp.csr_matrix, popularity: np.ndarray,
                          n_neighbours: int) -> np.ndarray:
    """Mean popularity of each cold row's ``n_neighbours`` most cosine-similar warm rows."""
    def normed(m: sp.csr_matrix) -> sp.csr_matrix:
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
        return sp.diags(1.0 / np.maximum(norms, 1e-12)) @ m

    cold, warm = normed(cold), normed(warm)
    n = min(n_neighbours, warm.shape[0])
    out = np.empty(cold.shape[0])
    step = max(1, _SLICE_BYTES // (8 * max(1, warm.shape[0])))
    for lo in range(0, cold.shape[0], step):
        similarity = np.asarray((cold[lo:lo + step] @ warm.T).todense())
        nearest, _ = top_n(similarity, n)
        out[lo:lo + step] = popularity[nearest].mean(axis=1)
    return out


def _metrics(scorer: Any, seen: sp.csr_matrix, test: sp.csr_matrix, ks: tuple[int, ...]) -> dict[str, float]:
    """Mean per-user AUC, recall@k and NDCG@k over the users with test pairs, in user slices."""
    n_users, n_items = test.shape
    step = max(1, _SLICE_BYTES // (8 * max(1, n_items)))
    total: dict[str, float] = {}
    auc_total, auc_users = 0.0, 0
    for lo in range(0, n_users, step):
        hi = min(n_users, lo + step)
        if isinstance(scorer, tuple):
            users, items = scorer
            block = np.asarray(users[lo:hi] @ items.T, dtype=np.float64)
        elif isinstance(scorer, np.random.Generator):
            block = scorer.random((hi - lo, n_items))
        else:  # the same scores for every user
            block = np.repeat(np.asarray(scorer, dtype=np.float64)[None, :], hi - lo, axis=0)
        part, count = auc_sums(block, seen[lo:hi], test[lo:hi])
        auc_total, auc_users = auc_total + part, auc_users + count
        recommended, _ = top_n(block, max(ks), seen[lo:hi])
        for key, value in ranking_sums(recommended, test[lo:hi], ks, ("recall", "ndcg")).items():
            total[key] = total.get(key, 0.0) + value
    n = total.pop("n_users")
    out = {"auc": auc_total / max(auc_users, 1)}
    out.update({key: value / max(n, 1) for key, value in total.items()})
    out["n_users"] = n
    return out

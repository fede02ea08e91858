"""The popularity baseline: recommend the most-listened items the user has not heard."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.utils.validation import validate_data

from daskflow._dask import compute, named
from daskflow._errors import DataError, ParameterError
from daskflow.models._base import RecommenderMixin
from daskflow.models._top_n_kernels import rows_contain

__all__ = ["PopularityRecommender"]


class PopularityRecommender(RecommenderMixin, BaseEstimator):
    """Rank items by how many distinct users interacted with them.

    Parameters
    ----------
    by : {"users", "weight"}
        Popularity as the number of distinct users (default) or the summed weight.

    Attributes
    ----------
    item_popularity_ : ndarray of shape (n_items,)
    n_items_ : int

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> X = sp.csr_matrix([[1, 0, 3], [0, 0, 1], [2, 0, 5]])
    >>> model = PopularityRecommender().fit(X)
    >>> model.recommend([1], X[1], n=2)[0]
    array([[0, 1]])
    """

    def __init__(self, *, by: str = "users") -> None:
        self.by = by

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.positive_only = True  # interaction counts and weights
        return tags

    def fit(self, X: Any, y: None = None, *, client: Any = None) -> PopularityRecommender:
        """Count item popularity from a sparse matrix or an ``InteractionMatrix``."""
        if self.by not in ("users", "weight"):
            raise ParameterError(f"PopularityRecommender(by={self.by!r}): expected 'users' or 'weight'")
        if hasattr(X, "item_blocks"):  # a blocked InteractionMatrix on the cluster
            counts = [named(_block_popularity, "popularity-block")(b, self.by) for b in X.item_blocks]
            parts = compute(counts, client)
            popularity = np.concatenate(parts)
            self.n_features_in_ = X.n_items
        else:
            X = validate_data(self, X, accept_sparse="csc", dtype=np.float64)
            if (X.data if sp.issparse(X) else X).min(initial=0) < 0:
                raise DataError("Negative values in data passed to PopularityRecommender.fit: "
                                "interactions must be >= 0; clean the matrix first")
            X = sp.csc_matrix(X)
            X.eliminate_zeros()
            popularity = np.diff(X.indptr) if self.by == "users" else np.asarray(X.sum(axis=0)).ravel()
        if popularity.size == 0 or popularity.sum() == 0:  # nothing was ever played
            raise DataError("cannot fit a popularity model on an empty interaction matrix")
        self.item_popularity_ = popularity.astype(np.float64)
        self.n_items_ = len(popularity)
        # Stable order: ties broken by item index, so results are reproducible.
        self._ranking = np.argsort(-self.item_popularity_, kind="stable")
        return self

    def score_block(self, user_items: sp.csr_matrix, user_index: np.ndarray | None = None
                    ) -> np.ndarray:
        return np.broadcast_to(self.item_popularity_, (user_items.shape[0], self.n_items_))

    def recommend_block(self, user_items: sp.csr_matrix, n: int, filter_seen: bool = True,
                        user_index: np.ndarray | None = None, parallel: bool = False
                        ) -> tuple[np.ndarray, np.ndarray]:
        n_rows = user_items.shape[0]
        n = min(n, self.n_items_)
        if not filter_seen:
            items = np.broadcast_to(self._ranking[:n], (n_rows, n)).copy()
            return items, self.item_popularity_[items]
        # Only the first n + (most items any user has seen) ranks can be needed.
        depth = min(self.n_items_, n + int(np.diff(user_items.indptr).max(initial=0)))
        candidates = self._ranking[:depth]
        seen = rows_contain(user_items, candidates)
        # Stable sort of the seen flags puts each row's unseen candidates first, in rank order.
        first = np.argsort(seen, axis=1, kind="stable")[:, :n]
        items = candidates[first]
        items[np.take_along_axis(seen, first, axis=1)] = -1
        scores = np.where(items >= 0, self.item_popularity_[np.maximum(items, 0)], -np.inf)
        return items, scores


def _block_popularity(block: Any, by: str) -> np.ndarray:
    csr = block.csr
    if by == "users":
        return np.diff(csr.indptr)
    return np.asarray(csr.sum(axis=1)).ravel()

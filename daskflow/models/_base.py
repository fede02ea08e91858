"""What every recommender offers the evaluation and prediction layers."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["RecommenderMixin"]


class RecommenderMixin:
    """Top-N recommendation over row-blocks of a users x items matrix.

    A recommender implements :meth:`recommend_block` (a pure function of its fitted
    state and one block of users' rows); evaluation and batch prediction map it over
    blocks on the cluster.
    """

    def recommend_block(self, user_items: sp.csr_matrix, n: int, filter_seen: bool = True
                        ) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - interface
        """Top-``n`` (item indices, scores) for each row of ``user_items``; -1 pads."""
        raise NotImplementedError

    def recommend(self, user_items: sp.csr_matrix, n: int = 10, filter_seen: bool = True
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` items for the users whose rows are ``user_items`` (in memory).

        Returns
        -------
        items : ndarray of shape (n_users, n)
            Item indices, best first; -1 where fewer than ``n`` items are left.
        scores : ndarray of shape (n_users, n)
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        return self.recommend_block(sp.csr_matrix(user_items), n, filter_seen)



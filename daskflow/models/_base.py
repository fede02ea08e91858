"""What every recommender offers the evaluation and prediction layers."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from daskflow._errors import DataError

__all__ = ["RecommenderMixin"]


class RecommenderMixin:
    """Top-N recommendation over row-blocks of a users x items matrix.

    A recommender implements :meth:`recommend_block` (a pure function of its fitted state
    and one block of users); evaluation and batch prediction map it over blocks on the
    cluster.
    """

    def recommend_block(self, user_items: sp.csr_matrix, n: int, filter_seen: bool = True,
                        user_index: np.ndarray | None = None, parallel: bool = False
                        ) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - interface
        """Top-``n`` (item indices, scores) for each row of ``user_items``; -1 pads.

        ``user_index`` holds the matrix rows of those users (models that score users by
        their learned factors need it; default ``0 .. n_rows - 1``). ``parallel`` lets the
        model use Numba threads (in-memory calls); Dask tasks leave it off, one thread each.
        """
        raise NotImplementedError

    def score_block(self, user_items: sp.csr_matrix, user_index: np.ndarray | None = None
                    ) -> np.ndarray:  # pragma: no cover - interface
        """Dense scores ``(n_rows, n_items)`` of every item for these users (for AUC)."""
        raise NotImplementedError

    def recommend(self, users: Any, user_items: Any, n: int = 10, filter_seen: bool = True
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` items for some users.

        Parameters
        ----------
        users : int, str or array of them
            Matrix row indices, or original user IDs when the model was fitted on an
            ``InteractionMatrix``.
        user_items : sparse matrix of shape (len(users), n_items)
            Those users' interactions, used to filter already-seen items.

        Returns
        -------
        items : ndarray of shape (len(users), n)
            Item indices, best first; -1 where fewer than ``n`` items are left.
        scores : ndarray of shape (len(users), n)
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        index = self._user_index(users)
        user_items = sp.csr_matrix(user_items)
        if user_items.shape[0] != len(index):
            raise DataError(f"user_items has {user_items.shape[0]} rows for {len(index)} users: pass "
                            "the interaction rows of exactly those users")
        return self.recommend_block(user_items, n, filter_seen, user_index=index, parallel=True)

    def recommend_all(self, matrix: Any, uri: str | None = None, *, n: int = 10,
                      filter_seen: bool = True, storage_options: dict[str, Any] | None = None,
                      overwrite: bool = False) -> Any:
        """Top-``n`` of every user of an ``InteractionMatrix``, with the original IDs.

        Block by block (user factors x item factors, then a per-block top-n): the full
        users x items score matrix never exists. Returns the lazy table ``user_id, rank,
        item_id, score`` or, given ``uri``, writes it there as Parquet (published only when
        complete) and returns ``uri``. Runs on the current Dask client, if any.
        """
        from daskflow.io import write_parquet
        from daskflow.prediction import recommend_all

        frame = recommend_all(self, matrix, n=n, filter_seen=filter_seen)
        if uri is None:
            return frame
        return write_parquet(frame, uri, storage_options=storage_options, overwrite=overwrite)

    def _user_index(self, users: Any) -> np.ndarray:
        users = np.atleast_1d(np.asarray(users))
        known = getattr(self, "user_ids_", None)
        if users.dtype.kind in "iu":
            index = users.astype(np.int64)
        elif known is not None:
            index = known.get_indexer(users)
            if (index < 0).any():
                raise DataError(f"unknown user ID(s) {[str(u) for u in users[index < 0][:5]]}: not in the "
                                "training data (fold new users in with transform)")
        else:
            raise DataError("users must be row indices: this model was not fitted on an "
                            "InteractionMatrix, so it knows no original IDs")
        n_users = getattr(self, "n_users_", None)
        if n_users is not None and index.size and (index.min() < 0 or index.max() >= n_users):
            raise DataError(f"user index out of range: expected 0 <= index < {n_users}")
        return index

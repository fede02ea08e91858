"""Small NumPy kernels shared by models and evaluation (no Dask import)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["rows_contain", "top_n"]


def rows_contain(csr: sp.csr_matrix, candidates: np.ndarray) -> np.ndarray:
    """``out[r, j]`` is true when row ``r`` of ``csr`` stores column ``candidates[r, j]``.

    ``candidates`` is ``(n_rows, m)`` (or ``(m,)``, shared by all rows); entries < 0 are
    never contained. Runs in O(nnz + n_rows * m * log nnz) with one ``searchsorted`` on
    ``row * n_cols + col`` keys, never a Python loop over rows.
    """
    n_rows, n_cols = csr.shape
    if candidates.ndim == 1:
        candidates = np.broadcast_to(candidates, (n_rows, len(candidates)))
    if not csr.has_sorted_indices:
        csr = csr.copy()
        csr.sort_indices()
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(csr.indptr))
    keys = rows * n_cols + csr.indices
    wanted = np.arange(n_rows, dtype=np.int64)[:, None] * n_cols + candidates
    position = np.searchsorted(keys, wanted)
    found = np.zeros(candidates.shape, dtype=bool)
    inside = position < len(keys)
    found[inside] = keys[position[inside]] == wanted[inside]
    return found & (candidates >= 0)


def top_n(scores: np.ndarray, n: int, exclude: sp.csr_matrix | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``n`` largest scores of each row, best first.

    ``exclude`` (same shape as ``scores``) marks entries never to return (items already
    seen). ``scores`` is modified in place. Rows with fewer than ``n`` eligible entries are
    padded with index -1 and score -inf.
    """
    n_rows, n_cols = scores.shape
    if exclude is not None and exclude.nnz:
        rows = np.repeat(np.arange(n_rows), np.diff(exclude.indptr))
        scores[rows, exclude.indices] = -np.inf
    n = min(n, n_cols)
    if n < n_cols:
        part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    else:
        part = np.broadcast_to(np.arange(n_cols), (n_rows, n_cols)).copy()
    values = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    items = np.take_along_axis(part, order, axis=1)
    values = np.take_along_axis(values, order, axis=1)
    items[~np.isfinite(values)] = -1
    return items, values

"""Small NumPy kernels shared by models and evaluation (no Dask import)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["rows_contain"]


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

"""Small NumPy/Numba kernels shared by models and evaluation (no Dask import)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import get_num_threads, njit, prange

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


@njit(nogil=True, cache=True)
def _top_n_rows(scores, n, exclude_indptr, exclude_indices, items, values):
    # A sorted buffer of the n best per row: almost every score fails the first comparison
    # against the buffer's minimum, so a row costs about one pass over its scores.
    for row in range(scores.shape[0]):
        best_items = items[row]
        best_values = values[row]
        best_items[:] = -1
        best_values[:] = -np.inf
        excluded = exclude_indices[exclude_indptr[row]:exclude_indptr[row + 1]]
        next_excluded = 0
        for col in range(scores.shape[1]):
            # exclude_indices are sorted within a row: walk them alongside the columns.
            while next_excluded < len(excluded) and excluded[next_excluded] < col:
                next_excluded += 1
            if next_excluded < len(excluded) and excluded[next_excluded] == col:
                continue
            value = scores[row, col]
            if value <= best_values[n - 1]:
                continue
            position = n - 1
            while position > 0 and best_values[position - 1] < value:
                best_values[position] = best_values[position - 1]
                best_items[position] = best_items[position - 1]
                position -= 1
            best_values[position] = value
            best_items[position] = col


@njit(parallel=True, nogil=True, cache=True)
def _top_n_parallel(scores, n, exclude_indptr, exclude_indices, items, values, n_chunks):
    rows = scores.shape[0]
    for j in prange(n_chunks):
        lo, hi = j * rows // n_chunks, (j + 1) * rows // n_chunks
        _top_n_rows(scores[lo:hi], n, exclude_indptr[lo:hi + 1], exclude_indices, items[lo:hi],
                    values[lo:hi])


def top_n(scores: np.ndarray, n: int, exclude: sp.csr_matrix | None = None,
          parallel: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``n`` largest scores of each row, best first.

    ``exclude`` (same shape as ``scores``) marks entries never to return (items already
    seen). Rows with fewer than ``n`` eligible entries are padded with index -1 and score
    -inf; ties keep the lower index first. ``parallel`` uses Numba's threads (in-memory
    calls); inside Dask tasks the rows of one block run on the task's own thread.
    """
    n_rows, n_cols = scores.shape
    n = max(0, min(n, n_cols))
    items = np.empty((n_rows, n), dtype=np.int64)
    values = np.empty((n_rows, n), dtype=scores.dtype)
    if n == 0 or n_rows == 0:
        return items, values
    if exclude is None:
        indptr, indices = np.zeros(n_rows + 1, dtype=np.int64), np.zeros(0, dtype=np.int32)
    else:
        exclude = sp.csr_matrix(exclude)
        exclude.sort_indices()
        indptr, indices = exclude.indptr.astype(np.int64), exclude.indices.astype(np.int32)
    scores = np.ascontiguousarray(scores)
    if parallel:
        _top_n_parallel(scores, n, indptr, indices, items, values, 8 * get_num_threads())
    else:
        _top_n_rows(scores, n, indptr, indices, items, values)
    return items, values

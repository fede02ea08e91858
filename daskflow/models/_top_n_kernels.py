"""Small NumPy/Numba kernels shared by models and evaluation (no Dask import)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import get_num_threads, njit, prange

__all__ = ["rows_contain", "top_n", "top_n_inner_product"]


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


# -- exact top-n by inner product, pruned by a norm bound -----------------------------------

_PRUNE_CHUNK = 512  # items scored per GEMM between two checks of the bound


@njit(nogil=True, cache=True)
def _insert(best_items, best_values, n, item, value):
    # Keep best-first order; equal scores keep the lower item index first (as top_n does,
    # which sees items in index order). An empty slot (item -1) takes anything.
    last_item, last_value = best_items[n - 1], best_values[n - 1]
    if last_item >= 0 and (value < last_value or (value == last_value and item > last_item)):
        return
    position = n - 1
    while position > 0 and (best_values[position - 1] < value or
                            (best_values[position - 1] == value and best_items[position - 1] > item)):
        best_values[position] = best_values[position - 1]
        best_items[position] = best_items[position - 1]
        position -= 1
    best_values[position] = value
    best_items[position] = item


@njit(nogil=True, cache=True)
def _pruned_tile(users, user_norms, ordered, ordered_norms, order, seen_indptr, seen_positions, n,
                 items, values):
    """Top-n of a tile of users over items sorted by decreasing norm, chunk by chunk.

    After each chunk, a user whose n-th best score is above ‖u‖·max‖y‖ of the items left
    (Cauchy–Schwarz) is finished; the tile stops when all its users are.
    """
    n_users = users.shape[0]
    n_items = ordered.shape[0]
    cursor = seen_indptr[:-1].copy()
    active = np.ones(n_users, dtype=np.bool_)
    for t in range(n_users):
        items[t, :] = -1
        values[t, :] = -np.inf
    for lo in range(0, n_items, _PRUNE_CHUNK):
        hi = min(lo + _PRUNE_CHUNK, n_items)
        remaining = 0
        for t in range(n_users):
            if active[t] and user_norms[t] * ordered_norms[lo] < values[t, n - 1]:
                active[t] = False
            remaining += active[t]
        if remaining == 0:
            break
        scores = np.dot(users, ordered[lo:hi].T)
        for t in range(n_users):
            if not active[t]:
                continue
            stop = seen_indptr[t + 1]
            best_items, best_values = items[t], values[t]
            for j in range(hi - lo):
                position = lo + j
                while cursor[t] < stop and seen_positions[cursor[t]] < position:
                    cursor[t] += 1
                if cursor[t] < stop and seen_positions[cursor[t]] == position:
                    continue
                value = scores[t, j]
                if value < best_values[n - 1]:
                    continue
                _insert(best_items, best_values, n, order[position], value)


@njit(parallel=True, nogil=True, cache=True)
def _pruned_parallel(users, user_norms, ordered, ordered_norms, order, seen_indptr, seen_positions,
                     n, items, values, tile):
    n_tiles = -(-users.shape[0] // tile)
    for j in prange(n_tiles):
        lo, hi = j * tile, min((j + 1) * tile, users.shape[0])
        _pruned_tile(users[lo:hi], user_norms[lo:hi], ordered, ordered_norms, order,
                     seen_indptr[lo:hi + 1], seen_positions, n, items[lo:hi], values[lo:hi])


@njit(nogil=True, cache=True)
def _pruned_serial(users, user_norms, ordered, ordered_norms, order, seen_indptr, seen_positions,
                   n, items, values, tile):
    for lo in range(0, users.shape[0], tile):
        hi = min(lo + tile, users.shape[0])
        _pruned_tile(users[lo:hi], user_norms[lo:hi], ordered, ordered_norms, order,
                     seen_indptr[lo:hi + 1], seen_positions, n, items[lo:hi], values[lo:hi])


def top_n_inner_product(users: np.ndarray, item_factors: np.ndarray, n: int,
                        exclude: sp.csr_matrix | None = None, parallel: bool = False,
                        tile: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` items of largest ``u·y`` for every row ``u`` of ``users``: exact, as
    :func:`top_n` of ``users @ item_factors.T``, without scoring every item.

    Items are visited in decreasing norm, ``_PRUNE_CHUNK`` at a time, by tiles of ``tile``
    users (one small GEMM per chunk, BLAS on the calling thread). A user is done once its
    n-th best score exceeds ``‖u‖·‖y‖`` of the next item (no later item can beat it), so
    with factors whose norms fall off quickly (popularity) most items are never scored.
    Results equal :func:`top_n`'s, ties included (lower item index first). ``exclude``
    marks items never to return (seen items); ``parallel`` runs tiles on Numba's threads.
    """
    n_users, n_items = users.shape[0], item_factors.shape[0]
    n = max(0, min(n, n_items))
    items = np.empty((n_users, n), dtype=np.int64)
    values = np.empty((n_users, n), dtype=np.result_type(users.dtype, item_factors.dtype))
    if n == 0 or n_users == 0:
        return items, values
    dtype = values.dtype
    item_factors = np.asarray(item_factors, dtype=dtype)
    norms = np.sqrt(np.einsum("ij,ij->i", item_factors, item_factors, dtype=np.float64))
    order = np.argsort(-norms, kind="stable")
    ordered = np.ascontiguousarray(item_factors[order])
    # Norms rounded up a little so the float32 scores cannot beat the bound by rounding.
    ordered_norms = norms[order] * (1 + 1e-5) + 1e-30
    rank = np.empty(n_items, dtype=np.int64)
    rank[order] = np.arange(n_items)
    if exclude is None:
        seen_indptr, seen_positions = np.zeros(n_users + 1, dtype=np.int64), np.zeros(0, dtype=np.int64)
    else:
        exclude = sp.csr_matrix(exclude)
        seen_indptr = exclude.indptr.astype(np.int64)
        seen_positions = rank[exclude.indices]
        rows = np.repeat(np.arange(n_users), np.diff(seen_indptr))
        seen_positions = seen_positions[np.lexsort((seen_positions, rows))]
    users = np.ascontiguousarray(users, dtype=dtype)
    user_norms = np.sqrt(np.einsum("ij,ij->i", users, users, dtype=np.float64)) * (1 + 1e-5)
    kernel = _pruned_parallel if parallel else _pruned_serial
    kernel(users, user_norms, ordered, ordered_norms, order, seen_indptr, seen_positions, n,
           items, values, tile)
    return items, values

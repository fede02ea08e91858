"""Compiled per-row solvers of implicit-feedback ALS (Numba, GIL released, no Dask).

One half-step updates the factors ``X`` of one side (users, or items) given the other
side's factors ``Y``, row by row. For row ``u`` with observed entries ``i`` and confidences
``c_ui >= 1`` (Hu, Koren & Volinsky 2008), the normal equations are

    (YᵀY + λI + Σ_i (c_ui − 1) y_i y_iᵀ) x_u = Σ_i c_ui y_i.

``gram`` below is ``YᵀY + λI``, computed once per half-step, so a row costs O(nnz_u·f)
per CG step plus one f x f product. The CG solver (Takács, Pilászy & Tikk 2011) takes
``cg_steps`` conjugate-gradient steps warm-started from the previous ``x_u``, gathering the
row's ``y_i`` once (with software prefetch) so that the steps read them contiguously; the Cholesky
solver forms and factorises the f x f system exactly. Every routine is ``nogil`` so Dask's
worker threads (and Numba's own threads in the in-memory path) really run in parallel.

All loops are written over plain index ranges, so Numba vectorises them (``fastmath``);
the training loss of the rows just solved is accumulated in the same pass, while their
``y_i`` are still in cache.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from daskflow._intrinsics import prefetch

__all__ = ["solve_rows", "solve_rows_parallel", "gram_rows", "gram_parallel", "balanced_chunks",
           "confidence_from_counts"]

_TINY = 1e-20  # squared residual below which CG has converged (float32 factors)
# Constants are typed float32 so that float32 factors stay in float32 SIMD lanes: a Python
# float literal is float64 in Numba and would promote every product, halving vector width.
# With float64 factors the arithmetic is simply promoted to float64.
_ZERO = np.float32(0.0)
# Reassociation lets Numba vectorise the reductions; no-NaN/no-Inf assumptions are left out so
# that overflow is detected (and reported) instead of silently skipping updates.
_FASTMATH = {"reassoc", "contract", "arcp", "nsz", "afn"}
_ONE = np.float32(1.0)
_AHEAD = 12  # entries between a row's prefetch and its use (8–24 measured equal here)
_LINE = 16  # float32 values per 64-byte cache line: one prefetch per line of a factor row
_ROWS_BYTES = 1024 * 1024  # per thread: the gathered rows of one CG solve (L2-sized)


@njit(nogil=True, fastmath=_FASTMATH, cache=True)
def _cg_row(indices, confidence, start, stop, x, Y, gram, cg_steps, r, p, Ap, rows):
    f = x.shape[0]
    n = stop - start
    # The first pass gathers the row's y_i into ``rows`` (prefetched a few entries ahead:
    # rows read through an index defeat the hardware prefetcher), so that the CG steps read
    # contiguous, cached memory. Entries beyond ``rows``' capacity are read through the index.
    # (The loops are written out: helper functions here cost ~20% in measured speed.)
    nb = min(n, rows.shape[0])
    # r = b − A x = Σ_i (c_i − (c_i − 1) y_i·x) y_i − (YᵀY + λI) x
    for a in range(f):
        acc = _ZERO
        for b in range(f):
            acc += gram[a, b] * x[b]
        r[a] = -acc
    for j in range(n):
        k = start + j
        if j + _AHEAD < n:
            nxt = indices[k + _AHEAD]
            for col in range(0, f, _LINE):
                prefetch(Y, nxt, col)
        y = Y[indices[k]]
        c = confidence[k]
        d = _ZERO
        if j < nb:
            row = rows[j]
            for a in range(f):
                v = y[a]
                row[a] = v
                d += v * x[a]
        else:
            for a in range(f):
                d += y[a] * x[a]
        coefficient = c - (c - _ONE) * d
        for a in range(f):
            r[a] += coefficient * y[a]
    rs_old = _ZERO
    for a in range(f):
        p[a] = r[a]
        rs_old += r[a] * r[a]
    if not np.isfinite(rs_old):
        return False
    if rs_old < _TINY:
        return True
    for _ in range(cg_steps):
        # Ap = (YᵀY + λI) p + Σ_i (c_i − 1)(y_i·p) y_i
        for a in range(f):
            acc = _ZERO
            for b in range(f):
                acc += gram[a, b] * p[b]
            Ap[a] = acc
        for j in range(nb):
            y = rows[j]
            d = _ZERO
            for a in range(f):
                d += y[a] * p[a]
            d *= confidence[start + j] - _ONE
            for a in range(f):
                Ap[a] += d * y[a]
        for j in range(nb, n):
            y = Y[indices[start + j]]
            d = _ZERO
            for a in range(f):
                d += y[a] * p[a]
            d *= confidence[start + j] - _ONE
            for a in range(f):
                Ap[a] += d * y[a]
        pAp = _ZERO
        for a in range(f):
            pAp += p[a] * Ap[a]
        if not np.isfinite(pAp):
            return False
        if pAp <= _ZERO:
            return True
        alpha = rs_old / pAp
        rs_new = _ZERO
        for a in range(f):
            x[a] += alpha * p[a]
            r[a] -= alpha * Ap[a]
            rs_new += r[a] * r[a]
        if rs_new < _TINY:
            return True
        beta = rs_new / rs_old
        for a in range(f):
            p[a] = r[a] + beta * p[a]
        rs_old = rs_new
    return True


@njit(nogil=True, fastmath=_FASTMATH, cache=True)
def _cholesky_row(indices, confidence, start, stop, x, Y, gram, A, b):
    f = x.shape[0]
    for a in range(f):
        b[a] = 0.0
        for c in range(f):
            A[a, c] = gram[a, c]
    for k in range(start, stop):
        y = Y[indices[k]]
        c_k = confidence[k]
        w = c_k - 1.0
        for a in range(f):
            b[a] += c_k * y[a]
            wy = w * y[a]
            for c in range(a + 1):  # lower triangle only
                A[a, c] += wy * y[c]
    # In-place Cholesky A = L Lᵀ (lower), then forward and back substitution.
    for j in range(f):
        s = A[j, j]
        for k in range(j):
            s -= A[j, k] * A[j, k]
        if s <= 0.0:
            return False
        d = np.sqrt(s)
        A[j, j] = d
        for i in range(j + 1, f):
            s = A[i, j]
            for k in range(j):
                s -= A[i, k] * A[j, k]
            A[i, j] = s / d
    for i in range(f):
        s = b[i]
        for k in range(i):
            s -= A[i, k] * b[k]
        b[i] = s / A[i, i]
    for i in range(f - 1, -1, -1):
        s = b[i]
        for k in range(i + 1, f):
            s -= A[k, i] * x[k]
        x[i] = s / A[i, i]
    return True


@njit(nogil=True, fastmath=_FASTMATH, cache=True)
def _row_loss(indices, confidence, start, stop, x, Y, gram):
    # Σ_i c_ui (p_ui − x·y_i)² + λ‖x‖² over all items i, with p = 1 on observed entries:
    # xᵀ(YᵀY + λI)x counts every item as unobserved (c = 1, p = 0); observed ones are corrected.
    f = x.shape[0]
    loss = 0.0
    for a in range(f):
        acc = 0.0
        for b in range(f):
            acc += gram[a, b] * x[b]
        loss += x[a] * acc
    for k in range(start, stop):
        y = Y[indices[k]]
        d = 0.0
        for a in range(f):
            d += y[a] * x[a]
        loss += confidence[k] * (1.0 - d) * (1.0 - d) - d * d
    return loss


@njit(nogil=True, fastmath=_FASTMATH, cache=True)
def solve_rows(indptr, indices, confidence, X, Y, gram, lo, hi, solver, cg_steps, compute_loss):
    """Update rows ``lo:hi`` of ``X`` in place; return (training loss of those rows, failures).

    ``solver`` is 0 for CG, 1 for Cholesky. ``gram`` is ``YᵀY + λI``. Rows with no
    entries converge to zero factors. ``failures`` counts rows whose system overflowed or
    (Cholesky) was not positive definite.
    """
    f = X.shape[1]
    r = np.empty(f, dtype=X.dtype)
    p = np.empty(f, dtype=X.dtype)
    Ap = np.empty(f, dtype=X.dtype)
    # The Cholesky path works in double: forming A squares the condition number.
    A = np.empty((f, f), dtype=np.float64)
    b = np.empty(f, dtype=np.float64)
    rows = np.empty((max(64, _ROWS_BYTES // (f * Y.itemsize)) if solver == 0 else 0, f), dtype=Y.dtype)
    loss = 0.0
    failures = 0
    for u in range(lo, hi):
        start, stop = indptr[u], indptr[u + 1]
        x = X[u]
        if solver == 0:
            solved = _cg_row(indices, confidence, start, stop, x, Y, gram, cg_steps, r, p, Ap, rows)
        else:
            solved = _cholesky_row(indices, confidence, start, stop, x, Y, gram, A, b)
        failures += not solved
        if compute_loss:
            loss += _row_loss(indices, confidence, start, stop, x, Y, gram)
    return loss, failures


@njit(parallel=True, nogil=True, cache=True)
def solve_rows_parallel(indptr, indices, confidence, X, Y, gram, bounds, solver, cg_steps,
                        compute_loss):
    """:func:`solve_rows` over chunks ``bounds[j]:bounds[j+1]`` in parallel (Numba threads)."""
    n_chunks = len(bounds) - 1
    losses = np.zeros(n_chunks)
    failures = np.zeros(n_chunks, dtype=np.int64)
    for j in prange(n_chunks):
        losses[j], failures[j] = solve_rows(indptr, indices, confidence, X, Y, gram, bounds[j],
                                            bounds[j + 1], solver, cg_steps, compute_loss)
    return losses.sum(), failures.sum()


_GRAM_TILE = 2048  # rows summed in the factors' precision before adding into float64


@njit(nogil=True, fastmath=_FASTMATH, cache=True)
def gram_rows(factors, lo, hi):
    """Σ_{u in lo:hi} x_u x_uᵀ in float64: tiles of rows are summed in the factors' own
    precision (vectorised), and the tiles in float64, so 60M float32 rows stay accurate."""
    f = factors.shape[1]
    total = np.zeros((f, f), dtype=np.float64)
    tile = np.zeros((f, f), dtype=factors.dtype)
    for start in range(lo, hi, _GRAM_TILE):
        tile[:, :] = _ZERO
        for u in range(start, min(start + _GRAM_TILE, hi)):
            x = factors[u]
            for a in range(f):
                xa = x[a]
                for b in range(f):
                    tile[a, b] += xa * x[b]
        for a in range(f):
            for b in range(f):
                total[a, b] += tile[a, b]
    return total


@njit(parallel=True, nogil=True, cache=True)
def gram_parallel(factors, n_chunks):
    """:func:`gram_rows` over all rows, chunks in parallel (Numba threads)."""
    n, f = factors.shape
    partial = np.zeros((n_chunks, f, f))
    for j in prange(n_chunks):
        partial[j] = gram_rows(factors, j * n // n_chunks, (j + 1) * n // n_chunks)
    return partial.sum(axis=0)


def balanced_chunks(indptr: np.ndarray, n_factors: int, n_chunks: int) -> np.ndarray:
    """Row boundaries splitting the work (≈ nnz + f per row) into ``n_chunks`` equal parts.

    Play counts are heavy-tailed: equal row counts would leave one thread with the heavy
    users while the others idle.
    """
    n_rows = len(indptr) - 1
    work = indptr.astype(np.float64) + n_factors * np.arange(n_rows + 1)
    targets = np.linspace(0.0, work[-1], n_chunks + 1)
    bounds = np.searchsorted(work, targets)
    bounds[0], bounds[-1] = 0, n_rows
    return np.unique(bounds).astype(np.int64)


def confidence_from_counts(values: np.ndarray, kind: str, alpha: float, epsilon: float,
                           dtype: np.dtype) -> np.ndarray:
    """c = 1 + α·r ("linear") or c = 1 + α·log(1 + r/ε) ("log"), aligned with ``values``."""
    values = values.astype(np.float64)
    if kind == "linear":
        confidence = 1.0 + alpha * values
    else:
        confidence = 1.0 + alpha * np.log1p(values / epsilon)
    with np.errstate(over="ignore"):
        confidence = confidence.astype(dtype)
    if not np.isfinite(confidence).all():
        raise OverflowError(f"confidences overflow {np.dtype(dtype).name} (largest "
                            f"1 + alpha*r = {float(np.max(1.0 + alpha * values)):.3g})")
    return confidence

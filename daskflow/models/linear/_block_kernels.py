"""The math of the linear classifiers: per-block passes, block tasks and solvers; no Dask.

A *pass* over a block returns one flat float64 array, summed across blocks by the caller:

    [Σ s_i ℓ(y_i, z_i),  Σ s_i,  gradient (p values),  Hessian (p x p values, order 2)]

with z_i = x_iᵀw + b, y_i ∈ {-1, +1}, s_i the row's weight and p = n_features +
fit_intercept: sums of the loss alone (no C, no penalty; :class:`Objective` adds them), so
a tree reduction of the blocks' arrays is exact. A dense block is read once per pass by one
compiled loop (Numba, GIL released); the Hessian's XᵀDX is BLAS syrk over cache-sized
sub-chunks that loop writes. The solvers (``_solver_kernels.py``) see the data only
through a pass function, so the same code drives threads and Dask.

Block tasks are module-level functions of a module importing neither scikit-learn nor
dask.dataframe (nor scipy.optimize at import), so workers unpickling them stay light.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numba import njit

from daskflow._errors import DataError
from daskflow.models._input_kernels import (
    BAD_WEIGHTS,
    LENGTHS,
    NON_FINITE_X,
    NON_FINITE_Y,
    first_non_finite_column,
)

__all__ = ["HISTOGRAM_BINS", "LOSSES", "EncodedBlock", "RawBlock", "ThreadedPasses", "add", "block_pass",
           "decision_block", "encode_block", "margin_histogram",
           "predict_block", "prepare_block", "proba_block", "sample_mask"]

#: Loss name -> code understood by the compiled pointwise loop.
LOSSES = {"log": 0, "squared_hinge": 1}
#: Rows of a dense sub-chunk are chosen so that it holds about this many bytes (fits L2/L3).
CHUNK_BYTES = 2 * 2**20
#: Mini-batch draws are made per fixed chunk of global rows, so they do not depend on blocking.
SAMPLE_CHUNK = 65_536
#: Bins of the margin histogram used to calibrate LinearSVM probabilities.
HISTOGRAM_BINS = 8_192
#: Messages shared by the in-memory checks (estimator) and the block checks (workers).
@dataclass(frozen=True)
class RawBlock:
    """A block as read: features as float64, labels as given, weights or None."""

    X: Any                     # C-contiguous float64 ndarray or CSR matrix
    y: np.ndarray
    sample_weight: np.ndarray | None


@dataclass(frozen=True)
class EncodedBlock:
    """A block ready for passes: labels in {-1, +1}, one weight per row, global row offset."""

    X: Any
    y: np.ndarray
    weight: np.ndarray
    row_offset: int

    @property
    def n_rows(self) -> int:
        return int(self.y.shape[0])


# -- compiled loops ------------------------------------------------------------------------------

# Reassociation and contraction let Numba vectorise the dot products over features; no
# assumptions about NaN/Inf, so an overflow shows up in the result instead of vanishing.
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


@njit(nogil=True, fastmath=_FASTMATH, cache=True, inline="always")
def _loss_terms(m, loss):  # pragma: no cover - compiled
    """ℓ, -∂ℓ/∂m and ∂²ℓ/∂m² at the margin m = y·z.

    Log loss in the overflow-free form log(1 + e^{-|m|}) + max(-m, 0); squared hinge
    max(0, 1 - m)² with the generalised second derivative 2·1[m < 1] (Keerthi & DeCoste
    2005), which is what lets Newton's method apply to it.
    """
    if loss == 0:
        e = math.exp(-abs(m))
        p = e / (1.0 + e) if m > 0 else 1.0 / (1.0 + e)   # σ(-m)
        return math.log1p(e) + max(-m, 0.0), p, p * (1.0 - p)
    t = 1.0 - m
    if t > 0:
        return t * t, 2.0 * t, 2.0
    return 0.0, 0.0, 0.0


@njit(nogil=True, fastmath=_FASTMATH, cache=True)
def _dense_rows(X, lo, hi, y, s, w, b, loss, order, gradient, scaled, column):  # pragma: no cover
    """One read of rows lo:hi: returns Σ s·ℓ; adds Σ s·ℓ'·x (and its intercept term) to
    ``gradient``; for order 2 writes √(s·ℓ'')·x to ``scaled`` (for BLAS syrk) and adds
    Σ s·ℓ''·x and Σ s·ℓ'' to ``column``. ``gradient``/``column`` hold d + 1 values."""
    d = X.shape[1]
    total = 0.0
    for i in range(lo, hi):
        z = b
        for j in range(d):
            z += X[i, j] * w[j]
        value, slope, curve = _loss_terms(y[i] * z, loss)
        total += s[i] * value
        if order >= 1:
            r = -y[i] * s[i] * slope
            for j in range(d):
                gradient[j] += r * X[i, j]
            gradient[d] += r
        if order >= 2:
            c = s[i] * curve
            root = math.sqrt(c)
            for j in range(d):
                scaled[i - lo, j] = root * X[i, j]
                column[j] += c * X[i, j]
            column[d] += c
    return total


@njit(nogil=True, fastmath=_FASTMATH, cache=True)
def _pointwise(z, y, s, loss, residual, curvature):  # pragma: no cover - compiled
    """Σ s·ℓ over precomputed z; writes s·ℓ'(z) to ``residual``, s·ℓ''(z) to ``curvature``."""
    total = 0.0
    for i in range(z.shape[0]):
        value, slope, curve = _loss_terms(y[i] * z[i], loss)
        total += s[i] * value
        residual[i] = -y[i] * s[i] * slope
        curvature[i] = s[i] * curve
    return total


# -- one pass over one block ------------------------------------------------------------------


def block_pass(block: EncodedBlock, coef: np.ndarray, fit_intercept: bool, loss: str, order: int,
               sample: tuple[int, int, float] | None = None) -> np.ndarray:
    """Weighted loss sum (order 0), plus its gradient (1), plus its Hessian (2) on one block.

    ``coef`` holds ``w`` then, if ``fit_intercept``, ``b``. ``sample = (seed, iteration,
    fraction)`` restricts the pass to a Bernoulli mini-batch of the block's rows (see
    :func:`sample_mask`). Never modifies its arguments.
    """
    X, y, s = block.X, block.y, block.weight
    if sample is not None:
        rows = np.flatnonzero(sample_mask(block.row_offset, block.n_rows, *sample))
        X, y, s = X[rows], y[rows], s[rows]
    d = X.shape[1]
    p = d + int(fit_intercept)
    out = np.zeros(2 + (p if order >= 1 else 0) + (p * p if order >= 2 else 0))
    w = np.ascontiguousarray(coef[:d], dtype=np.float64)
    b = float(coef[d]) if fit_intercept else 0.0
    out[1] = s.sum()
    if sp.issparse(X):
        _sparse_pass(X, y, s, w, b, fit_intercept, LOSSES[loss], order, out)
    else:
        _dense_pass(X, y, s, w, b, fit_intercept, LOSSES[loss], order, out)
    return out


def _dense_pass(X: np.ndarray, y: np.ndarray, s: np.ndarray, w: np.ndarray, b: float,
                fit_intercept: bool, loss: int, order: int, out: np.ndarray) -> None:
    n, d = X.shape
    p = d + int(fit_intercept)
    gradient, column = np.zeros(d + 1), np.zeros(d + 1)
    if order < 2:  # one compiled loop reads each row once: no BLAS, no temporaries
        out[0] += _dense_rows(X, 0, n, y, s, w, b, loss, order, gradient, np.empty((0, d)), column)
    else:
        # The Hessian's XᵀDX is BLAS syrk over sub-chunks of √D·X written by the compiled loop
        # while the rows are in cache: the task holds one CHUNK_BYTES buffer beyond its block.
        step = max(64, CHUNK_BYTES // (8 * max(d, 1)))
        scaled = np.empty((min(step, n), d))
        hessian = out[2 + p:].reshape(p, p)
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            out[0] += _dense_rows(X, lo, hi, y, s, w, b, loss, order, gradient, scaled, column)
            buffer = scaled[:hi - lo]
            hessian[:d, :d] += buffer.T @ buffer   # NumPy calls syrk for A.T @ A
        if fit_intercept:
            hessian[:d, d] = hessian[d, :d] = column[:d]
            hessian[d, d] = column[d]
    if order >= 1:
        out[2:2 + p] = gradient[:p]


def _sparse_pass(X: sp.csr_matrix, y: np.ndarray, s: np.ndarray, w: np.ndarray, b: float,
                 fit_intercept: bool, loss: int, order: int, out: np.ndarray) -> None:
    n, d = X.shape
    p = d + int(fit_intercept)
    z = X @ w
    if b:
        z += b
    residual, curvature = np.empty(n), np.empty(n)
    out[0] += _pointwise(z, y, s, loss, residual, curvature)
    if order >= 1:
        out[2:2 + d] += X.T @ residual
        if fit_intercept:
            out[2 + d] += residual.sum()
    if order >= 2:
        hessian = out[2 + p:].reshape(p, p)
        # XᵀDX as a sparse product: O(Σ_rows nnz_row²) work, a dense p x p result.
        hessian[:d, :d] += (X.T @ X.multiply(curvature[:, None]).tocsr()).toarray()
        if fit_intercept:
            column = X.T @ curvature
            hessian[:d, d] += column
            hessian[d, :d] += column
            hessian[d, d] += curvature.sum()


def sample_mask(row_offset: int, n_rows: int, seed: int, iteration: int, fraction: float) -> np.ndarray:
    """Bernoulli(``fraction``) mini-batch membership of global rows ``row_offset ..``.

    Drawn per fixed chunk of :data:`SAMPLE_CHUNK` global rows, seeded by (seed, iteration,
    chunk): the same rows however the data is blocked, a fresh sample every iteration (as
    Spark's ``data.sample(false, miniBatchFraction, seed + i)``).
    """
    if fraction >= 1.0:
        return np.ones(n_rows, dtype=bool)
    mask = np.empty(n_rows, dtype=bool)
    hi = row_offset + n_rows
    for chunk in range(row_offset // SAMPLE_CHUNK, -(-hi // SAMPLE_CHUNK)):
        start = chunk * SAMPLE_CHUNK
        uniforms = np.random.default_rng([seed, iteration, chunk]).random(SAMPLE_CHUNK)
        a, z = max(row_offset, start), min(hi, start + SAMPLE_CHUNK)
        mask[a - row_offset:z - row_offset] = uniforms[a - start:z - start] < fraction
    return mask


def add(*arrays: np.ndarray) -> np.ndarray:
    """Sum of pass results (one node of the tree reduction)."""
    total = np.array(arrays[0], copy=True)
    for array in arrays[1:]:
        total += array
    return total


# -- in memory: the same passes over row ranges, in a thread pool ----------------------------


class ThreadedPasses:
    """Passes over in-memory data split into row blocks (views), run in a thread pool.

    The compiled loop and BLAS release the GIL, so the threads run in parallel with no
    scheduler; the caller pins BLAS to one thread so the pool does not oversubscribe.
    """

    def __init__(self, X: Any, y: np.ndarray, weight: np.ndarray, n_threads: int) -> None:
        n = X.shape[0]
        # A few blocks per thread balance the load when cores are shared; tiny data stays
        # in one block (a pool costs more than it saves below ~20k rows).
        n_blocks = 1 if n < 20_000 or n_threads == 1 else 4 * n_threads
        bounds = np.linspace(0, n, n_blocks + 1).astype(np.int64)
        self.blocks = [EncodedBlock(_rows(X, lo, hi), y[lo:hi], weight[lo:hi], int(lo))
                       for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]
        self._pool = ThreadPoolExecutor(n_threads) if len(self.blocks) > 1 else None

    def run(self, function: Callable[..., np.ndarray], *args: Any) -> np.ndarray:
        """``function(block, *args)`` summed over the blocks (in block order, so the sum does
        not depend on thread timing)."""
        if self._pool is None:
            return add(*[function(block, *args) for block in self.blocks])
        return add(*self._pool.map(lambda block: function(block, *args), self.blocks))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


def _rows(X: Any, lo: int, hi: int) -> Any:
    """Rows ``lo:hi`` without copying the data (a CSR slice shares data and indices)."""
    if not sp.issparse(X):
        return X[lo:hi]
    start, stop = X.indptr[lo], X.indptr[hi]
    return sp.csr_matrix((X.data[start:stop], X.indices[start:stop], X.indptr[lo:hi + 1] - start),
                         shape=(hi - lo, X.shape[1]), copy=False)


# -- tasks of the blocked (Dask) fit ---------------------------------------------------------


def as_features(part: Any, where: str) -> Any:
    """A block of features as C-contiguous float64 (dense) or CSR float64 (sparse)."""
    if sp.issparse(part):
        return sp.csr_matrix(part, dtype=np.float64)
    if hasattr(part, "columns"):
        from pandas.api.types import is_numeric_dtype  # a pandas block: pandas is loaded

        for column, dtype in part.dtypes.items():
            if not is_numeric_dtype(dtype):
                raise DataError(f"column {column!r} of X ({where}) has dtype {dtype}: expected numeric "
                                "features. Encode it (e.g. one-hot or category codes) before fitting")
        part = part.to_numpy(dtype=np.float64, na_value=np.nan)
    array = np.ascontiguousarray(part, dtype=np.float64)
    if array.ndim != 2:
        raise DataError(f"X ({where}) has {array.ndim} dimension(s): expected a 2-D table of features")
    return array


def prepare_block(x_part: Any, y_part: Any, w_part: Any, index: int, name: str
                  ) -> tuple[RawBlock, dict[str, Any]]:
    """Read and check one block; raise the :class:`DataError` a user can act on.

    Returns the block and what the driver needs before any pass: its row count, its first
    three distinct labels (three suffice to detect a third class) and, when it has at most
    two, the sample weight of each.
    """
    where = f"{name}.fit, block {index}"
    X = as_features(x_part, where)
    y = np.asarray(y_part)
    y = y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y
    weight = None if w_part is None else np.asarray(w_part, dtype=np.float64).reshape(-1)
    for what, values in (("y", y), ("sample_weight", weight)):
        if values is not None and len(values) != X.shape[0]:
            raise DataError(LENGTHS.format(n_x=X.shape[0], n_y=len(values), what=what, where=where))
    bad = first_non_finite_column(X)
    if bad >= 0:
        column = repr(x_part.columns[bad]) if hasattr(x_part, "columns") else bad
        raise DataError(NON_FINITE_X.format(where=f"column {column}, {where}"))
    if y.dtype.kind in "fc" and not np.isfinite(y).all():
        raise DataError(NON_FINITE_Y.format(where=where))
    if y.dtype.kind == "f" and (y != np.round(y)).any():
        raise DataError(f"Unknown label type: continuous y ({where}): expected two class labels. "
                        "Threshold the target into classes first")
    if weight is not None and not (np.isfinite(weight).all() and (weight >= 0).all()):
        raise DataError(BAD_WEIGHTS.format(where=where))
    labels = np.unique(y)
    counted = np.ones(len(y)) if weight is None else weight
    label_weights = [float(counted[y == label].sum()) for label in labels] if len(labels) <= 2 else []
    return RawBlock(X, y, weight), {"n_rows": X.shape[0], "labels": labels[:3],
                                    "label_weights": label_weights}


def encode_block(raw: RawBlock, positive: Any, class_weight: np.ndarray, row_offset: int) -> EncodedBlock:
    """Labels to ±1 and the row weights (sample weight x class weight), once per fit.

    ``class_weight`` is (weight of the negative class, weight of the positive class).
    """
    positive_rows = raw.y == positive
    y = np.where(positive_rows, 1.0, -1.0)
    weight = np.ones(len(y)) if raw.sample_weight is None else raw.sample_weight.copy()
    weight *= np.where(positive_rows, class_weight[1], class_weight[0])
    return EncodedBlock(raw.X, y, weight, row_offset)


def margin_histogram(block: EncodedBlock, coef: np.ndarray, fit_intercept: bool,
                     class_weight: np.ndarray) -> np.ndarray:
    """``[weight, weight·z]`` per (class, margin bin), flattened: 4 x :data:`HISTOGRAM_BINS`.

    Bins are uniform in t = z/(1 + |z|): every margin fits with no prior range, and bins
    near the boundary are ~2.4e-4 wide. Class weights are divided out, so calibrated
    probabilities estimate the data's real frequencies.
    """
    z = decision_block(block.X, coef[:block.X.shape[1]], coef[-1] if fit_intercept else 0.0)
    positive = block.y > 0
    factor = np.where(positive, class_weight[1], class_weight[0])
    weight = np.divide(block.weight, factor, out=np.zeros_like(block.weight), where=factor > 0)
    t = z / (1.0 + np.abs(z))
    bins = np.clip(((t + 1.0) * (HISTOGRAM_BINS / 2.0)).astype(np.int64), 0, HISTOGRAM_BINS - 1)
    out = np.zeros((2, 2, HISTOGRAM_BINS))
    for label, rows in ((0, ~positive), (1, positive)):
        out[label, 0] = np.bincount(bins[rows], weight[rows], HISTOGRAM_BINS)
        out[label, 1] = np.bincount(bins[rows], weight[rows] * z[rows], HISTOGRAM_BINS)
    return out.reshape(-1)


# -- prediction, mapped over blocks -----------------------------------------------------------


def decision_block(X: Any, coef: np.ndarray, intercept: float) -> np.ndarray:
    """x·w + b of every row of one block (any numeric table, dense or sparse)."""
    if not sp.issparse(X):
        X = as_features(X, "prediction block")
    return np.asarray(X @ coef, dtype=np.float64).reshape(-1) + intercept


def proba_block(X: Any, coef: np.ndarray, intercept: float, slope: float = 1.0,
                offset: float = 0.0) -> np.ndarray:
    """[P(negative), P(positive)] of every row, P(positive) = σ(slope·(x·w + b) + offset)."""
    positive = _sigmoid(slope * decision_block(X, coef, intercept) + offset)
    return np.column_stack([1.0 - positive, positive])


def predict_block(X: Any, coef: np.ndarray, intercept: float, classes: np.ndarray) -> np.ndarray:
    """The predicted class of every row: ``classes[1]`` where x·w + b > 0."""
    return classes[(decision_block(X, coef, intercept) > 0).astype(np.intp)]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # 1/(1+e^{-z}) without overflow for large |z|.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

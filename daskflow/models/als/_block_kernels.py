"""Per-block steps of blocked ALS: pure NumPy/Numba functions the Dask layer maps over blocks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from daskflow._errors import DataError
from daskflow.features.interactions._block_files import read_counts
from daskflow.models.als._solver_kernels import confidence_from_counts, gram_rows, solve_rows

__all__ = ["ConfidenceBlock", "to_confidence", "initial_factors", "gram", "solve_block",
           "solve_stored_block", "block_confidence", "squared_norm", "add", "SOLVERS", "INIT_CHUNK"]

#: Solver name -> code understood by the kernels.
SOLVERS = {"cg": 0, "cholesky": 1}
#: Initial factors are drawn in fixed chunks of rows, so they do not depend on blocking.
INIT_CHUNK = 4_096  # small: a task draws whole chunks, and workers may have little memory


@dataclass(frozen=True)
class ConfidenceBlock:
    """Rows ``row_offset ..`` of the matrix as CSR arrays with confidences c >= 1."""

    indptr: np.ndarray
    indices: np.ndarray
    confidence: np.ndarray
    row_offset: int
    n_cols: int

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1


def to_confidence(csr: sp.csr_matrix, row_offset: int, kind: str, alpha: float, epsilon: float,
                  dtype: np.dtype) -> ConfidenceBlock:
    """Turn a block of play counts into confidences, once per fit."""
    csr = sp.csr_matrix(csr)
    csr.sort_indices()
    try:
        confidence = confidence_from_counts(csr.data, kind, alpha, epsilon, dtype)
    except OverflowError as exc:
        raise DataError(f"{exc}: lower alpha, use confidence='log', or dtype='float64'") from exc
    # int32 indices are shared, not copied (4 bytes per nonzero less per task; nothing writes them).
    return ConfidenceBlock(csr.indptr.astype(np.int64), csr.indices.astype(np.int32, copy=False), confidence,
                           row_offset, csr.shape[1])


def initial_factors(lo: int, hi: int, n_factors: int, seed: int, side: int,
                    dtype: np.dtype) -> np.ndarray:
    """Initial factors of rows ``lo:hi``, identical however the rows are blocked.

    Rows are drawn in fixed chunks of :data:`INIT_CHUNK` from generators seeded by
    (seed, side, chunk), so the in-memory and blocked fits start from the same point.
    """
    out = np.empty((hi - lo, n_factors), dtype=dtype)
    for chunk in range(lo // INIT_CHUNK, -(-hi // INIT_CHUNK)):
        start = chunk * INIT_CHUNK
        rng = np.random.default_rng([seed, side, chunk])
        # Uniform on [0, 0.01), as implicit draws them: all-positive starting vectors make the
        # first half-step fit close to the popularity direction, a better start than random
        # signs (docs/benchmarks.md, benchmarks/als_seeds.py).
        values = rng.random((INIT_CHUNK, n_factors), dtype=np.float32) * np.float32(0.01)
        a, b = max(lo, start), min(hi, start + INIT_CHUNK)
        out[a - lo:b - lo] = values[a - start:b - start]
    return out


def gram(factors: np.ndarray) -> np.ndarray:
    """YᵀY of one block of factors, in float64 (summed over blocks by a tree reduction).

    A Numba kernel rather than BLAS: no float64 copy of the factors, and no BLAS thread pool
    competing with Numba's and Dask's threads.
    """
    return gram_rows(factors, 0, factors.shape[0])


def solve_block(block: ConfidenceBlock, factors: np.ndarray, other: np.ndarray,
                other_gram: np.ndarray, regularization: float, solver: str, cg_steps: int,
                compute_loss: bool) -> tuple[np.ndarray, dict[str, float]]:
    """New factors of one block's rows given the other side, and what the driver checks.

    Returns ``(factors, stats)`` with ``stats``: ``loss`` (of these rows, if asked),
    ``failures`` (rows that overflowed), ``finite`` (1.0 if every factor is finite) and
    ``squared_norm`` (Σ‖x‖², for the regularisation term of the loss). ``factors`` is
    not modified (Dask may hold it for another task); the solve works on a copy.
    """
    updated = np.array(factors, copy=True)
    system = (other_gram + regularization * np.eye(other_gram.shape[0])).astype(updated.dtype)
    loss, failures = solve_rows(block.indptr, block.indices, block.confidence, updated, other,
                                system, 0, block.n_rows, SOLVERS[solver], cg_steps, compute_loss)
    squared = updated.astype(np.float64) ** 2
    stats = {"loss": float(loss), "failures": float(failures),
             "finite": float(np.isfinite(squared).all()), "squared_norm": float(squared.sum())}
    return updated, stats


# -- tasks of the blocked fit: module-level in a module without scikit-learn, so a worker
# unpickling them imports only NumPy, SciPy and Numba.


def block_confidence(block: Any, kind: str, alpha: float, epsilon: float, dtype: np.dtype
                     ) -> ConfidenceBlock:
    """An interaction block (``daskflow.features.Block``) as confidences."""
    return to_confidence(block.csr, block.row_offset, kind, alpha, epsilon, dtype)


def solve_stored_block(path: str, storage_options: Any, kind: str, alpha: float, epsilon: float,
                       dtype: np.dtype, factors: np.ndarray, other: np.ndarray, other_gram: np.ndarray,
                       regularization: float, solver: str, cg_steps: int, compute_loss: bool
                       ) -> tuple[np.ndarray, dict[str, float]]:
    """:func:`solve_block` on a block read from its saved file, within one task.

    Read counts, make confidences, solve, drop them: nothing of the block outlives the task,
    so a worker holds only the blocks its threads are solving (the streamed fit).
    """
    counts, row_offset = read_counts(path, storage_options)
    block = to_confidence(counts, row_offset, kind, alpha, epsilon, dtype)
    del counts  # the counts are dead once turned into confidences: free them before solving
    return solve_block(block, factors, other, other_gram, regularization, solver, cg_steps, compute_loss)


def squared_norm(factors: np.ndarray) -> float:
    return float(np.sum(factors.astype(np.float64) ** 2))


def add(*arrays: np.ndarray) -> np.ndarray:
    return np.sum(arrays, axis=0)

"""The block of an interaction matrix: NumPy and SciPy only.

Kept apart from the kernels that build blocks (``_interaction_kernels``, which need pandas and Arrow), so
that a worker unpickling a ``Block`` for an ALS task imports no more than it needs: pandas and
pyarrow alone are ~74 MB of a worker whose ``memory_limit`` may be a few hundred MB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["Block"]


@dataclass(frozen=True)
class Block:
    """Rows ``row_offset .. row_offset + csr.shape[0] - 1`` of a sparse interaction matrix."""

    csr: sp.csr_matrix          # summed weights (float32), columns are global indices
    last_ts: np.ndarray         # int64 ms of the latest interaction, aligned with csr.data
    row_offset: int

    @property
    def nnz(self) -> int:
        return int(self.csr.nnz)

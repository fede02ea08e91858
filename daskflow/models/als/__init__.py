"""Implicit-feedback ALS: the estimator and what it runs on.

``_implicit_als`` is the estimator (in memory and blocked on Dask); ``_block_kernels`` the
per-block steps the Dask layer maps over interaction blocks; ``_solver_kernels`` the
compiled per-row solvers both paths share; ``_checkpoint`` its checkpoints on any fsspec
store; ``_content_and_ann`` cold items from content and the Voyager indexes. The kernels
import no Dask, and this package imports nothing until a name is used, so an ALS task on a
worker imports NumPy, SciPy and Numba only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from daskflow._lazy import attach

if TYPE_CHECKING:
    from daskflow.models.als._implicit_als import ImplicitALS

__getattr__, __dir__, __all__ = attach(__name__, {"_implicit_als": ["ImplicitALS"]})

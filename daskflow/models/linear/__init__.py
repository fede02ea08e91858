"""The linear classifiers: ``LogisticRegression`` and ``LinearSVM``, fitted by blocked passes.

``_linear_classifiers`` holds the estimators and the Dask layer; ``_block_kernels`` the
per-block passes and block tasks (NumPy/Numba); ``_solver_kernels`` Newton, L-BFGS and
mini-batch SGD over a pass function. The kernels import no Dask, and this package imports
nothing until a name is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from daskflow._lazy import attach

if TYPE_CHECKING:
    from daskflow.models.linear._linear_classifiers import LinearSVM, LogisticRegression

__getattr__, __dir__, __all__ = attach(__name__, {"_linear_classifiers": ["LinearSVM", "LogisticRegression"]})

"""Checks of one block of classifier input, shared by the in-memory path and the workers; no Dask.

The messages are the same wherever a problem is found (the driver, for in-memory tables; a
worker, for one block of a Dask table); ``where`` says which estimator and block.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from numba import njit

from daskflow._errors import DataError

__all__ = ["BAD_WEIGHTS", "LENGTHS", "NON_FINITE_X", "NON_FINITE_Y", "check_two_classes",
           "first_non_finite_column"]

NON_FINITE_X = ("X contains NaN or infinity ({where}): expected finite feature values. Impute or "
                "drop missing values before fitting")
NON_FINITE_Y = ("y contains NaN or infinity ({where}): expected a class label on every row. Drop "
                "the unlabelled rows")
LENGTHS = ("X has {n_x} rows but {what} has {n_y} ({where}): expected one value per row of X. Pass "
           "{what} for the same rows as X")
BAD_WEIGHTS = ("sample_weight holds NaN, infinite or negative values ({where}): expected finite "
               "weights >= 0")


def check_two_classes(classes: np.ndarray, where: str) -> None:
    """Exactly two distinct labels, or the :class:`DataError` that says what y holds instead."""
    if len(classes) < 2:
        raise DataError(f"y has only one class ({classes.tolist()}) ({where}): expected two "
                        "classes. Check the labels (a filter may have removed one class)")
    if len(classes) > 2:
        shown = ", ".join(map(repr, classes[:5].tolist())) + (", ..." if len(classes) > 5 else "")
        raise DataError(f"Only binary classification is supported. The type of the target is "
                        f"multiclass: y has {len(classes)} classes ({shown}) ({where}): expected "
                        "two. Fit one model per class (one-vs-rest) or merge classes")


def first_non_finite_column(X: Any) -> int:
    """Index of the first column holding NaN or infinity, or -1 if all values are finite."""
    values = X.data if sp.issparse(X) else X
    if _all_finite(values.reshape(-1) if values.flags.c_contiguous else np.ravel(values)):
        return -1
    if sp.issparse(X):
        return int(X.indices[np.flatnonzero(~np.isfinite(X.data))[0]])
    return int(np.flatnonzero(~np.isfinite(X).all(axis=0))[0])


@njit(nogil=True, fastmath={"reassoc"}, cache=True)
def _all_finite(values):  # pragma: no cover - compiled
    # x·0 is 0 for finite x and NaN for NaN/±inf: one vectorised sum, no boolean temporary
    # (np.isfinite(X).all() costs ~3 passes' time on a 2M x 50 table).
    total = 0.0
    for value in values:
        total += value * 0.0
    return total == 0.0

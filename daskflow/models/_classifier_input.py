"""Feature tables in, blocks out: the input handling every classifier shares.

A classifier accepts an in-memory table (NumPy, pandas, SciPy sparse) or a Dask one
(Array or DataFrame). These helpers turn either into one of two forms — an in-memory
2-D array, or a Dask array with known row chunks — check labels and weights once, and
map a fitted in-memory predictor lazily over the row blocks of a Dask array.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from daskflow._errors import DataError, ParameterError
from daskflow.models._input_kernels import (
    BAD_WEIGHTS,
    LENGTHS,
    NON_FINITE_X,
    NON_FINITE_Y,
    check_two_classes,
    first_non_finite_column,
)

__all__ = ["Table", "as_table", "binary_labels", "blockwise_predict", "class_weights", "is_dask",
           "memory_features", "memory_labels", "memory_sample_weight", "sample_weights"]


def is_dask(value: Any) -> bool:
    """Whether ``value`` is a Dask collection (without importing Dask for in-memory input)."""
    return hasattr(value, "__dask_graph__") and value.__dask_graph__() is not None


@dataclass(frozen=True)
class Table:
    """A design matrix in one of the two forms the estimators work on."""

    data: Any                     # np.ndarray, scipy.sparse CSR, or a dask array
    feature_names: np.ndarray | None
    lazy: bool                    # a Dask array with known row chunks

    @property
    def n_features(self) -> int:
        return int(self.data.shape[1])


def as_table(X: Any, *, what: str = "X", where: str = "fit") -> Table:
    """Validate ``X`` and return it as a :class:`Table`.

    Dask DataFrames become Dask arrays with their partition lengths computed (one cheap
    pass), so labels and weights can be aligned block by block.
    """
    names = None
    if hasattr(X, "columns"):
        names = np.asarray([str(c) for c in X.columns], dtype=object)
    if is_dask(X):
        if hasattr(X, "to_dask_array"):
            _check_numeric_columns(X, what)
            X = X.to_dask_array(lengths=True)
        if X.ndim != 2:
            raise DataError(f"{what} must be 2-D (rows x features), got {X.ndim}-D: reshape it or pass a "
                            "DataFrame")
        if any(np.isnan(c) for c in X.chunks[0]):
            X = X.compute_chunk_sizes()
        if len(X.chunks[1]) > 1:  # one block of rows holds every feature
            X = X.rechunk({1: -1})
        return Table(X.astype(np.float64) if X.dtype.kind != "f" else X, names, True)
    return Table(memory_features(X, where, what=what), names, False)


def memory_features(X: Any, where: str, *, estimator: Any = None, what: str = "X") -> Any:
    """An in-memory table as a C-ordered float64 array or CSR matrix, every value finite.

    scikit-learn's own checks (shape, dtype, emptiness), so its messages read the same; with
    ``estimator``, through ``validate_data``, which also records ``n_features_in_`` and
    ``feature_names_in_`` on it. A NaN or infinity is reported with its column.
    """
    if hasattr(X, "columns"):
        _check_numeric_columns(X, what)
    from sklearn.utils import check_array
    from sklearn.utils.validation import validate_data

    options = {"accept_sparse": "csr", "dtype": np.float64, "order": "C", "ensure_all_finite": False}
    try:
        data = (validate_data(estimator, X, reset=True, **options) if estimator is not None
                else check_array(X, input_name=what, **options))
    except ValueError as exc:
        raise DataError(f"{exc} ({what} passed to {where})") from exc
    bad = first_non_finite_column(data)
    if bad >= 0:
        names = list(X.columns) if hasattr(X, "columns") else None
        column = repr(str(names[bad])) if names is not None else bad
        raise DataError(NON_FINITE_X.format(where=f"column {column}, {where}"))
    return data


def _check_numeric_columns(frame: Any, what: str) -> None:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    bad = [str(c) for c, t in frame.dtypes.items() if not (is_numeric_dtype(t) or is_bool_dtype(t))]
    if bad:
        raise DataError(f"{what} has non-numeric column(s) {bad}: expected numbers only. Encode them "
                        "first, e.g. with daskflow.features.tabular.TableEncoder")


def binary_labels(y: Any, n_rows: int, *, where: str = "fit") -> tuple[np.ndarray, Any]:
    """Check ``y`` holds exactly two classes; return ``(classes, y as 0/1 float)``.

    ``y`` stays lazy when it is a Dask collection (its classes are computed).
    """
    if not is_dask(y):
        y, classes = memory_labels(y, n_rows, where)
        return classes, (y == classes[1]).astype(np.float64)
    if hasattr(y, "to_dask_array"):
        y = y.to_dask_array(lengths=True)
    if y.shape[0] != n_rows:
        raise DataError(LENGTHS.format(n_x=n_rows, n_y=y.shape[0], what="y", where=where))
    classes = np.unique(y).compute()  # dask's unique: per-block uniques, then one merge
    if classes.dtype.kind == "f" and not np.isfinite(classes).all():
        raise DataError(NON_FINITE_Y.format(where=where))
    check_two_classes(classes, where)
    return classes, (y == classes[1]).astype(np.float64)


def memory_labels(y: Any, n_rows: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """In-memory labels as a 1-D array and their two classes, or the error that says why not."""
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import column_or_1d

    if y is None:
        raise DataError(f"this estimator requires y to be passed, but the target y is None ({where})")
    try:
        y = column_or_1d(y, warn=True)  # a column vector is taken, with scikit-learn's warning
    except ValueError as exc:
        raise DataError(f"{exc} ({where}): expected one label per row") from exc
    if len(y) != n_rows:
        raise DataError(LENGTHS.format(n_x=n_rows, n_y=len(y), what="y", where=where))
    if y.dtype.kind in "fc" and not np.isfinite(y).all():
        raise DataError(NON_FINITE_Y.format(where=where))
    if y.dtype.kind not in "biu":  # integer labels are classes by construction
        try:
            check_classification_targets(y)
        except ValueError as exc:
            raise DataError(f"{exc} ({where}): expected two class labels") from exc
    classes = np.unique(y)
    check_two_classes(classes, where)
    return y, classes


def blockwise_predict(function: Any, X: Any, n_columns: int | None) -> Any:
    """Apply ``function`` (in-memory rows -> scores) to every row block of a Dask array.

    ``n_columns`` is the width of the output (``None`` for a 1-D output). Nothing runs
    until the result is computed, so it scores tables of any size.
    """
    if n_columns is None:
        return X.map_blocks(function, drop_axis=1, dtype=np.float64,
                            meta=np.empty((0,), dtype=np.float64))
    return X.map_blocks(function, chunks=(X.chunks[0], (n_columns,)), dtype=np.float64,
                        meta=np.empty((0, 0), dtype=np.float64))


def class_weights(class_weight: Any, classes: np.ndarray, totals: Any) -> np.ndarray:
    """The (negative, positive) weights of ``class_weight``: ``None``, "balanced" or a dict.

    "balanced" weighs class c by total / (2 · total_c), as scikit-learn does. Its trees and
    naive Bayes count rows and its linear models sum the sample weights, so the caller passes
    the ``totals`` (negative, positive) it means. A dict's keys are matched to the classes as
    they are, as Python scalars, or as text (a YAML file gives ``"1"`` for the class 1).
    """
    if class_weight is None:
        return np.ones(2)
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ParameterError(f"class_weight={class_weight!r} is invalid: expected None, 'balanced' or "
                                 "a dict {class: weight}")
        counts = np.asarray(totals, dtype=np.float64)
        return counts.sum() / (2.0 * np.maximum(counts, np.finfo(float).tiny))
    if not isinstance(class_weight, Mapping):
        raise ParameterError(f"class_weight={class_weight!r} is invalid: expected None, 'balanced' or a "
                             "dict {class: weight}")
    remaining, out = dict(class_weight), np.ones(2)
    for i, label in enumerate(classes):
        for key in (label, label.item() if hasattr(label, "item") else label, str(label)):
            if key in remaining:
                out[i] = float(remaining.pop(key))
                break
    if remaining:
        raise ParameterError(f"class_weight has labels {sorted(map(str, remaining))} that are not classes "
                             f"of y ({classes.tolist()}): expected keys among the classes")
    return out


def memory_sample_weight(sample_weight: Any, n_rows: int, where: str) -> np.ndarray:
    """In-memory ``sample_weight`` checked: one finite weight >= 0 per row (a scalar for all)."""
    if sample_weight is None:
        return np.ones(n_rows)
    weight = np.asarray(sample_weight, dtype=np.float64)
    if weight.ndim == 0:
        weight = np.full(n_rows, float(weight))
    if weight.shape != (n_rows,):
        raise DataError(f"sample_weight has shape {weight.shape} but X has {n_rows} rows ({where}): "
                        f"expected shape ({n_rows},), one weight per row")
    if not (np.isfinite(weight).all() and (weight >= 0).all()):
        raise DataError(BAD_WEIGHTS.format(where=where))
    return weight


def sample_weights(sample_weight: Any, class_weight: Any, classes: np.ndarray, positive: Any,
                   n_rows: int, chunks: Any = None, *, where: str = "fit") -> Any:
    """Per-row weights: ``sample_weight`` times the class weight (see :func:`class_weights`).

    "balanced" counts rows, as scikit-learn's trees do. Lazy (aligned with ``chunks``) when
    ``positive`` or ``sample_weight`` is a Dask collection.
    """
    n_positive = 0.0
    if isinstance(class_weight, str):
        n_positive = float(positive.sum().compute() if is_dask(positive) else positive.sum())
    per_class = class_weights(class_weight, classes, [n_rows - n_positive, n_positive])
    weights = per_class[0] + (per_class[1] - per_class[0]) * positive
    if sample_weight is None:
        return weights
    if not (is_dask(sample_weight) or is_dask(positive)):
        sw = memory_sample_weight(sample_weight, n_rows, where)
        if sw.sum() <= 0:
            raise DataError(f"sample_weight sums to zero ({where}): expected some rows with positive weight")
        return weights * sw
    import dask.array as da

    sw = sample_weight.to_dask_array(lengths=True) if hasattr(sample_weight, "to_dask_array") \
        else sample_weight
    sw = da.asarray(sw, chunks=chunks) if not is_dask(sw) else sw.rechunk(chunks)
    if sw.shape != (n_rows,):
        raise DataError(f"sample_weight has shape {sw.shape} but X has {n_rows} rows ({where}): "
                        f"expected shape ({n_rows},), one weight per row")
    return weights * sw

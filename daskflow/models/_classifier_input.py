"""Feature tables in, blocks out: the input handling every classifier shares.

A classifier accepts an in-memory table (NumPy, pandas, SciPy sparse) or a Dask one
(Array or DataFrame). These helpers turn either into one of two forms — an in-memory
2-D array, or a Dask array with known row chunks — check labels and weights once, and
map a fitted in-memory predictor lazily over the row blocks of a Dask array.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from daskflow._errors import DataError, ParameterError

__all__ = ["Table", "as_table", "binary_labels", "blockwise_predict", "is_dask", "sample_weights"]


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


def as_table(X: Any, *, what: str = "X") -> Table:
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
    if hasattr(X, "columns"):
        _check_numeric_columns(X, what)
    from sklearn.utils import check_array

    try:
        # scikit-learn's own checks (shape, finiteness, dtype), so its messages read the same.
        data = check_array(X, accept_sparse="csr", dtype=np.float64, input_name=what)
    except ValueError as exc:
        raise DataError(f"{what} is not a valid feature table: {exc}") from exc
    return Table(data, names, False)


def _check_numeric_columns(frame: Any, what: str) -> None:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    bad = [str(c) for c, t in frame.dtypes.items() if not (is_numeric_dtype(t) or is_bool_dtype(t))]
    if bad:
        raise DataError(f"{what} has non-numeric column(s) {bad}: expected numbers only. Encode them "
                        "first, e.g. with daskflow.features.ConversionEncoder")


def binary_labels(y: Any, n_rows: int, *, what: str = "y") -> tuple[np.ndarray, Any]:
    """Check ``y`` holds exactly two classes; return ``(classes, y as 0/1 float)``.

    ``y`` stays lazy when it is a Dask collection (its classes are computed).
    """
    if y is None:
        raise DataError(f"this estimator requires y to be passed, but the target {what} is None")
    if is_dask(y):
        if hasattr(y, "to_dask_array"):
            y = y.to_dask_array(lengths=True)
        classes = np.unique(y).compute()  # dask's unique: per-block uniques, then one merge
    else:
        from sklearn.utils.multiclass import type_of_target

        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        try:
            kind = type_of_target(y, input_name=what, raise_unknown=True)
        except ValueError as exc:
            raise DataError(f"{what} is not a valid label column: {exc}") from exc
        if kind not in ("binary", "multiclass"):
            raise DataError(f"Unknown label type: {kind} {what} (expected two classes): a {kind} target "
                            "needs a regressor; binarise it first for classification")
        classes = np.unique(y)
    if y.shape[0] != n_rows:
        raise DataError(f"{what} has {y.shape[0]} labels but X has {n_rows} rows: pass one label per row")
    if classes.dtype.kind == "f" and not np.isfinite(classes).all():
        raise DataError(f"{what} holds NaN labels: drop those rows or fill the label")
    if len(classes) != 2:
        raise DataError(f"Only binary classification is supported: {what} holds {len(classes)} class(es) "
                        f"{[c.item() for c in classes[:5]]}, expected exactly two. Check the label column "
                        "and the split")
    positive = y == classes[1]
    return classes, positive.astype(np.float64)


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


def sample_weights(sample_weight: Any, class_weight: Any, classes: np.ndarray, positive: Any,
                   n_rows: int, chunks: Any = None) -> Any:
    """Per-row weights: ``sample_weight`` times the class weight (``None``, "balanced" or a dict).

    "balanced" weighs class c by n / (2 · n_c), as scikit-learn does. Lazy (aligned with
    ``chunks``) when ``positive`` is a Dask array.
    """
    if class_weight is None:
        per_class = np.ones(2)
    elif isinstance(class_weight, str) and class_weight == "balanced":
        n_positive = float(positive.sum().compute() if is_dask(positive) else positive.sum())
        counts = np.array([n_rows - n_positive, n_positive])
        per_class = n_rows / (2.0 * counts)
    elif isinstance(class_weight, dict):
        unknown = [c for c in class_weight if c not in classes]
        if unknown:
            raise ParameterError(f"class_weight names class(es) {unknown} that are not in y "
                                 f"(classes {list(classes)}): use the labels y holds")
        per_class = np.array([float(class_weight.get(c, 1.0)) for c in classes])
    else:
        raise ParameterError(f"class_weight={class_weight!r} is invalid: expected None, 'balanced' or a "
                             "dict {class: weight}")
    weights = per_class[0] + (per_class[1] - per_class[0]) * positive
    if sample_weight is None:
        return weights
    if is_dask(sample_weight) or is_dask(positive):
        import dask.array as da

        sw = sample_weight.to_dask_array(lengths=True) if hasattr(sample_weight, "to_dask_array") \
            else sample_weight
        sw = da.asarray(sw, chunks=chunks) if not is_dask(sw) else sw.rechunk(chunks)
    else:
        sw = np.asarray(sample_weight, dtype=np.float64)
    if sw.shape != (n_rows,):
        raise DataError(f"sample_weight has shape {sw.shape} but X has {n_rows} rows: pass one weight "
                        "per row")
    if not is_dask(sw) and (not np.isfinite(sw).all() or (sw < 0).any()):
        raise DataError("sample_weight holds negative, NaN or infinite values: expected finite weights >= 0")
    if not is_dask(sw) and sw.sum() <= 0:
        raise DataError("sample_weight sums to zero: expected some rows with positive weight")
    return weights * sw

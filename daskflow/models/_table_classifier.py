"""The fit/predict plumbing every table classifier shares (all but the linear models).

``fit`` turns X, y and the weights into one of the two forms of ``_classifier_input`` and
hands them to the subclass's ``_fit_table``; prediction checks X the same way and maps the
subclass's in-memory ``_proba`` lazily over the row blocks of a Dask input.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from daskflow._errors import DataError
from daskflow.models._classifier_input import (
    Table,
    as_table,
    binary_labels,
    blockwise_predict,
    is_dask,
    sample_weights,
)
from daskflow.models._params import Rule, check_params

__all__ = ["TableClassifier"]


class TableClassifier(ClassifierMixin, BaseEstimator):
    """Shared fit/predict plumbing: input forms, labels, weights, lazy prediction."""

    _rules: dict[str, Rule] = {}

    def __sklearn_tags__(self):  # noqa: ANN204 - scikit-learn's Tags type
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        tags.input_tags.sparse = True
        return tags

    def fit(self, X: Any, y: Any, sample_weight: Any = None, *, client: Any = None) -> Any:
        """Fit on a feature table ``X`` (rows x features) and binary labels ``y``.

        Parameters
        ----------
        X : array-like, DataFrame, or Dask Array / DataFrame
        y : array-like or Dask Array / Series of two classes
        sample_weight : array-like, optional
            Non-negative weight per row (multiplied by ``class_weight``).
        client : distributed.Client, optional
            Where Dask work runs; Dask's default scheduler otherwise.
        """
        check_params(self, self._rules)
        where = f"{type(self).__name__}.fit"
        table = as_table(X, where=where)
        n_rows = table.data.shape[0]
        self.classes_, positive = binary_labels(y, n_rows, where=where)
        if table.lazy and not is_dask(positive):
            import dask.array as da

            positive = da.asarray(positive, chunks=(table.data.chunks[0],))
        elif table.lazy:
            positive = positive.rechunk((table.data.chunks[0],))
        weights = sample_weights(sample_weight, getattr(self, "class_weight", None), self.classes_,
                                 positive, n_rows, chunks=(table.data.chunks[0],) if table.lazy else None,
                                 where=where)
        self.n_features_in_ = table.n_features
        if table.feature_names is not None:
            self.feature_names_in_ = table.feature_names
        self._fit_table(table, positive, weights, client)
        return self

    def _fit_table(self, table: Table, positive: Any, weights: Any, client: Any) -> None:
        raise NotImplementedError

    def _proba(self, X: np.ndarray) -> np.ndarray:
        """P(second class) for in-memory rows."""
        raise NotImplementedError

    def _checked(self, X: Any) -> Table:
        check_is_fitted(self)
        table = as_table(X)
        if table.n_features != self.n_features_in_:
            raise DataError(f"X has {table.n_features} features, but {type(self).__name__} is expecting "
                            f"{self.n_features_in_} features as input (as in fit): pass the same feature "
                            "columns as in fit")
        return table

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities, shape (n_rows, 2); a lazy Dask array for Dask input."""
        table = self._checked(X)

        def both(rows: np.ndarray) -> np.ndarray:
            p = self._proba(rows)
            return np.column_stack([1.0 - p, p])

        return blockwise_predict(both, table.data, 2) if table.lazy else both(table.data)

    def predict(self, X: Any) -> Any:
        """The more probable class of every row (lazy for Dask input)."""
        proba = self.predict_proba(X)
        return self.classes_[(proba[:, 1] > 0.5).astype(int)] if not is_dask(proba) else \
            (proba[:, 1] > 0.5).map_blocks(lambda b: self.classes_[b.astype(int)],
                                           dtype=self.classes_.dtype)

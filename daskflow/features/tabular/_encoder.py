"""TableEncoder: an entity table's feature columns as a float64 design matrix, out of core."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from daskflow._dask import compute
from daskflow._errors import ParameterError, SchemaError

__all__ = ["TableEncoder"]


class TableEncoder(TransformerMixin, BaseEstimator):
    """Scale numeric columns and one-hot encode categorical ones, as fitted on the training rows.

    Numeric columns (``log_columns`` after ``log1p`` of their non-negative part) are
    standardised by dask-ml's ``StandardScaler``; a missing value becomes 0, the training
    mean. Categorical columns (read as strings) are one-hot encoded by dask-ml's
    ``Categorizer`` and ``DummyEncoder`` on the categories seen in ``fit``; a value unseen
    there, or missing, encodes as all zeros.

    Parameters
    ----------
    categorical_columns, numeric_columns
        The feature columns by role.
    log_columns
        Numeric columns transformed by ``log1p`` before scaling.
    smooth
        ``{rate column: count column}``: rates (shares, ratios) estimated from few events are
        pulled toward the training rows' pooled rate ``m`` (count-weighted) by ``prior_events``
        pseudo-events: ``(rate * n + k * m) / (n + k)``, before scaling. A share of three events is
        mostly noise; this is its empirical-Bayes posterior mean. A smoothed column also in
        ``log_columns`` is taken as its natural log (``log_<column>``; it is > 0), not ``log1p``.
    prior_events
        ``k`` of ``smooth`` (> 0).

    Attributes
    ----------
    categories_ : dict of column -> list of str
    rates_ : dict of column -> float
        The pooled rate of each ``smooth`` column on the training rows.
    feature_names_out_ : numpy.ndarray

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"plan": ["a", "b", "a"], "spend": [1.0, 2.0, 3.0]})
    >>> TableEncoder(categorical_columns=["plan"], numeric_columns=["spend"]).fit_transform(frame).shape
    (3, 3)
    """

    def __init__(self, *, categorical_columns: Sequence[str] = (), numeric_columns: Sequence[str] = (),
                 log_columns: Sequence[str] = (), smooth: Mapping[str, str] | None = None,
                 prior_events: float = 5.0) -> None:
        self.categorical_columns = categorical_columns
        self.numeric_columns = numeric_columns
        self.log_columns = log_columns
        self.smooth = smooth
        self.prior_events = prior_events

    def fit(self, frame: dd.DataFrame | pd.DataFrame, y: Any = None) -> TableEncoder:
        """Learn the categories and the scaling of ``frame``'s feature columns."""
        from dask_ml.preprocessing import Categorizer, DummyEncoder, StandardScaler

        categorical, numeric = list(self.categorical_columns), list(self.numeric_columns)
        missing = [c for c in [*categorical, *numeric, *self.log_columns] if c not in frame.columns]
        missing += [c for c in self.log_columns if c not in numeric]
        smooth = dict(self.smooth or {})
        missing += [c for c in smooth if c not in numeric]
        missing += [c for c in smooth.values() if c not in frame.columns]
        if missing:
            raise SchemaError(f"column(s) {', '.join(map(repr, missing))} of TableEncoder are not in the "
                              f"frame (or, for log_columns and smooth, not in numeric_columns): found "
                              f"{', '.join(map(str, frame.columns))}")
        if not categorical and not numeric:
            raise SchemaError("TableEncoder has no columns: pass categorical_columns or numeric_columns")
        if smooth and not (isinstance(self.prior_events, int | float) and self.prior_events > 0):
            raise ParameterError(f"prior_events={self.prior_events!r} is not a positive number: expected > 0 "
                                 "pseudo-events, e.g. 5")
        self.feature_names_in_ = np.asarray([str(c) for c in frame.columns], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        uniques = {c: frame[c].dropna().astype(str).unique() for c in categorical}
        totals = {c: ((frame[c].fillna(0) * frame[n].fillna(0)).sum(), frame[n].fillna(0).sum())
                  for c, n in smooth.items()}
        if isinstance(frame, dd.DataFrame):
            (uniques, totals) = compute([uniques, totals])
        self.rates_ = {c: float(num) / float(den) if den > 0 else 0.0 for c, (num, den) in totals.items()}
        self.categories_ = {c: sorted(str(v) for v in values) for c, values in uniques.items()}
        names = []
        if numeric:
            self.scaler_ = StandardScaler().fit(_map(frame, self._numeric))
            names += list(self._numeric(frame._meta if isinstance(frame, dd.DataFrame) else frame.iloc[:0]))
        if categorical:
            known = _map(frame, self._known_categories)
            self.categorizer_ = Categorizer(categories={c: pd.CategoricalDtype(v)
                                                        for c, v in self.categories_.items()}).fit(known)
            self.dummy_encoder_ = DummyEncoder(columns=categorical).fit(self.categorizer_.transform(known))
            names += [c for c in self.dummy_encoder_.transformed_columns_ if c not in categorical]
        self.feature_names_out_ = np.asarray(names, dtype=object)
        return self

    def transform(self, frame: dd.DataFrame | pd.DataFrame) -> Any:
        """The design matrix: a dask array (known chunk sizes) for Dask input, NumPy for pandas."""
        check_is_fitted(self, "feature_names_out_")
        if isinstance(frame, pd.DataFrame):
            return self._encode(frame).to_numpy(dtype=np.float64)
        meta = pd.DataFrame({c: pd.Series(dtype=np.float64) for c in self.feature_names_out_})
        return frame.map_partitions(self._encode, meta=meta).to_dask_array(lengths=True)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output columns (``input_features`` is ignored, as they are fixed)."""
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()

    # One partition at a time: pure pandas, with the transformers fitted above.
    def _numeric(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = {}
        smooth = self.smooth or {}
        for column in self.numeric_columns:
            values = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
            if column in smooth:
                n = np.nan_to_num(frame[smooth[column]].to_numpy(dtype=np.float64, na_value=np.nan))
                k = float(self.prior_events)
                values = (np.nan_to_num(values) * n + k * self.rates_[column]) / (n + k)
            if column in self.log_columns and column in smooth:
                # A smoothed rate is > 0 (when the pooled rate is): its own log, as odds respond to
                # a rate multiplicatively; log1p is for counts that can be 0.
                out[f"log_{column}"] = np.log(np.maximum(values, np.finfo(np.float64).tiny))
            elif column in self.log_columns:
                out[f"log1p_{column}"] = np.log1p(np.maximum(values, 0.0))
            else:
                out[column] = values
        return pd.DataFrame(out, index=frame.index)

    def _known_categories(self, frame: pd.DataFrame) -> pd.DataFrame:
        # Values unseen in fit become missing first: a Categorical built from values
        # outside its categories is deprecated in pandas and will raise.
        columns = {}
        for column, categories in self.categories_.items():
            text = frame[column].astype(object).where(frame[column].notna(), None)
            text = text.map(lambda v: None if v is None else str(v))
            columns[column] = text.where(text.isin(categories), None).astype(object)
        return pd.DataFrame(columns, index=frame.index)

    def _encode(self, frame: pd.DataFrame) -> pd.DataFrame:
        parts = []
        if len(self.numeric_columns):
            parts.append(self.scaler_.transform(self._numeric(frame)).fillna(0.0))
        if len(self.categorical_columns):
            parts.append(self.dummy_encoder_.transform(self.categorizer_.transform(
                self._known_categories(frame))))
        out = pd.concat(parts, axis=1).astype(np.float64)
        return out[list(self.feature_names_out_)]


def _map(frame: dd.DataFrame | pd.DataFrame, function: Any) -> Any:
    if isinstance(frame, pd.DataFrame):
        return function(frame)
    return frame.map_partitions(function, meta=function(frame._meta))

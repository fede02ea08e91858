"""Content models for cold-start items: an encoder for any item table, and content -> factors.

Collaborative filtering knows nothing of an item nobody has played. Following van den Oord,
Dieleman & Schrauwen (NeurIPS 2013; Dieleman's 2014 write-up on Spotify), a regressor is
trained on the warm items to predict their ALS factors from their content, and predicts the
factors of cold items from theirs. The loss is on *normalised* factors (Dieleman trained on
unit-norm factors, so that popular items, whose factors are long, do not dominate the fit);
the norm, which is mostly popularity, is predicted separately by a ridge regression on the
log norm (``norm="predict"``) or left to the popularity prior, the warm items' mean norm
(``norm="mean"``). ``predict`` is the predicted direction times the predicted norm.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from daskflow._dask import compute
from daskflow._errors import DataError, SchemaError
from daskflow.models._params import Rule, check_params
from daskflow.models.content import _content_kernels as kernels

__all__ = ["ContentEncoder", "ContentToFactors", "ItemContent"]


def _partitions(table: Any) -> list[Any]:
    """The table as a list of pandas partitions (Delayed for a Dask DataFrame)."""
    if hasattr(table, "to_delayed"):
        return list(table.to_delayed())
    return [table]


class ContentEncoder(TransformerMixin, BaseEstimator):
    """Encode an item table's content columns as a sparse numeric matrix, fitted out of core.

    Column kinds are inferred from the data: strings are categorical (one-hot over the
    ``max_categories`` most frequent values), or multi-valued when ``separators`` names a
    separator for the column (``"Comedy Drama"`` -> two values, each 1/sqrt(2)); numbers
    (and booleans) are standardised; lists of numbers of one fixed length are standardised
    per entry and scaled by 1/sqrt(length). Every column's block has about unit norm per row.
    Nulls encode as no value (numbers: the mean).

    Parameters
    ----------
    id_col : str, default "item_id"
        The item ID column (never encoded; must be unique).
    columns : sequence of str or None
        Content columns; default: every column but ``id_col``.
    separators : dict or None
        Column -> separator of its multi-valued strings.
    max_categories : int, default 2000
        Values kept per categorical column (the most frequent; the rest encode as none).

    Attributes
    ----------
    state_ : list of dict
        Per column: name, kind and its categories or scaling (JSON-able).
    n_output_features_ : int
    n_items_ : int
        Rows of the table it was fitted on.
    """

    _rules = {"max_categories": Rule(int, low=1)}

    def __init__(self, *, id_col: str = "item_id", columns: Sequence[str] | None = None,
                 separators: dict[str, str] | None = None, max_categories: int = 2000) -> None:
        self.id_col = id_col
        self.columns = columns
        self.separators = separators
        self.max_categories = max_categories

    def fit(self, table: Any, y: None = None, *, client: Any = None) -> ContentEncoder:
        """One pass over the table's partitions (a pandas or Dask DataFrame).

        Each partition's statistics (category counts, sums, vector lengths) are computed
        where it lives and merged by a tree reduction; only those travel to the driver.

        Raises
        ------
        SchemaError
            The ID column or a content column is missing, or a column's type is unsupported.
        DataError
            Duplicate IDs, vectors of differing lengths, an all-null column.
        """
        import dask

        check_params(self, self._rules)
        columns = self._content_columns(table)
        separators = dict(self.separators or {})
        stats = [dask.delayed(kernels.column_stats)(part, columns, separators, self.id_col)
                 for part in _partitions(table)]
        while len(stats) > 1:
            stats = [dask.delayed(kernels.merge_stats)(*stats[i:i + 2]) if i + 1 < len(stats)
                     else stats[i] for i in range(0, len(stats), 2)]
        (merged,) = compute([stats[0]], client)
        _check_unique(merged["ids"], self.id_col)
        self.state_ = kernels.encoder_state(merged, columns, separators, self.max_categories)
        self.n_output_features_ = kernels.encoded_width(self.state_)
        self.n_items_ = int(merged["n_rows"])
        return self

    def _content_columns(self, table: Any) -> list[str]:
        present = [str(c) for c in table.columns]
        if self.id_col not in present:
            raise SchemaError(f"the item table has no ID column {self.id_col!r} (found "
                              f"{', '.join(present)}): set the content id to the column naming the items")
        if self.columns is None:
            columns = [c for c in present if c != self.id_col]
        else:
            columns = list(self.columns)
            missing = [c for c in columns if c not in present]
            if missing:
                raise SchemaError(f"the item table lacks content column(s) {', '.join(map(repr, missing))} "
                                  f"(found {', '.join(present)}): name existing columns")
        unknown = sorted(set(self.separators or {}) - set(columns))
        if unknown:
            raise SchemaError(f"separators name column(s) {', '.join(map(repr, unknown))} that are not "
                              f"content columns ({', '.join(columns)})")
        if not columns:
            raise SchemaError(f"the item table has no content column besides {self.id_col!r}: add some")
        return columns

    def transform(self, table: pd.DataFrame) -> sp.csr_matrix:
        """Encode the rows of a pandas DataFrame (in its order) as float32 CSR."""
        check_is_fitted(self)
        missing = [c["name"] for c in self.state_ if c["name"] not in table.columns]
        if self.id_col not in table.columns:
            missing.insert(0, self.id_col)
        if missing:
            raise SchemaError(f"the item table lacks column(s) {', '.join(map(repr, missing))} that the "
                              f"encoder was fitted with: give it {', '.join(c['name'] for c in self.state_)}")
        for column in self.state_:
            kind = kernels.column_kind(table[column["name"]], column.get("separator"))
            if kind is not None and kind != column["kind"]:
                raise SchemaError(f"content column {column['name']!r} is {kind} here but was "
                                  f"{column['kind']} when the encoder was fitted: give it the same type")
        return kernels.encode(table, self.state_, self.id_col)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        # Takes a DataFrame of named columns, not an array: the array checks do not apply.
        tags.input_tags.two_d_array = False
        return tags


def _check_unique(ids: np.ndarray, id_col: str) -> None:
    index = pd.Index(ids)
    if index.hasnans:
        raise DataError(f"the item table has null values in its ID column {id_col!r}: every item needs an ID")
    if not index.is_unique:
        duplicated = index[index.duplicated()].unique()
        raise DataError(f"the item table has duplicate IDs in column {id_col!r} ({len(duplicated)} "
                        f"duplicated, e.g. {', '.join(map(repr, map(str, duplicated[:3])))}): give each "
                        "item one row")


class ContentToFactors(RegressorMixin, BaseEstimator):
    """Predict ALS item factors from encoded content (trained on the warm items).

    The direction model is fitted on unit-norm factors (Dieleman 2014); the norm is
    predicted separately by ridge on the log norm (``norm="predict"``), or set to the warm
    items' mean norm, a popularity prior (``norm="mean"``). On the sample lake predicting
    the norm scores higher (docs/als.md: an item's artist carries its popularity); with
    content that says nothing of popularity (audio alone), ``"mean"`` is the honest choice.

    Parameters
    ----------
    model : {"ridge", "mlp"}, default "ridge"
        Linear ridge regression, or a one-hidden-layer ReLU network (NumPy, Adam).
    alpha : float, default 1.0
        Ridge penalty, or the network's weight decay.
    norm : {"predict", "mean"}, default "predict"
    hidden : int, default 256
        Hidden units of the MLP.
    epochs : int, default 40
    learning_rate : float, default 0.003
    batch_size : int, default 256
    random_state : int, default 0

    Attributes
    ----------
    coef_, intercept_ : ndarrays (ridge) of the direction model
    network_ : list of ndarray (mlp): ``[W1, b1, W2, b2]``
    norm_coef_, norm_intercept_ : the log-norm ridge (``norm="predict"``)
    mean_norm_ : float
    n_outputs_ : int
    """

    _rules = {
        "model": Rule(options=("ridge", "mlp")),
        "alpha": Rule(float, low=0),
        "norm": Rule(options=("predict", "mean")),
        "hidden": Rule(int, low=1),
        "epochs": Rule(int, low=1),
        "learning_rate": Rule(float, low=0, low_inclusive=False),
        "batch_size": Rule(int, low=1),
        "random_state": Rule(int, low=0),
    }

    def __init__(self, *, model: str = "ridge", alpha: float = 1.0, norm: str = "predict",
                 hidden: int = 256, epochs: int = 40, learning_rate: float = 0.003,
                 batch_size: int = 256, random_state: int = 0) -> None:
        self.model = model
        self.alpha = alpha
        self.norm = norm
        self.hidden = hidden
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        return tags

    def fit(self, X: Any, y: Any) -> ContentToFactors:
        """Fit on encoded content ``X (n_items, n_features)`` and factors ``y (n_items, f)``."""
        check_params(self, self._rules)
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=np.float64, multi_output=True,
                             y_numeric=True, reset=True)
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 1:
            y = y[:, None]
        self.n_outputs_ = y.shape[1]
        norms = np.linalg.norm(y, axis=1)
        directions = y / np.maximum(norms, 1e-12)[:, None]
        if self.model == "ridge":
            self.coef_, self.intercept_ = kernels.ridge_fit(X, directions, self.alpha)
        else:
            self.network_ = kernels.mlp_fit(X, directions, hidden=self.hidden, alpha=self.alpha,
                                            epochs=self.epochs, learning_rate=self.learning_rate,
                                            batch_size=self.batch_size, seed=self.random_state)
        log_norms = np.log(np.maximum(norms, 1e-12))
        self.mean_norm_ = float(np.exp(log_norms.mean()))
        if self.norm == "predict":
            coef, intercept = kernels.ridge_fit(X, log_norms[:, None], max(self.alpha, 1e-6))
            self.norm_coef_, self.norm_intercept_ = coef[:, 0], float(intercept[0])
        return self

    def predict_direction(self, X: Any) -> np.ndarray:
        """The direction model's output (not renormalised: its length is its confidence)."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float64, reset=False)
        if self.model == "ridge":
            return np.asarray(X @ self.coef_) + self.intercept_
        return kernels.mlp_predict(X, self.network_)

    def predict_norm(self, X: Any) -> np.ndarray:
        """The predicted factor norm of each row (the mean warm norm for ``norm="mean"``)."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float64, reset=False)
        if self.norm == "mean":
            return np.full(X.shape[0], self.mean_norm_)
        return np.exp(np.asarray(X @ self.norm_coef_).ravel() + self.norm_intercept_)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted factors: direction times norm, shape ``(n_items, n_outputs_)``."""
        return self.predict_direction(X) * self.predict_norm(X)[:, None]

    # -- persistence: arrays and JSON only, so a saved model loads without pickle -------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted state as named arrays (:meth:`from_arrays` rebuilds the model)."""
        check_is_fitted(self)
        arrays = {"params": np.array(json.dumps(self.get_params())),
                  "meta": np.array([self.n_outputs_, self.mean_norm_, self.n_features_in_], dtype=np.float64)}
        if self.model == "ridge":
            arrays.update(coef=self.coef_, intercept=self.intercept_)
        else:
            arrays.update({f"network_{i}": p for i, p in enumerate(self.network_)})
        if self.norm == "predict":
            arrays.update(norm_coef=self.norm_coef_, norm_intercept=np.array([self.norm_intercept_]))
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ContentToFactors:
        model = cls(**json.loads(str(arrays["params"])))
        n_outputs, mean_norm, n_features = arrays["meta"]
        model.n_outputs_, model.mean_norm_, model.n_features_in_ = int(n_outputs), float(mean_norm), \
            int(n_features)
        if model.model == "ridge":
            model.coef_, model.intercept_ = arrays["coef"], arrays["intercept"]
        else:
            model.network_ = [arrays[f"network_{i}"] for i in range(4)]
        if model.norm == "predict":
            model.norm_coef_, model.norm_intercept_ = arrays["norm_coef"], float(arrays["norm_intercept"][0])
        return model


@dataclass
class ItemContent:
    """An item table and how to learn factors from it, for ``ImplicitALS.fit(item_content=...)``.

    Parameters
    ----------
    table : pandas or Dask DataFrame
        One row per item: ``id_col`` and content columns. Items of the table that the
        interaction matrix lacks are the cold items.
    id_col : str
        The column holding the matrix's item IDs.
    encoder : ContentEncoder or None
        Default: ``ContentEncoder(id_col=id_col)`` over every other column.
    regressor : ContentToFactors or None
        Default: ``ContentToFactors()`` (ridge).
    """

    table: Any
    id_col: str = "item_id"
    encoder: ContentEncoder | None = None
    regressor: ContentToFactors | None = None
    _frame: pd.DataFrame | None = field(default=None, repr=False)

    _fitted_encoder: ContentEncoder | None = field(default=None, repr=False)

    def make_encoder(self) -> ContentEncoder:
        """A fresh (unfitted) copy of the encoder, reading ``id_col``."""
        from sklearn.base import clone

        if self.encoder is None:
            return ContentEncoder(id_col=self.id_col)
        return clone(self.encoder).set_params(id_col=self.id_col)

    def fit_encoder(self, *, client: Any = None) -> ContentEncoder:
        """The encoder fitted on the whole table (once; later calls reuse it).

        Call it before a long fit to find a bad item table (missing or duplicate IDs,
        unsupported columns) in seconds rather than after the factors are learnt.
        """
        if self._fitted_encoder is None:
            self._fitted_encoder = self.make_encoder().fit(self.table, client=client)
        return self._fitted_encoder

    def make_regressor(self) -> ContentToFactors:
        from sklearn.base import clone

        return ContentToFactors() if self.regressor is None else clone(self.regressor)

    def frame(self, *, client: Any = None) -> pd.DataFrame:
        """The table in memory (an item table is small: one row per item)."""
        if self._frame is None:
            table = self.table
            if hasattr(table, "to_delayed"):
                table = compute([table], client)[0]
            self._frame = table.reset_index(drop=True)
        return self._frame


def encoder_to_json(encoder: ContentEncoder) -> str:
    """A fitted encoder as JSON (its parameters and state)."""
    check_is_fitted(encoder)
    return json.dumps({"params": encoder.get_params(), "state": encoder.state_,
                       "n_items": encoder.n_items_}, default=_json_default)


def encoder_from_json(text: str) -> ContentEncoder:
    data = json.loads(text)
    params = data["params"]
    encoder = ContentEncoder(**params)
    encoder.state_ = data["state"]
    encoder.n_output_features_ = kernels.encoded_width(encoder.state_)
    encoder.n_items_ = data["n_items"]
    return encoder


@functools.singledispatch
def _json_default(value: Any) -> Any:
    raise TypeError(f"not JSON-serialisable: {type(value)}")


@_json_default.register
def _(value: np.generic) -> Any:
    return value.item()


@_json_default.register
def _(value: np.ndarray) -> Any:
    return value.tolist()

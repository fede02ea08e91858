"""The tree classifiers: decision tree, random forest, boosted trees (and how each scales).

Each takes the same inputs as :class:`~daskflow.models.LogisticRegression` (NumPy, pandas,
SciPy sparse, Dask Array or DataFrame), predicts lazily over row blocks, and says how it
scales:

==================  ===========================================================================
Decision tree       Trained on a uniform sample of at most ``max_samples`` rows (default 1M).
Random forest       Distributed: every row block grows its share of the trees on its own rows
                    (a forest of block-local trees); in memory, scikit-learn's forest.
Boosted trees       LightGBM; its Dask interface trains across the workers when a ``client`` is
                    given (``pip install "daskflow[boost]"``).
==================  ===========================================================================
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

from daskflow._dask import compute
from daskflow._errors import DataError, ParameterError
from daskflow.models._classifier_input import Table
from daskflow.models._params import Rule
from daskflow.models._table_classifier import TableClassifier

__all__ = ["DecisionTreeClassifier", "RandomForestClassifier", "BoostedTreesClassifier"]

log = logging.getLogger("daskflow")


def _sample_rows(table: Table, positive: Any, weights: Any, max_rows: int | None, seed: Any,
                 client: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """In-memory rows of a table: all of them, or a uniform sample of about ``max_rows``."""
    if not table.lazy:
        return table.data, np.asarray(positive), np.asarray(weights)
    n_rows = table.data.shape[0]
    X, y, w = table.data, positive, weights
    if max_rows is not None and n_rows > max_rows:
        import dask.array as da

        # One Bernoulli draw per row, seeded per block so the sample is reproducible.
        state = da.random.RandomState(np.random.default_rng(seed).integers(2**31))
        keep = state.random_sample(n_rows, chunks=(X.chunks[0],)) < max_rows / n_rows
        X, y, w = X[keep], y[keep], w[keep]
        log.info("training on a %.1f%% uniform sample (~%d of %d rows)", 100 * max_rows / n_rows,
                 max_rows, n_rows)
    X, y, w = compute([X, y, w], client)
    return X, y, w


class DecisionTreeClassifier(TableClassifier):
    """A CART tree (scikit-learn's) trained on a uniform sample of the table.

    Scales: trained on a sample of at most ``max_samples`` rows (default 1,000,000 —
    about 400 MB at 50 features), predicts lazily over every block. A tree's splits
    converge long before that many rows.

    Parameters
    ----------
    max_depth, min_samples_leaf, criterion, class_weight, random_state
        As in scikit-learn's ``DecisionTreeClassifier``.
    max_samples : int or None
        Rows to train on at most; ``None`` trains on all of them.
    """

    _rules = {"max_depth": Rule(int, low=1, allow_none=True), "min_samples_leaf": Rule(int, low=1),
              "criterion": Rule(options=("gini", "entropy", "log_loss")),
              "max_samples": Rule(int, low=2, allow_none=True)}

    def __init__(self, *, max_depth: int | None = 8, min_samples_leaf: int = 20, criterion: str = "gini",
                 class_weight: Any = None, max_samples: int | None = 1_000_000,
                 random_state: int | None = None) -> None:
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.criterion = criterion
        self.class_weight = class_weight
        self.max_samples = max_samples
        self.random_state = random_state

    def _fit_table(self, table: Table, positive: Any, weights: Any, client: Any) -> None:
        from sklearn.tree import DecisionTreeClassifier as Tree

        X, y, w = _sample_rows(table, positive, weights, self.max_samples, self.random_state, client)
        self.tree_model_ = Tree(max_depth=self.max_depth, min_samples_leaf=self.min_samples_leaf,
                                criterion=self.criterion, random_state=self.random_state)
        self.tree_model_.fit(X, y, sample_weight=w)
        self.n_training_rows_ = len(y)

    def _proba(self, X: np.ndarray) -> np.ndarray:
        return _positive_column(self.tree_model_, X)


def _positive_column(model: Any, X: np.ndarray) -> np.ndarray:
    proba = model.predict_proba(X)
    if proba.shape[1] == 1:  # a model that saw one class only
        return np.full(len(X), float(model.classes_[0]))
    return proba[:, 1]


def _grow_block_forest(X: np.ndarray, y: np.ndarray, w: np.ndarray, n_trees: int, params: dict[str, Any],
                       seed: int) -> list[Any]:
    """Grow ``n_trees`` bootstrapped trees on one row block (runs on a worker)."""
    from sklearn.ensemble import RandomForestClassifier as Forest

    if n_trees == 0 or len(np.unique(y)) < 2:
        return []
    forest = Forest(n_estimators=n_trees, random_state=seed, n_jobs=1, **params)
    forest.fit(X, y, sample_weight=w)
    return list(forest.estimators_)


class RandomForestClassifier(TableClassifier):
    """A random forest; on Dask input, each row block grows its share of the trees.

    Scales: distributed. With a Dask table, ``n_estimators`` trees are spread over the row
    blocks in proportion to their size; each block grows its trees on bootstrap samples
    of its own rows, in parallel on the workers, and the trees are pooled into one forest
    (block-local bagging, as in dask-ml's blockwise ensembles). Each tree sees one block,
    so blocks should hold tens of thousands of rows and both classes (a block with a single
    class passes its trees to the others). In memory, scikit-learn's forest on all rows.

    Parameters
    ----------
    n_estimators, max_depth, min_samples_leaf, max_features, class_weight, random_state
        As in scikit-learn's ``RandomForestClassifier``.
    """

    _rules = {"n_estimators": Rule(int, low=1), "max_depth": Rule(int, low=1, allow_none=True),
              "min_samples_leaf": Rule(int, low=1)}

    def __init__(self, *, n_estimators: int = 100, max_depth: int | None = 12, min_samples_leaf: int = 5,
                 max_features: Any = "sqrt", class_weight: Any = None,
                 random_state: int | None = None) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.class_weight = class_weight
        self.random_state = random_state

    def _fit_table(self, table: Table, positive: Any, weights: Any, client: Any) -> None:
        params = {"max_depth": self.max_depth, "min_samples_leaf": self.min_samples_leaf,
                  "max_features": self.max_features}
        seeds = np.random.default_rng(self.random_state).integers(2**31, size=len(table.data.chunks[0])
                                                                   if table.lazy else 1)
        if not table.lazy:
            trees = _grow_block_forest(table.data, np.asarray(positive), np.asarray(weights),
                                       self.n_estimators, params, int(seeds[0]))
        else:
            import dask

            sizes = np.asarray(table.data.chunks[0], dtype=np.float64)
            counts = _apportion(self.n_estimators, sizes)
            parts = [dask.delayed(_grow_block_forest)(b, p, w, int(n), params, int(s))
                     for b, p, w, n, s in zip(table.data.to_delayed().ravel(), positive.to_delayed(),
                                              weights.to_delayed(), counts, seeds, strict=True)]
            trees = [tree for part in compute(parts, client) for tree in part]
            missing = self.n_estimators - len(trees)
            if missing and trees:
                log.info("%d of %d trees were not grown: their blocks hold one class only", missing,
                         self.n_estimators)
        if not trees:
            raise DataError("no tree could be grown: every row block holds a single class. Use larger "
                            "blocks (fewer partitions) so each holds both classes")
        self.estimators_ = trees

    def _proba(self, X: np.ndarray) -> np.ndarray:
        return np.mean([_positive_column(tree, X) for tree in self.estimators_], axis=0)


def _apportion(total: int, sizes: np.ndarray) -> np.ndarray:
    """Split ``total`` into integers proportional to ``sizes`` (largest remainders)."""
    exact = total * sizes / sizes.sum()
    counts = np.floor(exact).astype(int)
    counts[np.argsort(counts - exact)[: total - counts.sum()]] += 1
    return counts


class BoostedTreesClassifier(TableClassifier):
    """Gradient-boosted trees through LightGBM (its Dask interface when a client is given).

    Scales: distributed when fitted on a Dask table with a ``client``: LightGBM's
    ``DaskLGBMClassifier`` trains one booster across the workers (data-parallel
    histograms). Without a client, a Dask table is computed into memory first.
    Needs ``pip install "daskflow[boost]"``.

    Parameters
    ----------
    n_estimators, learning_rate, num_leaves, max_depth, min_child_samples, subsample,
    colsample_bytree, reg_lambda, class_weight, random_state
        As in LightGBM's scikit-learn interface.
    """

    _rules = {"n_estimators": Rule(int, low=1), "learning_rate": Rule(float, low=0, low_inclusive=False),
              "num_leaves": Rule(int, low=2), "min_child_samples": Rule(int, low=1),
              "subsample": Rule(float, low=0, high=1, low_inclusive=False),
              "colsample_bytree": Rule(float, low=0, high=1, low_inclusive=False),
              "reg_lambda": Rule(float, low=0)}

    def __init__(self, *, n_estimators: int = 200, learning_rate: float = 0.05, num_leaves: int = 15,
                 max_depth: int = -1, min_child_samples: int = 20, subsample: float = 1.0,
                 colsample_bytree: float = 1.0, reg_lambda: float = 1.0, class_weight: Any = None,
                 random_state: int | None = None) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.class_weight = class_weight
        self.random_state = random_state

    def _lightgbm_params(self) -> dict[str, Any]:
        return {"n_estimators": self.n_estimators, "learning_rate": self.learning_rate,
                "num_leaves": self.num_leaves, "max_depth": self.max_depth,
                "min_child_samples": self.min_child_samples, "subsample": self.subsample,
                "subsample_freq": 1 if self.subsample < 1 else 0,
                "colsample_bytree": self.colsample_bytree, "reg_lambda": self.reg_lambda,
                "random_state": self.random_state if self.random_state is not None else 0,
                "deterministic": True, "force_row_wise": True, "verbose": -1}

    def _fit_table(self, table: Table, positive: Any, weights: Any, client: Any) -> None:
        try:
            import lightgbm
        except ImportError as exc:
            raise ParameterError('boosted_trees needs LightGBM: pip install "daskflow[boost]"') from exc
        if table.lazy and client is not None:
            model = lightgbm.DaskLGBMClassifier(client=client, **self._lightgbm_params())
            with warnings.catch_warnings():
                # LightGBM's Dask layer warns that it sets n_jobs itself (one per worker thread).
                warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
                model.fit(table.data, positive.astype(np.int8), sample_weight=weights)
            self.booster_model_ = model.to_local()
        else:
            X, y, w = _sample_rows(table, positive, weights, None, None, client)
            self.booster_model_ = lightgbm.LGBMClassifier(n_jobs=1, **self._lightgbm_params())
            self.booster_model_.fit(X, y.astype(np.int8), sample_weight=w)

    def _proba(self, X: np.ndarray) -> np.ndarray:
        return _positive_column(self.booster_model_, X)

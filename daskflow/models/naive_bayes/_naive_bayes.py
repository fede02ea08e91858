"""Gaussian Naive Bayes over row blocks: distributed and exact.

Per-block sufficient statistics (``_naive_bayes_kernels``) merged pairwise, so the result
equals scikit-learn's ``GaussianNB`` on the whole table however it is blocked.
"""

from __future__ import annotations

from functools import reduce
from typing import Any

import numpy as np

from daskflow._dask import compute
from daskflow._errors import DataError, ParameterError
from daskflow.models._classifier_input import Table
from daskflow.models._params import Rule
from daskflow.models._table_classifier import TableClassifier
from daskflow.models.naive_bayes._naive_bayes_kernels import (
    gaussian_joint_log_likelihood,
    gaussian_stats,
    merge_gaussian_stats,
)

__all__ = ["NaiveBayesClassifier"]


class NaiveBayesClassifier(TableClassifier):
    """Gaussian Naive Bayes, fitted exactly over row blocks.

    Scales: distributed. Each block returns per-class weighted means and centred sums
    of squares; they merge pairwise, so the result equals scikit-learn's ``GaussianNB``
    on the whole table (up to float rounding) however it is blocked.

    Parameters
    ----------
    var_smoothing : float
        Share of the largest feature variance added to every variance, for stability
        (scikit-learn's definition).
    priors : sequence of 2 floats, optional
        Class priors; default: the weighted class shares of the training data.
    """

    _rules = {"var_smoothing": Rule(float, low=0.0)}

    def __init__(self, *, var_smoothing: float = 1e-9, priors: Any = None) -> None:
        self.var_smoothing = var_smoothing
        self.priors = priors

    def _fit_table(self, table: Table, positive: Any, weights: Any, client: Any) -> None:
        if table.lazy:
            import dask

            blocks = table.data.to_delayed().ravel()
            parts = [dask.delayed(gaussian_stats)(b, p, w) for b, p, w in
                     zip(blocks, positive.to_delayed(), weights.to_delayed(), strict=True)]
            stats = reduce(merge_gaussian_stats, compute(parts, client))
        else:
            stats = gaussian_stats(_dense(table.data), np.asarray(positive), np.asarray(weights))
        if (stats.weight[:2] <= 0).any():
            raise DataError("one class has zero total weight: expected positive weight in both classes")
        overall_var = stats.m2[2] / stats.weight[2]
        self.epsilon_ = self.var_smoothing * float(overall_var.max())
        self.theta_ = stats.mean[:2]
        self.var_ = stats.m2[:2] / stats.weight[:2, None] + self.epsilon_
        if self.priors is not None:
            priors = np.asarray(self.priors, dtype=np.float64)
            if priors.shape != (2,) or (priors < 0).any() or not np.isclose(priors.sum(), 1.0):
                raise ParameterError(f"priors={self.priors!r} is invalid: expected two non-negative "
                                     "numbers summing to 1")
            self.class_prior_ = priors
        else:
            self.class_prior_ = stats.weight[:2] / stats.weight[:2].sum()
        self.class_count_ = stats.weight[:2]

    def _proba(self, X: np.ndarray) -> np.ndarray:
        from scipy.special import expit

        joint = gaussian_joint_log_likelihood(_dense(X), np.log(self.class_prior_), self.theta_, self.var_)
        return expit(joint[:, 1] - joint[:, 0])  # no overflow for far-apart log-likelihoods


def _dense(X: Any) -> np.ndarray:
    # Naive Bayes works feature by feature on dense rows; feature tables are narrow.
    return X.toarray() if hasattr(X, "toarray") else X

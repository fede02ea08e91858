"""Gaussian Naive Bayes: the estimator (``_naive_bayes``) and its per-block statistics
(``_naive_bayes_kernels``, NumPy only). Nothing is imported until a name is used."""

from __future__ import annotations

from typing import TYPE_CHECKING

from daskflow._lazy import attach

if TYPE_CHECKING:
    from daskflow.models.naive_bayes._naive_bayes import NaiveBayesClassifier

__getattr__, __dir__, __all__ = attach(__name__, {"_naive_bayes": ["NaiveBayesClassifier"]})

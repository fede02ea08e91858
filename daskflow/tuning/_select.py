"""Validation scores of one estimator on training data: what model choice may look at."""

from __future__ import annotations

from typing import Any

import numpy as np

from daskflow._errors import ParameterError
from daskflow.tuning._search import SCORERS, _search_blockwise, _search_in_memory

__all__ = ["cross_validate"]


def cross_validate(estimator: Any, X: Any, y: Any, *, folds: int = 3, holdout: float | None = None,
                   metric: str = "roc_auc", seed: int = 0, memory_budget: float = 1e9,
                   client: Any = None) -> np.ndarray:
    """Per-fold validation scores of ``estimator`` (stratified k-fold, or one holdout) on ``(X, y)``.

    Pass the training rows only: choosing a model by these scores then never looks at the
    test rows, which stay for the final report. Folds are drawn as
    :func:`daskflow.tuning.search` draws them, so with the same ``seed`` every candidate
    is validated on the same rows.

    Returns
    -------
    numpy.ndarray
        One score per fold (one for a holdout).
    """
    from daskflow.models._classifier_input import as_table, binary_labels

    if metric not in SCORERS:
        raise ParameterError(f"unknown validation metric {metric!r}: expected one of {', '.join(SCORERS)}")
    if holdout is None and (not isinstance(folds, int) or folds < 2):
        raise ParameterError(f"folds must be an integer >= 2, got {folds!r}")
    table = as_table(X)
    _, positive = binary_labels(y, table.data.shape[0])
    if not table.lazy or table.data.nbytes <= memory_budget:
        scores, _ = _search_in_memory(estimator, [{}], table, positive, None, folds, holdout, metric, seed,
                                      client)
    else:
        scores, _ = _search_blockwise(estimator, [{}], table, positive, None, folds, holdout, metric, client)
    return scores[0]

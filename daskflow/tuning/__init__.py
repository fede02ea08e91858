"""Hyperparameter search on the cluster, with results as an xarray Dataset.

Names are imported on first use (PEP 562), so validating a config does not import
scikit-learn or xarray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from daskflow._lazy import attach

if TYPE_CHECKING:
    from daskflow.tuning._search import SCORERS, SearchResult, parameter_trials, search, search_recommender
    from daskflow.tuning._select import cross_validate

__getattr__, __dir__, __all__ = attach(__name__, {
    "_search": ["SCORERS", "SearchResult", "parameter_trials", "search", "search_recommender"],
    "_select": ["cross_validate"],
})

"""Hyperparameter search on the cluster, with results as an xarray Dataset.

Names are imported on first use (PEP 562), so validating a config does not import
scikit-learn or xarray.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daskflow.tuning._search import SCORERS, SearchResult, parameter_trials, search, search_recommender
    from daskflow.tuning._select import cross_validate

__all__ = ["SCORERS", "SearchResult", "cross_validate", "parameter_trials", "search", "search_recommender"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        module = "_select" if name == "cross_validate" else "_search"
        return getattr(importlib.import_module(f"daskflow.tuning.{module}"), name)
    raise AttributeError(f"module 'daskflow.tuning' has no attribute {name!r}")

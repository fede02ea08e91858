"""Recommenders and classifiers, and the registry the experiment config names them by.

Estimators are imported on first use (PEP 562 ``__getattr__``), so validating a config
does not pay for importing scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daskflow.models._als import ImplicitALS
    from daskflow.models._base import RecommenderMixin
    from daskflow.models._popularity import PopularityRecommender

__all__ = ["ImplicitALS", "PopularityRecommender", "RecommenderMixin", "available_models",
           "make_model", "model_class"]

#: Config name -> "module:class" of the estimator.
_REGISTRY: dict[str, str] = {
    "popularity": "daskflow.models._popularity:PopularityRecommender",
    "als": "daskflow.models._als:ImplicitALS",
}
_LAZY = {"ImplicitALS": "daskflow.models._als",
         "PopularityRecommender": "daskflow.models._popularity",
         "RecommenderMixin": "daskflow.models._base"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'daskflow.models' has no attribute {name!r}")


def available_models() -> list[str]:
    """Names accepted by ``model.name`` in an experiment file."""
    return sorted(_REGISTRY)


def model_class(name: str) -> type:
    """The estimator class registered as ``name``."""
    from daskflow._errors import ConfigError

    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r} (model.name): available: "
                          f"{', '.join(available_models())}")
    module, _, attribute = _REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def make_model(name: str, params: dict[str, Any] | None = None) -> Any:
    """Instantiate a registered model; unknown names or parameters raise ``ConfigError``."""
    from daskflow._errors import ConfigError

    cls = model_class(name)
    params = dict(params or {})
    allowed = cls().get_params(deep=False)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {', '.join(unknown)} for model {name!r} "
                          f"(model.params): allowed: {', '.join(sorted(allowed)) or 'none'}")
    return cls(**params)

"""Recommenders and classifiers, and the registry the experiment config names them by."""

from __future__ import annotations

from typing import Any

from daskflow.models._base import RecommenderMixin
from daskflow.models._popularity import PopularityRecommender

__all__ = ["PopularityRecommender", "RecommenderMixin", "available_models", "make_model"]

#: Config name -> estimator class.
_REGISTRY: dict[str, type] = {
    "popularity": PopularityRecommender,
}


def available_models() -> list[str]:
    """Names accepted by ``model.name`` in an experiment file."""
    return sorted(_REGISTRY)


def make_model(name: str, params: dict[str, Any] | None = None) -> Any:
    """Instantiate a registered model; unknown names or parameters raise ``ConfigError``."""
    from daskflow._errors import ConfigError

    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r} (model.name): available: "
                          f"{', '.join(available_models())}")
    cls = _REGISTRY[name]
    params = dict(params or {})
    allowed = cls().get_params(deep=False)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {', '.join(unknown)} for model {name!r} "
                          f"(model.params): allowed: {', '.join(sorted(allowed)) or 'none'}")
    return cls(**params)

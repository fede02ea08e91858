"""Recommenders and classifiers, and the registry the experiment config names them by.

The registry knows two kinds of model: ``"recommender"`` (fitted on an interaction
matrix; ``model.name`` in the config) and ``"classifier"`` (fitted on a feature table;
``classify.models`` in the config).

Estimators are imported on first use (PEP 562 ``__getattr__``), so validating a config
does not pay for importing scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from daskflow._lazy import attach

if TYPE_CHECKING:
    from daskflow.models._base import RecommenderMixin
    from daskflow.models._popularity import PopularityRecommender
    from daskflow.models.als import ImplicitALS
    from daskflow.models.content import ContentEncoder, ContentToFactors, ItemContent
    from daskflow.models.linear import LinearSVM, LogisticRegression
    from daskflow.models.naive_bayes import NaiveBayesClassifier
    from daskflow.models.trees import BoostedTreesClassifier, DecisionTreeClassifier, RandomForestClassifier

__getattr__, __dir__, _LAZY_NAMES = attach(__name__, {
    "_base": ["RecommenderMixin"],
    "_popularity": ["PopularityRecommender"],
    "als": ["ImplicitALS"],
    "content": ["ContentEncoder", "ContentToFactors", "ItemContent"],
    "linear": ["LinearSVM", "LogisticRegression"],
    "naive_bayes": ["NaiveBayesClassifier"],
    "trees": ["BoostedTreesClassifier", "DecisionTreeClassifier", "RandomForestClassifier"],
})
__all__ = [*_LAZY_NAMES, "available_models", "check_model_params", "make_model", "model_class"]

#: Config name -> (kind, "module:class" of the estimator).
_REGISTRY: dict[str, tuple[str, str]] = {
    "popularity": ("recommender", "daskflow.models._popularity:PopularityRecommender"),
    "als": ("recommender", "daskflow.models.als._implicit_als:ImplicitALS"),
    "logistic_regression": ("classifier", "daskflow.models.linear._linear_classifiers:LogisticRegression"),
    "linear_svm": ("classifier", "daskflow.models.linear._linear_classifiers:LinearSVM"),
    "naive_bayes": ("classifier", "daskflow.models.naive_bayes._naive_bayes:NaiveBayesClassifier"),
    "decision_tree": ("classifier", "daskflow.models.trees._tree_classifiers:DecisionTreeClassifier"),
    "random_forest": ("classifier", "daskflow.models.trees._tree_classifiers:RandomForestClassifier"),
    "boosted_trees": ("classifier", "daskflow.models.trees._tree_classifiers:BoostedTreesClassifier"),
}


def available_models(kind: str | None = None) -> list[str]:
    """Registered model names, all or only one kind (``"recommender"`` or ``"classifier"``)."""
    return sorted(name for name, (k, _) in _REGISTRY.items() if kind is None or k == kind)


def model_class(name: str, *, where: str = "model.name") -> type:
    """The estimator class registered as ``name`` (``where`` names the config key in errors)."""
    from daskflow._errors import ConfigError

    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r} ({where}): available: "
                          f"{', '.join(available_models())}")
    module, _, attribute = _REGISTRY[name][1].partition(":")
    return getattr(importlib.import_module(module), attribute)


def make_model(name: str, params: dict[str, Any] | None = None, *, where: str = "model") -> Any:
    """Instantiate a registered model; unknown names or parameters raise ``ConfigError``.

    ``where`` is the config section the name and parameters come from, for the message.
    """
    from daskflow._errors import ConfigError

    cls = model_class(name, where=f"{where}.name" if where == "model" else where)
    params = dict(params or {})
    allowed = cls().get_params(deep=False)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {', '.join(unknown)} for model {name!r} "
                          f"({where}.params): allowed: {', '.join(sorted(allowed)) or 'none'}")
    return cls(**params)


def check_model_params(model: Any, *, where: str = "model") -> None:
    """Check a model's hyperparameters now rather than in ``fit``, naming the config section.

    Estimators check their parameters when fitted (the scikit-learn contract); an
    experiment checks them all before any data is read, so a typo costs seconds.
    """
    from daskflow._errors import ParameterError
    from daskflow.models._params import check_params

    try:
        check_params(model, getattr(model, "_rules", {}))
        if hasattr(model, "_check_more_params"):
            model._check_more_params()
    except ParameterError as exc:
        raise ParameterError(f"{exc} ({where}.params)") from exc

"""Tree classifiers: a decision tree on a sample, a forest of block-local trees, LightGBM's
boosted trees (``_tree_classifiers``). Nothing is imported until a name is used."""

from __future__ import annotations

from typing import TYPE_CHECKING

from daskflow._lazy import attach

if TYPE_CHECKING:
    from daskflow.models.trees._tree_classifiers import (
        BoostedTreesClassifier,
        DecisionTreeClassifier,
        RandomForestClassifier,
    )

__getattr__, __dir__, __all__ = attach(__name__, {
    "_tree_classifiers": ["BoostedTreesClassifier", "DecisionTreeClassifier", "RandomForestClassifier"],
})

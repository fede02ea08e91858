"""Features built out of core from event logs: the interaction matrix and log KPIs.

Names are imported on first use (PEP 562): a worker unpickling a ``Block`` imports NumPy
and SciPy, not dask.dataframe.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daskflow.features._block import Block
    from daskflow.features._conversion import (
        ConversionEncoder,
        build_conversion_features,
        load_features,
        save_features,
        split_users,
    )
    from daskflow.features._interactions import (
        InteractionMatrix,
        block_bounds,
        build_interactions,
        leave_k_out_split,
    )
    from daskflow.features._kpis import log_kpis
    from daskflow.features._store import StoredInteractionMatrix, load_interactions, save_interactions

__all__ = ["Block", "ConversionEncoder", "InteractionMatrix", "block_bounds", "build_conversion_features",
           "build_interactions", "leave_k_out_split", "load_features", "load_interactions", "log_kpis",
           "save_features", "save_interactions", "split_users", "StoredInteractionMatrix"]

_MODULES = {"Block": "_block", "InteractionMatrix": "_interactions", "block_bounds": "_interactions",
            "build_interactions": "_interactions", "leave_k_out_split": "_interactions",
            "log_kpis": "_kpis", "load_interactions": "_store", "save_interactions": "_store",
            "StoredInteractionMatrix": "_store",
            "ConversionEncoder": "_conversion", "build_conversion_features": "_conversion",
            "load_features": "_conversion", "save_features": "_conversion", "split_users": "_conversion"}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(importlib.import_module(f"daskflow.features.{_MODULES[name]}"), name)
    raise AttributeError(f"module 'daskflow.features' has no attribute {name!r}")

"""Features built out of core from event logs: the interaction matrix and log KPIs.

Names are imported on first use (PEP 562): a worker unpickling a ``Block`` imports NumPy
and SciPy, not dask.dataframe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from daskflow._lazy import attach

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
        without_entries,
    )
    from daskflow.features._kpis import log_kpis
    from daskflow.features._store import StoredInteractionMatrix, load_interactions, save_interactions

__getattr__, __dir__, __all__ = attach(__name__, {
    "_block": ["Block"],
    "_interactions": ["InteractionMatrix", "block_bounds", "build_interactions", "leave_k_out_split",
                      "without_entries"],
    "_kpis": ["log_kpis"],
    "_store": ["StoredInteractionMatrix", "load_interactions", "save_interactions"],
    "_conversion": ["ConversionEncoder", "build_conversion_features", "load_features", "save_features",
                    "split_users"],
})

"""Features built out of core from event logs: the interaction matrix (``interactions/``),
the entity table of the classifiers (``tabular/``) and log KPIs.

Names are imported on first use (PEP 562): a worker unpickling a ``Block`` imports NumPy
and SciPy, not dask.dataframe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from daskflow._lazy import attach

if TYPE_CHECKING:
    from daskflow.features.interactions import (
        Block,
        InteractionMatrix,
        StoredInteractionMatrix,
        block_bounds,
        build_interactions,
        leave_k_out_split,
        load_interactions,
        save_interactions,
        without_entries,
    )

__getattr__, __dir__, __all__ = attach(__name__, {
    "interactions": ["Block", "InteractionMatrix", "StoredInteractionMatrix", "block_bounds",
                     "build_interactions", "leave_k_out_split", "load_interactions", "save_interactions",
                     "without_entries"],
})

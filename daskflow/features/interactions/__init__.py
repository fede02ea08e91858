"""The interaction matrix the recommenders fit on: built out of core, split, saved, loaded.

``_matrix`` builds the blocked ``InteractionMatrix`` from an event log and splits it;
``_interaction_kernels`` is the per-block work it maps (factorise, cut, assemble,
transpose; NumPy, SciPy and Arrow, no Dask); ``_block`` holds the ``Block`` dataclass (NumPy
and SciPy only, so a worker unpickling one stays light); ``_block_files`` reads and writes
one block's ``.npz`` file; ``_stored_matrix`` saves a matrix and loads it back block by block.
Names are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from daskflow._lazy import attach

if TYPE_CHECKING:
    from daskflow.features.interactions._block import Block
    from daskflow.features.interactions._matrix import (
        InteractionMatrix,
        block_bounds,
        build_interactions,
        leave_k_out_split,
        without_entries,
    )
    from daskflow.features.interactions._stored_matrix import (
        StoredInteractionMatrix,
        load_interactions,
        save_interactions,
    )

__getattr__, __dir__, __all__ = attach(__name__, {
    "_block": ["Block"],
    "_matrix": ["InteractionMatrix", "block_bounds", "build_interactions", "leave_k_out_split",
                "without_entries"],
    "_stored_matrix": ["StoredInteractionMatrix", "load_interactions", "save_interactions"],
})

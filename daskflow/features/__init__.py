"""Features built out of core from event logs: the interaction matrix (more to come)."""

from daskflow.features._blocks import Block
from daskflow.features._interactions import (
    InteractionMatrix,
    block_bounds,
    build_interactions,
    leave_k_out_split,
)
from daskflow.features._kpis import log_kpis

__all__ = ["Block", "InteractionMatrix", "block_bounds", "build_interactions", "leave_k_out_split",
           "log_kpis"]

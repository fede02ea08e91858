"""Features for classifiers: the entity table (one row per entity, its label and split) and aggregates.

The other family of :mod:`daskflow.features`, the interaction matrix, serves the
recommenders. Per-entity aggregates of event logs as of a cutoff (:func:`build_aggregates`)
join the entity table by id. Per-partition code is in ``_table_kernels`` and
``_aggregate_kernels`` (no Dask import).
"""

from __future__ import annotations

from daskflow.features.tabular._aggregates import (
    Aggregates,
    AggregateSpec,
    Anchor,
    EventLabel,
    build_aggregates,
    check_aggregate_columns,
)
from daskflow.features.tabular._derived import add_derived, check_derived, parse_derived
from daskflow.features.tabular._encoder import TableEncoder
from daskflow.features.tabular._table import (
    EntityTable,
    TableSplit,
    build_entity_table,
    check_table_columns,
    infer_feature_roles,
)

__all__ = ["AggregateSpec", "Aggregates", "EventLabel", "build_aggregates", "check_aggregate_columns",
           "EntityTable", "TableEncoder", "TableSplit", "build_entity_table", "check_table_columns",
           "infer_feature_roles", "add_derived", "check_derived", "parse_derived"]

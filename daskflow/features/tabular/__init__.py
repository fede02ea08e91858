"""Features for classifiers: the entity table (one row per entity, its label and split).

The other family of :mod:`daskflow.features`, the interaction matrix, serves the
recommenders. Per-partition code is in ``_table_kernels`` (no Dask import).
"""

from __future__ import annotations

from daskflow.features.tabular._encoder import TableEncoder
from daskflow.features.tabular._table import (
    EntityTable,
    TableSplit,
    build_entity_table,
    check_table_columns,
    infer_feature_roles,
)

__all__ = ["EntityTable", "TableEncoder", "TableSplit", "build_entity_table", "check_table_columns",
           "infer_feature_roles"]

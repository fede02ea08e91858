"""Reading and writing tables on any fsspec store.

Readers check the declared schema of every file before reading data; writers publish
atomically (temporary location, then move). Names are imported on first use (PEP 562), so
a worker that only needs the filesystem helpers does not import dask.dataframe.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daskflow.io._fs import (
        SUCCESS_MARKER,
        OutputClaimed,
        PendingOutput,
        Publication,
        atomic_output,
        open_filesystem,
    )
    from daskflow.io._read import COLUMN_TYPES, TableInfo, check_schema, inspect_table, read_table
    from daskflow.io._write import write_parquet

__all__ = [
    "COLUMN_TYPES",
    "SUCCESS_MARKER",
    "OutputClaimed",
    "PendingOutput",
    "Publication",
    "TableInfo",
    "atomic_output",
    "check_schema",
    "inspect_table",
    "open_filesystem",
    "read_table",
    "write_parquet",
]

_MODULES = {
    "SUCCESS_MARKER": "_fs", "OutputClaimed": "_fs", "PendingOutput": "_fs", "Publication": "_fs",
    "atomic_output": "_fs", "open_filesystem": "_fs",
    "COLUMN_TYPES": "_read", "TableInfo": "_read", "check_schema": "_read", "inspect_table": "_read",
    "read_table": "_read", "write_parquet": "_write",
}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(importlib.import_module(f"daskflow.io.{_MODULES[name]}"), name)
    raise AttributeError(f"module 'daskflow.io' has no attribute {name!r}")

"""Reading and writing tables on any fsspec store.

Readers check the declared schema of every file before reading data; writers publish
atomically (temporary location, then move). Names are imported on first use (PEP 562), so
a worker that only needs the filesystem helpers does not import dask.dataframe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from daskflow._lazy import attach

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

__getattr__, __dir__, __all__ = attach(__name__, {
    "_fs": ["SUCCESS_MARKER", "OutputClaimed", "PendingOutput", "Publication", "atomic_output",
            "open_filesystem"],
    "_read": ["COLUMN_TYPES", "TableInfo", "check_schema", "inspect_table", "read_table"],
    "_write": ["write_parquet"],
})

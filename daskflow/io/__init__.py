"""Reading and writing tables on any fsspec store.

Readers check the declared schema of every file before reading data; writers publish
atomically (temporary location, then move).
"""

from daskflow.io._fs import SUCCESS_MARKER, atomic_output, open_filesystem
from daskflow.io._read import COLUMN_TYPES, TableInfo, check_schema, inspect_table, read_table
from daskflow.io._write import write_parquet

__all__ = [
    "COLUMN_TYPES",
    "SUCCESS_MARKER",
    "TableInfo",
    "atomic_output",
    "check_schema",
    "inspect_table",
    "open_filesystem",
    "read_table",
    "write_parquet",
]

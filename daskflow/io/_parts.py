"""Arrow-level reads of a Parquet table exactly as :func:`read_table` returned it.

``read_table`` gives a Dask DataFrame of pandas partitions, the right thing for almost
every consumer. One consumer does better with Arrow: ``build_interactions`` wants integer
codes for its ID columns, and Parquet writers store string columns dictionary-encoded, so
reading them as Arrow dictionaries gives the codes without hashing every row
(hashing the IDs was a third of the ingest's CPU). :func:`parquet_parts` recognises a
frame that ``read_table`` returned, untouched, and describes the same rows as groups of
files to read with Arrow; for anything else it returns ``None`` and the consumer reads the
frame as usual. No Dask import here: the readers run inside tasks.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from daskflow._errors import DataError
from daskflow.io._fs import _is_local, open_filesystem
from daskflow.io._listing import READ_ERRORS, list_data_files, open_dataset

__all__ = ["ParquetRead", "ParquetPartReader", "ParquetParts", "remember_read", "parquet_parts",
           "recent_read"]

#: Filter operators whose meaning is the same in ``pq.filters_to_expression`` and in
#: ``dd.read_parquet``. For ``!=`` and ``not in`` dask keeps rows whose value is null
#: (dask/dask#9845) where Arrow drops them, so such reads keep the pandas path.
_SAME_MEANING_OPS = frozenset({"=", "==", "<", ">", "<=", ">=", "in"})

#: How many recent reads are remembered (a few bytes each; the oldest is forgotten).
_REMEMBERED = 64


@dataclass(frozen=True)
class ParquetRead:
    """How :func:`read_table` made a Parquet frame: enough to read the same rows again."""

    uri: str
    storage_options: Mapping[str, Any]
    files: tuple[str, ...]
    schema: pa.Schema  # data columns and hive partition columns
    partition_columns: tuple[str, ...]
    columns: tuple[str, ...]
    filters: Any  # DNF filters as read_table gave them to dask, or None
    base_dir: str = ""  # the directory hive keys are read under
    label: str = ""  # the table, for messages


_recent_reads: OrderedDict[str, ParquetRead] = OrderedDict()


def remember_read(token: str, read: ParquetRead) -> None:
    """Record that the frame whose dask token is ``token`` is the Parquet read ``read``."""
    _recent_reads[token] = read
    _recent_reads.move_to_end(token)
    while len(_recent_reads) > _REMEMBERED:
        _recent_reads.popitem(last=False)


def recent_read(token: str) -> ParquetRead | None:
    """The Parquet read whose frame has dask token ``token``, if it is remembered."""
    return _recent_reads.get(token)


@dataclass(frozen=True)
class ParquetPartReader:
    """Reads one group of files of a Parquet table as one Arrow table (picklable, for tasks)."""

    fs: Any                     # fsspec filesystem
    schema: pa.Schema           # of the dataset, dictionary columns included
    dictionary_columns: tuple[str, ...]
    columns: tuple[str, ...]
    filter: pads.Expression | None
    label: str = ""

    def __call__(self, group: Sequence[tuple[str, pads.Expression]]) -> pa.Table:
        if not group:
            return self.schema.empty_table().select(list(self.columns))
        try:
            return self._read(group)
        except READ_ERRORS as exc:
            # A data page that does not decode surfaces here, on a worker, in a group of
            # files: name the file (reading them one by one, on this error path only).
            for item in group:
                try:
                    self._read([item])
                except READ_ERRORS as file_exc:
                    raise DataError(f"file {item[0]} of {self.label or 'the table'} cannot be read "
                                    f"({file_exc}): its footer is fine but its data is not; replace or "
                                    "remove the file") from exc
            raise

    def _read(self, group: Sequence[tuple[str, pads.Expression]]) -> pa.Table:
        dataset = pads.FileSystemDataset.from_paths(
            [path for path, _ in group], schema=self.schema, format=_parquet_format(self.dictionary_columns),
            filesystem=_arrow_filesystem(self.fs), partitions=[expression for _, expression in group])
        # One thread, as dd.read_parquet reads: tasks are the unit of parallelism, and
        # Arrow's pool would compete with the other workers for the same cores.
        return dataset.to_table(columns=list(self.columns), filter=self.filter, use_threads=False)


@dataclass(frozen=True)
class ParquetParts:
    """The rows of a ``read_table`` frame as groups of files, in the frame's row order."""

    reader: ParquetPartReader
    groups: tuple[tuple[tuple[str, pads.Expression], ...], ...]  # (path, hive keys) per file


def parquet_parts(frame: Any, token: str, columns: Sequence[str], *,
                  dictionary_columns: Sequence[str] = (), rows_per_part: int = 2_000_000
                  ) -> ParquetParts | None:
    """Groups of files holding the rows of ``frame``, or ``None`` if Arrow cannot read them alike.

    ``token`` is ``dask.base.tokenize(frame)``. Only a frame that :func:`read_table` returned
    unchanged, from Parquet, qualifies; ``columns`` must be data columns (not hive
    partition columns) of it, and no file may hold more than ``rows_per_part`` rows. Files
    are grouped in order, about ``rows_per_part`` rows per group (by the footers' row
    counts). String columns named in ``dictionary_columns`` are
    read as Arrow dictionaries.
    """
    read = _recent_reads.get(token)
    if read is None or not set(columns) <= set(read.columns) \
            or set(columns) & set(read.partition_columns) or not _same_meaning(read.filters):
        return None
    fs, path = open_filesystem(read.uri, read.storage_options)
    strings = [c for c in dictionary_columns if c in read.schema.names
               and (pa.types.is_string(read.schema.field(c).type)
                    or pa.types.is_large_string(read.schema.field(c).type))]
    # The same listing read_table made; if the table changed since, leave it to dask.
    if tuple(list_data_files(fs, path.rstrip("/") or path, label=read.label, warn=False)) != read.files:
        return None
    dataset = open_dataset(fs, read.files, read.base_dir, "parquet",
                           read_options=pads.ParquetReadOptions(dictionary_columns=strings))
    expression = pq.filters_to_expression(list(read.filters)) if read.filters else None
    # Hive keys prune whole files first, as dask does; the rows are filtered when read.
    fragments = list(dataset.get_fragments(filter=expression))
    groups: list[tuple[tuple[str, pads.Expression], ...]] = []
    group: list[tuple[str, pads.Expression]] = []
    rows = 0
    for fragment in fragments:
        if fragment.metadata.num_rows > rows_per_part:
            # A part is whole files: a bigger file would be read in one piece, where dask
            # splits it by row group and keeps the workers' memory bounded.
            return None
        group.append((fragment.path, fragment.partition_expression))
        rows += fragment.metadata.num_rows
        if rows >= rows_per_part:
            groups.append(tuple(group))
            group, rows = [], 0
    if group or not groups:
        groups.append(tuple(group))  # at least one (possibly empty) group
    reader = ParquetPartReader(fs, dataset.schema, tuple(strings), tuple(columns), expression, read.label)
    return ParquetParts(reader, tuple(groups))


def _same_meaning(filters: Any) -> bool:
    if not filters:
        return True
    flat = filters if all(isinstance(f, tuple) for f in filters) else [f for g in filters for f in g]
    return all(op in _SAME_MEANING_OPS and not _is_null(value) for _, op, value in flat)


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _parquet_format(dictionary_columns: Sequence[str]) -> pads.ParquetFileFormat:
    return pads.ParquetFileFormat(read_options=pads.ParquetReadOptions(
        dictionary_columns=list(dictionary_columns)))


def _arrow_filesystem(fs: Any) -> pafs.FileSystem:
    # Arrow's own local filesystem reads without a round trip through Python.
    return pafs.LocalFileSystem() if _is_local(fs) else pafs.PyFileSystem(pafs.FSSpecHandler(fs))

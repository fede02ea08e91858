"""One reader for Parquet and ORC tables on any fsspec store, with declared schemas.

Parquet goes through ``dd.read_parquet``. ORC goes through ``pyarrow.dataset`` and
``dd.from_map`` (one partition per file) because ``dd.read_orc`` drops hive partition
columns and takes no filters. Both paths check the declared schema against every file's
footer before any data is read, so a bad file is named in the error instead of failing
deep inside a task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask.dataframe as dd
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from dask.base import tokenize

from daskflow._errors import DataError, SchemaError
from daskflow.io._filters import filters_as_tuples
from daskflow.io._fs import _is_local, open_filesystem, with_retries
from daskflow.io._parts import ParquetRead, remember_read

__all__ = ["read_table", "check_schema", "COLUMN_TYPES", "TableInfo", "inspect_table"]

#: Logical column types a schema may declare, with the Arrow types each accepts.
COLUMN_TYPES: dict[str, Any] = {
    "string": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)
    or pa.types.is_string_view(t)
    or (pa.types.is_dictionary(t) and pa.types.is_string(t.value_type)),
    "integer": pa.types.is_integer,
    "int32": lambda t: t == pa.int32(),
    "int64": lambda t: t == pa.int64(),
    "float": pa.types.is_floating,
    "float32": lambda t: t == pa.float32(),
    "float64": lambda t: t == pa.float64(),
    "number": lambda t: pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t),
    "boolean": pa.types.is_boolean,
    "timestamp": pa.types.is_timestamp,
    "date": pa.types.is_date,
    "category": pa.types.is_dictionary,
}

_FORMATS = ("parquet", "orc")


@dataclass(frozen=True)
class TableInfo:
    """What the footers of a table's files say, before any data is read."""

    files: tuple[str, ...]
    schema: pa.Schema  # data columns and hive partition columns
    partition_columns: tuple[str, ...]


def read_table(uri: str, *, format: str = "parquet", columns: Sequence[str] | None = None,
               filters: list[Any] | None = None, storage_options: Mapping[str, Any] | None = None,
               schema: Mapping[str, str] | None = None, name: str | None = None) -> dd.DataFrame:
    """Read a (hive-partitioned) Parquet or ORC table lazily as a Dask DataFrame.

    Parameters
    ----------
    uri
        Local path or fsspec URL of a file or directory (``file://``, ``memory://``,
        ``s3://``, ``gcs://``, ``abfs://``).
    format
        ``"parquet"`` or ``"orc"``.
    columns
        Columns to read; hive partition columns may be named too. Default: all.
    filters
        DNF filters as dask takes them, e.g. ``[("date", ">=", "2026-01-01")]``; applied
        to partitions and rows alike.
    storage_options
        Passed to fsspec (credentials, ``endpoint_url``...).
    schema
        Declared ``{column: logical type}`` (see :data:`COLUMN_TYPES`); every file is
        checked against it.
    name
        Name of the source, used in error messages.

    Raises
    ------
    DataError
        Missing path, no data files, an unreadable file, or an empty result of filters.
    SchemaError
        A declared or requested column is missing, or has the wrong type.

    Examples
    --------
    >>> listens = read_table("data/sample/listens", columns=["user_id", "track_id"],
    ...                      filters=[("date", ">=", "2026-01-10")])  # doctest: +SKIP
    """
    if format not in _FORMATS:
        raise DataError(f"unknown format {format!r} for {_label(uri, name)}: expected one of "
                        f"{', '.join(_FORMATS)}")
    info = inspect_table(uri, format=format, storage_options=storage_options, name=name)
    check_schema(info, schema or {}, name=name, uri=uri)
    if columns is not None:
        missing = [c for c in columns if c not in info.schema.names]
        if missing:
            raise SchemaError(f"requested column(s) {', '.join(map(repr, missing))} not found in "
                              f"{_label(uri, name)}: available: {', '.join(info.schema.names)}")
    filters = filters_as_tuples(filters)
    if filters:
        _check_filter_columns(filters, info, uri, name)
    if format == "parquet":
        try:
            frame = dd.read_parquet(uri, columns=list(columns) if columns is not None else None,
                                    filters=filters or None, storage_options=dict(storage_options or {}))
        except (OSError, pa.ArrowException, ValueError) as exc:
            raise DataError(f"cannot read Parquet table {_label(uri, name)}: {exc}") from exc
        # So that build_interactions can read the same rows with Arrow (daskflow.io._parts).
        remember_read(tokenize(frame), ParquetRead(
            uri, dict(storage_options or {}), info.files, info.schema, info.partition_columns,
            tuple(columns) if columns is not None else tuple(frame.columns), filters or None))
        return frame
    return _read_orc(uri, info, columns, filters, storage_options)


def _first_unreadable_file(fs: Any, path: str, format: str) -> str | None:
    """The first data file under ``path`` whose footer cannot be read, if any."""
    try:
        files = sorted(f for f in fs.find(path) if not f.rsplit("/", 1)[-1].startswith(("_", ".")))
    except OSError:
        return None
    for file in files:
        try:
            pads.dataset(file, format=format, filesystem=fs).schema  # noqa: B018 - reads the footer
        except (pa.ArrowException, OSError):
            return file
    return None


def inspect_table(uri: str, *, format: str = "parquet",
                  storage_options: Mapping[str, Any] | None = None,
                  name: str | None = None) -> TableInfo:
    """List a table's files and unify their schemas, naming any file that disagrees."""
    fs, path = open_filesystem(uri, storage_options)
    label = _label(uri, name)
    try:
        exists = fs.exists(path) if _is_local(fs) else with_retries(lambda: fs.exists(path),
                                                                    what=f"reaching {label}")
    except Exception as exc:  # network stores raise their own types
        raise DataError(f"cannot reach {label} (3 attempts): {exc}. Check the URL and storage_options "
                        "(endpoint, credentials)") from exc
    if not exists:
        raise DataError(f"no data at {label}: the path does not exist. Check the uri, or generate "
                        "a sample lake with: daskflow generate DIR")
    try:
        dataset = pads.dataset(path, format=format, partitioning="hive", filesystem=fs)
    except (pa.ArrowException, OSError) as exc:
        # Arrow infers the schema from the first file; name the file it could not read.
        bad = _first_unreadable_file(fs, path, format)
        if bad is not None:
            raise DataError(f"file {bad} of {label} is not a readable {format} file ({exc}): replace or "
                            "remove it") from exc
        raise DataError(f"cannot open {label} as a {format} table: {exc}") from exc
    files = tuple(dataset.files)
    if not files:
        raise DataError(f"no {format} files in {label}: the directory is empty. Point the uri at a "
                        f"directory of .{format} files")
    # Partition columns are the keys found in the fragments' key=value directories
    # (``dataset.partitioning`` also reports data columns for some formats).
    partition_keys: dict[str, None] = {}
    for fragment in dataset.get_fragments():
        partition_keys.update(dict.fromkeys(pads.get_partition_keys(fragment.partition_expression)))
    partition_schema = pa.schema([dataset.schema.field(k) for k in partition_keys])
    reference: pa.Schema | None = None
    reference_file = ""
    for fragment in dataset.get_fragments():
        try:
            physical = fragment.physical_schema
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"file {fragment.path} of {label} is not a readable {format} file "
                            f"({exc}): replace or remove it") from exc
        if reference is None:
            reference, reference_file = physical, fragment.path
            continue
        for field in physical:
            known = reference.field(field.name) if field.name in reference.names else None
            if known is not None and not _compatible(known.type, field.type):
                raise SchemaError(
                    f"schema drift in {label}: column {field.name!r} is {field.type} in "
                    f"{fragment.path} but {known.type} in {reference_file}: rewrite the odd "
                    "partition with the table's type")
    assert reference is not None
    names = set(reference.names)
    merged = pa.schema(list(reference) + [f for f in partition_schema if f.name not in names])
    return TableInfo(files=files, schema=merged, partition_columns=tuple(partition_schema.names))


def check_schema(info: TableInfo, schema: Mapping[str, str], *, name: str | None = None,
                 uri: str = "") -> None:
    """Raise :class:`SchemaError` if a declared column is missing or has the wrong type."""
    label = _label(uri, name)
    for column, logical in schema.items():
        if logical not in COLUMN_TYPES:
            raise SchemaError(f"unknown column type {logical!r} declared for {column!r} of {label}: "
                              f"expected one of {', '.join(COLUMN_TYPES)}")
        if column not in info.schema.names:
            raise SchemaError(f"required column {column!r} is missing from {label} "
                              f"(first file {info.files[0]}): expected a {logical} column; found "
                              f"columns {', '.join(info.schema.names)}. Fix the data or the "
                              "source's schema")
        found = info.schema.field(column).type
        if not COLUMN_TYPES[logical](found):
            partition = column in info.partition_columns
            raise SchemaError(f"column {column!r} of {label} has type {found}"
                              f"{' (hive partition)' if partition else ''}, expected {logical} "
                              f"(first file {info.files[0]}). Fix the data or the source's schema")


def _compatible(a: pa.DataType, b: pa.DataType) -> bool:
    if a == b:
        return True
    strings = COLUMN_TYPES["string"]
    # Writers legitimately vary string encodings and integer/float widths between files.
    return ((strings(a) and strings(b))
            or (pa.types.is_integer(a) and pa.types.is_integer(b))
            or (pa.types.is_floating(a) and pa.types.is_floating(b))
            or (pa.types.is_timestamp(a) and pa.types.is_timestamp(b)))


def _label(uri: str, name: str | None) -> str:
    return f"source {name!r} at {uri}" if name else repr(uri)


def _filter_columns(filters: list[Any]) -> set[str]:
    flat = filters if all(isinstance(f, tuple) for f in filters) else [f for g in filters for f in g]
    return {f[0] for f in flat}


def _check_filter_columns(filters: list[Any], info: TableInfo, uri: str, name: str | None) -> None:
    unknown = sorted(_filter_columns(filters) - set(info.schema.names))
    if unknown:
        raise SchemaError(f"filter on unknown column(s) {', '.join(map(repr, unknown))} of "
                          f"{_label(uri, name)}: available: {', '.join(info.schema.names)}")


# -- ORC --------------------------------------------------------------------------------


def _read_orc(uri: str, info: TableInfo, columns: Sequence[str] | None, filters: list[Any] | None,
              storage_options: Mapping[str, Any] | None) -> dd.DataFrame:
    fs, path = open_filesystem(uri, storage_options)
    dataset = pads.dataset(path, format="orc", partitioning="hive", filesystem=fs)
    expression = pq.filters_to_expression(filters) if filters else None
    # Partition pruning first: only fragments whose hive keys can match are read.
    fragments = list(dataset.get_fragments(filter=expression))
    wanted = list(columns) if columns is not None else list(info.schema.names)
    filter_columns = _filter_columns(filters) if filters else set()
    partition_values = {c: sorted({str(pads.get_partition_keys(f.partition_expression).get(c))
                                   for f in dataset.get_fragments()})
                        for c in info.partition_columns}
    meta = _orc_meta(info, wanted, partition_values)
    if not fragments:
        return dd.from_pandas(meta, npartitions=1)
    parts = [(f.path, pads.get_partition_keys(f.partition_expression)) for f in fragments]
    return dd.from_map(
        _ReadOrcPart(fs, wanted, sorted(filter_columns | set(wanted)), info.partition_columns,
                     {c: info.schema.field(c).type for c in info.partition_columns},
                     expression, partition_values),
        parts, meta=meta, label="read-orc", enforce_metadata=False)


def _orc_meta(info: TableInfo, wanted: Sequence[str],
              partition_values: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    data_schema = pa.schema([info.schema.field(c) for c in wanted if c not in info.partition_columns])
    meta = data_schema.empty_table().to_pandas(types_mapper=_types_mapper)
    for column in wanted:
        if column in info.partition_columns:
            meta[column] = pd.Categorical([], categories=partition_values[column])
    return meta[list(wanted)]


def _types_mapper(arrow_type: pa.DataType) -> Any:
    # Match dd.read_parquet: Arrow strings become pandas' string dtype.
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype("pyarrow")
    return None


class _ReadOrcPart:
    """Reads one ORC file, restores its hive partition columns and applies the filters."""

    def __init__(self, fs: Any, columns: list[str], read_columns: list[str],
                 partition_columns: Sequence[str], partition_types: Mapping[str, pa.DataType],
                 expression: Any,
                 partition_values: Mapping[str, Sequence[str]]) -> None:
        self.fs = fs
        self.columns = columns
        self.read_columns = read_columns
        self.partition_columns = tuple(partition_columns)
        self.partition_types = dict(partition_types)
        self.expression = expression
        self.partition_values = dict(partition_values)

    def __call__(self, part: tuple[str, Mapping[str, Any]]) -> pd.DataFrame:
        import pyarrow.orc as orc

        path, keys = part
        data_columns = [c for c in self.read_columns if c not in self.partition_columns]
        with self.fs.open(path, "rb") as handle:
            table = orc.ORCFile(handle).read(columns=data_columns)
        for column, arrow_type in self.partition_types.items():
            if column in self.read_columns:
                values = pa.array([keys.get(column)] * table.num_rows, arrow_type)
                table = table.append_column(column, values)
        if self.expression is not None:
            table = table.filter(self.expression)
        frame = table.select(self.columns).to_pandas(types_mapper=_types_mapper)
        for column in self.partition_columns:
            if column in self.columns:
                frame[column] = pd.Categorical(frame[column], categories=self.partition_values[column])
        return frame

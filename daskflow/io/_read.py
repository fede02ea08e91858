"""One reader for Parquet and ORC tables on any fsspec store, with declared schemas.

Parquet goes through ``dd.read_parquet``. ORC goes through ``pyarrow.dataset`` and
``dd.from_map`` (one partition per file) because ``dd.read_orc`` drops hive partition
columns and takes no filters. Both paths check the declared schema against every file's
footer before any data is read, so a bad file is named in the error instead of failing
deep inside a task. Every path reads the files :func:`~daskflow.io._listing.list_data_files`
lists (links followed once), and hive partition values are checked against their type
(``date=`` holds dates unless the schema says otherwise) before filters compare them.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.dataframe as dd
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from dask.base import tokenize

from daskflow._dask import compute
from daskflow._errors import DaskflowError, DataError, ParameterError, SchemaError
from daskflow.io._filters import filters_as_tuples
from daskflow.io._fs import _is_local, open_filesystem, own_options, with_retries
from daskflow.io._listing import READ_ERRORS, list_data_files, open_dataset
from daskflow.io._parts import ParquetRead, recent_read, remember_read

__all__ = ["read_table", "check_schema", "COLUMN_TYPES", "TableInfo", "inspect_table",
           "naming_unreadable_file"]

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
    #: Directory the hive ``key=value`` directories are under.
    base_dir: str = ""
    #: Each distinct set of data column names among the files, with the first file having it.
    column_sets: tuple[tuple[frozenset[str], str], ...] = ()
    #: Logical types the partition columns' values were checked to parse as (``date=``
    #: directories hold dates unless the schema declares the column otherwise).
    partition_types: dict[str, str] = field(default_factory=dict)


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
        raise ParameterError(f"unknown format {format!r} for {_label(uri, name)}: expected one of "
                        f"{', '.join(_FORMATS)}")
    info = inspect_table(uri, format=format, storage_options=storage_options, name=name, schema=schema)
    filters = filters_as_tuples(filters)
    if filters:
        _check_filter_shapes(filters, uri, name)
        _check_filter_columns(filters, info, uri, name)
    if columns is not None:
        missing = [c for c in columns if c not in info.schema.names and not _in_some_file(info, c)]
        if missing:
            raise SchemaError(f"requested column(s) {', '.join(map(repr, missing))} not found in "
                              f"{_label(uri, name)}: available: {', '.join(info.schema.names)}")
    read = list(columns) if columns is not None else \
        [c for c in info.schema.names if c not in info.partition_columns]
    _check_every_file_has(info, [*read, *(schema or {}), *(_filter_columns(filters) if filters else ())],
                          uri, name)
    check_schema(info, schema or {}, name=name, uri=uri)
    if filters:
        filters = _typed_filters(filters, info, uri, name)
    if format == "parquet":
        try:
            frame = dd.read_parquet(_dask_paths(uri, storage_options, info),
                                    columns=list(columns) if columns is not None else None,
                                    filters=filters or None, storage_options=own_options(storage_options),
                                    dataset={"partition_base_dir": info.base_dir})
        except (OSError, pa.ArrowException, ValueError) as exc:
            raise DataError(f"cannot read Parquet table {_label(uri, name)}: {exc}") from exc
        # So that build_interactions can read the same rows with Arrow (daskflow.io._parts).
        remember_read(tokenize(frame), ParquetRead(
            uri, dict(storage_options or {}), info.files, info.schema, info.partition_columns,
            tuple(columns) if columns is not None else tuple(frame.columns), filters or None,
            info.base_dir, _label(uri, name)))
        return frame
    return _read_orc(uri, info, columns, filters, storage_options, _label(uri, name))


@contextlib.contextmanager
def naming_unreadable_file(frame: dd.DataFrame, token: str | None = None,
                           client: Any = None) -> Iterator[None]:
    """Turn a read error raised while computing ``frame`` into a :class:`DataError` naming the file.

    A data page that does not decode is found only when a task reads it, on a worker,
    and Arrow's message names no file. ``frame`` is a :func:`read_table` Parquet frame
    (``token`` its dask token, if already known); on such an error every file's columns
    are read again, in parallel (on ``client`` when given), to find the first that fails.
    Other frames, and errors no file reproduces, are re-raised as they are.
    """
    try:
        yield
    except DaskflowError:
        raise
    except READ_ERRORS as exc:
        read = recent_read(token if token is not None else tokenize(frame))
        if read is None:
            raise
        fs, _ = open_filesystem(read.uri, read.storage_options)
        columns = [c for c in read.columns if c not in read.partition_columns]
        checks = [dask.delayed(_read_fails, pure=True)(fs, file, columns) for file in read.files]
        failed = compute(checks, client)
        file = next((f for f, bad in zip(read.files, failed) if bad), None)
        if file is None:
            raise
        raise DataError(f"file {file} of {read.label} cannot be read ({exc}): its footer is fine but its "
                        "data is not. Replace or remove the file") from exc


def _read_fails(fs: Any, file: str, columns: Sequence[str]) -> bool:
    try:
        with fs.open(file, "rb") as handle:
            pq.read_table(handle, columns=list(columns))
    except READ_ERRORS:
        return True
    return False


def _dask_paths(uri: str, storage_options: Mapping[str, Any] | None, info: TableInfo) -> list[str]:
    """The listed files as ``dd.read_parquet`` takes them (URLs off the local disk)."""
    fs, _ = open_filesystem(uri, storage_options)
    return list(info.files) if _is_local(fs) else [fs.unstrip_protocol(f) for f in info.files]


def _first_unreadable_file(fs: Any, files: Sequence[str], format: str) -> str | None:
    """The first of ``files`` whose footer cannot be read, if any."""
    for file in files:
        try:
            pads.dataset(file, format=format, filesystem=fs).schema  # noqa: B018 - reads the footer
        except READ_ERRORS:
            return file
    return None


#: The bytes each format's files start with.
_MAGIC = {"parquet": b"PAR1", "orc": b"ORC"}


def _unreadable(fs: Any, file: str, label: str, format: str, exc: Exception) -> DataError:
    """The error for a file whose footer cannot be read, saying so when it is the other format."""
    try:
        with fs.open(file, "rb") as handle:
            head = handle.read(4)
    except Exception:  # noqa: BLE001 - the footer error is the one to report
        head = b""
    other = next((name for name, magic in _MAGIC.items() if name != format and head.startswith(magic)), None)
    if other is not None:
        return DataError(f"file {file} of {label} is an {other.upper() if other == 'orc' else 'Parquet'} "
                         f"file, read as {format}: set format: {other} on this source (or data.format: "
                         f"{other} for every source)")
    return DataError(f"file {file} of {label} is not a readable {format} file ({exc}): replace or "
                     "remove it")


def inspect_table(uri: str, *, format: str = "parquet",
                  storage_options: Mapping[str, Any] | None = None,
                  name: str | None = None, schema: Mapping[str, str] | None = None) -> TableInfo:
    """List a table's files and unify their schemas, naming any file that disagrees.

    The files are those :func:`~daskflow.io._listing.list_data_files` lists. Hive
    partition values are checked against the type ``schema`` declares for their column
    (``date`` columns default to dates): a directory whose value does not parse is an
    error naming it.
    """
    fs, path = open_filesystem(uri, storage_options)
    label = _label(uri, name)
    local = _is_local(fs)
    try:
        exists = fs.exists(path) if local else with_retries(lambda: fs.exists(path),
                                                            what=f"reaching {label}")
    except Exception as exc:  # network stores raise their own types
        raise DataError(f"cannot reach {label} (3 attempts): {exc}. Check the URL and storage_options "
                        "(endpoint, credentials)") from exc
    if not exists:
        raise DataError(f"no data at {label}: the path does not exist. Check the uri, or generate "
                        "a sample lake with: daskflow generate DIR")
    path = path.rstrip("/") or path
    listed = list_data_files(fs, path, label=label) if local else \
        with_retries(lambda: list_data_files(fs, path, label=label), what=f"listing {label}")
    if not listed:
        raise DataError(f"no {format} files in {label}: the directory is empty. Point the uri at a "
                        f"directory of .{format} files")
    # A uri naming one file has no partition directories of its own.
    base_dir = path.rsplit("/", 1)[0] if listed == [path] else path
    try:
        dataset = open_dataset(fs, listed, base_dir, format)
    except READ_ERRORS as exc:
        # Arrow infers the schema from the first file; name the file it could not read.
        bad = _first_unreadable_file(fs, listed, format)
        if bad is not None:
            raise _unreadable(fs, bad, label, format, exc) from exc
        raise DataError(f"cannot open {label} as a {format} table: {exc}") from exc
    files = tuple(dataset.files)
    # Partition columns are the keys found in the fragments' key=value directories
    # (``dataset.partitioning`` also reports data columns for some formats).
    partition_keys: dict[str, None] = {}
    values: dict[str, dict[Any, str]] = {}  # column -> value -> first file with it
    reference: pa.Schema | None = None
    reference_file = ""
    column_sets: dict[frozenset[str], str] = {}
    for fragment in dataset.get_fragments():
        keys = pads.get_partition_keys(fragment.partition_expression)
        if "" in keys:
            raise DataError(f"file {fragment.path} of {label} is under a directory named '=...', a hive "
                            "partition without a column name: expected directories named column=value. "
                            "Rename the directory or move the file")
        partition_keys.update(dict.fromkeys(keys))
        for column, value in keys.items():
            values.setdefault(column, {}).setdefault(value, fragment.path)
        try:
            physical = fragment.physical_schema
            names = frozenset(physical.names)  # decoded here: a damaged name is not UTF-8
        except READ_ERRORS as exc:
            raise _unreadable(fs, fragment.path, label, format, exc) from exc
        column_sets.setdefault(names, fragment.path)
        if reference is None:
            reference, reference_file = physical, fragment.path
            continue
        for column in physical:
            known = reference.field(column.name) if column.name in reference.names else None
            if known is not None and not _compatible(known.type, column.type):
                raise SchemaError(
                    f"schema drift in {label}: column {column.name!r} is {column.type} in "
                    f"{fragment.path} but {known.type} in {reference_file}: rewrite the odd "
                    "partition with the table's type")
    assert reference is not None
    partition_schema = pa.schema([dataset.schema.field(k) for k in partition_keys])
    partition_types = _check_partition_values(values, partition_schema, schema or {}, label)
    names = set(reference.names)
    merged = pa.schema(list(reference) + [f for f in partition_schema if f.name not in names])
    return TableInfo(files=files, schema=merged, partition_columns=tuple(partition_schema.names),
                     base_dir=base_dir, column_sets=tuple(column_sets.items()),
                     partition_types=partition_types)


#: Arrow types a hive partition value is parsed as, per logical type; the value is a
#: string in the directory name. ``string`` and ``category`` accept any value.
_PARTITION_PARSE: dict[str, pa.DataType] = {
    "date": pa.date32(), "integer": pa.int64(), "int32": pa.int32(), "int64": pa.int64(),
    "float": pa.float64(), "float32": pa.float32(), "float64": pa.float64(), "number": pa.float64(),
    "boolean": pa.bool_(), "timestamp": pa.timestamp("ms"),
}
_PARTITION_FORMS = {"date": "a date written YYYY-MM-DD", "boolean": "true or false",
                    "timestamp": "a timestamp written YYYY-MM-DD HH:MM:SS", "integer": "an integer",
                    "int32": "an integer", "int64": "an integer", "float": "a number",
                    "float32": "a number", "float64": "a number", "number": "a number"}


def _check_partition_values(values: Mapping[str, Mapping[Any, str]], partition_schema: pa.Schema,
                            schema: Mapping[str, str], label: str) -> dict[str, str]:
    """Check each partition column's values parse as its type; return the types checked.

    A column's type is the one ``schema`` declares, else ``date`` for a column named
    ``date`` (the lake's convention, and the one a filter compares as dates), else what
    Arrow inferred from the values (integers or strings), which holds by construction.
    """
    checked: dict[str, str] = {}
    for column in partition_schema.names:
        logical = schema.get(column) or ("date" if column == "date" else None)
        if logical not in _PARTITION_PARSE:
            continue
        found = [v for v in values.get(column, {}) if v is not None]  # None: Hive's null partition
        text = pa.array([str(v).lower() if isinstance(v, bool) else str(v) for v in found], pa.string())
        try:
            text.cast(_PARTITION_PARSE[logical])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            bad = next(v for v, t in zip(found, text.to_pylist()) if not _parses(t, logical))
            directory = values[column][bad].rsplit("/", 1)[0]
            raise DataError(
                f"hive partition {column}={bad} of {label} (directory {directory}) is not "
                f"{_PARTITION_FORMS[logical]}: the column {column!r} is "
                f"{'declared ' + logical if column in schema else 'read as dates'}. Rename or remove "
                f"the directory{'' if column in schema else f', or declare schema: {{{column}: string}}'}"
                ) from None
        checked[column] = logical
    return checked


def _parses(text: str, logical: str) -> bool:
    try:
        pa.array([text], pa.string()).cast(_PARTITION_PARSE[logical])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


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
        if info.partition_types.get(column) == logical:
            continue  # hive values are text: each directory's was checked to parse as the type
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
    return {f[0] for f in _flat(filters)}


def _flat(filters: list[Any]) -> list[Any]:
    return filters if all(isinstance(f, tuple) for f in filters) else [f for g in filters for f in g]


def _check_filter_shapes(filters: list[Any], uri: str, name: str | None) -> None:
    for item in _flat(filters):
        if not (isinstance(item, tuple) and len(item) == 3 and isinstance(item[0], str)):
            raise DataError(f"bad filter {item!r} for {_label(uri, name)}: expected (column, op, value)")
        column, op, value = item
        if op in ("in", "not in") and not isinstance(value, (list, tuple, set, frozenset)):
            raise DataError(f"filter ({column!r}, {op!r}, {value!r}) for {_label(uri, name)}: {op!r} "
                            f"takes a list of values, e.g. ({column!r}, {op!r}, [{value!r}])")


def _in_some_file(info: TableInfo, column: str) -> bool:
    return any(column in names for names, _ in info.column_sets)


def _check_every_file_has(info: TableInfo, columns: Sequence[str], uri: str, name: str | None) -> None:
    """A column read must be in every file: Arrow and dask would fill a file lacking it with nulls."""
    for column in dict.fromkeys(columns):
        if column in info.partition_columns:
            continue
        lacking = [(names, file) for names, file in info.column_sets if column not in names]
        if lacking and len(lacking) < len(info.column_sets):
            names, file = lacking[0]
            having = next(f for n, f in info.column_sets if column in n)
            raise SchemaError(f"column {column!r} is missing from file {file} of {_label(uri, name)} "
                              f"(its columns: {', '.join(sorted(names))}), though {having} has it: "
                              "every file must have the columns read. Rewrite or remove the file")


def _typed_filters(filters: list[Any], info: TableInfo, uri: str, name: str | None) -> list[Any]:
    """Filters whose operands on typed hive partition columns compare as that type.

    Partition values are text; once each was checked to parse as its column's type (see
    :func:`_check_partition_values`), a date written YYYY-MM-DD compares as text exactly
    as it does as a date, provided the operand is written the same way. So operands on
    such columns are parsed and rewritten in that form (a YAML date, ``2026-01-05``,
    becomes ``"2026-01-05"``); one that is not of the column's type is an error.
    """
    def operand(column: str, op: str, value: Any) -> Any:
        logical = info.partition_types.get(column)
        if logical is None:
            return value
        arrow_type = info.schema.field(column).type
        if isinstance(value, (list, tuple, set, frozenset)):
            return [operand(column, op, v) for v in value]
        if value is None:
            return value
        if logical == "date" and pa.types.is_string(arrow_type):
            if isinstance(value, _dt.datetime):
                value = value.date()
            if isinstance(value, _dt.date):
                return value.isoformat()
            if isinstance(value, str) and _parses(value, "date"):
                return value
        elif logical in ("integer", "int32", "int64") and pa.types.is_integer(arrow_type):
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, str) and _parses(value, logical):
                return int(value)
        else:
            return value
        raise DataError(f"filter ({column!r}, {op!r}, {value!r}) for {_label(uri, name)}: {value!r} is "
                        f"not {_PARTITION_FORMS[logical]}, the type of the "
                        f"hive partition column {column!r}: write the value as one")

    def predicate(item: tuple[str, str, Any]) -> tuple[str, str, Any]:
        column, op, value = item
        return (column, op, operand(column, op, value))

    if all(isinstance(f, tuple) for f in filters):
        return [predicate(f) for f in filters]
    return [[predicate(f) for f in group] for group in filters]


def _check_filter_columns(filters: list[Any], info: TableInfo, uri: str, name: str | None) -> None:
    unknown = sorted(_filter_columns(filters) - set(info.schema.names))
    if unknown:
        raise SchemaError(f"filter on unknown column(s) {', '.join(map(repr, unknown))} of "
                          f"{_label(uri, name)}: available: {', '.join(info.schema.names)}")


# -- ORC --------------------------------------------------------------------------------


def _read_orc(uri: str, info: TableInfo, columns: Sequence[str] | None, filters: list[Any] | None,
              storage_options: Mapping[str, Any] | None, label: str) -> dd.DataFrame:
    fs, _ = open_filesystem(uri, storage_options)
    dataset = open_dataset(fs, info.files, info.base_dir, "orc")
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
                     expression, partition_values, label),
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
                 partition_values: Mapping[str, Sequence[str]], label: str = "") -> None:
        self.fs = fs
        self.columns = columns
        self.read_columns = read_columns
        self.partition_columns = tuple(partition_columns)
        self.partition_types = dict(partition_types)
        self.expression = expression
        self.partition_values = dict(partition_values)
        self.label = label

    def __call__(self, part: tuple[str, Mapping[str, Any]]) -> pd.DataFrame:
        import pyarrow.orc as orc

        path, keys = part
        data_columns = [c for c in self.read_columns if c not in self.partition_columns]
        try:
            with self.fs.open(path, "rb") as handle:
                table = orc.ORCFile(handle).read(columns=data_columns)
        except READ_ERRORS as exc:
            # Raised on a worker: without the file's name the error would point nowhere.
            raise DataError(f"file {path} of {self.label or 'the table'} cannot be read ({exc}): its "
                            "footer is fine but its data is not; replace or remove the file") from exc
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

"""The entity table: one row per entity, its label, its side of the split, its features.

:func:`build_entity_table` turns a source table (a Dask or pandas DataFrame, e.g. from
:func:`daskflow.io.read_table`) into an :class:`EntityTable` for a binary classifier. It
checks the columns named against the table's schema (no data read:
:func:`check_table_columns`, which ``daskflow validate`` runs on the footers too), then,
in one pass over the data, that the label holds exactly two values one of which is the
positive one, that the id is unique and that the split leaves training and test rows.
The per-partition work is in ``_table_kernels``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_numeric_dtype

from daskflow._dask import compute, persist
from daskflow._errors import DataError, ParameterError, SchemaError
from daskflow.features.tabular import _table_kernels as kernels

__all__ = ["TableSplit", "EntityTable", "build_entity_table", "check_table_columns", "infer_feature_roles"]

log = logging.getLogger("daskflow")

_SPLIT_KINDS = ("column", "hash", "time")


@dataclass(frozen=True)
class TableSplit:
    """Which rows train and which test.

    ``kind="column"``: ``column`` holds ``train`` values for training rows and ``test``
    values for test rows (other rows are scored only). ``kind="hash"``: a stable hash of
    ``column`` (usually the id) puts a ``test_size`` share of the rows in test.
    ``kind="time"``: rows whose ``column`` is before ``cutoff`` train, later ones test.
    """

    kind: str
    column: str
    train: tuple[Any, ...] = ()
    test: tuple[Any, ...] = ()
    test_size: float = 0.2
    cutoff: Any = None

    def describe(self) -> str:
        if self.kind == "column":
            return f"column {self.column!r} (train: {_values(self.train)}; test: {_values(self.test)})"
        if self.kind == "hash":
            return f"a hash of column {self.column!r} (test_size {self.test_size:g})"
        return f"column {self.column!r} at cutoff {self.cutoff}"


@dataclass
class EntityTable:
    """A checked entity table: ``frame`` holds the id, the features, ``LABEL`` and ``PART``.

    Attributes
    ----------
    frame : dask.dataframe.DataFrame
        One row per entity: the id column, the feature columns, the 0/1 label in
        ``kernels.LABEL`` (-1: no label) and the split in ``kernels.PART``.
    id_column : str
    categorical, numeric, log : list of str
        The feature columns by role (``log`` columns are numeric, ``log1p``-transformed).
    counts : dict
        Rows in all, training and test rows, and positives in each.
    """

    frame: Any
    id_column: str
    categorical: list[str]
    numeric: list[str]
    log: list[str]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def train(self) -> Any:
        """The training rows (lazy)."""
        return self.frame[self.frame[kernels.PART] == kernels.TRAIN]

    def test(self) -> Any:
        """The test rows (lazy)."""
        return self.frame[self.frame[kernels.PART] == kernels.TEST]

    def labels(self, frame: Any) -> Any:
        """The 0/1 labels of ``frame`` (one of :meth:`train`, :meth:`test`)."""
        return frame[kernels.LABEL]


def _values(values: Sequence[Any]) -> str:
    return ", ".join(repr(v) for v in values) if len(values) else "none"


def check_table_columns(columns: Sequence[str], dtypes: Mapping[str, Any] | None = None, *, source: str,
                        id_column: str, label_column: str, split: TableSplit,
                        categorical: Sequence[str] | None = None, numeric: Sequence[str] | None = None,
                        log_columns: Sequence[str] = (), drop: Sequence[str] = (),
                        where: str = "table") -> None:
    """Check every column named exists in ``columns`` (the schema; no data read).

    ``where`` prefixes the names in messages (the runner passes ``features.table``).

    Raises
    ------
    SchemaError
        A column named (id, label, split, or in a feature list) is not in the table, a
        column is named in two lists, or the time split's column is not a time.
    """
    present = [str(c) for c in columns]
    found = ", ".join(present)
    named = [("id", [id_column]), ("label.column", [label_column]), (f"split.{split.kind}", [split.column]),
             ("categorical", list(categorical or ())), ("numeric", list(numeric or ())),
             ("log", list(log_columns)), ("drop", list(drop))]
    for key, wanted in named:
        missing = [c for c in wanted if c not in present]
        if missing:
            raise SchemaError(f"{where}.{key} names column(s) {', '.join(map(repr, missing))}, not in source "
                              f"{source!r}: found {found}. Name columns of the table")
    roles = {"categorical": categorical or (), "numeric": numeric or (), "log": log_columns, "drop": drop}
    reserved = {id_column: "id", label_column: "label.column"}
    if split.kind == "column" or split.kind == "time":
        reserved[split.column] = f"split.{split.kind}"
    seen: dict[str, str] = {}
    for key, listed in roles.items():
        for column in listed:
            other = seen.get(column) or reserved.get(column)
            if other is not None and not (key == "log" and other == "numeric"):
                raise SchemaError(f"{where}.{key} names column {column!r}, which is already {where}.{other}: "
                                  "name each column once (log columns are numeric already)")
            seen[column] = key
    if dtypes is None:
        return
    numeric_columns = [*(numeric or ()), *log_columns]
    bad = [c for c in numeric_columns if not (is_numeric_dtype(dtypes[c]) or is_bool_dtype(dtypes[c]))]
    if bad:
        raise SchemaError(f"{where}.numeric (or log) names column(s) {', '.join(map(repr, bad))} of type "
                          f"{', '.join(str(dtypes[c]) for c in bad)} in source {source!r}: expected numbers "
                          "or booleans; list them under categorical")
    if split.kind == "time" and not is_datetime64_any_dtype(dtypes[split.column]):
        raise SchemaError(f"{where}.split.time names column {split.column!r} of type {dtypes[split.column]} "
                          f"in source {source!r}: expected a timestamp column")


def infer_feature_roles(dtypes: Mapping[str, Any], *, exclude: Sequence[str] = (),
                        categorical: Sequence[str] | None = None, numeric: Sequence[str] | None = None,
                        log_columns: Sequence[str] = (), drop: Sequence[str] = ()
                        ) -> tuple[list[str], list[str], list[str], dict[str, str]]:
    """(categorical, numeric, log, inferred) from the columns' types.

    Columns listed keep their role; every other column (not in ``exclude`` or ``drop``)
    is numeric when its type is a number or a boolean, categorical when it is a string
    or a category, and unused when it is a time (it is reported in ``inferred``).
    """
    listed = set(categorical or ()) | set(numeric or ()) | set(log_columns) | set(drop) | set(exclude)
    cat, num = list(categorical or ()), list(numeric or ())
    num += [c for c in log_columns if c not in num]
    inferred: dict[str, str] = {}
    for column, dtype in dtypes.items():
        if column in listed:
            continue
        if is_bool_dtype(dtype) or is_numeric_dtype(dtype):
            num.append(column)
            inferred[column] = f"numeric ({dtype})"
        elif is_datetime64_any_dtype(dtype):
            inferred[column] = f"unused ({dtype}: a time is not a feature; list it in drop)"
        else:
            cat.append(column)
            inferred[column] = f"categorical ({dtype})"
    return cat, num, list(log_columns), inferred


def build_entity_table(frame: dd.DataFrame | pd.DataFrame, *, id_column: str, label_column: str,
                       positive: Any, split: TableSplit, categorical: Sequence[str] | None = None,
                       numeric: Sequence[str] | None = None, log_columns: Sequence[str] = (),
                       drop: Sequence[str] = (), keep: Sequence[str] = (), seed: int = 0,
                       source: str = "table", where: str = "table", client: Any = None) -> EntityTable:
    """Check a source table and make it an :class:`EntityTable` (persisted).

    Parameters
    ----------
    frame
        One row per entity.
    id_column
        The entity's ID; unique.
    label_column, positive
        The binary label: ``label_column`` holds exactly two distinct values (missing
        values aside: those rows are scored, not fitted), and ``positive`` is one of them.
    split
        Which rows train and which test (:class:`TableSplit`).
    keep
        Columns carried in the table's frame without being features (e.g. the counts an encoder
        smooths rates by); they must be columns of ``frame``.
    categorical, numeric, log_columns, drop
        Feature columns by role; every other column (not the id, label or split column)
        gets a role from its type (:func:`infer_feature_roles`), logged.
    seed
        The hash split's seed.
    source, where
        Names of the table and of the settings, for messages.
    client
        A ``distributed.Client``; default: dask's current scheduler.

    Raises
    ------
    SchemaError
        A column named is not in the table (:func:`check_table_columns`).
    DataError
        A label without exactly two values, a ``positive`` value that never occurs, an
        id that is not unique, or a split leaving no training or no test rows.

    Examples
    --------
    >>> table = build_entity_table(read_table("customers.parquet"), id_column="customer_id",
    ...                            label_column="churned", positive="yes",
    ...                            split=TableSplit("hash", "customer_id", test_size=0.2))  # doctest: +SKIP
    """
    if split.kind not in _SPLIT_KINDS:
        raise ParameterError(f"{where}.split: unknown kind {split.kind!r}: expected one of "
                             f"{', '.join(_SPLIT_KINDS)}")
    if split.kind == "hash" and not 0 < split.test_size < 1:
        raise ParameterError(f"{where}.split.test_size is {split.test_size!r}: expected a share in (0, 1)")
    if isinstance(frame, pd.DataFrame):
        frame = dd.from_pandas(frame, npartitions=1)
    dtypes = {str(c): t for c, t in frame.dtypes.items()}
    check_table_columns(list(dtypes), dtypes, source=source, id_column=id_column, label_column=label_column,
                        split=split, categorical=categorical, numeric=numeric, log_columns=log_columns,
                        drop=drop, where=where)
    absent = [c for c in keep if c not in dtypes]
    if absent:
        raise SchemaError(f"{where}: column(s) {', '.join(map(repr, absent))} to carry (e.g. smooth's "
                          f"counts) are not in source {source!r}: found {', '.join(dtypes)}")
    exclude = [id_column, label_column] + ([split.column] if split.kind != "hash" else [])
    cat, num, logged, inferred = infer_feature_roles(dtypes, exclude=exclude, categorical=categorical,
                                                     numeric=numeric, log_columns=log_columns, drop=drop)
    for column, role in inferred.items():
        log.info("%s: column %r inferred %s", where, column, role)
    if not cat and not num:
        raise SchemaError(f"{where}: no feature columns left in source {source!r} (found "
                          f"{', '.join(dtypes)}): list some under categorical or numeric, or drop fewer")

    # Values the checks need, in one pass: the label's values, repeated ids, the split column's values.
    label_values = frame[label_column].dropna().unique()
    id_counts = frame[id_column].value_counts(split_out=frame.npartitions)
    repeated = id_counts[id_counts > 1]
    split_values = frame[split.column].dropna().unique() if split.kind == "column" else None
    label_values, repeated, split_values = compute([label_values, repeated, split_values], client)
    positive_value = _check_label(np.asarray(label_values), positive, label_column, source, where)
    if len(repeated):
        examples = ", ".join(f"{k!r} ({v} rows)" for k, v in list(repeated.sort_index().items())[:3])
        raise DataError(f"{where}.id column {id_column!r} of source {source!r} is not unique: "
                        f"{len(repeated)} ID(s) appear more than once, e.g. {examples}. Keep one row per "
                        "entity (aggregate or deduplicate the table)")
    cutoff = None
    if split.kind == "time":
        cutoff = pd.Timestamp(split.cutoff)
        cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff.tz_convert("UTC")
    options = dict(id_column=id_column, label_column=label_column, positive=positive_value,
                   features=[*num, *cat, *(c for c in keep if c not in (*num, *cat))],
                   split_kind=split.kind, split_column=split.column,
                   train_values=tuple(split.train), test_values=tuple(split.test),
                   test_size=float(split.test_size), cutoff=cutoff, seed=seed)
    meta = kernels.entity_rows(frame._meta, **options)
    rows = frame.map_partitions(kernels.entity_rows, **options, meta=meta)
    (rows,) = persist([rows], client)
    labels, part = rows[kernels.LABEL], rows[kernels.PART]
    sums = compute([rows.shape[0], (part == kernels.TRAIN).sum(), (part == kernels.TEST).sum(),
                    ((part == kernels.TRAIN) & (labels == 1)).sum(),
                    ((part == kernels.TEST) & (labels == 1)).sum()], client)
    counts = dict(zip(("rows", "train_rows", "test_rows", "train_positives", "test_positives"),
                      (int(v) for v in sums), strict=True))
    if counts["train_rows"] == 0 or counts["test_rows"] == 0:
        found = ""
        if split_values is not None:
            found = f"; column {split.column!r} holds {_values(sorted(map(str, split_values))[:10])}"
        raise DataError(f"{where}.split by {split.describe()} leaves {counts['train_rows']} training and "
                        f"{counts['test_rows']} test rows of the {counts['rows']} in source {source!r}"
                        f"{found}: expected labelled rows on both sides. Change {where}.split")
    log.info("%s: %d rows, %d training (%d positive), %d test (%d positive); %d categorical and %d numeric "
             "features", where, counts["rows"], counts["train_rows"], counts["train_positives"],
             counts["test_rows"], counts["test_positives"], len(cat), len(num))
    return EntityTable(rows, id_column, cat, num, logged, counts)


def _check_label(values: np.ndarray, positive: Any, column: str, source: str, where: str) -> Any:
    """The value of ``values`` that is ``positive`` (``1`` matches ``"1"``); checks two values."""
    shown = _values(sorted(values.tolist(), key=str)[:10]) + (", ..." if len(values) > 10 else "")
    if len(values) != 2:
        raise DataError(f"{where}.label.column {column!r} of source {source!r} holds {len(values)} distinct "
                        f"value(s) ({shown}): expected exactly two (a binary label); map the others to one "
                        "of two values, or filter those rows out (data.sources.<name>.filters)")
    matches = [v for v in values.tolist() if v == positive or str(v) == str(positive)]
    if not matches:
        raise DataError(f"{where}.label.positive {positive!r} never occurs in column {column!r} of source "
                        f"{source!r} (values found: {shown}): set it to one of those values")
    return matches[0]

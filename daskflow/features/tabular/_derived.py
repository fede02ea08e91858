"""Derived columns of the entity table (``features.derived``), out of core.

Each derived column is an expression of the small language of ``_derived_kernels`` over
the table's columns (the aggregates included), constants such as ``cutoff_day`` and the
derived columns before it. :func:`add_derived` checks every name before any data is read,
then adds the columns partition by partition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dask.dataframe as dd
import pandas as pd

from daskflow._errors import ParameterError, SchemaError
from daskflow.features.tabular import _derived_kernels as kernels
from daskflow.features.tabular._derived_kernels import Expression, parse

__all__ = ["add_derived", "check_derived", "parse_derived"]


def parse_derived(derived: Mapping[str, str], *,
                  where: str = "features.derived") -> list[tuple[str, Expression]]:
    """Parse every expression; ``ParameterError`` naming the key of one that is not allowed."""
    out = []
    for name, text in derived.items():
        try:
            out.append((name, parse(text)))
        except ValueError as exc:
            raise ParameterError(f"{where}.{name}: {exc}") from None
    return out


def check_derived(derived: Mapping[str, str], columns: Sequence[str], *, constants: Sequence[str] = (),
                  forbidden: Sequence[str] = (),
                  where: str = "features.derived") -> list[tuple[str, Expression]]:
    """Every name an expression reads is a column, a constant or an earlier derived column.

    ``forbidden`` are columns no derived column may read (the label and its censoring: a
    feature computed from the label would leak it). Returns the parsed expressions.

    Raises
    ------
    ParameterError
        An expression outside the language.
    SchemaError
        A name that is not there, a forbidden one, or a derived name that is already a column.
    """
    parsed = parse_derived(derived, where=where)
    known = list(columns)
    for name, expression in parsed:
        if name in known:
            raise SchemaError(f"{where}.{name}: {name!r} is already a column of the table: name the derived "
                              "column differently")
        leaking = [n for n in expression.names if n in forbidden]
        if leaking:
            raise SchemaError(f"{where}.{name} reads {', '.join(map(repr, leaking))}, the label: a feature "
                              "computed from the label leaks it into the model. Derive it from other columns")
        unknown = [n for n in expression.names if n not in known and n not in constants]
        if unknown:
            raise SchemaError(f"{where}.{name} = {expression.text!r} reads {', '.join(map(repr, unknown))}, "
                              f"not a column of the table: found {', '.join(known)}"
                              f"{'; constants ' + ', '.join(constants) if constants else ''}. Name a column "
                              "(aggregates are named <entry>_<aggregate>[_<column>]_<window>) or a derived "
                              "column defined above it")
        known.append(name)
    return parsed


def add_derived(frame: dd.DataFrame | pd.DataFrame, derived: Mapping[str, str], *,
                constants: Mapping[str, float] | None = None, forbidden: Sequence[str] = (),
                where: str = "features.derived") -> Any:
    """``frame`` with the derived columns added (lazily for Dask input), each checked first."""
    constants = dict(constants or {})
    parsed = check_derived(derived, [str(c) for c in frame.columns], constants=list(constants),
                           forbidden=forbidden, where=where)
    if not parsed:
        return frame
    if isinstance(frame, pd.DataFrame):
        return kernels.derive(frame, expressions=parsed, constants=constants)
    meta = kernels.derive(frame._meta, expressions=parsed, constants=constants)
    return frame.map_partitions(kernels.derive, expressions=parsed, constants=constants, meta=meta,
                                token="features-derived")

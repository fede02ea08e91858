"""DNF filters as dask and pyarrow take them (no Dask import: the config loader uses it too)."""

from __future__ import annotations

from typing import Any

__all__ = ["filters_as_tuples"]


def filters_as_tuples(value: Any) -> Any:
    """Turn YAML's nested lists into the tuples dask's DNF filters expect."""
    if not isinstance(value, (list, tuple)) or not value:
        return value

    def predicate(item: Any) -> Any:
        if isinstance(item, (list, tuple)) and len(item) == 3 and isinstance(item[0], str):
            column, op, operand = item
            return (column, op, list(operand) if isinstance(operand, (list, tuple)) else operand)
        return item

    if all(isinstance(item, (list, tuple)) and item and isinstance(item[0], str) for item in value):
        return [predicate(item) for item in value]  # one conjunction
    return [[predicate(item) for item in group] if isinstance(group, (list, tuple)) else group
            for group in value]  # disjunction of conjunctions

"""Derived columns (``features.derived``): a small, safe expression language over a table's columns.

An expression is parsed with Python's :mod:`ast` (never evaluated by Python) and checked
against a whitelist: numbers, column names, ``+ - * /``, unary ``-``, one comparison
(``> >= < <= == !=``), ``and``/``or``/``not``, and the functions of :data:`FUNCTIONS`.
Anything else (attributes, subscripts, keywords, strings, lambdas, ...) is refused with the
position and what is allowed. :func:`evaluate` computes a parsed expression on one pandas
partition with NumPy: pure pandas and NumPy, no Dask.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from daskflow.features.tabular._aggregate_kernels import times_ms

__all__ = ["FUNCTIONS", "Expression", "parse", "evaluate", "derive", "DAY_MS"]

DAY_MS = 86_400_000

#: function -> (number of arguments, what it does), for messages and docs/features.md.
FUNCTIONS: dict[str, tuple[int, str]] = {
    "ratio": (2, "a / b, and 0 where b is 0 or missing (nothing observed)"),
    "where": (3, "b where the condition a holds, else c"),
    "max": (2, "the larger of a and b (missing if either is)"),
    "min": (2, "the smaller of a and b (missing if either is)"),
    "fill": (2, "a, with its missing values replaced by b"),
    "day": (1, "a time or date column (or ISO text) as its UTC day number (days since 1970-01-01)"),
    "log": (1, "the natural log of a (missing for a <= 0)"),
    "log1p": (1, "log(1 + a)"),
    "abs": (1, "|a|"),
}
_BINARY = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide}
_COMPARE = {ast.Gt: np.greater, ast.GtE: np.greater_equal, ast.Lt: np.less, ast.LtE: np.less_equal,
            ast.Eq: np.equal, ast.NotEq: np.not_equal}
_ALLOWED = ("numbers, column names, + - * /, unary -, one comparison (> >= < <= == !=), and/or/not, and "
            "the functions " + ", ".join(f"{f}({', '.join('abc'[:n])})" for f, (n, _) in FUNCTIONS.items()))


@dataclass(frozen=True)
class Expression:
    """A parsed, checked expression: its text, its tree and the names it reads."""

    text: str
    tree: ast.expr
    names: tuple[str, ...]


def parse(text: str) -> Expression:
    """Parse and check ``text``; ``ValueError`` saying what is wrong and what is allowed."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{text!r} is not an expression: expected e.g. ratio(listens_count_all, "
                         "listens_active_days_all)")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"{text!r} is not an expression ({exc.msg} at character {exc.offset}): "
                         f"allowed are {_ALLOWED}") from None
    names: list[str] = []
    _check(tree, text, names)
    return Expression(text, tree, tuple(dict.fromkeys(names)))


def _check(node: ast.AST, text: str, names: list[str]) -> None:
    where = f"{text!r} at character {getattr(node, 'col_offset', 0) + 1}"
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ValueError(f"{where}: {node.value!r} is not a number: allowed are {_ALLOWED}")
    elif isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            raise ValueError(f"{where}: {node.id} is a function: call it, e.g. {node.id}(...)")
        names.append(node.id)
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        _check(node.left, text, names)
        _check(node.right, text, names)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.Not):
        _check(node.operand, text, names)
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value, text, names)
    elif isinstance(node, ast.Compare):
        if len(node.ops) != 1 or type(node.ops[0]) not in _COMPARE:
            raise ValueError(f"{where}: one comparison (> >= < <= == !=) at a time; join several with and/or")
        _check(node.left, text, names)
        _check(node.comparators[0], text, names)
    elif isinstance(node, ast.Call):
        function = node.func.id if isinstance(node.func, ast.Name) else None
        if function not in FUNCTIONS:
            shown = ast.unparse(node.func)
            raise ValueError(f"{where}: {shown}() is not a function of derived columns: allowed are "
                             f"{', '.join(FUNCTIONS)}")
        arity = FUNCTIONS[function][0]
        if node.keywords or len(node.args) != arity or any(isinstance(a, ast.Starred) for a in node.args):
            raise ValueError(f"{where}: {function}() takes {arity} argument(s) ({FUNCTIONS[function][1]}), "
                             f"got {len(node.args) + len(node.keywords)}")
        for argument in node.args:
            _check(argument, text, names)
    else:
        raise ValueError(f"{where}: {type(node).__name__} ({ast.unparse(node)!r}) is not allowed: "
                         f"allowed are {_ALLOWED}")


def _values(series: pd.Series) -> np.ndarray:
    """A column as float64 (missing as NaN) or bool; a timestamp as ms since the epoch (NaN missing)."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) and not series.isna().any():
        return series.to_numpy(dtype=bool)
    if pd.api.types.is_datetime64_any_dtype(dtype) or "timestamp" in str(dtype):
        ms = times_ms(series).astype(np.float64)
        return np.where(series.isna().to_numpy(), np.nan, ms)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def derive(frame: pd.DataFrame, *, expressions: Sequence[tuple[str, Expression]],
           constants: Mapping[str, float]) -> pd.DataFrame:
    """``frame`` with every derived column added, in order (a later one may read an earlier one)."""
    out = frame.copy()
    for name, expression in expressions:
        out[name] = evaluate(expression, out, constants)
    return out


def _times(series: pd.Series) -> np.ndarray:
    """A time column as ms since the epoch (NaN missing); text is parsed as ISO dates or times (UTC)."""
    values = _values(series)
    if values.dtype == bool or not np.isnan(values).all() or not series.notna().any():
        return values
    parsed = pd.to_datetime(series.astype("string"), errors="coerce", utc=True, format="ISO8601")
    return _values(parsed)


def evaluate(expression: Expression, frame: pd.DataFrame, constants: Mapping[str, float]) -> np.ndarray:
    """``expression`` on one partition: float64 (or bool for a condition), one value per row."""
    n = len(frame)

    def run(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id in constants:
                return float(constants[node.id])
            return _values(frame[node.id])
        if isinstance(node, ast.BinOp):
            with np.errstate(divide="ignore", invalid="ignore"):
                return _BINARY[type(node.op)](_number(run(node.left)), _number(run(node.right)))
        if isinstance(node, ast.UnaryOp):
            operand = run(node.operand)
            return np.logical_not(_truth(operand)) if isinstance(node.op, ast.Not) else -_number(operand)
        if isinstance(node, ast.BoolOp):
            values = [_truth(run(v)) for v in node.values]
            combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            out = values[0]
            for value in values[1:]:
                out = combine(out, value)
            return out
        if isinstance(node, ast.Compare):
            with np.errstate(invalid="ignore"):
                return _COMPARE[type(node.ops[0])](_number(run(node.left)), _number(run(node.comparators[0])))
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        if node.func.id == "day" and isinstance(node.args[0], ast.Name) and node.args[0].id in frame:
            return _call("day", [_times(frame[node.args[0].id])])  # a date kept as text is a date too
        args = [run(a) for a in node.args]
        return _call(node.func.id, args)

    out = run(expression.tree)
    if np.ndim(out) == 0:
        out = np.full(n, out)
    return np.asarray(out)


def _number(value: Any) -> Any:
    return value.astype(np.float64) if isinstance(value, np.ndarray) and value.dtype == bool else value


def _truth(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.dtype == bool:
        return value
    return np.nan_to_num(np.asarray(value, dtype=np.float64), nan=0.0) != 0


def _call(function: str, args: Sequence[Any]) -> Any:
    a = _number(args[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        if function == "ratio":
            b = np.asarray(_number(args[1]), dtype=np.float64)
            a = np.asarray(a, dtype=np.float64)
            a, b = np.broadcast_arrays(a, b)
            out = np.zeros(a.shape, dtype=np.float64)
            np.divide(a, b, out=out, where=(b != 0) & ~np.isnan(b))
            return out
        if function == "where":
            return np.where(_truth(args[0]), _number(args[1]), _number(args[2]))
        if function == "max":
            return np.maximum(a, _number(args[1]))
        if function == "min":
            return np.minimum(a, _number(args[1]))
        if function == "fill":
            return np.where(np.isnan(np.asarray(a, dtype=np.float64)), _number(args[1]), a)
        if function == "day":
            return np.floor(np.asarray(a, dtype=np.float64) / DAY_MS)
        if function == "log":
            a = np.asarray(a, dtype=np.float64)
            return np.log(np.where(a > 0, a, np.nan))
        if function == "log1p":
            return np.log1p(a)
        return np.abs(a)

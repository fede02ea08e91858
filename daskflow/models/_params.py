"""Hyperparameter rules declared once, as data, and checked at the start of ``fit``."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from daskflow._errors import ParameterError

__all__ = ["Rule", "check_params"]


@dataclass(frozen=True)
class Rule:
    """One parameter's rule: a type and a range, or a set of options."""

    kind: type | tuple[type, ...] | None = None
    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    options: tuple[Any, ...] | None = None
    allow_none: bool = False

    def describe(self) -> str:
        if self.options is not None:
            text = "one of " + ", ".join(repr(o) for o in self.options)
        else:
            name = {int: "an integer", float: "a number"}.get(self.kind, "a number")  # type: ignore[arg-type]
            bounds = []
            if self.low is not None:
                bounds.append(f"{'>=' if self.low_inclusive else '>'} {self.low}")
            if self.high is not None:
                bounds.append(f"{'<=' if self.high_inclusive else '<'} {self.high}")
            text = name + (" " + " and ".join(bounds) if bounds else "")
        return text + (" or None" if self.allow_none else "")

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.allow_none
        if self.options is not None:
            return value in self.options
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if self.kind is int and not isinstance(value, numbers.Integral):
            return False
        if self.low is not None and (value < self.low or (value == self.low and not self.low_inclusive)):
            return False
        if self.high is not None and (value > self.high or (value == self.high and not self.high_inclusive)):
            return False
        return value == value  # NaN fails every range


def check_params(estimator: Any, rules: Mapping[str, Rule]) -> None:
    """Raise :class:`ParameterError` naming the first parameter that breaks its rule."""
    name = type(estimator).__name__
    for param, rule in rules.items():
        value = getattr(estimator, param)
        if not rule.accepts(value):
            raise ParameterError(f"{name}({param}={value!r}) is invalid: expected {rule.describe()}")

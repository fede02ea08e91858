"""Where a config field's default comes from when it is a library parameter's: the library.

A key of the experiment file that the runner passes straight to a library parameter (e.g.
``features.interactions.block_size`` to ``build_interactions(block_size=...)``) takes its
default from that parameter's default in the library's signature, so it is written once
(docs/development.md, "Conventions"); ``tests/config/test_defaults.py`` lists every such pair.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

__all__ = ["library_default"]


def library_default(package: str, name: str, parameter: str) -> Any:
    """The default of ``parameter`` of ``daskflow.<package>.<name>`` (a function or a class).

    Looked up through the package's public face, so a module moved inside the package does
    not move the default.
    """
    function = getattr(importlib.import_module(f"daskflow.{package}"), name)
    default = inspect.signature(function).parameters[parameter].default
    if default is inspect.Parameter.empty:
        raise TypeError(f"daskflow.{package}.{name}() has no default for {parameter!r}")
    return default

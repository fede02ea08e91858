"""Public names of a package imported on first use (PEP 562), declared once.

A package lists where each public name lives; :func:`attach` gives it the module-level
``__getattr__``, ``__dir__`` and ``__all__`` that import the private submodule when a name
is first used (the pattern of scientific Python's SPEC 1 and ``lazy_loader.attach``). So
``import daskflow`` and ``daskflow validate`` stay fast, and a worker unpickling a block
imports NumPy and SciPy, not dask.dataframe. Type checkers read the ``TYPE_CHECKING``
imports beside the call; tests/test_layers.py checks they name exactly ``__all__``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["attach"]


def attach(package: str, names: Mapping[str, Sequence[str]]
           ) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for ``package``.

    Parameters
    ----------
    package : the package's ``__name__``
    names : submodule (relative, e.g. ``"_fs"``) -> the public names it defines

    Examples
    --------
    >>> __getattr__, __dir__, __all__ = attach(__name__, {"_fs": ["open_filesystem"]})  # doctest: +SKIP
    """
    where = {name: submodule for submodule, members in names.items() for name in members}
    public = sorted(where)

    def __getattr__(name: str) -> Any:
        if name in where:
            value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
            importlib.import_module(package).__dict__[name] = value  # looked up once
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(importlib.import_module(package).__dict__) | set(public))

    return __getattr__, __dir__, public

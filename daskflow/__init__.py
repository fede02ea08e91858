"""daskflow: out-of-core machine learning on Dask for product event logs.

``daskflow.run`` (and its ``ExperimentResult``) are imported on first use (PEP 562), so
``import daskflow`` stays fast: it loads neither Dask nor the experiment runner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from daskflow._errors import (
    ClusterError,
    ConfigError,
    DaskflowError,
    DataError,
    OutputError,
    ParameterError,
    RunInterrupted,
    SchemaError,
)
from daskflow._version import __version__

if TYPE_CHECKING:
    from daskflow.experiment._api import ExperimentResult, run

__all__ = ["ClusterError", "ConfigError", "DaskflowError", "DataError", "ExperimentResult", "OutputError",
           "ParameterError", "RunInterrupted", "SchemaError", "__version__", "run"]

_LAZY = {"run": "daskflow.experiment._api", "ExperimentResult": "daskflow.experiment._api"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # looked up once
        return value
    raise AttributeError(f"module 'daskflow' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

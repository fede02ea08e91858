"""daskflow: out-of-core machine learning on Dask for product event logs.

``daskflow.run`` (and its ``ExperimentResult``) are imported on first use (PEP 562), so
``import daskflow`` stays fast: it loads neither Dask nor the experiment runner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from daskflow._errors import (
    ClusterError,
    ConfigError,
    DaskflowError,
    DataError,
    ManifestError,
    OutputError,
    ParameterError,
    RunInterrupted,
    SchemaError,
)
from daskflow._lazy import attach
from daskflow._version import __version__

if TYPE_CHECKING:
    from daskflow.experiment._api import ExperimentResult, run

__getattr__, __dir__, _LAZY_NAMES = attach(__name__, {"experiment._api": ["ExperimentResult", "run"]})
__all__ = ["ClusterError", "ConfigError", "DaskflowError", "DataError", "ManifestError", "OutputError",
           "ParameterError",
           "RunInterrupted", "SchemaError", "__version__", *_LAZY_NAMES]

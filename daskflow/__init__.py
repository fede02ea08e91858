"""daskflow: out-of-core machine learning on Dask for product event logs."""

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

__all__ = ["ClusterError", "ConfigError", "DaskflowError", "DataError", "OutputError",
           "ParameterError", "RunInterrupted", "SchemaError", "__version__"]

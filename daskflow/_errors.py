"""The exception tree every daskflow subsystem raises from.

A user mistake (bad config, missing or malformed data, a value out of range) is a
:class:`DaskflowError`; the CLI prints its message and exits with code 2. Anything
else escaping the library is a bug and exits with code 1.

Messages follow one template so they read the same everywhere::

    <what was wrong> (<where>): expected <what was expected>. <how to fix it>
"""

from __future__ import annotations

__all__ = [
    "DaskflowError",
    "ConfigError",
    "DataError",
    "SchemaError",
    "ClusterError",
    "ManifestError",
    "OutputError",
    "ParameterError",
    "RunInterrupted",
]


class DaskflowError(Exception):
    """Base class of every error caused by the user's input rather than by a bug."""


class ConfigError(DaskflowError, ValueError):
    """The experiment configuration (file, overrides or environment) is invalid."""


class DataError(DaskflowError, ValueError):
    """Input data is missing, unreadable, empty or holds invalid values."""


class SchemaError(DataError, TypeError):
    """A table lacks a declared column or a column has the wrong type."""


class ClusterError(DaskflowError, RuntimeError):
    """The Dask scheduler could not be started or reached."""


class ManifestError(ClusterError, ValueError):
    """A DaskCluster manifest that the operator's CRD (or the renderer) rejects."""


class OutputError(DaskflowError, OSError):
    """A result could not be written or published where it was asked to go."""


class ParameterError(DaskflowError, ValueError):
    """An estimator's hyperparameter is out of range or of the wrong type."""


class RunInterrupted(KeyboardInterrupt):
    """A run interrupted (Ctrl-C, SIGTERM) after a checkpoint: its working directory is kept.

    Raised by the experiment runner from the original interrupt, so it is still a
    ``KeyboardInterrupt`` to every caller. Nothing was published; ``work_dir`` holds the
    checkpoints, and ``daskflow run CONFIG [overrides] --resume <work_dir>`` continues.
    """

    def __init__(self, work_dir: object) -> None:
        super().__init__(f"interrupted; nothing was published; the working directory {work_dir} "
                         "is kept for --resume")
        #: The kept working directory (a ``pathlib.Path``).
        self.work_dir = work_dir

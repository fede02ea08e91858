"""Running experiments described by a config: stages, run directories, metrics."""

from daskflow.experiment._api import ExperimentResult, run
from daskflow.experiment._preflight import preflight
from daskflow.experiment._runner import RunResult, run_experiment

__all__ = ["ExperimentResult", "RunResult", "preflight", "run", "run_experiment"]

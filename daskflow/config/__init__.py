"""Experiment configuration: typed models and the YAML loader.

Only the experiment runner and the CLI import this package; library layers take plain
keyword arguments.
"""

from daskflow.config._loader import (
    config_to_yaml,
    load_config,
    load_config_data,
    parse_overrides,
    validate_config,
)
from daskflow.config._models import (
    STAGES,
    ClusterConfig,
    Config,
    DataConfig,
    EvaluateConfig,
    ExperimentConfig,
    FeaturesConfig,
    InteractionsConfig,
    ModelConfig,
    OutputConfig,
    PredictConfig,
    SampleConfig,
    SourceConfig,
    TuneConfig,
    stages_to_run,
)
from daskflow.config._redact import REDACTED, Secrets, redact_data, redacting

__all__ = [
    "REDACTED",
    "STAGES",
    "ClusterConfig",
    "Config",
    "DataConfig",
    "EvaluateConfig",
    "ExperimentConfig",
    "FeaturesConfig",
    "InteractionsConfig",
    "ModelConfig",
    "OutputConfig",
    "PredictConfig",
    "SampleConfig",
    "Secrets",
    "SourceConfig",
    "TuneConfig",
    "config_to_yaml",
    "load_config",
    "load_config_data",
    "parse_overrides",
    "redact_data",
    "redacting",
    "stages_to_run",
    "validate_config",
]

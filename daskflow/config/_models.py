"""The experiment file as typed, frozen pydantic models.

Every section forbids unknown keys, so a typo is an error naming the key rather than
a silently ignored setting. Defaults here are the documented defaults
(docs/configuration.md lists them all).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from daskflow.io._filters import filters_as_tuples

__all__ = [
    "Config",
    "ExperimentConfig",
    "ClusterConfig",
    "DataConfig",
    "SampleConfig",
    "SourceConfig",
    "FeaturesConfig",
    "InteractionsConfig",
    "ModelConfig",
    "EvaluateConfig",
    "TuneConfig",
    "PredictConfig",
    "OutputConfig",
    "STAGES",
    "stages_to_run",
]

#: Stages an experiment can run, in the order the runner runs them.
STAGES = ("kpis", "interactions", "train", "evaluate", "tune", "predict")
Stage = Literal["kpis", "interactions", "train", "evaluate", "tune", "predict"]

#: Logical column types a source schema may declare (see daskflow.io.COLUMN_TYPES).
ColumnType = Literal["string", "integer", "float", "number", "boolean", "timestamp",
                     "date", "category", "int32", "int64", "float32", "float64"]

FILTER_OPS = ("=", "==", "!=", "<", "<=", ">", ">=", "in", "not in")

# Stages whose results later stages need, and stages not available yet (with the reason).
_NEEDS = {"train": ("interactions",), "evaluate": ("interactions",),
          "predict": ("interactions", "train")}
_NOT_YET = {"tune": "tuning arrives with the tuning issue; remove 'tune' from experiment.stages"}

PositiveInt = Annotated[int, Field(ge=1)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ExperimentConfig(_Section):
    """Name, seed and stages of the experiment."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                      description="Names the run directory outputs/<name>/<run_id>/.")
    seed: int = Field(0, description="Seed of every random choice the experiment makes.")
    stages: tuple[Stage, ...] = Field(("kpis", "interactions", "train", "evaluate"),
                                      description="Stages to run; they always run in the order of STAGES.")
    description: str = ""

    @field_validator("stages")
    @classmethod
    def _no_duplicates(cls, stages: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(stages)) != len(stages):
            raise ValueError(f"stages must not repeat, got {list(stages)}")
        return stages


class ClusterConfig(_Section):
    """Where the Dask work runs: an embedded LocalCluster or a running scheduler."""

    kind: Literal["local", "remote", "kubernetes"] = "local"
    address: str | None = Field(None, pattern=r"^(tcp|tls|inproc|ucx|ws|wss)://.+",
                                description="Scheduler address for kind=remote, e.g. tcp://10.0.0.5:8786.")
    n_workers: PositiveInt = 2
    threads_per_worker: PositiveInt = 1
    memory_limit: str = Field("auto", description="Per worker: 'auto', '0' (no limit) or a size like '4GiB'.")
    processes: bool = True
    dashboard_address: str = ":8787"
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to wait for a remote scheduler.")

    @model_validator(mode="before")
    @classmethod
    def _address_implies_remote(cls, data: Any) -> Any:
        # `cluster: {address: tcp://...}` is enough to mean a remote scheduler.
        if isinstance(data, dict) and data.get("address") and "kind" not in data:
            data = {**data, "kind": "remote"}
        return data

    @model_validator(mode="after")
    def _address_matches_kind(self) -> ClusterConfig:
        if self.kind == "remote" and not self.address:
            raise ValueError("kind 'remote' needs cluster.address, e.g. tcp://127.0.0.1:8786")
        if self.kind == "local" and self.address:
            raise ValueError("cluster.address is only used with kind 'remote'; remove it or set kind: remote")
        return self


class SampleConfig(_Section):
    """A generated sample lake, written to ``path`` when it is not there yet."""

    path: str = "data/sample"
    scale: Literal["small", "medium", "large"] = "small"
    format: Literal["parquet", "orc"] = "parquet"
    seed: int = 0



class SourceConfig(_Section):
    """One table of the data lake."""

    uri: str = Field(min_length=1, description="Any fsspec URL or local path.")
    format: Literal["parquet", "orc"] = "parquet"
    columns: tuple[str, ...] | None = None
    filters: list[Any] | None = Field(None, description="DNF filters as dask takes them.")
    storage_options: dict[str, Any] = Field(default_factory=dict)
    required_schema: dict[str, ColumnType] = Field(default_factory=dict, alias="schema")

    @field_validator("filters", mode="before")
    @classmethod
    def _filters_as_tuples(cls, value: Any) -> Any:
        return filters_as_tuples(value)

    @field_validator("filters")
    @classmethod
    def _check_filters(cls, filters: list[Any] | None) -> list[Any] | None:
        if filters is None:
            return None
        groups = [filters] if all(isinstance(f, tuple) for f in filters) else filters
        for group in groups:
            if not isinstance(group, list):
                raise ValueError(f"expected a list of [column, op, value] triples, got {group!r}")
            for item in group:
                if not (isinstance(item, tuple) and len(item) == 3):
                    raise ValueError(f"each filter must be [column, op, value], got {item!r}")
                if item[1] not in FILTER_OPS:
                    raise ValueError(f"unknown filter operator {item[1]!r} in {list(item)}; "
                                     f"allowed: {', '.join(FILTER_OPS)}")
        return filters


class DataConfig(_Section):
    """The named tables an experiment reads, and optionally a sample lake to generate."""

    sample: SampleConfig | None = None
    sources: dict[str, SourceConfig] = Field(min_length=1)


class InteractionsConfig(_Section):
    """How the listens table becomes a users x items matrix."""

    source: str = "listens"
    user_col: str = "user_id"
    item_col: str = "track_id"
    weight: str = Field("count", description="'count' (one per row) or a numeric column to sum.")
    time_col: str = "ts"
    block_size: PositiveInt = Field(50_000, description="Users (or items) per CSR row-block.")


class FeaturesConfig(_Section):
    interactions: InteractionsConfig = InteractionsConfig()


class ModelConfig(_Section):
    """The recommender to train; ``params`` are its constructor arguments."""

    name: str = "popularity"
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known_model(cls, name: str) -> str:
        from daskflow.models import available_models

        names = available_models("recommender")
        if name not in names:
            raise ValueError(f"unknown model {name!r}; available: {', '.join(names)}")
        return name


class EvaluateConfig(_Section):
    """Leave-k-out evaluation with ranking metrics."""

    splits: tuple[Literal["random", "by_time"], ...] = ("random", "by_time")
    holdout: PositiveInt = Field(1, description="Items held out per user (the k of leave-k-out).")
    min_user_items: PositiveInt = Field(3, description="Users with fewer distinct items are not evaluated.")
    k: tuple[PositiveInt, ...] = (5, 10)
    metrics: tuple[Literal["precision", "recall", "map", "ndcg", "auc"], ...] = (
        "precision", "recall", "map", "ndcg")
    baselines: tuple[str, ...] = Field((), description="Models (default parameters) evaluated on "
                                       "the same splits beside model.name, e.g. [popularity].")

    @field_validator("baselines")
    @classmethod
    def _known_baselines(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        from daskflow.models import available_models

        known = available_models("recommender")
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; available: {', '.join(known)}")
        return names


class TuneConfig(_Section):
    """Hyperparameter search (run by the `tune` stage)."""

    method: Literal["grid", "random"] = "grid"
    params: dict[str, tuple[Any, ...]] = Field(default_factory=dict)
    metric: str = "ndcg@10"
    n_trials: PositiveInt | None = None


class PredictConfig(_Section):
    """Top-N recommendations for every user, written as Parquet."""

    n: PositiveInt = 10
    filter_seen: bool = True
    uri: str | None = Field(None, description="Where to write; default: "
                            "<run dir>/predictions/recommendations.parquet.")
    storage_options: dict[str, Any] = Field(default_factory=dict)


class OutputConfig(_Section):
    dir: str = "outputs"
    run_id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                               description="Default: a timestamp plus a random suffix.")


class Config(_Section):
    """A whole experiment file."""

    experiment: ExperimentConfig
    cluster: ClusterConfig = ClusterConfig()
    data: DataConfig
    features: FeaturesConfig = FeaturesConfig()
    model: ModelConfig = ModelConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    tune: TuneConfig | None = None
    predict: PredictConfig = PredictConfig()
    output: OutputConfig = OutputConfig()

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        source = self.features.interactions.source
        if source not in self.data.sources:
            raise ValueError(f"features.interactions.source is {source!r} but data.sources has only "
                             f"{', '.join(sorted(self.data.sources))}")
        if "tune" in self.experiment.stages and self.tune is None:
            raise ValueError("experiment.stages has 'tune' but there is no tune: section")
        return self


def stages_to_run(config: Config) -> list[str]:
    """The requested stages plus the ones they depend on, in execution order.

    Raises
    ------
    ConfigError
        A requested stage is not available in this version.
    """
    from daskflow._errors import ConfigError

    wanted = set(config.experiment.stages)
    for stage in list(wanted):
        wanted.update(_NEEDS.get(stage, ()))
    for stage in sorted(wanted & set(_NOT_YET)):
        raise ConfigError(f"stage {stage!r} (experiment.stages) is not available in this version: "
                          f"{_NOT_YET[stage]}")
    return [s for s in STAGES if s in wanted]

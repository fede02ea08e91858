"""The experiment file as typed, frozen pydantic models.

Every section forbids unknown keys, so a typo is an error naming the key rather than
a silently ignored setting. Defaults here are the documented defaults
(docs/configuration.md lists them all).
"""

from __future__ import annotations

import re
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
    "ConversionConfig",
    "ConversionSourcesConfig",
    "ClassifierConfig",
    "ConversionSplitConfig",
    "ConvergenceConfig",
    "ScoreConfig",
    "OutputConfig",
    "STAGES",
    "stages_to_run",
]

#: Stages an experiment can run, in the order the runner runs them. The recommender:
#: interactions -> train -> evaluate -> predict; the conversion model: features ->
#: classify (train and evaluate every configured classifier) -> score (every user).
STAGES = ("kpis", "interactions", "train", "evaluate", "features", "classify", "tune", "predict", "score")
Stage = Literal["kpis", "interactions", "train", "evaluate", "features", "classify", "tune", "predict",
                "score"]

#: Logical column types a source schema may declare (see daskflow.io.COLUMN_TYPES).
ColumnType = Literal["string", "integer", "float", "number", "boolean", "timestamp",
                     "date", "category", "int32", "int64", "float32", "float64"]

FILTER_OPS = ("=", "==", "!=", "<", "<=", ">", ">=", "in", "not in")

# Stages whose results later stages need, and stages not available yet (with the reason).
_NEEDS = {"train": ("interactions",), "evaluate": ("interactions",),
          "predict": ("interactions", "train"), "classify": ("features",),
          "score": ("features", "classify")}
_NOT_YET: dict[str, str] = {}

PositiveInt = Annotated[int, Field(ge=1)]


def _registered(name: str, kind: str, noun: str) -> str:
    """``name`` if the model registry has it as ``kind``; else an error listing what it has."""
    from daskflow.models import available_models

    names = available_models(kind)
    if name not in names:
        raise ValueError(f"unknown {noun} {name!r}; available: {', '.join(names)}")
    return name


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


def _default_image() -> str:
    from daskflow.cluster import default_image

    return default_image()


class KubernetesConfig(_Section):
    """A DaskCluster created through the dask-kubernetes operator (docs/kubernetes.md)."""

    name: str = Field("daskflow", description="DaskCluster name: lowercase letters, digits and '-', at "
                      "most 53 (its scheduler Service is <name>-scheduler).")
    namespace: str | None = Field(None, description="Default: the namespace of the current kubeconfig "
                                  "context.")
    image: str = Field(default_factory=_default_image, min_length=1,
                       description="Scheduler and worker image; default: the official Dask image of this "
                       "dask and Python version.")
    n_workers: int = 2
    worker_cores: int = 1
    worker_memory: str = Field("4GiB", description="Per worker, e.g. '4GiB': requests, limits and "
                               "--memory-limit.")
    scheduler_service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    env: dict[str, str] = Field(default_factory=dict)
    env_from_secrets: tuple[str, ...] = Field((), description="Kubernetes Secrets whose keys become "
                                              "environment variables (storage credentials).")
    extra_pip_packages: tuple[str, ...] = ()
    idle_timeout: int = 0
    api_timeout: float = Field(10.0, gt=0, description="Seconds per attempt to reach the Kubernetes API.")
    api_retries: int = 3
    startup_timeout: float = Field(300.0, gt=0, description="Seconds for the operator to start the "
                                   "scheduler before the cluster is deleted and the run fails.")

    @field_validator("name", "namespace", mode="before")
    @classmethod
    def _dns_label(cls, value: Any, info: Any) -> Any:
        import re

        limit = 53 if info.field_name == "name" else 63
        if value is not None and not (isinstance(value, str) and len(value) <= limit
                                      and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", value)):
            raise ValueError(f"expected lowercase letters, digits and '-', starting and ending with a "
                             f"letter or digit, at most {limit} characters, got {value!r}")
        return value

    @field_validator("n_workers", "worker_cores", "idle_timeout", "api_retries", mode="before")
    @classmethod
    def _whole_number(cls, value: Any, info: Any) -> Any:
        minimum = 0 if info.field_name in ("n_workers", "idle_timeout") else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"expected an integer >= {minimum}, got {value!r}")
        return value

    @field_validator("worker_memory", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        from dask.utils import parse_bytes

        try:
            valid = not isinstance(value, bool) and parse_bytes(value) > 0
        except (ValueError, TypeError):
            valid = False
        if not valid:
            raise ValueError(f"expected a size such as '4GiB' or '512MiB', got {value!r}")
        return str(value)

    @field_validator("env", mode="before")
    @classmethod
    def _env_strings(cls, env: Any) -> Any:
        # YAML reads `OMP_NUM_THREADS: 1` as a number; the container gets a string either way.
        if isinstance(env, dict):
            return {k: str(v).lower() if isinstance(v, bool) else str(v) if isinstance(v, (int, float)) else v
                    for k, v in env.items()}
        return env

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        import re

        bad = [name for name in env if not re.fullmatch(r"[-._a-zA-Z][-._a-zA-Z0-9]*", name)]
        if bad:
            raise ValueError(f"invalid environment variable name(s) {bad}: expected letters, digits, "
                             "'_', '-' or '.', not starting with a digit")
        if "EXTRA_PIP_PACKAGES" in env:
            raise ValueError("set extra_pip_packages rather than env.EXTRA_PIP_PACKAGES")
        return env

    @field_validator("extra_pip_packages", "env_from_secrets")
    @classmethod
    def _single_words(cls, items: tuple[str, ...]) -> tuple[str, ...]:
        bad = [item for item in items if not item or any(c.isspace() for c in item)]
        if bad:
            raise ValueError(f"entries must be non-empty and without spaces, got {bad}")
        return items


class ClusterConfig(_Section):
    """Where the Dask work runs: an embedded LocalCluster, a running scheduler, or Kubernetes."""

    kind: Literal["local", "remote", "kubernetes"] = "local"
    address: str | None = Field(None, pattern=r"^(tcp|tls|inproc|ucx|ws|wss)://.+",
                                description="Scheduler address for kind=remote, e.g. tcp://10.0.0.5:8786.")
    n_workers: PositiveInt = 2
    threads_per_worker: PositiveInt = 1
    memory_limit: str = Field("auto", description="Per worker: 'auto', '0' (no limit) or a size like '4GiB'.")
    processes: bool = True
    dashboard_address: str = ":8787"
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to wait for a remote scheduler.")
    kubernetes: KubernetesConfig | None = Field(None, description="Settings of kind=kubernetes (the "
                                                "local-only keys above do not apply to it).")

    @model_validator(mode="before")
    @classmethod
    def _address_implies_remote(cls, data: Any) -> Any:
        # `cluster: {address: tcp://...}` is enough to mean a remote scheduler, and
        # `cluster: {kubernetes: {...}}` a Kubernetes cluster.
        if isinstance(data, dict) and data.get("address") and "kind" not in data:
            data = {**data, "kind": "remote"}
        if isinstance(data, dict) and data.get("kubernetes") is not None and "kind" not in data:
            data = {**data, "kind": "kubernetes"}
        if isinstance(data, dict) and data.get("kind") == "kubernetes" and data.get("kubernetes") is None:
            data = {**data, "kubernetes": {}}  # every default
        return data

    @model_validator(mode="after")
    def _address_matches_kind(self) -> ClusterConfig:
        if self.kind == "remote" and not self.address:
            raise ValueError("kind 'remote' needs cluster.address, e.g. tcp://127.0.0.1:8786")
        if self.kind != "remote" and self.address:
            raise ValueError("cluster.address is only used with kind 'remote'; remove it or set kind: remote")
        if self.kind != "kubernetes" and self.kubernetes is not None:
            raise ValueError("cluster.kubernetes is only used with kind 'kubernetes'; remove it or set "
                             "kind: kubernetes")
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
        return _registered(name, "recommender", "model")


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
    """Hyperparameter search (the `tune` stage): trials fanned out on the cluster."""

    target: Literal["conversion", "recommender"] = Field(
        "conversion", description="What to tune: a conversion classifier (conversion.models) or the "
        "recommender of model.name.")
    model: str | None = Field(None, description="The conversion.models entry to tune; default: the "
                              "first one. Not used for the recommender (model.name is tuned).")
    method: Literal["grid", "random"] = "grid"
    params: dict[str, tuple[Any, ...]] = Field(min_length=1)
    metric: str | None = Field(None, description="Default roc_auc (conversion) or ndcg@10 (recommender).")
    n_trials: PositiveInt | None = None
    folds: PositiveInt = Field(3, description="k of stratified k-fold (conversion, >= 2) or the number of "
                               "repeated leave-k-out splits (recommender).")
    holdout: float | None = Field(None, gt=0, lt=1, description="Validate on one holdout share instead "
                                  "of k folds (conversion).")

    @field_validator("params")
    @classmethod
    def _non_empty_lists(cls, params: dict[str, tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
        for name, values in params.items():
            if not values:
                raise ValueError(f"tune.params.{name} is empty: give at least one value")
        return params

    @model_validator(mode="after")
    def _consistent(self) -> TuneConfig:
        if self.method == "random" and self.n_trials is None:
            raise ValueError("tune.method random needs tune.n_trials (how many settings to draw)")
        classifier_metrics = ("roc_auc", "pr_auc", "log_loss", "brier")
        if self.target == "conversion":
            if self.metric is not None and self.metric not in classifier_metrics:
                raise ValueError(f"tune.metric {self.metric!r} is not a classifier metric: expected one "
                                 f"of {', '.join(classifier_metrics)}")
            if self.holdout is None and self.folds < 2:
                raise ValueError("tune.folds must be >= 2 for k-fold (or set tune.holdout)")
        else:
            if self.metric is not None and not re.fullmatch(r"(precision|recall|map|ndcg)@[1-9][0-9]*|auc",
                                                            self.metric):
                raise ValueError(f"tune.metric {self.metric!r} is not a ranking metric: expected "
                                 "precision@k, recall@k, map@k, ndcg@k or auc")
            if self.model is not None:
                raise ValueError("tune.model names a conversion.models entry; the recommender tuned is "
                                 "model.name: remove tune.model")
            if self.holdout is not None:
                raise ValueError("tune.holdout is for classifiers; the recommender holds out "
                                 "evaluate.holdout items per user")
        return self

    @property
    def resolved_metric(self) -> str:
        """The metric to optimise, with the target's default."""
        return self.metric or ("roc_auc" if self.target == "conversion" else "ndcg@10")


class PredictConfig(_Section):
    """Top-N recommendations for every user, written as Parquet."""

    n: PositiveInt = 10
    filter_seen: bool = True
    uri: str | None = Field(None, description="Where to write; default: "
                            "<run dir>/predictions/recommendations.parquet.")
    storage_options: dict[str, Any] = Field(default_factory=dict)


class ConversionSourcesConfig(_Section):
    """The ``data.sources`` entries the conversion features are built from."""

    listens: str = "listens"
    users: str = "users"
    impressions: str = "ad_impressions"
    conversions: str = "conversions"


class ClassifierConfig(_Section):
    """One classifier of the comparison: a registered model and its constructor arguments."""

    model: str = Field(description="A registered classifier, e.g. logistic_regression.")
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _known_classifier(cls, name: str) -> str:
        return _registered(name, "classifier", "classifier")


class ConversionSplitConfig(_Section):
    """How exposed users are split into training and test users."""

    by: Literal["user", "time"] = Field("user", description="'user': a stable hash of user_id; 'time': "
                                        "users first exposed later are the test set.")
    test_size: float = Field(0.25, gt=0, lt=1)


class ConvergenceConfig(_Section):
    """The SGD convergence plot: one SGD fit per step size, loss per iteration."""

    model: str = Field(description="A conversion.models entry using logistic_regression with solver sgd.")
    step_sizes: tuple[Annotated[float, Field(gt=0)], ...] = Field(min_length=1)


class ScoreConfig(_Section):
    """P(convert) for every user, written as Parquet (user_id, p_convert, decile)."""

    model: str | None = Field(None, description="The conversion.models entry that scores; default: the "
                              "best test ROC AUC.")
    uri: str | None = Field(None, description="Default: <run dir>/predictions/conversion_scores.parquet.")
    storage_options: dict[str, Any] = Field(default_factory=dict)


def _default_classifiers() -> dict[str, ClassifierConfig]:
    return {"logistic_regression": ClassifierConfig(model="logistic_regression")}


class ConversionConfig(_Section):
    """The conversion model P(convert | saw house ad): features, classifiers, evaluation, scoring."""

    sources: ConversionSourcesConfig = ConversionSourcesConfig()
    window_days: PositiveInt = Field(7, description="A conversion counts within this many days after "
                                     "the first impression.")
    session_gap_minutes: PositiveInt = 30
    features_uri: str | None = Field(None, description="Reuse features saved here, or save them here "
                                     "when missing.")
    storage_options: dict[str, Any] = Field(default_factory=dict)
    split: ConversionSplitConfig = ConversionSplitConfig()
    models: dict[str, ClassifierConfig] = Field(default_factory=_default_classifiers, min_length=1)
    in_memory_bytes: int = Field(256 * 2**20, ge=0, description="Training and test tables up to this "
                                 "size are gathered and fitted in memory; larger ones block by block "
                                 "on the cluster. 0: always on the cluster.")
    depths: tuple[Annotated[float, Field(gt=0, le=1)], ...] = (0.05, 0.1, 0.2, 0.3, 0.5)
    calibration_bins: int = Field(10, ge=2)
    convergence: ConvergenceConfig | None = None
    score: ScoreConfig = ScoreConfig()

    @model_validator(mode="after")
    def _names_exist(self) -> ConversionConfig:
        names = ", ".join(self.models)
        if self.convergence is not None:
            entry = self.models.get(self.convergence.model)
            if entry is None:
                raise ValueError(f"conversion.convergence.model {self.convergence.model!r} is not in "
                                 f"conversion.models ({names})")
            if entry.model != "logistic_regression" or entry.params.get("solver") != "sgd":
                raise ValueError(f"conversion.convergence.model {self.convergence.model!r} must be a "
                                 "logistic_regression with params.solver: sgd")
        if self.score.model is not None and self.score.model not in self.models:
            raise ValueError(f"conversion.score.model {self.score.model!r} is not in conversion.models "
                             f"({names})")
        return self


class OutputConfig(_Section):
    dir: str = "outputs"
    run_id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                               description="Default: a timestamp plus a random suffix.")
    performance_report: bool = Field(False, description="Save Dask's performance report of the stages "
                                     "as dask-performance.html in the run directory.")


class Config(_Section):
    """A whole experiment file."""

    experiment: ExperimentConfig
    cluster: ClusterConfig = ClusterConfig()
    data: DataConfig
    features: FeaturesConfig = FeaturesConfig()
    model: ModelConfig = ModelConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    conversion: ConversionConfig = ConversionConfig()
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
        conversion_stages = {"features", "classify", "score"} & set(self.experiment.stages)
        if "tune" in self.experiment.stages and self.tune is not None and self.tune.target == "conversion":
            conversion_stages.add("tune")
        if conversion_stages:
            wanted = self.conversion.sources.model_dump().items()
            missing = [f"{role}={name!r}" for role, name in wanted if name not in self.data.sources]
            if missing:
                raise ValueError(f"stage(s) {sorted(conversion_stages)} read conversion.sources "
                                 f"{', '.join(missing)}, missing from data.sources (has "
                                 f"{', '.join(sorted(self.data.sources))})")
        if self.tune is not None and self.tune.target == "conversion" and self.tune.model is not None \
                and self.tune.model not in self.conversion.models:
            raise ValueError(f"tune.model {self.tune.model!r} is not in conversion.models "
                             f"({', '.join(self.conversion.models)})")
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
    if "tune" in wanted and config.tune is not None:
        wanted.add("features" if config.tune.target == "conversion" else "interactions")
    for stage in list(wanted):
        wanted.update(_NEEDS.get(stage, ()))
    for stage in sorted(wanted & set(_NOT_YET)):
        raise ConfigError(f"stage {stage!r} (experiment.stages) is not available in this version: "
                          f"{_NOT_YET[stage]}")
    return [s for s in STAGES if s in wanted]

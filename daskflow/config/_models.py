"""The experiment file as typed, frozen pydantic models.

Every section forbids unknown keys, so a typo is an error naming the key rather than
a silently ignored setting. Defaults here are the documented defaults
(docs/configuration.md lists them all).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from daskflow.config._defaults import library_default
from daskflow.config._kinds import other_kind_problem
from daskflow.config._redact import Secrets
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
    "ContentConfig",
    "EvaluateConfig",
    "TuneConfig",
    "PredictConfig",
    "ClassifyConfig",
    "ClassifySelectionConfig",
    "TableConfig",
    "TableLabelConfig",
    "TableSplitConfig",
    "AggregatesConfig",
    "AggregateEventsConfig",
    "ClassifierConfig",
    "ConvergenceConfig",
    "ScoreConfig",
    "OutputConfig",
    "AbtestConfig",
    "KpisConfig",
    "STAGES",
    "stages_to_run",
]

#: Stages an experiment can run, in the order the runner runs them. The recommender:
#: interactions -> train -> evaluate -> predict; the conversion model: features ->
#: classify (train and evaluate every configured classifier) -> score (every user).
STAGES = ("kpis", "abtest", "interactions", "train", "evaluate", "features", "classify", "tune", "predict",
          "score")
Stage = Literal["kpis", "abtest", "interactions", "train", "evaluate", "features", "classify", "tune",
                "predict", "score"]

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


def _date_as_text(value: Any) -> Any:
    import datetime

    # YAML reads 2026-01-15 as a date: keep it as the text the user wrote.
    return value.isoformat() if isinstance(value, datetime.date) else value


def _iso_time(value: str) -> str:
    import datetime

    try:
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected an ISO date or timestamp such as 2026-01-15 or "
                         f"2026-01-15T00:00:00Z, got {value!r}") from None
    return value


#: A point in time written in the config: an ISO date or timestamp, kept as text.
IsoTime = Annotated[str, BeforeValidator(_date_as_text), AfterValidator(_iso_time)]


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

    name: str = Field(library_default("cluster", "render_manifest", "name"),
                      description="DaskCluster name: lowercase letters, digits and '-', at most 53 (its "
                      "scheduler Service is <name>-scheduler).")
    namespace: str | None = Field(None, description="Default: the namespace of the current kubeconfig "
                                  "context.")
    image: str = Field(default_factory=_default_image, min_length=1,
                       description="Scheduler and worker image; default: the official Dask image of this "
                       "dask and Python version.")
    n_workers: int = library_default("cluster", "render_manifest", "n_workers")
    worker_cores: int = library_default("cluster", "render_manifest", "worker_cores")
    worker_memory: str = Field(library_default("cluster", "render_manifest", "worker_memory"),
                               description="Per worker, e.g. '4GiB': requests, limits and --memory-limit.")
    scheduler_service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = library_default(
        "cluster", "render_manifest", "scheduler_service_type")
    env: dict[str, str] = Field(default_factory=dict)
    env_from_secrets: tuple[str, ...] = Field(
        library_default("cluster", "render_manifest", "env_from_secrets"),
        description="Kubernetes Secrets whose keys become environment variables (storage credentials).")
    extra_pip_packages: tuple[str, ...] = library_default("cluster", "render_manifest", "extra_pip_packages")
    idle_timeout: int = library_default("cluster", "render_manifest", "idle_timeout")
    api_timeout: float = Field(library_default("cluster", "check_api", "api_timeout"), gt=0,
                               description="Seconds per attempt to reach the Kubernetes API.")
    api_retries: int = library_default("cluster", "check_api", "api_retries")
    startup_timeout: float = Field(library_default("cluster", "start_kubecluster", "startup_timeout"), gt=0,
                                   description="Seconds for the operator to start the scheduler before the "
                                   "cluster is deleted and the run fails.")

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
        return _check_size(value, "per worker")

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


#: Memory a Dask worker needs at the least: its Python process with dask, distributed,
#: NumPy and pandas imported takes about 150 MiB before it holds any data.
MEMORY_LIMIT_FLOOR = 256 * 2**20
#: A local cluster may have at most this many workers (and threads in all) per core ...
MAX_LOCAL_PER_CORE = 4
#: ... and never more than this many, however many cores the machine has.
MAX_LOCAL_WORKERS = 512


def _check_size(value: Any, noun: str, special: tuple[str, ...] = ()) -> str:
    """``value`` as a size of at least :data:`MEMORY_LIMIT_FLOOR`, or one of ``special``."""
    from dask.utils import format_bytes, parse_bytes

    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else None
    if text is not None and text.lower() in special:
        return text.lower()
    allowed = "".join(f"'{word}', " for word in special)
    try:
        size = parse_bytes(text) if text else None
    except (ValueError, TypeError):
        size = None
    if size is None:
        raise ValueError(f"expected {allowed}a size such as '4GiB' or '512MiB', got {value!r}")
    if size < MEMORY_LIMIT_FLOOR:
        raise ValueError(f"{text} is {size:,} bytes {noun}, below the floor of "
                         f"{format_bytes(MEMORY_LIMIT_FLOOR)} ({MEMORY_LIMIT_FLOOR:,} bytes) a Dask worker "
                         f"needs to start and hold any data: expected at least 256MiB, e.g. '2GiB'"
                         + (f", or {allowed.rstrip(', ')}" if allowed else ""))
    return text


def _local_limit() -> tuple[int, int]:
    """This machine's cores and how many local workers (or threads in all) it may run."""
    from dask.system import CPU_COUNT

    return CPU_COUNT, min(MAX_LOCAL_PER_CORE * CPU_COUNT, MAX_LOCAL_WORKERS)


class ClusterConfig(_Section):
    """Where the Dask work runs: an embedded LocalCluster, a running scheduler, or Kubernetes."""

    kind: Literal["local", "remote", "kubernetes"] = "local"
    address: str | None = Field(None, pattern=r"^(tcp|tls|inproc|ucx|ws|wss)://.+",
                                description="Scheduler address for kind=remote, e.g. tcp://10.0.0.5:8786.")
    n_workers: PositiveInt = library_default("cluster", "start_local", "n_workers")
    threads_per_worker: PositiveInt = library_default("cluster", "start_local", "threads_per_worker")
    memory_limit: str = Field(library_default("cluster", "start_local", "memory_limit"),
                              description="Per worker: 'auto', '0' (no limit) or a size like '4GiB'.")
    processes: bool = library_default("cluster", "start_local", "processes")
    dashboard_address: str = library_default("cluster", "start_local", "dashboard_address")
    connect_timeout: float = Field(library_default("cluster", "reach_remote", "connect_timeout"), gt=0,
                                   description="Seconds to wait for a remote scheduler.")
    kubernetes: KubernetesConfig | None = Field(None, description="Settings of kind=kubernetes (the "
                                                "local-only keys above do not apply to it).")

    @field_validator("memory_limit", mode="before")
    @classmethod
    def _memory_limit(cls, value: Any) -> Any:
        # '0' (and YAML's 0) is no limit; every other size must let a worker start
        # ('1KiB' made workers die or hang with no message).
        if isinstance(value, int) and not isinstance(value, bool) and value == 0:
            return "0"
        return _check_size(value, "per worker", ("auto", "0"))

    @field_validator("n_workers", "threads_per_worker")
    @classmethod
    def _fits_this_machine(cls, value: int, info: Any) -> int:
        # A local cluster runs here: hundreds of worker processes on a few cores only thrash
        # (n_workers 1000 never came up). Remote and Kubernetes sizes are their own.
        if info.data.get("kind", "local") != "local":
            return value
        cores, limit = _local_limit()
        what = "workers" if info.field_name == "n_workers" else "threads per worker"
        if value > limit:
            raise ValueError(f"{value:,} local {what} on this machine's {cores} core(s) is more than "
                             f"{MAX_LOCAL_PER_CORE} per core: expected at most {limit}; lower it, or run "
                             "on a bigger cluster (cluster.kind remote or kubernetes)")
        workers = info.data.get("n_workers")
        if info.field_name == "threads_per_worker" and workers is not None and workers * value > limit:
            raise ValueError(f"n_workers x threads_per_worker = {workers} x {value} = {workers * value:,} "
                             f"threads on this machine's {cores} core(s) is more than {MAX_LOCAL_PER_CORE} "
                             f"per core: expected at most {limit} in all; lower one of them")
        return value

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
        if isinstance(data, dict):  # a setting of another kind is an error, never ignored (_kinds)
            for key, value in data.items():
                # address and kubernetes: _address_matches_kind, with the value's secrets hidden
                default = cls.model_fields[key].default if key in cls.model_fields else value
                if key not in ("address", "kubernetes") and value != default:
                    problem = other_kind_problem(key, value, data.get("kind", "local"))
                    if problem is not None:
                        raise ValueError(problem)
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
    scale: Literal["small", "medium", "large"] = library_default("sample", "generate_lake", "scale")
    format: Literal["parquet", "orc"] = library_default("sample", "generate_lake", "format")
    seed: int = library_default("sample", "generate_lake", "seed")



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
                if item[1] in ("in", "not in") and not isinstance(item[2], list):
                    raise ValueError(f"filter {list(item)}: {item[1]!r} takes a list of values, e.g. "
                                     f"[{item[0]}, {item[1]}, [{item[2]}]]")
        return filters


class DataConfig(_Section):
    """The named tables an experiment reads, and optionally a sample lake to generate."""

    format: Literal["parquet", "orc"] | None = Field(
        None, description="The format of every source (and of the sample lake) that sets none.")
    sample: SampleConfig | None = None
    sources: dict[str, SourceConfig] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _inherit_format(cls, data: Any) -> Any:
        # One `data.format: orc` instead of a `format:` on every source; a source's own wins.
        if not isinstance(data, dict) or data.get("format") is None:
            return data
        data = dict(data)
        sources = data.get("sources")
        if isinstance(sources, dict):
            data["sources"] = {name: {"format": data["format"], **source} if isinstance(source, dict)
                               else source for name, source in sources.items()}
        if isinstance(data.get("sample"), dict):
            data["sample"] = {"format": data["format"], **data["sample"]}
        return data


class InteractionsConfig(_Section):
    """How the listens table becomes a users x items matrix."""

    source: str = "listens"
    user_col: str = library_default("features", "build_interactions", "user_col")
    item_col: str = library_default("features", "build_interactions", "item_col")
    weight: str = Field(library_default("features", "build_interactions", "weight"),
                        description="'count' (one per row) or a numeric column to sum.")
    time_col: str = library_default("features", "build_interactions", "time_col")
    block_size: PositiveInt = Field(library_default("features", "build_interactions", "block_size"),
                                    description="Users (or items) per CSR row-block; at most "
                                    "10,000 blocks a side (see docs/configuration.md).")
    allow_empty_ids: bool = Field(library_default("features", "build_interactions", "allow_empty_ids"),
                                  description="Count empty or whitespace-only user/item IDs as "
                                  "IDs instead of refusing them.")

    @model_validator(mode="after")
    def _distinct_columns(self) -> InteractionsConfig:
        roles = {"user_col": self.user_col, "item_col": self.item_col, "time_col": self.time_col}
        if self.weight != "count":
            roles = {"weight": self.weight, **roles}
        seen: dict[str, str] = {}
        for role, column in roles.items():
            if column in seen:
                raise ValueError(f"features.interactions.{seen[column]} and features.interactions.{role} "
                                 f"are both {column!r}: each names a different column (weight: 'count' "
                                 "or a numeric column other than the IDs and the time)")
            seen[column] = role
        return self


#: A value of a label or split column as YAML writes it.
ColumnValue = str | bool | int | float


class TableLabelConfig(_Section):
    """The binary label of the entity table: a column and its positive value, or events after the cutoff."""

    column: str | None = Field(None, min_length=1, description="The label column; exactly two distinct "
                               "values (rows without a value are scored, not fitted).")
    positive: ColumnValue | None = Field(None, description="label.column: the value that is the positive "
                                         "class, e.g. \"yes\" or 1.")
    source: str | None = Field(None, min_length=1, description="A label from events: the data.sources "
                               "entry of the events (e.g. conversions); positive when the entity has one "
                               "in [features.aggregates.cutoff, cutoff + within_days).")
    id: str | None = Field(None, min_length=1, description="label.source: the events' entity ID column "
                           "(default: features.table.id).")
    time: str | None = Field(None, min_length=1, description="label.source: the events' timestamp column.")
    within_days: float | None = Field(None, gt=0, description="label.source: the label window's length "
                                      "in days, from the cutoff.")
    anchor: str | None = Field(None, min_length=1, description="label.source: a features.aggregates.anchors "
                               "entry: each entity's window starts at its own anchor instead of the cutoff; "
                               "entities without it get no label (scored, not fitted).")
    censor: bool = Field(False, description="label.anchor: an entity whose window ends after the cutoff "
                         "gets no label and <name>_censored is true (without censor such a window is "
                         "refused).")
    name: str | None = Field(None, min_length=1, description="label.source: the label column's name "
                             "(default <source>_within_<within_days>d).")
    closed: Literal["left", "right"] = Field("left", description="label.source: left: the window is [start, "
                                             "start + within_days); right: (start, start + within_days].")

    @model_validator(mode="after")
    def _one_kind(self) -> TableLabelConfig:
        by_column = self.column is not None or self.positive is not None
        by_events = any(v is not None for v in (self.source, self.id, self.time, self.within_days,
                                                 self.anchor, self.name)) or self.censor \
            or self.closed != "left"
        if by_column == by_events:
            raise ValueError("give either column and positive (a label column) or source, time and "
                             "within_days (a label from events after features.aggregates.cutoff)")
        if by_column and (self.column is None or self.positive is None):
            raise ValueError("a label column needs both column and positive, e.g. {column: churned, "
                             "positive: \"yes\"}")
        if by_events and (self.source is None or self.time is None or self.within_days is None):
            missing = [k for k in ("source", "time", "within_days") if getattr(self, k) is None]
            raise ValueError(f"a label from events needs source, time and within_days; missing "
                             f"{', '.join(missing)}")
        if self.censor and self.anchor is None:
            raise ValueError("label.censor applies to a label with an anchor (per-entity windows): a window "
                             "from features.aggregates.cutoff is checked against the data instead")
        return self

    @property
    def from_events(self) -> bool:
        return self.source is not None


class TableSplitConfig(_Section):
    """Which rows of the entity table train and which test: by a column, a hash, or a time."""

    column: str | None = Field(None, description="A column naming each row's side (with train and test).")
    train: tuple[ColumnValue, ...] = Field((), description="split.column: the value(s) of training rows.")
    test: tuple[ColumnValue, ...] = Field((), description="split.column: the value(s) of test rows; rows "
                                          "with other values are scored only.")
    hash: str | None = Field(None, description="A column (usually the id) whose stable hash draws the test "
                             "rows.")
    test_size: float | None = Field(None, gt=0, lt=1, description="split.hash: the share of test rows "
                                    "(default 0.2).")
    time: str | None = Field(None, description="A timestamp column: rows before the cutoff train, the "
                             "others test.")
    cutoff: IsoTime | None = Field(None, description="split.time: the cutoff, an ISO date or timestamp (UTC "
                               "unless it names a zone).")

    @field_validator("train", "test", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return value if isinstance(value, list | tuple) else (value,)

    @model_validator(mode="after")
    def _one_kind(self) -> TableSplitConfig:
        kinds = [k for k in ("column", "hash", "time") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"give exactly one of column (with train and test), hash (with test_size) or "
                             f"time (with cutoff), got {', '.join(kinds) or 'none'}")
        kind = kinds[0]
        if kind == "column" and not (self.train and self.test):
            raise ValueError("split.column needs train and test: the column's value(s) for each side")
        if kind == "column" and set(map(str, self.train)) & set(map(str, self.test)):
            raise ValueError(f"split.train and split.test share value(s) "
                             f"{sorted(set(map(str, self.train)) & set(map(str, self.test)))}")
        if kind == "time" and self.cutoff is None:
            raise ValueError("split.time needs cutoff, e.g. cutoff: 2026-01-01")
        others = {"train": self.train and kind != "column", "test": self.test and kind != "column",
                  "test_size": self.test_size is not None and kind != "hash",
                  "cutoff": self.cutoff is not None and kind != "time"}
        extra = [key for key, present in others.items() if present]
        if extra:
            raise ValueError(f"split.{', split.'.join(extra)} do(es) not apply to a split by {kind}: remove")
        return self

    @property
    def kind(self) -> str:
        return "column" if self.column is not None else "hash" if self.hash is not None else "time"


class TableConfig(_Section):
    """The entity table for classifiers: one row per entity of a source (docs/features.md)."""

    source: str = Field(min_length=1, description="The data.sources entry with one row per entity.")
    id: str = Field(min_length=1, description="The entity's ID column; unique.")
    label: TableLabelConfig
    split: TableSplitConfig
    categorical: tuple[str, ...] | None = Field(None, description="Columns to one-hot encode.")
    numeric: tuple[str, ...] | None = Field(None, description="Columns to standardise.")
    log: tuple[str, ...] = Field((), description="Numeric columns taken as log1p before scaling.")
    smooth: dict[str, str] = Field({}, description="{rate column: count column}: rates from few events "
                                   "pulled toward the training rows' pooled rate by prior_events "
                                   "pseudo-events.")
    prior_events: float = Field(library_default("features.tabular", "TableEncoder", "prior_events"), gt=0,
                                description="smooth: the pseudo-events of the prior.")
    drop: tuple[str, ...] = Field((), description="Columns not used. Every column not named anywhere is a "
                                  "feature, its role inferred from its type (logged).")


#: A window of features.aggregates: <n>d, <n>h or all.
_WINDOW = re.compile(r"^([1-9][0-9]*[dh]|all)$")


class AggregateSessionsConfig(_Section):
    gap_minutes: float = Field(30, gt=0, description="A silence longer than this many minutes between "
                               "two events starts a new session.")


class AggregateEventsConfig(_Section):
    """One event source's per-entity aggregates (docs/features.md, "Aggregates")."""

    source: str | None = Field(None, min_length=1, description="The data.sources entry of the events "
                               "(default: the entry's own name).")
    id: str = Field(min_length=1, description="The events' entity ID column; joins features.table.id.")
    time: str = Field(min_length=1, description="The events' timestamp column.")
    windows: tuple[str, ...] = Field(("all",), min_length=1, description="Windows ending at the cutoff: "
                                     "<n>d (days), <n>h (hours) or all (every event before the cutoff).")
    count: bool = Field(True, description="Events per window.")
    sum: tuple[str, ...] = Field((), description="Numeric columns summed per window.")
    mean: tuple[str, ...] = Field((), description="Numeric columns averaged per window.")
    min: tuple[str, ...] = Field((), description="Numeric columns' minimum per window.")
    max: tuple[str, ...] = Field((), description="Numeric columns' maximum per window.")
    nunique: tuple[str, ...] = Field((), description="Columns whose distinct values are counted per window.")
    active_days: bool = Field(False, description="Distinct UTC days with an event, per window.")
    recency: bool = Field(False, description="Days from the last and from the first event to the cutoff.")
    share: dict[str, tuple[ColumnValue, ...]] = Field({}, description="{column: [values]}: the share of "
                                                      "events with each value, per window.")
    sessions: AggregateSessionsConfig | None = Field(None, description="Sessions per window: runs of events "
                                                     "without a silence longer than gap_minutes.")
    share_other: bool = Field(False, description="share: also the share of events with none of the values "
                              "(missing ones included), named <name>_share_<column>_other_<window>.")
    since: str | None = Field(None, min_length=1, description="A features.aggregates.anchors entry: only "
                              "events at or after each entity's anchor (none for an entity without it).")
    until: str | None = Field(None, min_length=1, description="A features.aggregates.anchors entry: each "
                              "entity's own cutoff; no event at or after it counts, windows and recency end "
                              "there (the global cutoff for an entity without it).")

    @field_validator("windows", "sum", "mean", "min", "max", "nunique", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return value if isinstance(value, list | tuple) else (value,)

    @field_validator("windows")
    @classmethod
    def _durations(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [w for w in value if not _WINDOW.match(str(w))]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))} is not a duration: expected <n>d (days), <n>h "
                             "(hours) or all, e.g. [7d, 28d, all]")
        if len(set(value)) != len(value):
            raise ValueError(f"windows {list(value)} repeat a window: name each once")
        return value


class AggregateAnchorConfig(_Section):
    """A time per entity: the first event of a features.aggregates.events entry, or a table column."""

    events: str | None = Field(None, min_length=1, description="An events entry: each entity's first event "
                               "before the cutoff (also a timestamp column named after the anchor).")
    column: str | None = Field(None, min_length=1, description="A timestamp column of features.table.source.")
    floor: Literal["day"] | None = Field(None, description="day: the start of the anchor's UTC day.")

    @model_validator(mode="after")
    def _one_kind(self) -> AggregateAnchorConfig:
        if (self.events is None) == (self.column is None):
            raise ValueError("give exactly one of events (an events entry: its first event) or column (a "
                             "timestamp column of the entity table)")
        return self


class AggregatesConfig(_Section):
    """Per-entity aggregates of event logs as of a cutoff, joined to features.table by id."""

    cutoff: IsoTime | Literal["latest"] = Field(
        description="Events at or after this time never reach a feature; a label from events starts here. "
        "An ISO date or timestamp, UTC unless it names a zone; latest: 1 ms after the latest event.")
    events: dict[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")], AggregateEventsConfig] = Field(
        {}, description="{name: aggregates}: each entry's name prefixes its features, e.g. "
        "listens_sum_ms_played_28d.")
    anchors: dict[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")], AggregateAnchorConfig] = Field(
        {}, description="{name: anchor}: per-entity times that events' since/until and label.anchor name.")

    @model_validator(mode="after")
    def _anchors_named(self) -> AggregatesConfig:
        for name, anchor in self.anchors.items():
            if anchor.events is not None:
                entry = self.events.get(anchor.events)
                if entry is None:
                    raise ValueError(f"anchors.{name}.events is {anchor.events!r}, not an entry of events "
                                     f"(has {', '.join(self.events) or 'none'})")
                if entry.since is not None or entry.until is not None:
                    raise ValueError(f"anchors.{name}.events is {anchor.events!r}, whose events are bounded "
                                     "by since/until: anchor on an entry that reads every event")
        for name, entry in self.events.items():
            for key in ("since", "until"):
                value = getattr(entry, key)
                if value is not None and value not in self.anchors:
                    raise ValueError(f"events.{name}.{key} is {value!r}, not an entry of anchors (has "
                                     f"{', '.join(self.anchors) or 'none'}): define it, e.g. anchors: "
                                     f"{{{value}: {{events: <entry>}}}}")
        return self



class FeaturesConfig(_Section):
    interactions: InteractionsConfig = InteractionsConfig()
    table: TableConfig | None = Field(None, description="The entity table the classify, tune and score "
                                      "stages use instead of the sample lake's conversion features.")
    aggregates: AggregatesConfig | None = Field(None, description="Per-entity aggregates of event logs "
                                                "added to features.table (docs/features.md).")
    derived: dict[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")], str] = Field(
        {}, description="{name: expression}: columns computed from the table's columns in a small safe "
        "language (ratio, where, max, min, fill, day, log1p, abs, + - * /, comparisons; docs/features.md).")

    @field_validator("derived")
    @classmethod
    def _expressions(cls, derived: dict[str, str]) -> dict[str, str]:
        from daskflow.features.tabular._derived_kernels import parse

        for name, text in derived.items():
            try:
                parse(text)
            except ValueError as exc:
                raise ValueError(f"derived.{name}: {exc}") from None
        return derived


#: ContentToFactors' parameters a config may set under model.content.params.
_CONTENT_PARAMS = ("alpha", "norm", "hidden", "epochs", "learning_rate", "batch_size", "random_state")


class ContentConfig(_Section):
    """Item content for cold items: ALS learns to predict factors from it (docs/als.md)."""

    source: str = Field(min_length=1, description="The data.sources entry holding one row per item.")
    id: str = Field("item_id", min_length=1, description="Its column of item IDs (the interactions' items).")
    columns: tuple[str, ...] | None = Field(None, description="Content columns; default: all but id.")
    separators: dict[str, str] = Field(default_factory=dict, description="Multi-valued string columns: "
                                       "column -> separator, e.g. {genres: '|'}.")
    max_categories: PositiveInt = library_default("models", "ContentEncoder", "max_categories")
    model: Literal["ridge", "mlp"] = library_default("models", "ContentToFactors", "model")
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("separators")
    @classmethod
    def _non_empty_separators(cls, separators: dict[str, str]) -> dict[str, str]:
        empty = [column for column, separator in separators.items() if not separator]
        if empty:
            raise ValueError(f"empty separator for column(s) {empty}: give the string between values")
        return separators

    @field_validator("params")
    @classmethod
    def _known_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - set(_CONTENT_PARAMS))
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(unknown)} of the content model: allowed: "
                             f"{', '.join(_CONTENT_PARAMS)}")
        return params


class ModelConfig(_Section):
    """The recommender to train; ``params`` are its constructor arguments."""

    name: str = "popularity"
    params: dict[str, Any] = Field(default_factory=dict)
    content: ContentConfig | None = Field(None, description="Item content for cold items (model als only).")

    @field_validator("name")
    @classmethod
    def _known_model(cls, name: str) -> str:
        return _registered(name, "recommender", "model")

    @model_validator(mode="after")
    def _content_needs_als(self) -> ModelConfig:
        if self.content is not None and self.name != "als":
            raise ValueError(f"model.content needs model.name als (got {self.name!r}): only ALS learns "
                             "factors that content can predict")
        return self


class EvaluateConfig(_Section):
    """Leave-k-out evaluation with ranking metrics."""

    splits: tuple[Literal["random", "by_time"], ...] = ("random", "by_time")
    holdout: PositiveInt = Field(library_default("features", "leave_k_out_split", "k"),
                                 description="Items held out per user (the k of leave-k-out).")
    min_user_items: PositiveInt = Field(library_default("features", "leave_k_out_split", "min_items"),
                                        description="Users with fewer distinct items are not evaluated.")
    k: tuple[PositiveInt, ...] = library_default("evaluation", "evaluate_ranking", "k")
    #: The experiment's own choice, not evaluate_ranking's (which adds auc): AUC ranks every
    #: item of every user, far slower than the cut-off metrics on a large catalogue.
    metrics: tuple[Literal["precision", "recall", "map", "ndcg", "auc"], ...] = (
        "precision", "recall", "map", "ndcg")
    baselines: tuple[str, ...] = Field((), description="Models (default parameters) evaluated on "
                                       "the same splits beside model.name, e.g. [popularity].")
    cold_items: float | None = Field(None, gt=0, lt=1, description="Share of the items with content held "
                                     "out entirely for the cold-start evaluation (needs model.content).")

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
        "conversion", description="What to tune: a classifier (classify.models) or the "
        "recommender of model.name.")
    model: str | None = Field(None, description="The classify.models entry to tune; default: the "
                              "first one. Not used for the recommender (model.name is tuned).")
    method: Literal["grid", "random"] = library_default("tuning", "search", "method")
    params: dict[str, tuple[Any, ...]] = Field(min_length=1)
    metric: str | None = Field(None, description="Default roc_auc (conversion) or ndcg@10 (recommender).")
    n_trials: PositiveInt | None = library_default("tuning", "search", "n_trials")
    folds: PositiveInt = Field(library_default("tuning", "search", "folds"),
                               description="k of stratified k-fold (conversion, >= 2) or the number of "
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
                raise ValueError("tune.model names a classify.models entry; the recommender tuned is "
                                 "model.name: remove tune.model")
            if self.holdout is not None:
                raise ValueError("tune.holdout is for classifiers; the recommender holds out "
                                 "evaluate.holdout items per user")
        return self

    @property
    def resolved_metric(self) -> str:
        """The metric to optimise, with the target's default (its search function's)."""
        if self.metric is not None:
            return self.metric
        search = "search" if self.target == "conversion" else "search_recommender"
        return str(library_default("tuning", search, "metric"))


class ItemNamesConfig(_Section):
    """Where the report finds a readable name for each item of the sample recommendations."""

    source: str = Field(min_length=1, description="The data.sources entry of the item table.")
    id: str = Field("track_id", min_length=1, description="Its item ID column (the matrix's item IDs).")
    columns: tuple[str, ...] = Field(min_length=1, description="Columns joined into each item's label.")


class PredictConfig(_Section):
    """Top-N recommendations for every user, written as Parquet."""

    n: PositiveInt = library_default("prediction", "recommend_all", "n")
    filter_seen: bool = library_default("prediction", "recommend_all", "filter_seen")
    uri: str | None = Field(None, description="Where to write; default: "
                            "<run dir>/predictions/recommendations.parquet.")
    storage_options: dict[str, Any] = Field(default_factory=dict)
    examples: int = Field(5, ge=0, description="Users whose recommendations the report shows.")
    item_names: ItemNamesConfig | None = None


class ClassifierConfig(_Section):
    """One classifier of the comparison: a registered model and its constructor arguments."""

    model: str = Field(description="A registered classifier, e.g. logistic_regression.")
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _known_classifier(cls, name: str) -> str:
        return _registered(name, "classifier", "classifier")


class ConvergenceConfig(_Section):
    """The SGD convergence plot: one SGD fit per step size, loss per iteration."""

    model: str = Field(description="A classify.models entry using logistic_regression with solver sgd.")
    step_sizes: tuple[Annotated[float, Field(gt=0)], ...] = Field(min_length=1)


class ScoreConfig(_Section):
    """P(positive) for every entity, written as Parquet (id, probability, decile)."""

    model: str | None = Field(None, description="The classify.models entry that scores; default: the best "
                              "validation score on the training rows (classify.selection).")
    uri: str | None = Field(None, description="Default: <run dir>/predictions/scores.parquet.")
    storage_options: dict[str, Any] = Field(default_factory=dict)


def _default_classifiers() -> dict[str, ClassifierConfig]:
    return {"logistic_regression": ClassifierConfig(model="logistic_regression")}


class ClassifySelectionConfig(_Section):
    """How score picks its model when classify.score.model is unset: validation on training rows only."""

    metric: Literal["roc_auc", "pr_auc", "log_loss", "brier"] = library_default("tuning", "cross_validate",
                                                                                 "metric")
    folds: int = Field(library_default("tuning", "cross_validate", "folds"), ge=2,
                       description="k of stratified k-fold over the training rows.")
    holdout: float | None = Field(library_default("tuning", "cross_validate", "holdout"), gt=0, lt=1,
                                  description="Validate on one stratified share of the training rows "
                                  "instead of k folds.")


class ClassifyConfig(_Section):
    """The classifiers of the classify, tune and score stages, their evaluation and the scoring."""

    models: dict[str, ClassifierConfig] = Field(default_factory=_default_classifiers, min_length=1,
                                                description="Name -> classifier.")
    selection: ClassifySelectionConfig = ClassifySelectionConfig()
    in_memory_bytes: int = Field(256 * 2**20, ge=0, description="Training and test tables up to this "
                                 "size are gathered and fitted in memory; larger ones block by block "
                                 "on the cluster. 0: always on the cluster.")
    depths: tuple[Annotated[float, Field(gt=0, le=1)], ...] = Field(
        library_default("evaluation", "evaluate_classifier", "depths"),
        description="Shares of the test rows targeted (gains / targeting curve).")
    calibration_bins: int = Field(library_default("evaluation", "evaluate_classifier", "n_bins"), ge=2)
    # The run's own choice: the report shows intervals by default; evaluate_classifier's
    # n_resamples=0 keeps a library call cheap unless intervals are asked for.
    bootstrap: int = Field(200, ge=0, description="Resamples behind the report's 95% intervals of test "
                           "ROC AUC and kept@depth; 0: no intervals.")
    convergence: ConvergenceConfig | None = Field(None, description="The SGD convergence plot.")
    score: ScoreConfig = ScoreConfig()

    @model_validator(mode="after")
    def _names_exist(self) -> ClassifyConfig:
        names = ", ".join(self.models)
        if self.convergence is not None:
            entry = self.models.get(self.convergence.model)
            if entry is None:
                raise ValueError(f"classify.convergence.model {self.convergence.model!r} is not in "
                                 f"classify.models ({names})")
            if entry.model != "logistic_regression" or entry.params.get("solver") != "sgd":
                raise ValueError(f"classify.convergence.model {self.convergence.model!r} must be a "
                                 "logistic_regression with params.solver: sgd")
        if self.score.model is not None and self.score.model not in self.models:
            raise ValueError(f"classify.score.model {self.score.model!r} is not in classify.models ({names})")
        return self


#: The keys of the conversion: section, which the generic layer replaced, and what replaces each.
RETIRED_CONVERSION_KEYS = {
    "sources": "features.table.source (the entity table) and features.aggregates.events.<name>.source "
               "(each event log)",
    "window_days": "features.table.label.within_days (with label.source, anchor and closed)",
    "session_gap_minutes": "features.aggregates.events.<name>.sessions.gap_minutes",
    "features_uri": "nothing: the feature table is built each run (features.table)",
    "storage_options": "data.sources.<name>.storage_options (or classify.score.storage_options)",
    "split": "features.table.split (hash: user_id with test_size, column, or time with cutoff)",
    "models": "classify.models",
    "in_memory_bytes": "classify.in_memory_bytes",
    "depths": "classify.depths",
    "calibration_bins": "classify.calibration_bins",
    "bootstrap": "classify.bootstrap",
    "convergence": "classify.convergence",
    "score": "classify.score",
}


def _retired_conversion(section: Any) -> str:
    """The message for an old conversion: section: each key given and the key that replaces it."""
    keys = list(section) if isinstance(section, dict) and section else list(RETIRED_CONVERSION_KEYS)
    lines = [f"conversion.{key} -> {RETIRED_CONVERSION_KEYS.get(key, 'no replacement (unknown key)')}"
             for key in keys]
    return ("the conversion: section is gone: the classifier workload is configured by features.table, "
            "features.aggregates, features.derived and classify (configs/conversion.yaml, "
            "docs/conversion.md). Move " + "; ".join(lines))


class AbtestAssignmentsConfig(_Section):
    """Where the A/B test's unit -> variant assignments are, and what their columns are."""

    source: str = Field(min_length=1, description="The data.sources entry of the assignment log.")
    unit: str = Field("user_id", description="The randomisation unit's column (also in every metric source).")
    variant: str = "variant"
    time: str = Field("assigned_at", description="When the unit was assigned: metric windows start there.")
    control: str = Field("control", description="The control variant's value in the variant column.")
    experiment: str | None = Field(None, description="The experiment to analyse when the log holds several.")
    experiment_column: str = library_default("analytics", "assignment_units", "experiment_column")


class AbtestCupedConfig(_Section):
    """CUPED: adjust by the same metric over a pre-period before assignment (Deng et al. 2013)."""

    pre_days: PositiveInt = Field(description="Days before assignment the covariate sums over.")


class AbtestMetricConfig(_Section):
    """One metric of the A/B test, summed per unit over a window after its assignment."""

    source: str = Field(min_length=1, description="The data.sources entry the metric is computed from.")
    kind: Literal["proportion", "mean", "ratio"] = Field(description="proportion: share of units with a row "
                                                         "in the window; mean: per-unit sum of value (row "
                                                         "count without value); ratio: sum of value over "
                                                         "sum of denominator (delta method).")
    value: str | None = None
    denominator: str | None = Field(None, description="ratio: the denominator column; default the row count.")
    time: str = Field("ts", description="The source's timestamp column.")
    within_days: int = Field(description="Window length after assignment, in days (>= 1).")
    cuped: AbtestCupedConfig | None = None

    @field_validator("within_days", mode="before")
    @classmethod
    def _positive_days(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"expected a whole number of days >= 1, got {value!r}")
        return value

    @model_validator(mode="after")
    def _kind_fits(self) -> AbtestMetricConfig:
        if self.kind == "proportion" and self.value is not None:
            raise ValueError("a proportion counts units with a row in the window: remove value (or use "
                             "kind: mean)")
        if self.kind != "ratio" and self.denominator is not None:
            raise ValueError(f"denominator is only used with kind: ratio (kind is {self.kind!r})")
        if self.kind == "ratio" and self.value is None:
            raise ValueError("kind: ratio needs value (the numerator column)")
        if self.kind == "ratio" and self.cuped is not None:
            raise ValueError("cuped is not available for kind: ratio; remove cuped")
        return self


class AbtestConfig(_Section):
    """The `abtest` stage: per-variant statistics of an A/B test (docs/analytics.md)."""

    assignments: AbtestAssignmentsConfig
    metrics: dict[str, AbtestMetricConfig] = Field(min_length=1)
    correction: Literal["none", "bonferroni", "holm", "bh"] = Field(
        library_default("analytics", "analyze_abtest", "correction"),
        description="Multiple-testing correction over every (metric, treatment variant).")
    alpha: float = Field(library_default("analytics", "analyze_abtest", "alpha"), gt=0, lt=1)
    split: dict[str, Annotated[float, Field(gt=0)]] | None = Field(
        None, description="The design's share of each variant (SRM check); default equal shares.")
    srm_threshold: float = Field(library_default("analytics", "analyze_abtest", "srm_threshold"), gt=0, lt=1,
                                 description="A chi-square p-value below this flags a "
                                 "sample-ratio mismatch.")
    fail_on_srm: bool = Field(False, description="Fail the run (exit 2) on a sample-ratio mismatch instead "
                              "of flagging it.")
    power: float = Field(library_default("analytics", "analyze_abtest", "power"), gt=0, lt=1,
                         description="Power of the minimum detectable effect.")
    planned_units: PositiveInt | None = Field(None, description="Units the test is planned for (MDE and "
                                              "the sequential boundary); default the units so far.")

    @model_validator(mode="after")
    def _control_in_split(self) -> AbtestConfig:
        if self.split is not None and self.assignments.control not in self.split:
            raise ValueError(f"abtest.split has no share for the control {self.assignments.control!r} "
                             f"(has {', '.join(self.split)})")
        return self


class KpisActiveConfig(_Section):
    """What makes a user active on a day (DAU/WAU/MAU, lifecycle, retention)."""

    where: list[Any] | None = Field(None, description="DNF filters on the events, as data.sources' filters; "
                                    "default every event.")
    min_events: PositiveInt = Field(library_default("analytics", "activity_kpis", "min_events"),
                                    description="Matching events a user needs on a day to be active.")
    wau_days: PositiveInt = Field(library_default("analytics", "activity_kpis", "wau_days"),
                                  description="WAU's trailing window, in days.")
    mau_days: PositiveInt = Field(library_default("analytics", "activity_kpis", "mau_days"),
                                  description="MAU's trailing window, in days.")

    @field_validator("where", mode="before")
    @classmethod
    def _where_as_tuples(cls, value: Any) -> Any:
        return filters_as_tuples(value)

    @field_validator("where")
    @classmethod
    def _check_where(cls, where: list[Any] | None) -> list[Any] | None:
        return SourceConfig._check_filters(where)

    @model_validator(mode="after")
    def _windows(self) -> KpisActiveConfig:
        if self.wau_days > self.mau_days:
            raise ValueError(f"wau_days ({self.wau_days}) is longer than mau_days ({self.mau_days})")
        return self


class KpisRetentionConfig(_Section):
    """The retention cohort matrix."""

    cohort: Literal["first_activity", "signup"] = Field("first_activity", description="Cohort by the "
                                                        "period of first activity or of signup.")
    period: Literal["day", "week", "month"] = library_default("analytics", "activity_kpis",
                                                              "retention_period")
    periods: PositiveInt | None = Field(None, description="The last offset shown; default all the data can "
                                        "observe.")
    users: str = Field("users", description="cohort: signup: the data.sources entry of the users table.")
    signup: str = Field(library_default("analytics", "activity_kpis", "signup_column"),
                        description="cohort: signup: the users table's signup column.")


class KpisFunnelStepConfig(_Section):
    """One funnel step: the rows of a source matching a filter."""

    name: str = Field(min_length=1)
    source: str = Field(min_length=1, description="The data.sources entry of the step's events.")
    where: list[Any] | None = Field(None, description="DNF filters on the source; default every row.")
    time: str = Field("ts", description="The source's timestamp column.")

    @field_validator("where", mode="before")
    @classmethod
    def _where_as_tuples(cls, value: Any) -> Any:
        return filters_as_tuples(value)

    @field_validator("where")
    @classmethod
    def _check_where(cls, where: list[Any] | None) -> list[Any] | None:
        return SourceConfig._check_filters(where)


class KpisFunnelConfig(_Section):
    """An ordered funnel with a conversion window."""

    steps: list[KpisFunnelStepConfig] = Field(min_length=2)
    window_days: float = Field(gt=0, description="Every step within this many days of entering (step 1).")
    breakdown: str | None = Field(None, description="A column of the first step's source to break down by.")

    @model_validator(mode="after")
    def _distinct_names(self) -> KpisFunnelConfig:
        names = [step.name for step in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"step names must differ, got {names}")
        return self


class KpisConfig(_Section):
    """The kpis stage's product analytics (docs/analytics.md); the data KPIs need no section."""

    source: str | None = Field(None, description="The events' data.sources entry; default "
                               "features.interactions.source.")
    user: str | None = Field(None, description="Default features.interactions.user_col.")
    time: str | None = Field(None, description="Default features.interactions.time_col.")
    active: KpisActiveConfig = KpisActiveConfig()
    lifecycle_period: Literal["day", "week", "month"] = library_default("analytics", "activity_kpis",
                                                                        "lifecycle_period")
    retention: KpisRetentionConfig = KpisRetentionConfig()
    funnels: dict[str, KpisFunnelConfig] = Field(default_factory=dict)


class MlflowConfig(_Section):
    """Where a published run is also logged, as an MLflow run (daskflow.experiment._tracking)."""

    tracking_uri: str = Field(min_length=1, description="The MLflow tracking URI: http(s)://host:port of "
                              "an `mlflow server`, sqlite:///path.db, or file:///dir.")
    experiment: str | None = Field(None, min_length=1, description="The MLflow experiment (created if "
                                   "missing). Default: experiment.name.")
    timeout: float = Field(10.0, gt=0, le=600, description="Seconds each request to the tracking server "
                           "may take before it is given up (preflight and logging).")


class OutputConfig(_Section):
    dir: str = "outputs"
    run_id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                               description="Default: a timestamp plus a random suffix.")
    performance_report: bool = Field(False, description="Save Dask's performance report of the stages "
                                     "as dask-performance.html in the run directory.")
    mlflow: MlflowConfig | None = Field(None, description="Also log the published run to MLflow "
                                        "(needs the mlflow extra).")


class Config(_Section):
    """A whole experiment file."""

    experiment: ExperimentConfig
    cluster: ClusterConfig = ClusterConfig()
    data: DataConfig
    features: FeaturesConfig = FeaturesConfig()
    model: ModelConfig = ModelConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    classify: ClassifyConfig = ClassifyConfig()
    tune: TuneConfig | None = None
    abtest: AbtestConfig | None = None
    kpis: KpisConfig | None = None
    predict: PredictConfig = PredictConfig()
    output: OutputConfig = OutputConfig()
    #: What of this config is secret (set by the loader; daskflow.config._redact).
    _secrets: Secrets = PrivateAttr(default_factory=Secrets)

    @property
    def secrets(self) -> Secrets:
        """The secrets of this config: what ``config_to_yaml``, messages and logs hide."""
        return self._secrets

    @model_validator(mode="before")
    @classmethod
    def _no_conversion_section(cls, data: Any) -> Any:
        if isinstance(data, dict) and "conversion" in data:
            raise ValueError(_retired_conversion(data["conversion"]))
        return data

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        source = self.features.interactions.source
        stages = set(self.experiment.stages)
        tunes_recommender = "tune" in stages and self.tune is not None and self.tune.target == "recommender"
        # Only a stage that reads the interactions' source demands it (a churn table's
        # classify run was refused for the recommender's default source 'listens').
        if ({"kpis", "interactions", "train", "evaluate", "predict"} & stages or tunes_recommender) \
                and source not in self.data.sources:
            raise ValueError(f"features.interactions.source is {source!r} but data.sources has only "
                             f"{', '.join(sorted(self.data.sources))}")
        content = self.model.content
        if content is not None and content.source not in self.data.sources:
            raise ValueError(f"model.content.source is {content.source!r} but data.sources has only "
                             f"{', '.join(sorted(self.data.sources))}")
        names = self.predict.item_names
        if names is not None and names.source not in self.data.sources:
            raise ValueError(f"predict.item_names.source is {names.source!r} but data.sources has only "
                             f"{', '.join(sorted(self.data.sources))}")
        if self.evaluate.cold_items is not None and content is None:
            raise ValueError(f"evaluate.cold_items is {self.evaluate.cold_items} but there is no "
                             "model.content: the cold-start evaluation predicts cold items from content")
        if "tune" in self.experiment.stages and self.tune is None:
            raise ValueError("experiment.stages has 'tune' but there is no tune: section")
        conversion_stages = {"features", "classify", "score"} & set(self.experiment.stages)
        if "tune" in self.experiment.stages and self.tune is not None and self.tune.target == "conversion":
            conversion_stages.add("tune")
        table = self.features.table
        if conversion_stages and table is not None and table.source not in self.data.sources:
            raise ValueError(f"features.table.source is {table.source!r} but data.sources has only "
                             f"{', '.join(sorted(self.data.sources))}")
        aggregates = self.features.aggregates
        if aggregates is not None and table is None:
            raise ValueError("features.aggregates is set but features.table is not: aggregates are joined "
                             "to the entity table by its id; add features.table")
        if conversion_stages and table is not None:
            named = [(f"features.aggregates.events.{n}.source", e.source or n)
                     for n, e in (aggregates.events.items() if aggregates else ())]
            if table.label.source is not None:
                named.append(("features.table.label.source", table.label.source))
            for key, name in named:
                if name not in self.data.sources:
                    raise ValueError(f"{key} is {name!r} but data.sources has only "
                                     f"{', '.join(sorted(self.data.sources))}")
            if table.label.source is not None and aggregates is None:
                raise ValueError("features.table.label.source (a label from events) needs "
                                 "features.aggregates.cutoff: the label window starts at the cutoff")
            anchor = table.label.anchor
            if anchor is not None and aggregates is not None and anchor not in aggregates.anchors:
                defined = ", ".join(aggregates.anchors) or "none"
                raise ValueError(f"features.table.label.anchor is {anchor!r}, not an entry of "
                                 f"features.aggregates.anchors (has {defined})")
        if conversion_stages and table is None:
            raise ValueError(f"stage(s) {sorted(conversion_stages)} classify the rows of features.table, "
                             "which is not set: add features.table (source, id, label, split; "
                             "docs/features.md), e.g. configs/conversion.yaml")
        key, models = self.classifiers_key, self.classifiers
        if self.tune is not None and self.tune.target == "conversion" and self.tune.model is not None \
                and self.tune.model not in models:
            raise ValueError(f"tune.model {self.tune.model!r} is not in {key} ({', '.join(models)})")
        return self

    @property
    def classifiers(self) -> dict[str, ClassifierConfig]:
        """The classifiers of classify, tune and score (classify.models)."""
        return dict(self.classify.models)

    @property
    def classifiers_key(self) -> str:
        """Where :attr:`classifiers` come from, for messages."""
        return "classify.models"


def stages_to_run(config: Config) -> list[str]:
    """The requested stages plus the ones they depend on, in execution order.

    Raises
    ------
    ConfigError
        A requested stage is not available in this version.
    """
    from daskflow._errors import ConfigError

    wanted = set(config.experiment.stages)
    if "abtest" in wanted and config.abtest is None:
        raise ConfigError("experiment.stages has 'abtest' but there is no abtest: section: add one with "
                          "assignments and metrics (docs/analytics.md)")
    if "tune" in wanted and config.tune is not None:
        wanted.add("features" if config.tune.target == "conversion" else "interactions")
    for stage in list(wanted):
        wanted.update(_NEEDS.get(stage, ()))
    for stage in sorted(wanted & set(_NOT_YET)):
        raise ConfigError(f"stage {stage!r} (experiment.stages) is not available in this version: "
                          f"{_NOT_YET[stage]}")
    return [s for s in STAGES if s in wanted]

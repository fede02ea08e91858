"""Everything a run would reject before computing, checked without a cluster.

``daskflow validate`` and ``daskflow run`` call :func:`preflight` alike (run before it
starts a cluster), so a mistake that can be found from the config and the files' footers
is reported the same way by both, before any work: the parameters of every model the
stages fit, the form of a remote scheduler's address, the performance report's bokeh,
every source the stages read (existence, format, declared schema and the columns each
stage needs, from the footers: no data is read), and the outputs (a writable output
directory; the run directory, ``predict.uri`` and ``classify.score.uri`` not there yet).
What only computing can find is listed in docs/errors.md ("Found only while computing").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from daskflow._errors import ConfigError, OutputError, SchemaError
from daskflow.config import Config, stages_to_run
from daskflow.experiment._sources import interaction_columns, read_source
from daskflow.experiment._tracking import check_mlflow
from daskflow.models import make_model

__all__ = ["preflight", "run_dir_of", "RUN_ELSEWHERE"]

#: How the run directory's messages say to go elsewhere (the runner's PendingOutput too).
RUN_ELSEWHERE = "choose another output.run_id or leave it unset for a fresh one"


def preflight(config: Config, *, resume: str | os.PathLike[str] | None = None) -> list[str]:
    """Check what the stages of ``config`` need, before any work; return the stages.

    Parameters
    ----------
    config : the validated experiment
    resume : the working directory a run resumes (its run directory is its own then)

    Raises
    ------
    DaskflowError
        The first problem found, with the message the run would give.
    """
    stages = stages_to_run(config)
    check_models(config, stages)
    check_cluster(config)
    check_performance_report(config)
    check_mlflow(config)  # output.mlflow: mlflow installed, the tracking store reachable (bounded)
    check_sources(config, stages)
    check_outputs(config, stages, resumed=resume is not None)
    return stages


def run_dir_of(config: Config, run_id: str) -> Path:
    """``output.dir/<experiment>/<run_id>`` ("~" is the home directory, never a directory "~")."""
    return Path(config.output.dir).expanduser() / config.experiment.name / run_id


def check_models(config: Config, stages: list[str]) -> None:
    """Every model the stages will fit, with its parameters checked before any data is read."""
    from daskflow.models import check_model_params

    tunes_recommender = config.tune is not None and config.tune.target == "recommender"
    if {"train", "evaluate", "predict"} & set(stages) or tunes_recommender:
        check_model_params(make_model(config.model.name, config.model.params), where="model")
    if {"classify", "tune"} & set(stages):
        for name, entry in config.classifiers.items():
            where = f"{config.classifiers_key}.{name}"
            check_model_params(make_model(entry.model, entry.params, where=where), where=where)


def check_performance_report(config: Config) -> None:
    """output.performance_report needs bokeh >= 3.1, which renders it when the stages are over."""
    if not config.output.performance_report:
        return
    try:
        import bokeh
    except ImportError as exc:
        raise ConfigError("output.performance_report is true, but bokeh is not installed: expected "
                          "bokeh >= 3.1, which renders Dask's performance report. Install it (pip "
                          "install 'bokeh>=3.1') or set output.performance_report=false") from exc
    from packaging.version import Version  # a dependency of dask

    if Version(bokeh.__version__) < Version("3.1"):
        raise ConfigError(f"output.performance_report is true, but bokeh is {bokeh.__version__}: expected "
                          "bokeh >= 3.1, which renders Dask's performance report. Upgrade it (pip "
                          "install 'bokeh>=3.1') or set output.performance_report=false")


def source_reads(config: Config, stages: list[str]) -> list[tuple[str, list[str] | None]]:
    """(source, columns) for every read the stages make; ``None``: every column."""
    reads: list[tuple[str, list[str] | None]] = []
    interactions = config.features.interactions.source
    if {"kpis", "interactions"} & set(stages):
        reads.append((interactions, interaction_columns(config)))
    kpis = getattr(config, "kpis", None)
    if "kpis" in stages and kpis is not None:
        reads.append((getattr(kpis, "source", None) or interactions, None))
        retention = getattr(kpis, "retention", None)
        if retention is not None and getattr(retention, "cohort", None) == "signup":
            reads.append((retention.users, None))
        for funnel in getattr(kpis, "funnels", {}).values():
            reads.extend((step.source, None) for step in funnel.steps)
    content = config.model.content
    if content is not None and {"train", "evaluate"} & set(stages):
        reads.append((content.source, None if content.columns is None else [content.id, *content.columns]))
    if "features" in stages and config.features.table is not None:
        reads.append((config.features.table.source, None))
        from daskflow.experiment._classify import aggregate_sources

        reads.extend((name, None) for name in aggregate_sources(config))
        if config.features.table.label.source is not None:
            reads.append((config.features.table.label.source, None))
    names = config.predict.item_names
    if "predict" in stages and names is not None:
        reads.append((names.source, [names.id, *names.columns]))
    if "abtest" in stages and config.abtest is not None:
        reads.append((config.abtest.assignments.source, None))
        reads.extend((metric.source, None) for metric in config.abtest.metrics.values())
    unique: dict[tuple[str, tuple[str, ...] | None], None] = {}
    for name, columns in reads:
        unique[(name, None if columns is None else tuple(columns))] = None
    return [(name, None if columns is None else list(columns)) for name, columns in unique]


def _generated(config: Config, uri: str) -> bool:
    """True if ``uri`` lies in the sample lake the run generates first (it is not there yet)."""
    sample = config.data.sample
    if sample is None or "://" in sample.path or Path(sample.path).exists():
        return False
    root = Path(sample.path).expanduser().absolute()
    return "://" not in uri and (root == Path(uri).expanduser().absolute()
                                 or root in Path(uri).expanduser().absolute().parents)


def check_sources(config: Config, stages: list[str]) -> None:
    """Open every source the stages read, as they read it; check the columns they name."""
    if "abtest" in stages and config.abtest is not None:
        from daskflow.experiment._analytics import _check_sources as check_abtest_sources

        check_abtest_sources(config)  # abtest names its sources outside the config's own checks
    frames: dict[str, Any] = {}
    for name, columns in source_reads(config, stages):
        if name not in config.data.sources:
            continue  # the stage that reads it names the key (kpis' sources: their own checks)
        if _generated(config, config.data.sources[name].uri):
            continue  # written by the run's sample step, from code whose output is known
        frame = read_source(config, name, columns)  # opened as each stage reads it: its columns checked
        if columns is None or name not in frames:
            # The checks below look up columns a stage reads in full (abtest's value, say) in the
            # same source another stage reads only some columns of (kpis' listens): keep the full read.
            frames[name] = frame
    _check_interaction_types(config, stages, frames)
    table = config.features.table
    if "features" in stages and table is not None and table.source in frames:
        from daskflow.experiment._classify import check_table_source

        check_table_source(config, frames[table.source])
    if "features" in stages and table is not None:
        from daskflow.experiment._classify import check_aggregate_sources

        check_aggregate_sources(config, frames)  # features.aggregates and a label from events
    content = config.model.content
    if content is not None and content.source in frames:
        present = [str(c) for c in frames[content.source].columns]
        if content.id not in present:
            raise ConfigError(f"model.content.id is {content.id!r} but the item table "
                              f"data.sources.{content.source} has no such column (found "
                              f"{', '.join(present)}): set model.content.id to its item ID column")
        missing = [c for c in content.columns or () if c not in present]
        if missing:
            raise ConfigError(f"model.content.columns names {', '.join(map(repr, missing))}, missing from "
                              f"data.sources.{content.source} (found {', '.join(present)})")
    spec = config.abtest
    if "abtest" in stages and spec is not None and spec.assignments.source in frames:
        a = spec.assignments  # the messages of daskflow.analytics' own checks, found here first
        _require(frames[a.source], [a.unit, a.variant, a.time], "the assignments table", "abtest.assignments")
        if a.experiment is not None:
            _require(frames[a.source], [a.experiment_column], "the assignments table",
                     "abtest.assignments.experiment_column")
        by_source: dict[str, list[tuple[str, Any]]] = {}
        for metric_name, metric in spec.metrics.items():
            by_source.setdefault(metric.source, []).append((f"abtest.metrics.{metric_name}", metric))
        for source, metrics in by_source.items():
            if source not in frames:
                continue
            events, what = frames[source], f"metric source {source!r}"
            _require(events, [a.unit], what, f"{metrics[0][0]}.source: the unit column "
                     f"abtest.assignments.unit={a.unit!r}")
            for where, metric in metrics:
                _require(events, [metric.time], what, f"{where}.time")
                for column, key in ((metric.value, "value"), (metric.denominator, "denominator")):
                    if column is not None:
                        _require(events, [column], what, f"{where}.{key}")


def _check_interaction_types(config: Config, stages: list[str], frames: dict[str, Any]) -> None:
    """The interactions and kpis stages' own column checks, in the order the stages run."""
    from daskflow.analytics import check_kpi_columns
    from daskflow.features.interactions._matrix import check_interaction_columns

    spec = config.features.interactions
    if spec.source not in frames:
        return
    for stage in stages:
        if stage == "kpis":
            check_kpi_columns(frames[spec.source], spec.user_col, spec.item_col, spec.time_col)
        elif stage == "interactions":
            check_interaction_columns(frames[spec.source], spec.user_col, spec.item_col, spec.weight,
                                      spec.time_col)


def check_cluster(config: Config) -> None:
    """A remote scheduler's address must name one (a network address with a port)."""
    from daskflow.cluster._client import check_address_form

    if config.cluster.kind == "remote" and config.cluster.address:
        check_address_form(config.cluster.address)


def _require(frame: Any, columns: list[str], what: str, where: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError(f"{what} has no column {', '.join(map(repr, missing))} ({where}): found "
                          f"{', '.join(map(str, frame.columns))}. Set {where} to one of those columns")


def check_outputs(config: Config, stages: list[str], *, resumed: bool) -> None:
    """A writable output directory; no run directory or external output already there."""
    directory = Path(config.output.dir).expanduser() / config.experiment.name
    existing = next((p for p in (directory, *directory.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise OutputError(f"cannot create the output directory {directory} ({existing} is a file): set "
                          "output.dir to a writable location")
    if existing == directory and not os.access(directory, os.W_OK | os.X_OK):
        raise OutputError(f"output directory {directory} is not writable: set output.dir to a writable "
                          "location")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot create the output directory {directory} ({existing} is not writable): "
                          "set output.dir to a writable location")
    if config.output.run_id is not None and not resumed:
        run_dir = run_dir_of(config, config.output.run_id)
        if run_dir.exists():
            raise OutputError(f"run directory {run_dir} already exists: {RUN_ELSEWHERE}, or delete it if "
                              "it is a result you no longer need")
    from daskflow.io import open_filesystem

    outputs = []
    if "predict" in stages and config.predict.uri:
        outputs.append((config.predict.uri, config.predict.storage_options))
    if "score" in stages and config.classify.score.uri:
        outputs.append((config.classify.score.uri, config.classify.score.storage_options))
    for uri, storage_options in outputs:
        fs, path = open_filesystem(uri, storage_options)
        if fs.exists(path.rstrip("/")):
            raise OutputError(f"output {uri!r} already exists: choose another location, or delete it if it "
                              "is a result you no longer need")

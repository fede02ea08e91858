"""The experiment runner: the only layer that reads the config.

It turns the validated :class:`~daskflow.config.Config` into plain keyword arguments for
the library layers, runs the stages the experiment names (plus the ones they need), and
writes ``outputs/<experiment>/<run_id>/`` — ``config.yaml``, ``metrics.json``,
``run.log``, ``artifacts/``, ``plots/`` and ``predictions/`` — in a temporary directory
that is published only when every stage has succeeded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daskflow._errors import ConfigError, DataError, OutputError
from daskflow._version import __version__
from daskflow.cluster import connect, dashboard_link
from daskflow.config import Config, config_to_yaml, stages_to_run
from daskflow.evaluation import evaluate_ranking
from daskflow.experiment._conversion import (
    ConversionState,
    stage_classify,
    stage_features,
    stage_score,
    stage_tune,
)
from daskflow.experiment._rundir import new_run_id, plots_dir, write_json
from daskflow.features import InteractionMatrix, build_interactions, leave_k_out_split, log_kpis
from daskflow.io import atomic_output, read_table, write_parquet
from daskflow.models import make_model
from daskflow.prediction import recommend_all
from daskflow.sample import generate_lake

__all__ = ["run_experiment", "RunResult"]

log = logging.getLogger("daskflow")

#: Directory of a run's working directory kept when the run is resumed.
CHECKPOINTS = "checkpoints"

@dataclass
class RunResult:
    """Where a finished run was published and what it measured."""

    run_dir: Path
    metrics: dict[str, Any]


@dataclass
class _State:
    """What stages hand to each other within one run."""

    client: Any
    work_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    matrix: InteractionMatrix | None = None
    model: Any = None
    conversion: ConversionState = field(default_factory=ConversionState)
    resumed: bool = False
    #: Results written to URIs outside the run directory, published when every stage has
    #: succeeded (and removed if one fails), like the run directory itself.
    publish: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)


def run_experiment(config: Config, *, resume: str | Path | None = None) -> RunResult:
    """Run an experiment end to end and publish its run directory.

    Parameters
    ----------
    config : the validated experiment
    resume : path of the working directory of an interrupted run of the same config (what
        the log printed as "resume with ... --resume DIR"): the stages run again in it and
        model fits continue from their last checkpoint.

    Raises
    ------
    DaskflowError
        Any user mistake found on the way (nothing is published then).
    """
    stages = stages_to_run(config)
    _check_models(config, stages)
    run_id = config.output.run_id or new_run_id()
    if resume is not None:
        run_id = _resumed_run_id(config, Path(resume))
    run_dir = Path(config.output.dir) / config.experiment.name / run_id
    if run_dir.exists():
        raise OutputError(f"run directory {run_dir} already exists: choose another output.run_id or "
                          "leave it unset for a fresh one")
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output directory {run_dir.parent} ({exc.strerror}): set "
                          "output.dir to a writable location") from exc
    if not os.access(run_dir.parent, os.W_OK):
        raise OutputError(f"output directory {run_dir.parent} is not writable: set output.dir to a "
                          "writable location")
    with atomic_output(str(run_dir), reuse=None if resume is None else str(resume)) as tmp:
        work_dir = Path(tmp)
        if resume is not None:
            _clear_for_resume(work_dir)
        log.info("working in %s; if this run is interrupted, continue it with: daskflow run CONFIG "
                 "--resume %s", work_dir, work_dir)
        (work_dir / "artifacts").mkdir()
        (work_dir / "config.yaml").write_text(config_to_yaml(config))
        handler = logging.FileHandler(work_dir / "run.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler.setLevel(logging.INFO)
        previous_level = log.level
        if log.getEffectiveLevel() > logging.INFO:  # run.log records INFO whatever the caller set
            log.setLevel(logging.INFO)
        log.addHandler(handler)
        try:
            metrics = _run_stages(config, stages, run_id, work_dir, resumed=resume is not None)
        finally:
            log.removeHandler(handler)
            log.setLevel(previous_level)
            handler.close()
        write_json(work_dir / "metrics.json", metrics)
        _write_report(work_dir, metrics, config)
    log.info("run published at %s", run_dir)
    return RunResult(run_dir, metrics)


def _check_models(config: Config, stages: list[str]) -> None:
    """Every model the stages will fit, with its parameters checked before any data is read."""
    from daskflow.models import check_model_params

    tunes_recommender = config.tune is not None and config.tune.target == "recommender"
    if {"train", "evaluate", "predict"} & set(stages) or tunes_recommender:
        check_model_params(make_model(config.model.name, config.model.params), where="model")
    if {"classify", "tune"} & set(stages):
        for name, entry in config.conversion.models.items():
            where = f"conversion.models.{name}"
            check_model_params(make_model(entry.model, entry.params, where=where), where=where)


def _resumed_run_id(config: Config, directory: Path) -> str:
    """Check ``directory`` is an interrupted run of this very config; return its run id."""
    name = directory.name
    if not (directory.is_dir() and name.startswith(".") and ".tmp-" in name):
        raise OutputError(f"--resume {directory}: not the working directory of an interrupted run "
                          "(expected outputs/<experiment>/.<run_id>.tmp-*, as the run's log printed)")
    saved = directory / "config.yaml"
    if not saved.exists() or saved.read_text() != config_to_yaml(config):
        raise ConfigError(f"--resume {directory}: the config differs from the interrupted run's "
                          f"({saved}); resume with the same config file and overrides")
    return name[1:].rsplit(".tmp-", 1)[0]


def _clear_for_resume(work_dir: Path) -> None:
    """Keep the checkpoints of the interrupted attempt; everything else is made again."""
    for entry in work_dir.iterdir():
        if entry.name == CHECKPOINTS:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


#: Plots in the order the report shows them (file stems); others (tuning) follow by name.
_PLOT_ORDER = ("ranking_metrics", "als_loss", "roc", "gains", "calibration", "sgd_convergence",
               "tuning_heatmap")


def _write_report(work_dir: Path, metrics: dict[str, Any], config: Config) -> None:
    from daskflow.reporting import write_report

    plots = sorted((work_dir / "plots").glob("*.png"), key=lambda p: (
        _PLOT_ORDER.index(p.stem) if p.stem in _PLOT_ORDER else len(_PLOT_ORDER), p.name))
    write_report(work_dir / "report.html", metrics, config_text=config_to_yaml(config), plots=plots)


def _run_stages(config: Config, stages: list[str], run_id: str, work_dir: Path, *,
                resumed: bool = False) -> dict[str, Any]:
    started = time.time()
    metrics: dict[str, Any] = {
        "experiment": config.experiment.name, "run_id": run_id, "daskflow_version": __version__,
        "stages": stages, "timings_s": {},
    }
    cluster = config.cluster.model_dump(exclude={"kind"})
    with connect(config.cluster.kind, **cluster) as client:
        link = dashboard_link(client)
        metrics["dashboard_link"] = link
        log.info("Dask dashboard: %s", link)
        state = _State(client=client, work_dir=work_dir, metrics=metrics, resumed=resumed)
        if config.data.sample is not None:
            _timed(state, "sample", lambda: _ensure_sample(config, client))
        with state.publish, _performance_report(config, work_dir):
            for stage in stages:
                log.info("stage %s ...", stage)
                _timed(state, stage, lambda stage=stage: _STAGE_FUNCTIONS[stage](config, state))
    metrics["wall_time_s"] = round(time.time() - started, 3)
    return metrics


def _performance_report(config: Config, work_dir: Path) -> contextlib.AbstractContextManager[Any]:
    """Dask's own HTML profile of every task the stages ran (output.performance_report)."""
    if not config.output.performance_report:
        return contextlib.nullcontext()
    from distributed import performance_report

    return performance_report(filename=str(work_dir / "dask-performance.html"))


def _timed(state: _State, name: str, function: Any) -> None:
    started = time.perf_counter()
    function()
    elapsed = time.perf_counter() - started
    state.metrics["timings_s"][name] = round(elapsed, 3)
    log.info("stage %s done in %.1fs", name, elapsed)


def _ensure_sample(config: Config, client: Any) -> None:
    sample = config.data.sample
    assert sample is not None
    if Path(sample.path).exists() or "://" in sample.path:
        return
    log.info("no sample lake at %s: generating a %s one (seed %d)", sample.path, sample.scale,
             sample.seed)
    generate_lake(sample.path, scale=sample.scale, format=sample.format, seed=sample.seed,
                  client=client)


def _read_source(config: Config, name: str, columns: list[str] | None) -> Any:
    source = config.data.sources[name]
    wanted = list(source.columns) if source.columns is not None else columns
    return read_table(source.uri, format=source.format, columns=wanted, filters=source.filters,
                      storage_options=source.storage_options, schema=source.required_schema,
                      name=name)


def _interaction_columns(config: Config) -> list[str]:
    spec = config.features.interactions
    return [spec.user_col, spec.item_col] + ([spec.weight] if spec.weight != "count" else []) + \
        [spec.time_col]


def _stage_kpis(config: Config, state: _State) -> None:
    spec = config.features.interactions
    events = _read_source(config, spec.source, _interaction_columns(config))
    kpis, dau = log_kpis(events, user_col=spec.user_col, item_col=spec.item_col,
                         time_col=spec.time_col, client=state.client)
    dau.to_parquet(state.work_dir / "artifacts" / "daily_active_users.parquet", index=False)
    state.metrics["data"] = kpis


def _stage_interactions(config: Config, state: _State) -> None:
    spec = config.features.interactions
    events = _read_source(config, spec.source, _interaction_columns(config))
    matrix = build_interactions(events, user_col=spec.user_col, item_col=spec.item_col,
                                weight=spec.weight, time_col=spec.time_col,
                                block_size=spec.block_size, client=state.client)
    if matrix.n_users < 2 or matrix.n_items < 2:
        raise DataError(f"the interaction matrix of source {spec.source!r} has {matrix.n_users} user(s) and "
                        f"{matrix.n_items} item(s): a recommender needs at least 2 of each. Check "
                        f"data.sources.{spec.source} (uri, filters)")
    users, items = matrix.mapping_frames()
    users.to_parquet(state.work_dir / "artifacts" / "user_index.parquet", index=False)
    items.to_parquet(state.work_dir / "artifacts" / "item_index.parquet", index=False)
    state.matrix = matrix
    state.metrics["interactions"] = {
        "users": matrix.n_users, "items": matrix.n_items, "nnz": matrix.nnz,
        "density": matrix.nnz / max(1, matrix.n_users * matrix.n_items),
        "user_blocks": len(matrix.user_blocks), "item_blocks": len(matrix.item_blocks),
        "weight": spec.weight,
    }


def _stage_train(config: Config, state: _State) -> None:
    model = make_model(config.model.name, config.model.params)
    fit_options: dict[str, Any] = {}
    if "checkpoint_dir" in model.get_params():
        # The train fit checkpoints inside the run, so an interrupted run can be resumed.
        if model.checkpoint_dir is None:
            model.set_params(checkpoint_dir=str(state.work_dir / CHECKPOINTS / "train"))
        fit_options["resume"] = state.resumed
    state.model = model.fit(state.matrix, client=state.client, **fit_options)
    if hasattr(model, "save"):
        model.save(str(state.work_dir / "artifacts" / "model.npz"))
    summary: dict[str, Any] = {"name": config.model.name, "params": model.get_params()}
    for curve in ("loss_curve_", "iteration_seconds_"):
        if hasattr(model, curve):
            summary[curve.rstrip("_")] = [round(float(v), 6) for v in getattr(model, curve)]
    state.metrics["model"] = summary
    if summary.get("loss_curve"):
        from daskflow.reporting import plot_convergence

        plot_convergence({config.model.name: summary["loss_curve"]},
                         plots_dir(state.work_dir) / "als_loss.png",
                         title=f"{config.model.name} training loss per iteration")


def _stage_evaluate(config: Config, state: _State) -> None:
    spec = config.evaluate
    assert state.matrix is not None
    models = {config.model.name: config.model.params,
              **{name: {} for name in spec.baselines if name != config.model.name}}
    results: dict[str, dict[str, Any]] = {name: {} for name in models}
    for split in spec.splits:
        train, test = leave_k_out_split(state.matrix, k=spec.holdout, min_items=spec.min_user_items,
                                        mode=split, seed=config.experiment.seed, client=state.client)
        if test.nnz == 0:
            raise DataError(f"the {split} split held out nothing: no user has "
                            f"{spec.min_user_items}+ distinct items. Lower evaluate.min_user_items")
        for name, params in models.items():
            model = make_model(name, params).fit(train, client=state.client)
            scores = evaluate_ranking(model, train, test, k=spec.k, metrics=spec.metrics,
                                      client=state.client)
            results[name][split] = {"holdout": spec.holdout, "test_nnz": test.nnz, **scores}
            log.info("%s, %s split: %s", name, split, ", ".join(
                f"{k}={v:.4f}" for k, v in scores.items() if k != "n_users"))
    state.metrics["evaluation"] = results
    from daskflow.reporting import plot_ranking_metrics

    per_model = {f"{name} ({split})": {k: v for k, v in scores.items() if "@" in k}
                 for name, splits in results.items() for split, scores in splits.items()}
    plot_ranking_metrics(per_model, plots_dir(state.work_dir) / "ranking_metrics.png")


def _stage_predict(config: Config, state: _State) -> None:
    spec = config.predict
    assert state.matrix is not None and state.model is not None
    uri = spec.uri or str(state.work_dir / "predictions" / "recommendations.parquet")
    frame = recommend_all(state.model, state.matrix, n=spec.n, filter_seen=spec.filter_seen)
    write_parquet(frame, uri, storage_options=spec.storage_options, publish=state.publish)
    state.metrics["predict"] = {"uri": spec.uri or "predictions/recommendations.parquet",
                                "users": state.matrix.n_users, "n": spec.n}


_STAGE_FUNCTIONS = {"kpis": _stage_kpis, "interactions": _stage_interactions, "train": _stage_train,
                    "evaluate": _stage_evaluate, "predict": _stage_predict,
                    "features": lambda config, state: stage_features(config, state, _read_source),
                    "classify": stage_classify, "tune": stage_tune, "score": stage_score}

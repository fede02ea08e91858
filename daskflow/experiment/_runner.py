"""The experiment runner: the only layer that reads the config.

It turns the validated :class:`~daskflow.config.Config` into plain keyword arguments for
the library layers, runs the stages the experiment names (plus the ones they need), and
writes ``outputs/<experiment>/<run_id>/`` — ``config.yaml``, ``metrics.json``,
``run.log``, ``artifacts/``, ``plots/`` and ``predictions/`` — in a claimed temporary
directory that is published only when every stage has succeeded, never over another result
(docs/architecture.md, "Commit protocol").

This module is the orchestration only (run directory, resume, the stage loop, publication);
the stages are one module per pipeline: the recommender in ``_recommend.py``, the classifiers
in ``_conversion.py``/``_classify.py``, product analytics in ``_analytics.py``. Every stage is
``stage(config, state: RunState) -> None`` (``_state.py``) and reads its sources through
``_sources.read_source``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daskflow._errors import ConfigError, OutputError, RunInterrupted
from daskflow._progress import stage_label
from daskflow._version import __version__
from daskflow.cluster import connect, dashboard_link
from daskflow.config import Config, config_to_yaml, redact_data
from daskflow.experiment._analytics import stage_abtest, stage_kpis
from daskflow.experiment._conversion import stage_classify, stage_features, stage_score, stage_tune
from daskflow.experiment._preflight import check_performance_report, preflight
from daskflow.experiment._recommend import (
    stage_evaluate,
    stage_interactions,
    stage_predict,
    stage_train,
    stage_tune_recommender,
)
from daskflow.experiment._rundir import (
    CHECKPOINTS,
    has_checkpoints,
    new_run_id,
    restrict,
    write_json,
    write_private,
)
from daskflow.experiment._state import RunState
from daskflow.experiment._tracking import Tracking
from daskflow.io import SUCCESS_MARKER, PendingOutput, Publication
from daskflow.sample import generate_lake

__all__ = ["run_experiment", "RunResult"]

log = logging.getLogger("daskflow")


@dataclass
class RunResult:
    """Where a finished run was published, what it measured, and the models it fitted."""

    run_dir: Path
    metrics: dict[str, Any]
    #: The fitted models by name: the recommender (``model.name``), the conversion models.
    models: dict[str, Any] = field(default_factory=dict)


def run_experiment(config: Config, *, resume: str | os.PathLike[str] | None = None,
                   client: Any = None) -> RunResult:
    """Run an experiment end to end and publish its run directory.

    The run directory and every output outside it (``predict.uri``,
    ``classify.score.uri``) are claimed before any work starts, written aside, and
    published without replacing anything: the run directory first, then the external
    outputs, which are removed again if that fails (docs/architecture.md, "Commit
    protocol"). A concurrent run with the same destinations fails at once, naming this one.

    Parameters
    ----------
    config : the validated experiment
    resume : path of the working directory of an interrupted run of the same config (what
        an interrupted run printed as "... --resume DIR"): the stages run again in it and
        model fits continue from their last checkpoint.
    client : a connected ``distributed.Client`` to run on instead of the cluster the config
        describes (``cluster:`` is then not used); it is left open.

    With ``output.mlflow``, the MLflow run is created and logged once the stages have
    succeeded, and set FINISHED only after everything is published (FAILED if publishing
    fails): daskflow.experiment._tracking.

    Raises
    ------
    DaskflowError
        Any user mistake found on the way (nothing is published then).
    RunInterrupted
        Ctrl-C or SIGTERM after a checkpoint was committed: nothing is published, the
        working directory (``.work_dir``) and its claim are kept for ``--resume``. An
        interrupt before any checkpoint removes everything and propagates as it came.
    """
    stages = preflight(config, resume=resume)  # validate's checks, before any cluster starts
    run_id = config.output.run_id or new_run_id()
    if resume is not None:
        run_id = _resumed_run_id(config, Path(resume))
    # expanduser: "~/runs" means the home directory, never a directory named "~" here.
    run_dir = Path(config.output.dir).expanduser() / config.experiment.name / run_id
    _check_output_dir(run_dir.parent)
    run = PendingOutput(str(run_dir), reuse=None if resume is None else str(resume), owner=run_id,
                        label=f"run directory {run_dir}", private=True, resumable=True,
                        elsewhere="choose another output.run_id or leave it unset for a fresh one")
    work_dir = Path(run.tmp_uri)
    outputs = Publication(inside=work_dir)
    tracking, fitted = Tracking(config), dict[str, Any]()
    try:
        for uri, storage_options in _external_outputs(config, stages):
            # A resumed run reclaims the outputs its killed attempt had claimed.
            outputs.claim(uri, storage_options, owner=run_id, take_over=None if resume is None else run_id)
        metrics = _run_in(config, stages, run_id, work_dir, outputs, resumed=resume is not None,
                          tracking=tracking, client=client, fitted=fitted)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM as the CLI raises it
        tracking.fail()
        outputs.abort()
        keep = has_checkpoints(work_dir, CHECKPOINTS)
        run.discard(keep=keep)
        if keep:
            raise RunInterrupted(work_dir) from exc
        raise
    except BaseException:
        tracking.fail()
        outputs.abort()
        run.discard()
        raise
    try:
        run.publish()
    except BaseException:
        tracking.fail()
        outputs.abort()
        raise
    try:
        outputs.commit()
    except BaseException:
        tracking.fail()
        run.unpublish()  # all or nothing: the run without its external outputs is not published
        raise
    run.release()
    log.info("run published at %s", run_dir)
    tracking.finish()  # FINISHED only now that everything is published
    return RunResult(run_dir, metrics, fitted)


def _check_output_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output directory {directory} ({exc.strerror}): set "
                          "output.dir to a writable location") from exc
    if not os.access(directory, os.W_OK):
        raise OutputError(f"output directory {directory} is not writable: set output.dir to a "
                          "writable location")


def _external_outputs(config: Config, stages: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """The results the stages will write outside the run directory, to claim before any work."""
    outputs = []
    if "predict" in stages and config.predict.uri:
        outputs.append((config.predict.uri, config.predict.storage_options))
    if "score" in stages and config.classify.score.uri:
        outputs.append((config.classify.score.uri, config.classify.score.storage_options))
    return outputs


def _run_in(config: Config, stages: list[str], run_id: str, work_dir: Path, outputs: Publication, *,
            resumed: bool, tracking: Tracking, client: Any, fitted: dict[str, Any]) -> dict[str, Any]:
    """Run the stages in ``work_dir`` and write its metrics and report; owner-only throughout."""
    if resumed:
        _clear_for_resume(work_dir)
    log.info("working in %s (checkpoints are kept there); if the run is interrupted after a "
             "checkpoint, the command that resumes it is printed", work_dir)
    (work_dir / "artifacts").mkdir(mode=0o700)
    write_private(work_dir / "config.yaml", config_to_yaml(config))
    write_private(work_dir / "run.log", "")  # created owner-only; the handler appends
    handler = logging.FileHandler(work_dir / "run.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    previous_level = log.level
    if log.getEffectiveLevel() > logging.INFO:  # run.log records INFO whatever the caller set
        log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        metrics = _run_stages(config, stages, run_id, work_dir, outputs, resumed=resumed, client=client,
                              fitted=fitted)
    finally:
        log.removeHandler(handler)
        log.setLevel(previous_level)
        handler.close()
    metrics.update(tracking.start(run_id))  # the MLflow run, once every stage has succeeded
    shown = redact_data(metrics, config.secrets)  # model params may hold storage_options
    write_json(work_dir / "metrics.json", shown)
    _write_report(work_dir, shown, config)
    restrict(work_dir)  # what pandas, matplotlib and dask wrote with the default modes
    tracking.log(config, shown, work_dir)
    return metrics


def _resumed_run_id(config: Config, directory: Path) -> str:
    """Check ``directory`` is an interrupted run of this very config; return its run id."""
    name = directory.name
    if (directory / SUCCESS_MARKER).exists():
        raise OutputError(f"--resume {directory}: not the working directory of an interrupted run but a "
                          "published one (it has _SUCCESS): there is nothing to resume; run without --resume")
    if not (directory.is_dir() and name.startswith(".") and ".tmp-" in name):
        raise OutputError(f"--resume {directory}: not the working directory of an interrupted run "
                          "(expected the outputs/<experiment>/.<run_id>.tmp-* directory that the "
                          "interrupted run named)")
    saved = directory / "config.yaml"
    current = config_to_yaml(config)
    if not saved.exists():
        raise ConfigError(f"--resume {directory}: it has no config.yaml, so it is not the working directory "
                          "of an interrupted daskflow run; run without --resume")
    if saved.read_text() != current:
        differing = _differing_keys(saved.read_text(), current)
        shown = ", ".join(differing[:8]) + (f" and {len(differing) - 8} more" if len(differing) > 8 else "")
        raise ConfigError(f"--resume {directory}: the config differs from the interrupted run's "
                          f"({saved}) at {shown or 'its text'}; resume with the same config file and "
                          "overrides")
    return name[1:].rsplit(".tmp-", 1)[0]


def _differing_keys(saved: str, current: str) -> list[str]:
    """Dotted keys whose values differ between two resolved configs (both already redacted)."""
    import yaml

    def leaves(value: Any, prefix: str) -> dict[str, Any]:
        if isinstance(value, dict) and value:
            return {k: v for key, item in value.items() for k, v in leaves(item, f"{prefix}{key}.").items()}
        return {prefix.rstrip("."): value}

    try:
        before, after = leaves(yaml.safe_load(saved), ""), leaves(yaml.safe_load(current), "")
    except yaml.YAMLError:
        return []
    return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))


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
_PLOT_ORDER = ("ranking_metrics", "als_loss", "roc", "precision_recall", "gains", "calibration",
               "sgd_convergence", "tuning_heatmap", "abtest_forest", "kpis_active_users", "kpis_retention",
               "kpis_funnel")


def _write_report(work_dir: Path, metrics: dict[str, Any], config: Config) -> None:
    from daskflow.reporting import write_report

    plots = sorted((work_dir / "plots").glob("*.png"), key=lambda p: (
        _PLOT_ORDER.index(p.stem) if p.stem in _PLOT_ORDER else len(_PLOT_ORDER), p.name))
    write_report(work_dir / "report.html", metrics, config_text=config_to_yaml(config), plots=plots)


def _run_stages(config: Config, stages: list[str], run_id: str, work_dir: Path, outputs: Publication,
                *, resumed: bool = False, client: Any = None,
                fitted: dict[str, Any] | None = None) -> dict[str, Any]:
    started = time.time()
    metrics: dict[str, Any] = {
        "experiment": config.experiment.name, "run_id": run_id, "daskflow_version": __version__,
        "stages": stages, "timings_s": {},
    }
    cluster = config.cluster.model_dump(exclude={"kind"})
    report = _performance_report(config, work_dir)  # checked before the cluster starts
    # The caller's client (daskflow.run(client=...)) is used as it is and left open.
    with contextlib.nullcontext(client) if client is not None else connect(config.cluster.kind,
                                                                           **cluster) as client:
        link = dashboard_link(client)
        metrics["dashboard_link"] = link
        log.info("Dask dashboard: %s", link)
        state = RunState(client=client, work_dir=work_dir, metrics=metrics, resumed=resumed,
                       publish=outputs)
        if config.data.sample is not None:
            with _stage_scope("sample"):
                _timed(state, "sample", lambda: _ensure_sample(config, client))
        with report:
            for stage in stages:
                log.info("stage %s ...", stage)
                with _stage_scope(stage):
                    _timed(state, stage, functools.partial(_STAGE_FUNCTIONS[stage], config, state))
        if fitted is not None:
            fitted.update({config.model.name: state.model} if state.model is not None else {})
            fitted.update(state.conversion.models)
    metrics["wall_time_s"] = round(time.time() - started, 3)
    return metrics


@contextlib.contextmanager
def _stage_scope(stage: str) -> Iterator[None]:
    """Mark the tasks a stage submits and label its progress.

    distributed's span ``daskflow-<stage>`` groups the stage's tasks on the dashboard's
    fine performance metrics page (the task prefixes name the kernels, the span the
    stage); the label names the stage in progress lines its code does not name itself.
    DataFrame graphs (dask's query planner) drop annotations, spans included, with a
    UserWarning on every frame built: silenced here, as nothing is lost that the
    ``kpis-``/``features-``/``score-`` task prefixes of those tasks do not already say.
    """
    import warnings

    from distributed import span

    with span(f"daskflow-{stage}"), stage_label(stage), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Dask annotations .* detected", category=UserWarning)
        yield


def _performance_report(config: Config, work_dir: Path) -> contextlib.AbstractContextManager[Any]:
    """Dask's own HTML profile of every task the stages ran (output.performance_report).

    distributed renders it with bokeh when the stages are over: checked here, before any
    stage runs, so that a missing bokeh is not found after all the work is done.
    """
    if not config.output.performance_report:
        return contextlib.nullcontext()
    check_performance_report(config)
    from distributed import performance_report

    return performance_report(filename=str(work_dir / "dask-performance.html"))


def _timed(state: RunState, name: str, function: Callable[[], Any]) -> None:
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


def _stage_tune(config: Config, state: RunState) -> None:
    """tune: the search of the pipeline ``tune.target`` names."""
    assert config.tune is not None
    if config.tune.target == "recommender":
        stage_tune_recommender(config, state)
    else:
        stage_tune(config, state)


#: Each stage's function, called with the config and the run state in STAGES' order.
_STAGE_FUNCTIONS: dict[str, Callable[[Config, RunState], None]] = {
    "kpis": stage_kpis, "interactions": stage_interactions, "train": stage_train,
    "evaluate": stage_evaluate, "predict": stage_predict, "features": stage_features,
    "classify": stage_classify, "tune": _stage_tune, "score": stage_score, "abtest": stage_abtest}

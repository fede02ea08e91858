"""Logging a run to MLflow (``output.mlflow``): found reachable first, FINISHED only once published.

MLflow is an optional extra (``pip install 'daskflow[mlflow]'``), imported only when a config
has ``output.mlflow``. What a run logs: the resolved config as params (``config_to_yaml``'s
redacted form, flattened to dotted keys), every numeric leaf of ``metrics.json`` as a metric
(lists as steps), and ``config.yaml``, ``metrics.json``, ``report.html``, ``run.log``,
``plots/`` and ``artifacts/`` (the models) as artifacts; the MLflow run id goes into
``metrics.json["mlflow"]``.

How it fits the commit protocol (docs/architecture.md): the MLflow run is created only when
every stage has succeeded, logged from the working directory before it is published, and
set FINISHED only after the run directory and its external outputs are published. A run
that fails before that point creates no MLflow run; one that fails after it (logging,
publishing) has its MLflow run set FAILED — never FINISHED. Every request is bounded by
``output.mlflow.timeout``; :func:`check_mlflow` (the preflight, for ``validate`` and ``run``)
finds a missing mlflow, an unreachable server or an unusable store before any work.

The tracking URI may hold credentials (``https://user:password@host``): every message
and everything logged goes through the config's :class:`~daskflow.config.Secrets`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from daskflow._errors import ConfigError, OutputError
from daskflow.config import Config, config_to_yaml

__all__ = ["Tracking", "check_mlflow", "flatten_metrics", "flatten_params", "mlflow_key"]

log = logging.getLogger("daskflow")

INSTALL_HINT = "pip install 'daskflow[mlflow]' (or pip install 'mlflow>=2.16')"

#: What of the working directory is logged as artifacts (predictions may be huge: not logged).
ARTIFACT_FILES = ("config.yaml", "metrics.json", "report.html", "run.log", "dask-performance.html")
ARTIFACT_DIRS = ("plots", "artifacts")

#: MLflow's batch limits (mlflow.utils.validation), and the longest param value it stores.
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_PARAM_LENGTH = 6000

_BAD_KEY_CHARACTERS = re.compile(r"[^A-Za-z0-9_.\-/ ]")


def _import_mlflow(what: str = "output.mlflow is set") -> Any:
    try:
        import mlflow
    except ImportError as exc:
        raise ConfigError(f"{what}, but mlflow is not installed: expected the mlflow package, which "
                          f"logs the run. Install it ({INSTALL_HINT}) or remove output.mlflow") from exc
    return mlflow


def _tracker(uri: str) -> Any:
    """An ``MlflowClient`` for ``uri`` (spelled so: only daskflow.cluster makes Dask clients)."""
    from mlflow.tracking import MlflowClient as Tracker

    return Tracker(tracking_uri=uri)


@contextlib.contextmanager
def _bounded_requests(timeout: float, retries: int) -> Iterator[None]:
    """MLflow's HTTP settings for the calls inside: bounded waits, no URL printed to stdout.

    MLflow reads them from the environment at each request; its defaults (120 s a request,
    7 retries with backoff) would make an unreachable server a wait of minutes, and it
    prints "View run ... at <tracking URI>" on stdout, which carries the URI's credentials
    and would break ``daskflow run``'s JSON output.
    """
    settings = {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, math.ceil(timeout))),
                "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries),
                "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
                "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _within(seconds: float, function: Callable[[], Any], what: str) -> Any:
    """``function()`` in a thread, given up after ``seconds`` (a stalled server never hangs a run)."""
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["value"] = function()
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=call, name="daskflow-mlflow", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"{what} did not answer within {seconds:g}s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _local_path(uri: str) -> Path | None:
    """The file or directory of a ``file:`` / ``sqlite:`` / plain-path URI (None for others)."""
    parts = urlsplit(uri)
    if parts.scheme in ("", "file"):
        return Path(unquote(parts.path if parts.scheme else uri)).expanduser()
    if parts.scheme == "sqlite":
        path = uri.split(":///", 1)[1] if ":///" in uri else ""
        return Path(unquote(path)).expanduser() if path and path != ":memory:" else None
    return None


def check_mlflow(config: Config) -> None:
    """output.mlflow: mlflow installed, the tracking store reachable and usable, within the timeout.

    Nothing is created: a store that is not there yet (a new SQLite file, a new ``file:``
    directory) is checked for a writable place instead; MLflow creates it when the run logs.

    Raises
    ------
    ConfigError
        mlflow is missing, or the URI cannot be a tracking store, or the experiment was deleted.
    OutputError
        The tracking server or store cannot be reached or used within ``output.mlflow.timeout``.
    """
    spec = config.output.mlflow
    if spec is None:
        return
    _import_mlflow()
    uri, shown = spec.tracking_uri, config.secrets.scrub(spec.tracking_uri)
    scheme = urlsplit(uri).scheme.lower()
    if scheme == "sqlite" and _local_path(uri) is None:
        raise ConfigError(f"output.mlflow.tracking_uri {shown} names no SQLite file (an in-memory database "
                          "keeps nothing): expected sqlite:///path/to/mlflow.db")
    path = _local_path(uri)
    if path is not None and not path.exists():
        _check_creatable(path, shown)
        if scheme in ("", "file"):
            # MLflow 3 refuses file stores unless MLFLOW_ALLOW_FILE_STORE is set: ask it, on a scratch one.
            with tempfile.TemporaryDirectory() as scratch:
                _probe(Path(scratch).as_uri(), None, spec.timeout, shown, config.secrets.scrub)
        return
    _probe(uri, spec.experiment or config.experiment.name, spec.timeout, shown, config.secrets.scrub)


def _check_creatable(path: Path, shown: str) -> None:
    existing = next((p for p in path.absolute().parents if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"output.mlflow.tracking_uri {shown}: cannot create {path} ({existing} is not a "
                          "writable directory): expected a tracking store in a writable location")


def _probe(uri: str, experiment: str | None, timeout: float, shown: str,
           scrub: Callable[[str], str]) -> None:
    """Open the store and look the experiment up, as the run will, within about ``timeout``."""
    def look_up() -> Any:
        tracker = _tracker(uri)
        return None if experiment is None else tracker.get_experiment_by_name(experiment)

    try:
        with _bounded_requests(timeout, retries=0):
            found = _within(2 * timeout + 5, look_up, f"the MLflow tracking store at {shown}")
    except TimeoutError as exc:
        raise OutputError(f"the MLflow tracking store at {shown} (output.mlflow.tracking_uri) {exc}: start "
                          "the tracking server or fix the URI, or raise output.mlflow.timeout") from None
    except Exception as exc:  # mlflow's MlflowException, requests' errors, SQLAlchemy's...
        raise _unusable(exc, shown, scrub) from None
    if found is not None and getattr(found, "lifecycle_stage", "active") == "deleted":
        raise ConfigError(f"the MLflow experiment {experiment!r} at {shown} was deleted (id "
                          f"{found.experiment_id}): restore it (mlflow experiments restore --experiment-id "
                          f"{found.experiment_id}) or set output.mlflow.experiment to another name")


def _unusable(exc: BaseException, shown: str, scrub: Callable[[str], str]) -> ConfigError | OutputError:
    text = scrub(_first_line(str(exc)))  # mlflow's messages name the URL, credentials and all
    if "MLFLOW_ALLOW_FILE_STORE" in text:
        return ConfigError(f"output.mlflow.tracking_uri {shown} is a file store, which this mlflow refuses "
                           f"({text[:160]}...): expected a database or server store, e.g. "
                           "sqlite:///path/mlflow.db, or set MLFLOW_ALLOW_FILE_STORE=true")
    if urlsplit(shown).scheme.lower() in ("http", "https"):
        return OutputError(f"cannot reach an MLflow tracking server at {shown} (output.mlflow.tracking_uri): "
                           f"{text}. Start it (mlflow server --host ... --port ...) or fix the URI")
    return OutputError(f"cannot open the MLflow tracking store {shown} (output.mlflow.tracking_uri): {text}. "
                       "Fix the URI or the store")


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "no message"
    return line if len(line) <= 400 else line[:400] + "..."


# -- what is logged -----------------------------------------------------------------------


def mlflow_key(parts: tuple[str, ...]) -> str:
    """Dotted key of ``parts`` in MLflow's alphabet: ``ndcg@10`` -> ``ndcg_at_10``, others -> ``_``."""
    cleaned = [_BAD_KEY_CHARACTERS.sub("_", str(part).replace("@", "_at_")).strip(" /") or "_"
               for part in parts]
    return ".".join(part if part not in (".", "..") else "_" for part in cleaned)[:250]


def flatten_params(data: Any, prefix: tuple[str, ...] = ()) -> dict[str, str]:
    """A config's plain data as ``{"section.key": "value"}``: mappings flattened, lists kept whole."""
    if isinstance(data, dict) and data:
        flat: dict[str, str] = {}
        for key, value in data.items():
            flat.update(flatten_params(value, (*prefix, str(key))))
        return flat
    text = data if isinstance(data, str) else json.dumps(data, default=str)
    if len(text) > MAX_PARAM_LENGTH:
        text = text[: MAX_PARAM_LENGTH - 3] + "..."
    return {mlflow_key(prefix): text}


def flatten_metrics(data: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, float, int]]:
    """Every numeric leaf of ``data`` as (key, value, step); a list of numbers is one key, by step."""
    if isinstance(data, dict):
        return [m for key, value in data.items() for m in flatten_metrics(value, (*prefix, str(key)))]
    if isinstance(data, list | tuple):
        if data and all(_is_number(v) for v in data):
            return [(mlflow_key(prefix), float(v), step) for step, v in enumerate(data)]
        return [m for index, value in enumerate(data) for m in flatten_metrics(value, (*prefix, str(index)))]
    if _is_number(data):
        return [(mlflow_key(prefix), float(data), 0)]
    return []


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class Tracking:
    """The MLflow side of one run (does nothing when the config has no ``output.mlflow``).

    ``start`` creates the MLflow run once the stages have succeeded, ``log`` logs the working
    directory, ``finish`` sets it FINISHED after publishing, ``fail`` sets it FAILED.
    """

    def __init__(self, config: Config) -> None:
        self.spec = config.output.mlflow
        self.secrets = config.secrets
        self.experiment = None if self.spec is None else self.spec.experiment or config.experiment.name
        self.run_id: str | None = None
        self._tracker: Any = None

    def start(self, run_id: str) -> dict[str, Any]:
        """Create the MLflow run (RUNNING); returns the ``metrics.json`` entry naming it."""
        if self.spec is None:
            return {}
        spec = self.spec

        def create() -> Any:
            tracker = _tracker(spec.tracking_uri)
            experiment = tracker.get_experiment_by_name(self.experiment)
            if experiment is None:
                try:
                    experiment_id = tracker.create_experiment(self.experiment)
                except Exception:  # created meanwhile by a concurrent run
                    experiment = tracker.get_experiment_by_name(self.experiment)
                    if experiment is None:
                        raise
                    experiment_id = experiment.experiment_id
            else:
                experiment_id = experiment.experiment_id
            run = tracker.create_run(experiment_id, run_name=run_id,
                                     tags={"daskflow.run_id": run_id, "daskflow.experiment": self.experiment})
            return tracker, experiment_id, run.info.run_id

        try:
            self._tracker, experiment_id, self.run_id = self._call(create, "create the MLflow run")
        except OutputError as exc:
            raise self._unpublished(exc) from None
        log.info("MLflow run %s in experiment %r at %s", self.run_id, self.experiment,
                 self.secrets.scrub(self.spec.tracking_uri))
        return {"mlflow": {"run_id": self.run_id, "experiment": self.experiment,
                           "experiment_id": experiment_id,
                           "tracking_uri": self.secrets.scrub(self.spec.tracking_uri)}}

    def log(self, config: Config, metrics: dict[str, Any], work_dir: Path) -> None:
        """Params (the redacted config), metrics (``metrics``, already redacted) and artifacts."""
        if self.spec is None or self.run_id is None:
            return
        from mlflow.entities import Metric, Param

        params = flatten_params(yaml.safe_load(config_to_yaml(config)))
        now = int(time.time() * 1000)
        entries = [Metric(key, value, now, step) for key, value, step in flatten_metrics(metrics)]
        run_id, tracker = self.run_id, self._tracker

        def send() -> None:
            items = [Param(key, value) for key, value in params.items()]
            for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
                tracker.log_batch(run_id, params=items[start:start + MAX_PARAMS_PER_BATCH])
            for start in range(0, len(entries), MAX_METRICS_PER_BATCH):
                tracker.log_batch(run_id, metrics=entries[start:start + MAX_METRICS_PER_BATCH])
            for name in ARTIFACT_FILES:
                if (work_dir / name).is_file():
                    tracker.log_artifact(run_id, str(work_dir / name))
            for name in ARTIFACT_DIRS:
                if (work_dir / name).is_dir() and any((work_dir / name).iterdir()):
                    tracker.log_artifacts(run_id, str(work_dir / name), artifact_path=name)

        try:
            self._call(send, "log the run to MLflow", budget=max(60.0, 12 * self.spec.timeout))
        except OutputError as exc:
            raise self._unpublished(exc) from None
        log.info("logged %d params, %d metric values and the run's artifacts to MLflow run %s",
                 len(params), len(entries), run_id)

    def finish(self) -> None:
        """FINISHED: the run is published. A failure here leaves it RUNNING, and says so."""
        if self.spec is None or self.run_id is None:
            return
        try:
            self._call(lambda: self._tracker.set_terminated(self.run_id, "FINISHED"), "finish the MLflow run")
        except OutputError as exc:
            log.warning("the run is published, but %s; it stays RUNNING in MLflow", exc)

    def fail(self) -> None:
        """FAILED (best effort): the run was not published."""
        if self.spec is None or self.run_id is None:
            return
        with contextlib.suppress(Exception):
            self._call(lambda: self._tracker.set_terminated(self.run_id, "FAILED"), "fail the MLflow run")
            log.info("MLflow run %s set FAILED: the run was not published", self.run_id)

    def _call(self, function: Callable[[], Any], what: str, budget: float | None = None) -> Any:
        """``function()`` with MLflow's requests bounded; any failure as an OutputError, scrubbed."""
        assert self.spec is not None
        shown = self.secrets.scrub(self.spec.tracking_uri)
        seconds = budget if budget is not None else 3 * (2 * self.spec.timeout) + 10
        try:
            with _bounded_requests(self.spec.timeout, retries=2):
                return _within(seconds, function, f"the MLflow tracking store at {shown}")
        except Exception as exc:
            raise OutputError(self.secrets.scrub(f"cannot {what} at {shown} (output.mlflow.tracking_uri): "
                                                 f"{_first_line(str(exc))}")) from None

    def _unpublished(self, exc: OutputError) -> OutputError:
        """The error of a failed start or log: the run is not published, its MLflow run not FINISHED."""
        marked = "" if self.run_id is None else (f"; the MLflow run {self.run_id} is set FAILED (left "
                                                  "RUNNING if the server no longer answers)")
        return OutputError(f"{exc}. Nothing was published{marked}: check the tracking server and run "
                           "again, or remove output.mlflow")

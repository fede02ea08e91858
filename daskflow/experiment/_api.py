"""``daskflow.run``: an experiment from a script or a notebook, as ``daskflow run`` runs it."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daskflow._errors import ClusterError, ConfigError

if TYPE_CHECKING:
    from daskflow.config import Config

__all__ = ["ExperimentResult", "run"]

#: metrics.json entries naming a prediction table the run wrote: (entry, table name).
_PREDICTIONS = (("predict", "recommendations"), (("classify", "score"), "scores"))


@dataclass
class ExperimentResult:
    """A published run: what it measured, where it is, what it fitted and predicted.

    Attributes
    ----------
    run_dir : the published run directory (``output.dir/<experiment>/<run_id>``)
    metrics : ``metrics.json`` as a dict (secrets hidden, as in the file)
    models : the fitted estimators by name: the recommender under ``model.name``, each
        classifier under its ``classify.models`` name
    predictions : the tables the run wrote (``recommendations``, ``scores``), as
        lazy Dask DataFrames read back from where they were published
    config : the resolved :class:`~daskflow.config.Config` the run ran
    """

    run_dir: Path
    metrics: dict[str, Any]
    models: dict[str, Any] = field(default_factory=dict)
    predictions: dict[str, Any] = field(default_factory=dict)
    config: Config | None = None

    @property
    def run_id(self) -> str:
        """The run's id (the name of its run directory)."""
        return self.run_dir.name


def run(config_or_path: str | os.PathLike[str] | Mapping[str, Any] | Any, overrides: Iterable[str] = (),
        *, client: Any = None, resume: str | os.PathLike[str] | None = None) -> ExperimentResult:
    """Run an experiment and publish its run directory, as ``daskflow run`` does.

    Parameters
    ----------
    config_or_path : the experiment: a YAML file's path, the mapping such a file holds, or
        a :class:`~daskflow.config.Config` (e.g. from :func:`daskflow.config.load_config`)
    overrides : ``key.sub=value`` strings, as on the command line (``["evaluate.k=[5,10]"]``)
    client : a connected ``distributed.Client`` to run on (a notebook's, say), instead of
        the cluster the config's ``cluster:`` section describes; it is left open
    resume : the working directory of an interrupted run of the same config, to continue it

    Returns
    -------
    ExperimentResult

    Raises
    ------
    DaskflowError
        The same errors, with the same messages, that ``daskflow run`` exits 2 on (a bad
        config, missing data, an unreachable tracking server...). Nothing is published then.

    Examples
    --------
    >>> import daskflow                                              # doctest: +SKIP
    >>> result = daskflow.run("configs/quickstart.yaml", ["model.params.n_iter=5"])
    >>> result.metrics["evaluation"]["als"]["by_time"]["ndcg@10"]
    >>> result.predictions["recommendations"].head()
    """
    from daskflow.config import Config, load_config, load_config_data, redacting
    from daskflow.experiment._runner import run_experiment

    overrides = _as_overrides(overrides)
    if isinstance(config_or_path, Config):
        config = _overridden(config_or_path, overrides)
    elif isinstance(config_or_path, Mapping):
        config = load_config_data(config_or_path, overrides, source="the config mapping")
    elif isinstance(config_or_path, str | os.PathLike):
        config = load_config(config_or_path, overrides)
    else:
        raise ConfigError(f"daskflow.run got a {type(config_or_path).__name__} as the experiment: expected "
                          "the path of a YAML experiment file, a dict of its sections, or a "
                          "daskflow.config.Config")
    _check_client(client)
    with redacting(config.secrets):  # no log line or error message shows a secret (docs/security.md)
        result = run_experiment(config, resume=resume, client=client)
        predictions = _predictions(config, result.run_dir, result.metrics)
    return ExperimentResult(run_dir=result.run_dir, metrics=result.metrics, models=result.models,
                            predictions=predictions, config=config)


def _as_overrides(overrides: Iterable[str] | str) -> list[str]:
    if isinstance(overrides, str):  # a lone "k=v" would otherwise be read letter by letter
        return [overrides]
    if isinstance(overrides, Mapping):
        raise ConfigError("overrides is a mapping: expected a list of key.sub=value strings, e.g. "
                          "[\"evaluate.k=[5,10]\"]; for a mapping of sections, pass it as the config")
    overrides = list(overrides)
    bad = [o for o in overrides if not isinstance(o, str)]
    if bad:
        raise ConfigError(f"overrides holds {bad[0]!r} ({type(bad[0]).__name__}): expected key.sub=value "
                          "strings, e.g. \"cluster.n_workers=4\"")
    return overrides


def _overridden(config: Config, overrides: list[str]) -> Config:
    """``config`` with ``overrides`` applied, keeping what its loader knew to be secret."""
    if not overrides:
        return config
    from daskflow.config import Secrets, load_config_data

    data = config.model_dump(mode="json", by_alias=True, exclude_unset=True)
    new = load_config_data(data, overrides, environ={}, source="the config")
    old = config.secrets
    new._secrets = Secrets({**new.secrets.from_env, **old.from_env}, new.secrets.values | old.values)
    return new


def _check_client(client: Any) -> None:
    if client is None:
        return
    status = getattr(client, "status", None)
    if not hasattr(client, "submit") or status is None:
        raise ClusterError(f"client is a {type(client).__name__}: expected a connected distributed.Client, "
                           "or None to start the cluster the config describes")
    if str(status) not in ("running", "Status.running"):
        raise ClusterError(f"the client passed to daskflow.run is {status}, not running: pass a connected "
                           "distributed.Client, or client=None to start the cluster the config describes")


def _predictions(config: Config, run_dir: Path, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The prediction tables the run published, as lazy frames (inside the run dir or at their URI)."""
    from daskflow.io import read_table

    found = {}
    for entry, name in _PREDICTIONS:
        section = metrics
        for key in (entry,) if isinstance(entry, str) else entry:
            section = section.get(key) or {} if isinstance(section, Mapping) else {}
        uri = section.get("uri") if isinstance(section, Mapping) else None
        if not uri:
            continue
        if "://" not in uri and not Path(uri).is_absolute():
            found[name] = read_table(str(run_dir / uri), format="parquet", name=name)
        else:
            options = (config.predict.storage_options if name == "recommendations"
                       else config.classify.score.storage_options)
            found[name] = read_table(uri, format="parquet", storage_options=options, name=name)
    return found

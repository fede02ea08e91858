"""The recommender's test holdout, shared by the evaluate and tune stages.

The evaluation's leave-k-out splits are drawn once per run (``experiment.seed``,
``evaluate.splits``) and kept on the run's state. Tuning sees only their common training
part, the matrix without any split's held-out interactions, and draws its own folds from
it; the held-out interactions are touched once, to report the default-parameter model and
the tuned one side by side. Whether ``evaluate`` runs, and where the user writes it in
``experiment.stages``, does not change what tuning sees or reports.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from daskflow._errors import DataError
from daskflow.config import Config

__all__ = ["evaluation_split", "holdout_scores", "tune_recommender"]

log = logging.getLogger("daskflow")


def evaluation_split(config: Config, state: Any, split: str) -> tuple[Any, Any]:
    """The (train, test) matrices of the evaluation's ``split``, drawn once per run."""
    from daskflow.features import leave_k_out_split

    spec = config.evaluate
    if split not in state.splits:
        train, test = leave_k_out_split(state.matrix, k=spec.holdout, min_items=spec.min_user_items,
                                        mode=split, seed=config.experiment.seed, client=state.client)
        if test.nnz == 0:
            raise DataError(f"the {split} split held out nothing: no user has "
                            f"{spec.min_user_items}+ distinct items. Lower evaluate.min_user_items")
        state.splits[split] = (train, test)
    return state.splits[split]


def holdout_scores(config: Config, state: Any, name: str, params: dict[str, Any], split: str, *,
                   k: tuple[int, ...], metrics: tuple[str, ...]) -> dict[str, Any]:
    """Ranking metrics on ``split``'s test holdout of model ``name`` fitted on its training part.

    Computed once per (model, parameters, split, cut-offs, metrics) in a run: evaluate and
    tune report the default-parameter model from the same fit.
    """
    from daskflow.evaluation import evaluate_ranking
    from daskflow.models import make_model

    key = (name, json.dumps(params, sort_keys=True, default=str), split, k, metrics)
    if key not in state.holdout_scores:
        train, test = evaluation_split(config, state, split)
        model = make_model(name, params).fit(train, client=state.client)
        scores = evaluate_ranking(model, train, test, k=k, metrics=metrics, client=state.client)
        state.holdout_scores[key] = {"holdout": config.evaluate.holdout, "test_nnz": test.nnz, **scores}
    return state.holdout_scores[key]


def tuning_matrix(config: Config, state: Any) -> Any:
    """The interactions tuning may see: the matrix without any evaluation split's held-out items."""
    from daskflow.features import without_entries

    halves = [evaluation_split(config, state, split) for split in config.evaluate.splits]
    if len(halves) == 1:
        return halves[0][0]
    return without_entries(state.matrix, *(test for _, test in halves), client=state.client)


def _report_metrics(config: Config, metric: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """evaluate's cut-offs and metrics, plus the tuned metric when they lack it."""
    spec = config.evaluate
    name, _, cut = metric.partition("@")
    k = tuple(spec.k) if not cut or int(cut) in spec.k else (*spec.k, int(cut))
    metrics = tuple(spec.metrics) if name in spec.metrics else (*spec.metrics, name)
    return k, metrics


def tune_recommender(config: Config, state: Any, tuning_outputs: Any) -> None:
    """Tune model.name on folds of the training part; test the default and tuned models once.

    ``tuning_outputs(spec, result, state, metric)`` saves the search and summarises it
    (shared with the classifier's tuning). The tuned parameters are then refitted on every
    interaction: that model is the run's, the one ``predict`` uses.
    """
    from daskflow.models import make_model
    from daskflow.tuning import search_recommender

    spec = config.tune
    assert spec is not None and state.matrix is not None
    metric = spec.resolved_metric
    name, defaults = config.model.name, dict(config.model.params)
    training = tuning_matrix(config, state)
    log.info("tuning %s on the training part: %d of %d interactions (the evaluation's held-out ones "
             "removed)", name, training.nnz, state.matrix.nnz)
    result = search_recommender(make_model(name, defaults), spec.params, training, method=spec.method,
                                n_trials=spec.n_trials, folds=spec.folds, holdout=config.evaluate.holdout,
                                min_items=config.evaluate.min_user_items, metric=metric,
                                seed=config.experiment.seed, refit=False, client=state.client)
    summary = tuning_outputs(spec, result, state, metric)
    tuned = {**defaults, **result.best_params}
    k, metrics = _report_metrics(config, metric)
    test = {}
    for split in config.evaluate.splits:
        test[split] = {
            "default": {"params": defaults, **holdout_scores(config, state, name, defaults, split, k=k,
                                                             metrics=metrics)},
            "tuned": {"params": tuned, **holdout_scores(config, state, name, tuned, split, k=k,
                                                        metrics=metrics)}}
        log.info("%s on the %s test holdout: %s %.4f with default parameters, %.4f tuned", name, split,
                 metric, test[split]["default"][metric], test[split]["tuned"][metric])
    state.metrics["tune"] = {
        "model": name, **summary,
        "protocol": ("folds drawn from the training part only (every evaluate.splits held-out "
                     "interaction removed); the test holdout scored once, for the default and tuned models"),
        "training_interactions": training.nnz, "held_out_interactions": state.matrix.nnz - training.nnz,
        "test": test}
    # The run's model (what predict uses): the tuned parameters refitted on every interaction,
    # as train fits the default ones; none of its scores is reported.
    state.model = make_model(name, tuned).fit(state.matrix, client=state.client)

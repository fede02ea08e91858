"""The classifier stages of the runner: features -> classify -> tune -> score.

On the entity table of ``features.table`` (with its aggregates and derived columns; the
house-ad conversion model P(convert | saw house ad) is one such config, configs/conversion.yaml):
every configured classifier trained on the training rows and evaluated on the test rows
(ROC/PR AUC, log loss, Brier, calibration, targeting curve), the seed's SGD convergence and
tuning plots, and the probability of every row written as Parquet (``_classify.score_table``).
"""

from __future__ import annotations

import logging
import pickle
import time
from typing import Any

import numpy as np

from daskflow._dask import compute
from daskflow.config import Config
from daskflow.config._models import ClassifyConfig
from daskflow.experiment import _classify as table_mode
from daskflow.experiment._rundir import plots_dir
from daskflow.experiment._state import ConversionState, RunState
from daskflow.experiment._tuning import tuning_outputs

__all__ = ["ConversionState", "stage_features", "stage_classify", "stage_tune", "stage_score"]

log = logging.getLogger("daskflow")


def stage_features(config: Config, state: RunState) -> None:
    """Build the entity table of ``features.table`` (aggregates, label, derived columns) and check it."""
    table_mode.table_features(config, state)


def stage_classify(config: Config, state: RunState) -> None:
    """Train every configured classifier on the training rows; evaluate on the test rows.

    When score is to choose among several models, each is also validated on the training
    rows (classify.selection): the choice never sees a test row.
    """
    from daskflow.evaluation import evaluate_classifier
    from daskflow.models import make_model
    from daskflow.reporting import plot_calibration, plot_gains, plot_precision_recall, plot_roc

    spec = config.classify
    conv = state.conversion
    _split_and_encode(config, state)
    (X_train, y_train), (X_test, y_test) = conv.training_rows(), conv.test_rows()
    (y_true,) = compute([y_test], state.client)
    results: dict[str, Any] = {}
    choosing = table_mode.needs_choice(config, state)
    for name, entry in config.classifiers.items():
        model = make_model(entry.model, entry.params, where=f"{config.classifiers_key}.{name}")
        started = time.perf_counter()
        model.fit(X_train, y_train, client=state.client)
        fit_seconds = time.perf_counter() - started
        validation = {}
        if choosing:
            conv.validation[name] = table_mode.validation_score(config, state, model)
            validation = {"validation_" + config.classify.selection.metric: round(conv.validation[name], 6)}
        results[name] = _evaluate(model, name, X_test, y_true, spec, state, evaluate_classifier,
                                  seed=config.experiment.seed)
        results[name] = {"model": entry.model, "params": entry.params, "fit_seconds": round(fit_seconds, 3),
                         **_curves_summary(model), **validation, **results[name]}
        conv.models[name] = model
    metrics = state.metrics.setdefault(table_mode.metrics_section(config), {})
    split = table_mode.split_summary(config, state)
    metrics.update({"split": split, "models": results})
    plots = plots_dir(state.work_dir)
    plot_roc(conv.reports, plots / "roc.png")
    plot_precision_recall(conv.reports, plots / "precision_recall.png")
    plot_gains(conv.reports, plots / "gains.png")
    plot_calibration(conv.reports, plots / "calibration.png")
    if spec.convergence is not None:
        _convergence_plot(config, state, X_train, y_train)
    with open(state.work_dir / "artifacts" / "conversion_models.pkl", "wb") as handle:
        pickle.dump({"encoder": conv.encoder, "models": conv.models}, handle)


def _top_features(model: Any, names: Any, k: int = 10) -> list[dict[str, Any]]:
    """The ``k`` features a fitted model leans on most, for the report; [] when it has no such notion.

    Linear models: coefficients on the encoded (standardised) features, signed, ranked by
    size; trees: impurity-based importances. Naive Bayes has neither and shows nothing.
    """
    if getattr(model, "coef_", None) is not None:
        weights = np.ravel(np.asarray(model.coef_, dtype=np.float64))
        meaning = ("coefficients on the encoded features (standardised numbers, one-hot categories): "
                   "the change in log-odds per unit; the sign says which way")
    elif getattr(model, "feature_importances_", None) is not None:
        weights = np.asarray(model.feature_importances_, dtype=np.float64)
        meaning = "importances (impurity decrease, or splits for boosted trees): larger leans on it more"
    else:
        return []
    names = [str(n) for n in names]
    if len(weights) != len(names):
        return []
    order = np.argsort(-np.abs(weights), kind="stable")[:k]
    return [{"feature": names[i], "weight": round(float(weights[i]), 6), "meaning": meaning} for i in order]


def _evaluate(model: Any, name: str, X_test: Any, y_true: np.ndarray, spec: ClassifyConfig, state: RunState,
              evaluate_classifier: Any, *, seed: int) -> dict[str, Any]:
    (scores,) = compute([model.predict_proba(X_test)[:, 1]], state.client)
    report = evaluate_classifier(y_true, scores, depths=spec.depths, n_bins=spec.calibration_bins,
                                 n_resamples=spec.bootstrap, seed=seed)
    state.conversion.reports[name] = report
    summary = report.to_dict()
    top = _top_features(model, state.conversion.encoder.get_feature_names_out())
    if top:
        summary["top_features"] = top
    log.info("%s: test ROC AUC %.4f, PR AUC %.4f, log loss %.4f", name, summary["roc_auc"],
             summary["pr_auc"], summary["log_loss"])
    return summary


def _curves_summary(model: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for curve in ("loss_curve_", "iteration_seconds_"):
        if hasattr(model, curve):
            out[curve.rstrip("_")] = [round(float(v), 8) for v in getattr(model, curve)]
    if hasattr(model, "n_iter_"):
        out["n_iter"] = int(np.max(model.n_iter_))
    return out


def _convergence_plot(config: Config, state: RunState, X_train: Any, y_train: Any) -> None:
    """The seed's SGD convergence plot: objective per iteration, one curve per step size."""
    from daskflow.models import make_model
    from daskflow.reporting import plot_convergence

    spec = config.classify.convergence
    assert spec is not None
    entry = config.classify.models[spec.model]
    curves = {}
    for step in spec.step_sizes:
        model = make_model(entry.model, {**entry.params, "step_size": step},
                           where=f"classify.models.{spec.model}")
        model.fit(X_train, y_train, client=state.client)
        curves[f"step_size={step:g}"] = list(model.loss_curve_)
    plot_convergence(curves, plots_dir(state.work_dir) / "sgd_convergence.png",
                     title=f"SGD convergence ({spec.model})", log_y=True)
    state.metrics["classify"]["convergence"] = {
        label: {"final_loss": round(float(curve[-1]), 8), "iterations": len(curve)}
        for label, curve in curves.items()}


def stage_tune(config: Config, state: RunState) -> None:
    """Search the configured grid over a classifier; refit the best; evaluate it on the test data.

    The recommender's tuning (tune.target: recommender) is daskflow.experiment._recommend's.
    """
    from daskflow.evaluation import evaluate_classifier
    from daskflow.models import make_model
    from daskflow.tuning import search

    spec = config.tune
    assert spec is not None
    conv = state.conversion
    if conv.train is None:  # tune without classify: split and encode here
        _split_and_encode(config, state)
    name = spec.model or next(iter(config.classifiers))
    entry = config.classifiers[name]
    estimator = make_model(entry.model, entry.params, where=f"{config.classifiers_key}.{name}")
    metric = spec.resolved_metric
    X_train, y_train = conv.training_rows()
    result = search(estimator, spec.params, X_train, y_train, method=spec.method, n_trials=spec.n_trials,
                    folds=spec.folds, holdout=spec.holdout, metric=metric, seed=config.experiment.seed,
                    client=state.client)
    summary = tuning_outputs(spec, result, state, metric)
    tuned = f"{name}_tuned"
    X_test, y_test = conv.test_rows()
    (y_true,) = compute([y_test], state.client)
    report = _evaluate(result.best_estimator, tuned, X_test, y_true, config.classify, state,
                       evaluate_classifier, seed=config.experiment.seed)
    conv.models[tuned] = result.best_estimator
    validation = {}
    if table_mode.needs_choice(config, state):  # the tuned model competes on the same training folds
        conv.validation[tuned] = table_mode.validation_score(config, state, result.best_estimator)
        validation = {"validation_" + config.classify.selection.metric: round(conv.validation[tuned], 6)}
    state.metrics.setdefault(table_mode.metrics_section(config), {}).setdefault("models", {})[tuned] = {
        "model": entry.model, "params": {**entry.params, **result.best_params}, **validation, **report}
    state.metrics["tune"] = {"model": name, **summary, "test_" + metric: report.get(metric)}


def _split_and_encode(config: Config, state: RunState) -> None:
    """Split the labelled rows into train and test; fit the encoder on train; both sides' matrices."""
    table_mode.split_and_encode_table(config, state)


def stage_score(config: Config, state: RunState) -> None:
    """Score every entity with the chosen model; write (id, probability, decile) as Parquet."""
    # Chosen on the training rows only (classify.selection), never by a test score.
    table_mode.score_table(config, state, table_mode.chosen_model(config, state))

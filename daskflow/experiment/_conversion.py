"""The conversion-model stages of the runner: features -> classify -> tune -> score.

P(convert | saw house ad): per-user features built out of core from the logs, every
configured classifier trained on the training users and evaluated on the test users
(ROC/PR AUC, log loss, Brier, calibration, targeting curve), the seed's SGD convergence
and tuning plots, and the probability of conversion for every user written as Parquet.
"""

from __future__ import annotations

import logging
import pickle
import time
from typing import Any

import numpy as np

from daskflow._dask import compute, persist
from daskflow._errors import DataError
from daskflow.config import Config
from daskflow.experiment import _classify as table_mode
from daskflow.experiment._rundir import plots_dir
from daskflow.experiment._sources import read_source
from daskflow.experiment._state import ConversionState, RunState
from daskflow.experiment._tuning import tuning_outputs
from daskflow.io import open_filesystem, write_parquet

__all__ = ["ConversionState", "stage_features", "stage_classify", "stage_tune", "stage_score"]

log = logging.getLogger("daskflow")


def stage_features(config: Config, state: RunState) -> None:
    """Build (or reuse) the per-user feature table and summarise its population."""
    from daskflow.features import build_conversion_features, load_features, save_features

    if config.features.table is not None:  # the user's own entity table (docs/features.md)
        table_mode.table_features(config, state)
        return
    spec = config.conversion
    reuse = spec.features_uri is not None and _exists(spec.features_uri, spec.storage_options)
    if reuse:
        log.info("reusing conversion features from %s", spec.features_uri)
        frame = load_features(spec.features_uri, storage_options=spec.storage_options)
    else:
        roles = spec.sources
        frame = build_conversion_features(
            read_source(config, roles.listens, None), read_source(config, roles.users, None),
            read_source(config, roles.impressions, None), read_source(config, roles.conversions, None),
            window_days=spec.window_days, session_gap_minutes=spec.session_gap_minutes,
            client=state.client)
        uri = spec.features_uri or str(state.work_dir / "artifacts" / "conversion_features.parquet")
        save_features(frame, uri, storage_options=spec.storage_options if spec.features_uri else None)
        frame = load_features(uri, storage_options=spec.storage_options if spec.features_uri else None)
    (frame,) = persist([frame], state.client)
    state.conversion.features = frame
    columns = [c for c in ("exposed", "label", "censored") if c in frame.columns]
    sums = compute([frame[c].astype("int64").sum() for c in columns] + [frame.shape[0]], state.client)
    summary = dict(zip(columns, (int(v) for v in sums[:-1]), strict=True))
    population = {"users": int(sums[-1]), "exposed_users": summary.get("exposed", 0),
                  "converted_users": summary.get("label", 0), "censored_users": summary.get("censored", 0),
                  "features_reused": reuse, "window_days": spec.window_days}
    if population["exposed_users"]:
        population["conversion_rate"] = population["converted_users"] / population["exposed_users"]
    state.metrics.setdefault("conversion", {})["population"] = population
    log.info("conversion population: %s", population)


def _exists(uri: str, storage_options: dict[str, Any]) -> bool:
    fs, path = open_filesystem(uri, storage_options)
    return bool(fs.exists(path))


def stage_classify(config: Config, state: RunState) -> None:
    """Train every configured classifier on the training rows; evaluate on the test rows.

    When score is to choose among several models, each is also validated on the training
    rows (classify.selection): the choice never sees a test row.
    """
    from daskflow.evaluation import evaluate_classifier
    from daskflow.models import make_model
    from daskflow.reporting import plot_calibration, plot_gains, plot_precision_recall, plot_roc

    spec = config.conversion
    conv = state.conversion
    _split_and_encode(config, state)
    (X_train, y_train), (X_test, y_test) = conv.train, conv.test
    n_train, n_test = X_train.shape[0], X_test.shape[0]
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
    if conv.table is not None:
        split = table_mode.split_summary(config, state)
    else:
        split = {"by": spec.split.by, "train_users": int(n_train), "test_users": int(n_test),
                 "features": list(conv.encoder.get_feature_names_out())}
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


def _evaluate(model: Any, name: str, X_test: Any, y_true: np.ndarray, spec: Any, state: RunState,
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

    spec = config.conversion.convergence
    assert spec is not None
    entry = config.conversion.models[spec.model]
    curves = {}
    for step in spec.step_sizes:
        model = make_model(entry.model, {**entry.params, "step_size": step},
                           where=f"conversion.models.{spec.model}")
        model.fit(X_train, y_train, client=state.client)
        curves[f"step_size={step:g}"] = list(model.loss_curve_)
    plot_convergence(curves, plots_dir(state.work_dir) / "sgd_convergence.png",
                     title=f"SGD convergence ({spec.model})", log_y=True)
    state.metrics["conversion"]["convergence"] = {
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
    X_train, y_train = conv.train
    result = search(estimator, spec.params, X_train, y_train, method=spec.method, n_trials=spec.n_trials,
                    folds=spec.folds, holdout=spec.holdout, metric=metric, seed=config.experiment.seed,
                    client=state.client)
    summary = tuning_outputs(spec, result, state, metric)
    tuned = f"{name}_tuned"
    (y_true,) = compute([conv.test[1]], state.client)
    report = _evaluate(result.best_estimator, tuned, conv.test[0], y_true, config.conversion, state,
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
    """Split exposed users into train and test; fit the encoder on train; persist both sides."""
    from daskflow.features import ConversionEncoder, split_users

    if state.conversion.table is not None:
        table_mode.split_and_encode_table(config, state)
        return
    spec = config.conversion
    conv = state.conversion
    train, test = split_users(conv.features, test_size=spec.split.test_size, by=spec.split.by,
                              seed=config.experiment.seed)
    conv.encoder = ConversionEncoder().fit(train)
    arrays = []
    for part in (train, test):
        arrays += [conv.encoder.transform(part), part["label"].to_dask_array(lengths=True)]
    X_train, y_train, X_test, y_test = persist(arrays, state.client)
    if X_train.shape[0] == 0 or X_test.shape[0] == 0:
        raise DataError(f"the {spec.split.by} split left {X_train.shape[0]} training and {X_test.shape[0]} "
                        "test users: need exposed users on both sides. Generate a larger lake or change "
                        "conversion.split.test_size")
    size = X_train.nbytes + X_test.nbytes
    if size <= spec.in_memory_bytes:
        # Small tables: one gather, then every fit runs in memory, free of per-iteration scheduling.
        X_train, y_train, X_test, y_test = compute([X_train, y_train, X_test, y_test], state.client)
    log.info("conversion tables: %d training and %d test users x %d features (%.1f MB), fitted %s",
             X_train.shape[0], X_test.shape[0], X_train.shape[1], size / 1e6,
             "in memory" if size <= spec.in_memory_bytes else "block by block on the cluster")
    conv.train, conv.test = (X_train, y_train), (X_test, y_test)


def _score_partition(frame: Any, encoder: Any, model: Any) -> Any:
    """P(convert) for one partition of the feature table (runs on a worker)."""
    import pandas as pd

    if len(frame) == 0:
        return pd.DataFrame({"user_id": pd.Series([], dtype=frame["user_id"].dtype),
                             "p_convert": np.zeros(0)})
    scores = np.asarray(model.predict_proba(np.asarray(encoder.transform(frame))))[:, 1]
    return pd.DataFrame({"user_id": frame["user_id"].to_numpy(), "p_convert": scores})


def _with_decile(frame: Any, cutoffs: np.ndarray) -> Any:
    # decile 1 = the 10% of users most likely to convert, 10 = the least likely.
    frame = frame.copy()
    frame["decile"] = (10 - np.searchsorted(cutoffs, frame["p_convert"].to_numpy(), side="right")
                       ).astype("int8")
    return frame


def stage_score(config: Config, state: RunState) -> None:
    """Score every user of the lake with the chosen model; write (user_id, p_convert, decile)."""
    import pandas as pd

    spec = config.conversion.score
    conv = state.conversion
    # Chosen on the training rows only (classify.selection), never by a test score.
    name = table_mode.chosen_model(config, state)
    if conv.table is not None:
        table_mode.score_table(config, state, name)
        return
    model = conv.models[name]
    meta = pd.DataFrame({"user_id": pd.Series([], dtype=conv.features["user_id"].dtype),
                         "p_convert": pd.Series([], dtype="float64")})
    scores = conv.features.map_partitions(_score_partition, conv.encoder, model, meta=meta,
                                          token="score-conversion")
    (scores,) = persist([scores], state.client)
    (p_all,) = compute([scores["p_convert"]], state.client)
    cutoffs = np.quantile(np.asarray(p_all), np.linspace(0.1, 0.9, 9))
    meta = meta.assign(decile=pd.Series([], dtype="int8"))
    table = scores.map_partitions(_with_decile, cutoffs, meta=meta, token="score-decile")
    uri = spec.uri or str(state.work_dir / "predictions" / "conversion_scores.parquet")
    write_parquet(table, uri, storage_options=spec.storage_options, publish=state.publish)
    state.metrics["conversion"]["score"] = {
        "model": name, "users": int(len(p_all)), "mean_p_convert": round(float(np.mean(p_all)), 6),
        "uri": spec.uri or "predictions/conversion_scores.parquet",
        "decile_cutoffs": [round(float(c), 6) for c in cutoffs]}
    log.info("scored %d users with %s -> %s", len(p_all), name, uri)

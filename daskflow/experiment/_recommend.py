"""The recommender pipeline: interactions -> train -> evaluate -> predict, and tune on a recommender.

Each stage takes the validated config and the run's :class:`~daskflow.experiment._state.RunState`:
``interactions`` builds the interaction matrix, ``train`` fits ``model.name`` on it (with
checkpoints in the run, so an interrupted run resumes), ``evaluate`` and ``tune`` share the
test holdout of daskflow.experiment._recommend_holdout, and ``predict`` writes every user's
top items as Parquet.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from daskflow._dask import compute
from daskflow._errors import ConfigError, DataError
from daskflow.config import Config
from daskflow.experiment._recommend_holdout import holdout_scores, tuning_matrix
from daskflow.experiment._rundir import CHECKPOINTS, plots_dir
from daskflow.experiment._sources import interaction_columns, read_source
from daskflow.experiment._state import RunState
from daskflow.experiment._tuning import tuning_outputs
from daskflow.features import build_interactions
from daskflow.io import write_parquet
from daskflow.models import make_model
from daskflow.prediction import recommend_all

if TYPE_CHECKING:
    from daskflow.models import ItemContent

__all__ = ["stage_evaluate", "stage_interactions", "stage_predict", "stage_train", "stage_tune_recommender"]

log = logging.getLogger("daskflow")


def stage_interactions(config: Config, state: RunState) -> None:
    """Build the interaction matrix of ``features.interactions``; write its ID mappings."""
    spec = config.features.interactions
    events = read_source(config, spec.source, interaction_columns(config))
    matrix = build_interactions(events, user_col=spec.user_col, item_col=spec.item_col,
                                weight=spec.weight, time_col=spec.time_col,
                                block_size=spec.block_size, allow_empty_ids=spec.allow_empty_ids,
                                client=state.client)
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


def stage_train(config: Config, state: RunState) -> None:
    """Fit ``model.name`` on the interaction matrix (checkpointed in the run); save it."""
    model = make_model(config.model.name, config.model.params)
    fit_options: dict[str, Any] = {}
    if "checkpoint_dir" in model.get_params():
        # The train fit checkpoints inside the run, so an interrupted run can be resumed.
        if model.checkpoint_dir is None:
            model.set_params(checkpoint_dir=str(state.work_dir / CHECKPOINTS / "train"))
        fit_options["resume"] = state.resumed
    if config.model.content is not None:
        fit_options["item_content"] = _item_content(config, state)
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


def stage_evaluate(config: Config, state: RunState) -> None:
    """Ranking metrics of the model and the baselines on each split's test holdout."""
    spec = config.evaluate
    assert state.matrix is not None
    models = {config.model.name: config.model.params,
              **{name: {} for name in spec.baselines if name != config.model.name}}
    results: dict[str, dict[str, Any]] = {name: {} for name in models}
    for split in spec.splits:
        # The same split (and fits) as tune's final test: daskflow.experiment._recommend_holdout.
        for name, params in models.items():
            results[name][split] = dict(holdout_scores(config, state, name, params, split,
                                                       k=tuple(spec.k), metrics=tuple(spec.metrics)))
            scores = {k: v for k, v in results[name][split].items() if k not in ("holdout", "test_nnz")}
            log.info("%s, %s split: %s", name, split, ", ".join(
                f"{k}={v:.4f}" for k, v in scores.items() if k != "n_users"))
    state.metrics["evaluation"] = results
    if spec.cold_items is not None:
        from daskflow.evaluation import evaluate_cold_items

        cold = evaluate_cold_items(make_model(config.model.name, config.model.params), state.matrix,
                                   _item_content(config, state), share=spec.cold_items, k=spec.k,
                                   seed=config.experiment.seed, client=state.client)
        state.metrics["cold_start"] = cold
        log.info("cold items (%d held out): %s", cold["n_cold_items"], ", ".join(
            f"{name} auc={scores['auc']:.4f}" for name, scores in cold["scorers"].items()))
    from daskflow.reporting import plot_ranking_metrics

    per_model = {f"{name} ({split})": {k: v for k, v in scores.items() if "@" in k}
                 for name, splits in results.items() for split, scores in splits.items()}
    plot_ranking_metrics(per_model, plots_dir(state.work_dir) / "ranking_metrics.png")


def _item_content(config: Config, state: RunState) -> ItemContent:
    """model.content as an ItemContent, its table checked (and encoder fitted) up front."""
    from daskflow._errors import DaskflowError
    from daskflow.models import ContentEncoder, ContentToFactors, ItemContent

    spec = config.model.content
    assert spec is not None and state.matrix is not None
    if state.item_content is not None:
        return state.item_content
    where = f"model.content (data.sources.{spec.source})"
    table = read_source(config, spec.source, None if spec.columns is None else [spec.id, *spec.columns])
    present = [str(c) for c in table.columns]
    if spec.id not in present:
        raise ConfigError(f"model.content.id is {spec.id!r} but the item table data.sources.{spec.source} "
                          f"has no such column (found {', '.join(present)}): set model.content.id to its "
                          "item ID column")
    missing = [c for c in spec.columns or () if c not in present]
    if missing:
        raise ConfigError(f"model.content.columns names {', '.join(map(repr, missing))}, missing from "
                          f"data.sources.{spec.source} (found {', '.join(present)})")
    encoder = ContentEncoder(id_col=spec.id, columns=spec.columns, separators=spec.separators or None,
                             max_categories=spec.max_categories)
    content = ItemContent(table, id_col=spec.id, encoder=encoder,
                          regressor=ContentToFactors(model=spec.model, **spec.params))
    try:
        content.fit_encoder(client=state.client)
        check = ContentToFactors(model=spec.model, **spec.params)
        from daskflow.models._params import check_params

        check_params(check, check._rules)
    except DaskflowError as exc:
        raise type(exc)(f"{exc} ({where})") from exc
    ids = content.frame(client=state.client)[spec.id].astype(str)
    if not ids.isin(state.matrix.item_ids.astype(str)).any():
        raise DataError(f"no warm items with content: none of the {len(ids)} values of column {spec.id!r} "
                        f"of data.sources.{spec.source} (e.g. {', '.join(map(repr, ids[:3]))}) is an item of "
                        f"the interactions (features.interactions.item_col "
                        f"{config.features.interactions.item_col!r}, e.g. "
                        f"{', '.join(map(repr, map(str, state.matrix.item_ids[:3])))}): set model.content.id "
                        "to the column holding the same item IDs")
    state.item_content = content
    return content


def stage_predict(config: Config, state: RunState) -> None:
    """Every user's top ``predict.n`` items as Parquet; a few labelled examples in metrics."""
    spec = config.predict
    assert state.matrix is not None and state.model is not None
    uri = spec.uri or str(state.work_dir / "predictions" / "recommendations.parquet")
    frame = recommend_all(state.model, state.matrix, n=spec.n, filter_seen=spec.filter_seen)
    write_parquet(frame, uri, storage_options=spec.storage_options, publish=state.publish)
    state.metrics["predict"] = {"uri": spec.uri or "predictions/recommendations.parquet",
                                "users": state.matrix.n_users, "n": spec.n}
    if spec.examples:
        state.metrics["predict"]["examples"] = _example_recommendations(config, state)


def _example_recommendations(config: Config, state: RunState) -> list[dict[str, Any]]:
    """The first ``predict.examples`` users' top items, labelled from ``predict.item_names``."""
    spec = config.predict
    matrix, model = state.matrix, state.model
    assert matrix is not None
    users = list(matrix.user_ids[:spec.examples])
    # The first users' rows from the first block(s): nothing else is gathered.
    needed = int(np.searchsorted(matrix.user_bounds, len(users), side="left"))
    blocks = compute(list(matrix.user_blocks[:max(needed, 1)]), state.client)
    seen = sp.vstack([block.csr for block in blocks], format="csr")[:len(users)]
    # By row index: every recommender takes those (not all of them keep the original IDs).
    items, _ = model.recommend(np.arange(len(users)), seen, n=min(spec.n, 5), filter_seen=spec.filter_seen)
    # A model with cold items (model.content) knows more items than the matrix, as in recommend_all.
    known = getattr(model, "item_ids_", None)
    item_ids = known if known is not None and len(known) > matrix.n_items else matrix.item_ids
    ids = [[str(item_ids[i]) for i in row if i >= 0] for row in items]
    labels: dict[str, str] = {}
    if spec.item_names is not None:
        names = spec.item_names
        wanted = {item for row in ids for item in row}
        table = read_source(config, names.source, [names.id, *names.columns])
        (found,) = compute([table[table[names.id].astype(str).isin(sorted(wanted))]], state.client)
        labels = {str(row[0]): " · ".join(str(v) for v in row[1:])
                  for row in found[[names.id, *names.columns]].itertuples(index=False)}
    return [{"user": str(user), **{str(rank): f"{item} ({labels[item]})" if item in labels else item
                                   for rank, item in enumerate(row, start=1)}}
            for user, row in zip(users, ids)]


def _report_metrics(config: Config, metric: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """evaluate's cut-offs and metrics, plus the tuned metric when they lack it."""
    spec = config.evaluate
    name, _, cut = metric.partition("@")
    k = tuple(spec.k) if not cut or int(cut) in spec.k else (*spec.k, int(cut))
    metrics = tuple(spec.metrics) if name in spec.metrics else (*spec.metrics, name)
    return k, metrics


def stage_tune_recommender(config: Config, state: RunState) -> None:
    """Tune model.name on folds of the training part; test the default and tuned models once.

    :func:`~daskflow.experiment._tuning.tuning_outputs` saves the search and summarises it
    (as for the classifiers' tuning). The tuned parameters are then refitted on every
    interaction: that model is the run's, the one ``predict`` uses.
    """
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

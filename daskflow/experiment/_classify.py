"""The classify workload on the user's own entity table (``features.table``), and model choice.

``features.table`` names a source with one row per entity, its id, label and split, which
``features.aggregates`` and ``features.derived`` add columns to; the stages of ``_conversion``
classify its rows. This module turns those sections into the arguments of
:func:`daskflow.features.tabular.build_aggregates`, ``add_derived`` and ``build_entity_table``,
encodes the training and test rows, scores every entity (:func:`daskflow.prediction.score_entities`),
and chooses the scoring model by validation on the training rows only
(``classify.selection``): the test rows are touched once, for the final report.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from daskflow._dask import compute, persist
from daskflow.config import Config
from daskflow.experiment._sources import read_source
from daskflow.experiment._state import RunState
from daskflow.io import write_parquet

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

__all__ = ["metrics_section", "table_arguments", "check_table_source", "table_features", "table_frame",
           "aggregate_specs", "aggregate_anchors",
           "aggregate_sources", "event_label", "check_aggregate_sources",
           "split_and_encode_table", "needs_choice", "validation_score", "chosen_model", "score_table"]

log = logging.getLogger("daskflow")


def metrics_section(config: Config) -> str:
    """Where the classifier metrics go in metrics.json: ``classify``."""
    return "classify"


def table_arguments(config: Config) -> dict[str, Any]:
    """``features.table`` as the keyword arguments of ``build_entity_table``."""
    from daskflow.features.tabular import TableSplit

    spec = config.features.table
    assert spec is not None
    split = spec.split
    if split.kind == "column":
        assert split.column is not None
        table_split = TableSplit("column", split.column, train=split.train, test=split.test)
    elif split.kind == "hash":
        assert split.hash is not None
        table_split = TableSplit("hash", split.hash, test_size=split.test_size or 0.2)
    else:
        assert split.time is not None
        table_split = TableSplit("time", split.time, cutoff=split.cutoff)
    label_column, positive = spec.label.column, spec.label.positive
    if spec.label.from_events:
        label_column, positive = event_label(config).column, 1
    numeric, drop = spec.numeric, spec.drop
    if numeric is not None:  # listed numbers, plus every aggregate and derived column not placed elsewhere
        placed = {*numeric, *(spec.categorical or ()), *spec.log, *drop}
        generated = [n for s in aggregate_specs(config) for n in s.feature_names()]
        generated += list(config.features.derived)
        numeric = (*numeric, *(n for n in generated if n not in placed))
    if spec.label.from_events and spec.label.anchor is not None and spec.label.censor:
        drop = (*drop, f"{label_column}_censored")  # it says which labels are missing: never a feature
    return {"id_column": spec.id, "label_column": label_column, "positive": positive,
            "split": table_split, "categorical": spec.categorical, "numeric": numeric,
            "log_columns": spec.log, "drop": drop, "keep": tuple(dict.fromkeys(spec.smooth.values())),
            "source": spec.source, "where": "features.table"}


def aggregate_specs(config: Config) -> list[Any]:
    """``features.aggregates.events`` as :class:`~daskflow.features.tabular.AggregateSpec` values."""
    from daskflow.features.tabular import AggregateSpec

    spec = config.features.aggregates
    if spec is None:
        return []
    return [AggregateSpec(name, id=e.id, time=e.time, windows=e.windows, count=e.count, sum=e.sum,
                          mean=e.mean, min=e.min, max=e.max, nunique=e.nunique, active_days=e.active_days,
                          recency=e.recency, share=tuple((c, tuple(map(str, v))) for c, v in e.share.items()),
                          session_gap_minutes=e.sessions.gap_minutes if e.sessions is not None else None,
                          share_other=e.share_other, since=e.since, until=e.until)
            for name, e in spec.events.items()]


def aggregate_anchors(config: Config) -> list[Any]:
    """``features.aggregates.anchors`` as :class:`~daskflow.features.tabular.Anchor` values."""
    from daskflow.features.tabular import Anchor

    spec = config.features.aggregates
    if spec is None:
        return []
    return [Anchor(name, events=a.events, column=a.column, floor_day=a.floor == "day")
            for name, a in spec.anchors.items()]


def aggregate_sources(config: Config) -> list[str]:
    """The data.sources entry each ``features.aggregates.events`` entry reads."""
    spec = config.features.aggregates
    return [e.source or name for name, e in spec.events.items()] if spec is not None else []


def event_label(config: Config) -> Any:
    """``features.table.label`` from events as an :class:`~daskflow.features.tabular.EventLabel`."""
    from daskflow.features.tabular import EventLabel

    spec = config.features.table
    assert spec is not None and spec.label.source is not None and spec.label.time is not None
    within = float(spec.label.within_days or 0)
    return EventLabel(spec.label.source, spec.label.id or spec.id, spec.label.time, within,
                      spec.label.name or f"{spec.label.source}_within_{within:g}d", anchor=spec.label.anchor,
                      censor=spec.label.censor, closed=spec.label.closed)


def check_table_source(config: Config, frame: Any) -> None:
    """The columns ``features.table`` names, checked against the source's schema (no data read)."""
    from daskflow.features.tabular import check_table_columns

    arguments = table_arguments(config)
    arguments.pop("positive")
    arguments.pop("keep")
    dtypes = {str(c): t for c, t in frame.dtypes.items()}
    from daskflow.features.tabular import check_derived

    generated: dict[str, np.dtype[Any]] = {n: np.dtype(np.float64) for s in aggregate_specs(config)
                                           for n in s.feature_names()}
    generated.update({a.name: np.dtype("datetime64[ms]") for a in aggregate_anchors(config) if a.events})
    forbidden = []
    if config.features.table is not None and config.features.table.label.from_events:
        label = event_label(config)
        generated[label.column] = np.dtype(np.int8)
        forbidden = [label.column, label.censor_column]
        if label.anchor is not None and label.censor:
            generated[label.censor_column] = np.dtype(bool)
    constants = ("cutoff_day", "first_day") if config.features.aggregates is not None else ()
    check_derived(config.features.derived, [*dtypes, *generated], constants=constants, forbidden=forbidden)
    generated.update({name: np.dtype(np.float64) for name in config.features.derived})
    check_table_columns([*dtypes, *generated], {**dtypes, **generated}, **arguments)


def check_aggregate_sources(config: Config, frames: dict[str, Any]) -> None:
    """The columns ``features.aggregates`` and a label from events name, against the footers' schemas."""
    from daskflow.features.tabular import AggregateSpec, check_aggregate_columns

    for spec, source in zip(aggregate_specs(config), aggregate_sources(config), strict=True):
        if source in frames:
            dtypes = {str(c): t for c, t in frames[source].dtypes.items()}
            check_aggregate_columns(spec, dtypes, source=source,
                                    where=f"features.aggregates.events.{spec.name}")
    table = config.features.table
    if table is not None and table.label.from_events:
        label = event_label(config)
        if label.source in frames:
            dtypes = {str(c): t for c, t in frames[label.source].dtypes.items()}
            check_aggregate_columns(AggregateSpec("label", id=label.id, time=label.time), dtypes,
                                    source=label.source, where="features.table.label")


def table_features(config: Config, state: RunState) -> None:
    """The features stage on ``features.table``: read, check and persist the entity table."""
    from daskflow.features.tabular import build_entity_table

    spec = config.features.table
    assert spec is not None
    frame = table_frame(config, state.client)
    table = build_entity_table(frame, seed=config.experiment.seed, client=state.client,
                               **table_arguments(config))
    conv = state.conversion
    conv.table, conv.features = table, table.frame
    state.metrics.setdefault("classify", {})["population"] = {
        "source": spec.source, **table.counts,
        "features": {"categorical": table.categorical, "numeric": table.numeric, "log": table.log}}


def table_frame(config: Config, client: Client | None = None) -> dd.DataFrame:
    """The rows of ``features.table``: its source with the aggregates, the label and the derived columns."""
    spec = config.features.table
    assert spec is not None
    frame = read_source(config, spec.source, None)
    aggregates = config.features.aggregates
    if aggregates is not None:
        from daskflow.features.tabular import build_aggregates

        specs, sources = aggregate_specs(config), aggregate_sources(config)
        label = event_label(config) if spec.label.from_events else None
        columns: dict[str, list[str]] = {}
        for one, source in zip(specs, sources, strict=True):
            columns.setdefault(source, []).extend(c for c in one.columns if c not in columns.get(source, []))
        if label is not None:
            columns.setdefault(label.source, []).extend(
                c for c in (label.id, label.time) if c not in columns.get(label.source, []))
        events = {name: read_source(config, name, wanted) for name, wanted in columns.items()}
        built = build_aggregates(frame, events, id_column=spec.id, specs=specs, spec_sources=sources,
                                 cutoff=aggregates.cutoff, label=label, anchors=aggregate_anchors(config),
                                 where="features.aggregates", client=client)
        frame, constants = built.frame, built.constants
        forbidden = [label.column, label.censor_column] if label is not None else []
    else:
        constants, forbidden = {}, []
    if config.features.derived:
        from daskflow.features.tabular import add_derived

        frame = add_derived(frame, config.features.derived, constants=constants, forbidden=forbidden)
    return frame


def split_and_encode_table(config: Config, state: RunState) -> None:
    """Fit the encoder on the training rows; the design matrices of both sides (gathered when small)."""
    from daskflow.features.tabular import TableEncoder

    conv = state.conversion
    table = conv.entity_table()
    train, test = table.train(), table.test()
    spec = config.features.table
    assert spec is not None
    conv.encoder = TableEncoder(categorical_columns=table.categorical, numeric_columns=table.numeric,
                                log_columns=table.log, smooth=spec.smooth,
                                prior_events=spec.prior_events).fit(train)
    arrays = []
    for part in (train, test):
        arrays += [conv.encoder.transform(part), table.labels(part).to_dask_array(lengths=True)]
    X_train, y_train, X_test, y_test = persist(arrays, state.client)
    size = X_train.nbytes + X_test.nbytes
    limit = config.classify.in_memory_bytes
    if size <= limit:
        X_train, y_train, X_test, y_test = compute([X_train, y_train, X_test, y_test], state.client)
    log.info("entity table: %d training and %d test rows x %d features (%.1f MB), fitted %s",
             X_train.shape[0], X_test.shape[0], X_train.shape[1], size / 1e6,
             "in memory" if size <= limit else "block by block on the cluster")
    conv.train, conv.test = (X_train, y_train), (X_test, y_test)


def split_summary(config: Config, state: RunState) -> dict[str, Any]:
    table = state.conversion.entity_table()
    spec = config.features.table
    assert spec is not None
    return {"by": spec.split.kind, "train_rows": table.counts["train_rows"],
            "test_rows": table.counts["test_rows"],
            "features": list(state.conversion.encoder.get_feature_names_out())}


def needs_choice(config: Config, state: RunState) -> bool:
    """Whether score will choose among several models (then each is validated on training rows)."""
    stages = state.metrics.get("stages", ())
    several = len(config.classifiers) > 1 or "tune" in stages
    return "score" in stages and config.classify.score.model is None and several


def validation_score(config: Config, state: RunState, model: Any) -> float:
    """``model``'s mean validation score on the training rows (classify.selection); no test row used."""
    from sklearn.base import clone

    from daskflow.tuning import cross_validate

    spec = config.classify.selection
    X_train, y_train = state.conversion.training_rows()
    scores = cross_validate(clone(model), X_train, y_train, folds=spec.folds, holdout=spec.holdout,
                            metric=spec.metric, seed=config.experiment.seed, client=state.client)
    return float(np.mean(scores))


def chosen_model(config: Config, state: RunState) -> str:
    """classify.score.model, else the best validation score on the training rows."""
    from daskflow.tuning import SCORERS

    conv = state.conversion
    if config.classify.score.model is not None:
        return config.classify.score.model
    if len(conv.models) == 1 or not conv.validation:
        return next(iter(conv.models))
    greater = SCORERS[config.classify.selection.metric][1]
    ranked = sorted(conv.validation, key=lambda name: conv.validation[name], reverse=greater)
    log.info("scoring model chosen by %s on the training rows: %s (%s)", config.classify.selection.metric,
             ranked[0], ", ".join(f"{n} {conv.validation[n]:.4f}" for n in ranked))
    return ranked[0]


def score_table(config: Config, state: RunState, name: str) -> None:
    """Score every entity of the table; write (id, probability, decile) as Parquet."""
    from daskflow.prediction import score_entities

    spec = config.classify.score
    conv = state.conversion
    table = conv.table
    assert table is not None
    scores = score_entities(table.frame, conv.encoder, conv.models[name], id_column=table.id_column,
                            client=state.client)
    uri = spec.uri or str(state.work_dir / "predictions" / "scores.parquet")
    write_parquet(scores.frame, uri, storage_options=spec.storage_options, publish=state.publish)
    state.metrics["classify"]["score"] = {
        "model": name, "chosen_by": "classify.score.model" if spec.model else
        f"{config.classify.selection.metric} on the training rows (classify.selection)",
        "rows": scores.rows, "mean_probability": round(scores.mean_probability, 6),
        "uri": spec.uri or "predictions/scores.parquet",
        "decile_cutoffs": [round(c, 6) for c in scores.decile_cutoffs]}
    log.info("scored %d entities with %s -> %s", scores.rows, name, uri)

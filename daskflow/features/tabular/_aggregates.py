"""Per-entity aggregates of event logs, as of a cutoff, joined to the entity table by id.

:func:`build_aggregates` takes the entity table and any number of event sources (Dask or
pandas DataFrames) and adds, to every entity, counts, sums, means, minima, maxima,
distinct counts, active days, sessions and category shares over windows that end at the
cutoff, plus the days since its first and last event; optionally a label from another
event source: 1 when the entity has an event in [cutoff, cutoff + within_days).

Out of core, as a task shuffle: each partition of an event log is reduced to small
pieces split by a hash bucket of the entity (``_aggregate_kernels.event_partials``), the
entity table is split by the same buckets, and one task per bucket joins its pieces into
feature rows. A worker holds one partition and its pieces at a time in the first stage and
one bucket's pieces in the second (memory: see docs/features.md, "Aggregates: how").
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_numeric_dtype

from daskflow._dask import compute, named, persist
from daskflow._errors import DataError, ParameterError, SchemaError
from daskflow.features.tabular import _aggregate_kernels as kernels
from daskflow.features.tabular._aggregate_kernels import AggregateSpec

__all__ = ["AggregateSpec", "Anchor", "EventLabel", "Aggregates", "build_aggregates",
           "check_aggregate_columns"]

log = logging.getLogger("daskflow")

#: Event partitions per bucket of entities when ``n_buckets`` is not given. The task shuffle
#: makes partitions x buckets keys, so its scheduling cost grows with the square of the data
#: unless buckets are few: 16 partitions' pieces (about 0.6 of their bytes) per bucket bound a
#: bucket's task to ~100-200 MB on 200k-row partitions, and on the medium lake 8 buckets instead
#: of 30 took a third off the CPU time (docs/benchmarks.md).
_PARTITIONS_PER_BUCKET = 16


@dataclass(frozen=True)
class EventLabel:
    """A label from events: 1 when the entity has an event of ``source`` in [cutoff, cutoff + within_days).

    With ``anchor`` (an :class:`Anchor`'s name) each entity's window starts at its own anchor
    instead: [anchor, anchor + within_days), events before the cutoff only. An entity without
    the anchor has no label (missing: scored, not fitted); one whose window ends after the
    cutoff is *censored*: with ``censor`` its label is missing and ``<column>_censored`` is
    true, without it the table is refused.
    """

    source: str
    id: str
    time: str
    within_days: float
    column: str = "label"
    anchor: str | None = None
    censor: bool = False
    #: "left": [start, start + within_days); "right": (start, start + within_days].
    closed: str = "left"

    @property
    def censor_column(self) -> str:
        return f"{self.column}_censored"


@dataclass(frozen=True)
class Anchor:
    """A time per entity, by name: the first event of an aggregate's source, or a column of the table.

    ``events`` names an :class:`AggregateSpec` (its source, id and time; the first event before
    the cutoff), ``column`` a timestamp column of the entity table; exactly one. ``floor_day``
    rounds it down to the start of its UTC day. Events anchors also become a timestamp column
    of the output named ``name`` (missing for entities without an event).
    """

    name: str
    events: str | None = None
    column: str | None = None
    floor_day: bool = False


@dataclass
class Aggregates:
    """The entity table with the aggregates joined (persisted), and what was added."""

    frame: Any
    features: list[str]
    label_column: str | None
    cutoff: pd.Timestamp
    spans: dict[str, tuple[pd.Timestamp, pd.Timestamp]]
    #: The timestamp columns of the events anchors, and the label's censoring column (or None).
    anchor_columns: list[str] = field(default_factory=list)
    censor_column: str | None = None

    @property
    def constants(self) -> dict[str, float]:
        """What derived columns may read besides columns: ``cutoff_day``, the UTC day of the last
        instant observed (1 ms before the cutoff), and ``first_day``, the UTC day of the earliest event
        of the sources read (day numbers: days since 1970-01-01)."""
        cutoff_ms = int(self.cutoff.value // 1_000_000)
        firsts = [int(first.value // 1_000_000) for first, _ in self.spans.values()]
        out = {"cutoff_day": float((cutoff_ms - 1) // kernels.DAY_MS)}
        if firsts:
            out["first_day"] = float(min(firsts) // kernels.DAY_MS)
        return out


def _is_time(dtype: Any) -> bool:
    arrow = getattr(dtype, "pyarrow_dtype", None)
    return is_datetime64_any_dtype(dtype) or (arrow is not None and str(arrow).startswith("timestamp"))


def _is_number(dtype: Any) -> bool:
    return (is_numeric_dtype(dtype) or is_bool_dtype(dtype)) and not _is_time(dtype)


def check_aggregate_columns(spec: AggregateSpec, dtypes: Mapping[str, Any], *, source: str,
                            where: str = "aggregates") -> None:
    """Every column ``spec`` names is in ``dtypes`` (the source's schema) with a fitting type.

    No data is read: ``daskflow validate`` runs this on the footers. ``where`` is the
    settings' key for messages (the runner passes ``features.aggregates.events.<name>``).

    Raises
    ------
    SchemaError
        A column is not in the source, the time is not a timestamp, or a column summed,
        averaged or compared (min, max) is not a number.
    """
    found = ", ".join(f"{c} ({t})" for c, t in dtypes.items())
    named_columns = [("id", [spec.id]), ("time", [spec.time]), ("sum", spec.sum), ("mean", spec.mean),
                     ("min", spec.min), ("max", spec.max), ("nunique", spec.nunique),
                     ("share", [c for c, _ in spec.share])]
    for key, columns in named_columns:
        missing = [c for c in columns if c not in dtypes]
        if missing:
            raise SchemaError(f"{where}.{key} names column(s) {', '.join(map(repr, missing))}, not in source "
                              f"{source!r}: found {found}. Name columns of the event source")
    if not _is_time(dtypes[spec.time]):
        raise SchemaError(f"{where}.time names column {spec.time!r} of type {dtypes[spec.time]} in source "
                          f"{source!r}: expected a timestamp column (found {found})")
    for key in ("sum", "mean", "min", "max"):
        bad = [c for c in getattr(spec, key) if not _is_number(dtypes[c])]
        if bad:
            raise SchemaError(f"{where}.{key} names column(s) {', '.join(map(repr, bad))} of type "
                              f"{', '.join(str(dtypes[c]) for c in bad)} in source {source!r}: expected "
                              "numbers or booleans; count distinct values with nunique, or the share of "
                              "each value with share")


def _as_dask(frame: Any) -> dd.DataFrame:
    return dd.from_pandas(frame, npartitions=1) if isinstance(frame, pd.DataFrame) else frame


def _utc_ms(value: Any, where: str) -> tuple[pd.Timestamp, int]:
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{where}.cutoff is {value!r}: expected an ISO date or timestamp such as "
                             "2026-01-15") from exc
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp, int(stamp.value // 1_000_000)


def _stamp(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")


def _span(stats: Sequence[tuple[int, Any, Any]]) -> tuple[int, int | None, int | None]:
    firsts = [s[1] for s in stats if s[1] is not None]
    lasts = [s[2] for s in stats if s[2] is not None]
    return sum(s[0] for s in stats), min(firsts) if firsts else None, max(lasts) if lasts else None


def build_aggregates(table: dd.DataFrame | pd.DataFrame, sources: Mapping[str, Any], *, id_column: str,
                     specs: Sequence[AggregateSpec], cutoff: Any, spec_sources: Sequence[str] | None = None,
                     label: EventLabel | None = None, anchors: Sequence[Anchor] = (),
                     n_buckets: int | None = None, where: str = "aggregates",
                     client: Any = None) -> Aggregates:
    """The entity table with per-entity aggregates of event logs as of ``cutoff`` (and a label).

    Parameters
    ----------
    table
        One row per entity, with ``id_column``.
    sources
        Event logs by name (Dask or pandas DataFrames).
    specs, spec_sources
        What to compute (:class:`AggregateSpec`), and the source each reads (default: the
        spec's name).
    cutoff
        Events at or after it never reach a feature (UTC unless it names a zone). It must lie
        after a source's first event and at most on the day after its last one. ``"latest"``:
        1 ms after the latest event of the specs' sources (every event is observed).
    label
        A label from events (:class:`EventLabel`): ``1`` when the entity has an event in
        [cutoff, cutoff + within_days), else ``0``. The window must end by the day after the
        latest event of the sources read: a window the data does not cover is refused. A label
        with an anchor has per-entity windows (see :class:`EventLabel`).
    anchors
        Per-entity times (:class:`Anchor`) that a spec's ``since``/``until`` and the label's
        ``anchor`` name. ``until`` makes the anchor the entity's own cutoff: no event at or
        after it reaches that spec's features, and its windows and recency end there.
    n_buckets
        Buckets of entities (output partitions); default one per 16 event partitions.
    where
        The settings' key for messages.
    client
        A ``distributed.Client``; default: dask's current scheduler.

    Returns
    -------
    Aggregates
        ``frame`` is the entity table (persisted) with the feature columns
        (:meth:`AggregateSpec.feature_names`) and the label column; entities without events
        get the defaults of :func:`_aggregate_kernels.bucket_features`.

    Raises
    ------
    SchemaError
        A column is missing or of the wrong type (:func:`check_aggregate_columns`), or a
        feature's name is already a column of the table.
    DataError
        The cutoff lies outside a source's span, or the label window is not fully observed.

    Examples
    --------
    >>> spec = AggregateSpec("listens", id="user_id", time="ts", windows=("7d", "all"),
    ...                      sum=("ms_played",), nunique=("track_id",))
    >>> result = build_aggregates(users, {"listens": listens}, id_column="user_id", specs=[spec],
    ...                           cutoff="2026-01-15")  # doctest: +SKIP
    """
    table = _as_dask(table)
    spec_sources = list(spec_sources) if spec_sources is not None else [s.name for s in specs]
    frames = {name: _as_dask(sources[name]) for name in {*spec_sources, *([label.source] if label else [])}}
    _check_anchors(anchors, specs, label, table, where)
    if isinstance(cutoff, str) and cutoff == "latest":
        cutoff = _latest(specs, spec_sources, frames, where, client)
    cutoff_stamp, cutoff_ms = _utc_ms(cutoff, where)
    features: list[str] = []
    for spec, source in zip(specs, spec_sources, strict=True):
        dtypes = {str(c): t for c, t in frames[source].dtypes.items()}
        check_aggregate_columns(spec, dtypes, source=source, where=f"{where}.events.{spec.name}")
        features += spec.feature_names()
    if label is not None:
        dtypes = {str(c): t for c, t in frames[label.source].dtypes.items()}
        label_spec = AggregateSpec("label", id=label.id, time=label.time)
        check_aggregate_columns(label_spec, dtypes, source=label.source, where="features.table.label")
    anchor_columns = [a.name for a in anchors if a.events is not None]
    made = [*features, *anchor_columns, *([label.column] if label else []),
            *([label.censor_column] if label and label.anchor else [])]
    clashes = [c for c in made if c in table.columns]
    repeated = sorted({c for c in made if made.count(c) > 1})
    if clashes or repeated:
        raise SchemaError(f"{where}: feature name(s) {', '.join(map(repr, clashes or repeated))} "
                          f"{'are already columns of the entity table' if clashes else 'are made twice'}: "
                          "rename the events' entry (its name prefixes every feature) or drop the column")
    events_partitions = sum(frames[s].npartitions for s in spec_sources)
    n_buckets = n_buckets or max(table.npartitions, math.ceil(events_partitions / _PARTITIONS_PER_BUCKET), 1)

    # Stage 0: the anchors, one time per entity, gathered (a few bytes per entity) and shared.
    found_anchors = _anchor_times(anchors, specs, spec_sources, frames, table, id_column, cutoff_ms, client)
    shared = {name: dask.delayed(series, pure=True) for name, series in found_anchors.items()}

    # Stage 1: every partition's pieces, split by bucket (one key per bucket: a task shuffle).
    partials, stats = [], []
    for spec, source in zip(specs, spec_sources, strict=True):
        function = named(kernels.event_partials, f"aggregates-{_word(spec.name)}-partials",
                         nout=n_buckets + 1)
        bounds = {"since": shared[spec.since] if spec.since else None,
                  "until": shared[spec.until] if spec.until else None}
        parts = [list(function(part, spec=spec, cutoff_ms=cutoff_ms, n_buckets=n_buckets, **bounds))
                 for part in frames[source][spec.columns].to_delayed()]
        partials.append([list(p[:n_buckets]) for p in parts])
        stats.append([p[n_buckets] for p in parts])
    label_parts: list[Any] = []
    label_stats: list[Any] = []
    if label is not None:
        end_ms = cutoff_ms + int(label.within_days * kernels.DAY_MS)
        function = named(kernels.label_partials, "aggregates-label-partials", nout=n_buckets + 1)
        per_entity = {} if label.anchor is None else {
            "anchor": shared[label.anchor], "within_ms": int(label.within_days * kernels.DAY_MS),
            "cutoff_ms": cutoff_ms}
        parts = [list(function(part, id_column=label.id, time=label.time, start_ms=cutoff_ms, end_ms=end_ms,
                               n_buckets=n_buckets, closed=label.closed, **per_entity))
                 for part in frames[label.source][[label.id, label.time]].to_delayed()]
        label_parts, label_stats = [list(p[:n_buckets]) for p in parts], [p[n_buckets] for p in parts]
    pieces = named(kernels.table_pieces, "aggregates-table-pieces", nout=n_buckets)
    table_parts = [list(pieces(part, id_column=id_column, n_buckets=n_buckets))
                   for part in table.to_delayed()]
    flat = [x for spec_parts in partials for part in spec_parts for x in part]
    flat += [x for part in label_parts for x in part] + [x for part in table_parts for x in part]
    persisted = persist(flat, client)
    all_stats = compute([stats, label_stats], client)
    spec_stats, found_label_stats = all_stats[0], all_stats[1]

    spans = _check_spans(specs, spec_sources, spec_stats, cutoff_stamp, cutoff_ms, where)
    if label is not None and label.anchor is None:
        _check_label_window(label, found_label_stats, spec_stats, spec_sources, cutoff_stamp, cutoff_ms)

    # Stage 2: one task per bucket; the persisted pieces in the order they were flattened.
    it = iter(persisted)
    partials = [[[next(it) for _ in range(n_buckets)] for _ in spec_parts] for spec_parts in partials]
    label_parts = [[next(it) for _ in range(n_buckets)] for _ in label_parts]
    table_parts = [[next(it) for _ in range(n_buckets)] for _ in table_parts]
    history = [spans[s][0] for s in spec_sources]
    settings = dict(specs=list(specs), cutoff_ms=cutoff_ms, history_ms=history,
                    label_column=label.column if label else None, anchor_columns=anchor_columns,
                    label_anchor=label.anchor if label else None,
                    label_within_ms=int(label.within_days * kernels.DAY_MS) if label else 0,
                    censor_column=label.censor_column if label and label.anchor else None,
                    label_closed=label.closed if label else "left")
    combine = named(kernels.bucket_features, "aggregates-features")
    buckets = [combine([t[b] for t in table_parts],
                       [[part[b] for part in spec_parts] for spec_parts in partials],
                       [part[b] for part in label_parts] if label is not None else None, anchors=shared,
                       **settings)
               for b in range(n_buckets)]
    empty = {name: series.iloc[:0] for name, series in found_anchors.items()}
    meta = _meta(table._meta, specs, history, cutoff_ms, label, {**settings, "anchors": empty})
    frame = dd.from_delayed(buckets, meta=meta, verify_meta=False)
    (frame,) = persist([frame], client)
    censor_column = None
    if label is not None and label.anchor is not None:
        censor_column = label.censor_column
        (n_censored,) = compute([frame[censor_column].sum()], client)
        if not label.censor and n_censored:
            raise DataError(f"features.table.label: the label window of {int(n_censored)} entit(y/ies) "
                            f"[{label.anchor}, {label.anchor} + within_days={label.within_days:g}) ends "
                            f"after the cutoff {cutoff_stamp}: not fully observed. Set "
                            "features.table.label.censor: true (those entities get no label and are neither "
                            "fitted nor tested), or a smaller within_days")
        if not label.censor:
            frame, censor_column = frame.drop(columns=[censor_column]), None
    log.info("%s: %d feature(s) from %s as of %s, in %d bucket(s)", where, len(features),
             ", ".join(dict.fromkeys(spec_sources)), cutoff_stamp, n_buckets)
    return Aggregates(frame, features, label.column if label else None, cutoff_stamp,
                      {s: (_stamp(spans[s][0]), _stamp(spans[s][1])) for s in spans}, anchor_columns,
                      censor_column)


def _check_anchors(anchors: Sequence[Anchor], specs: Sequence[AggregateSpec], label: EventLabel | None,
                   table: dd.DataFrame, where: str) -> None:
    """Every anchor is one kind and names what exists; every use of an anchor names a defined one."""
    spec_names = [s.name for s in specs]
    defined = [a.name for a in anchors]
    for anchor in anchors:
        key = f"{where}.anchors.{anchor.name}"
        if (anchor.events is None) == (anchor.column is None):
            raise ParameterError(f"{key}: give exactly one of events (an entry of {where}.events: its first "
                                 "event) or column (a timestamp column of the entity table)")
        if anchor.events is not None and anchor.events not in spec_names:
            raise ParameterError(f"{key}.events is {anchor.events!r}, not an entry of {where}.events (has "
                                 f"{', '.join(spec_names) or 'none'}): name the entry whose first event "
                                 "anchors each entity")
        if anchor.column is not None:
            dtypes = {str(c): t for c, t in table.dtypes.items()}
            if anchor.column not in dtypes or not _is_time(dtypes[anchor.column]):
                found = ", ".join(f"{c} ({t})" for c, t in dtypes.items())
                raise SchemaError(f"{key}.column is {anchor.column!r}: expected a timestamp column of the "
                                  f"entity table (found {found})")
    uses = [(f"{where}.events.{s.name}.{k}", getattr(s, k)) for s in specs for k in ("since", "until")]
    uses += [("features.table.label.anchor", label.anchor)] if label is not None else []
    for key, name in uses:
        if name is not None and name not in defined:
            raise ParameterError(f"{key} is {name!r}, not an anchor of {where}.anchors (has "
                                 f"{', '.join(defined) or 'none'}): define it there, e.g. "
                                 f"anchors: {{{name}: {{events: <entry>}}}}")
    for anchor in anchors:
        if anchor.events is not None:
            spec = specs[spec_names.index(anchor.events)]
            if spec.since is not None or spec.until is not None:
                raise ParameterError(f"{where}.anchors.{anchor.name}.events is {anchor.events!r}, whose "
                                     "events are themselves bounded by an anchor (since/until): anchor on an "
                                     "entry that reads every event before the cutoff")


def _latest(specs: Sequence[AggregateSpec], spec_sources: Sequence[str], frames: Mapping[str, Any],
            where: str, client: Any) -> pd.Timestamp:
    """``cutoff: latest``: 1 ms after the latest event of the specs' sources."""
    columns = dict.fromkeys((source, spec.time) for spec, source in zip(specs, spec_sources, strict=True))
    latest = [frames[source][time].map_partitions(_max_ms, meta=(time, np.int64)).max()
              for source, time in columns]
    found = [int(v) for v in compute(latest, client) if v is not None and not pd.isna(v) and v != _NO_TIME]
    if not found:
        read = ", ".join(dict.fromkeys(spec_sources))
        raise DataError(f"{where}.cutoff is latest but the events of {read} have no "
                        "time: expected event logs. Check the sources' uris and filters")
    return _stamp(max(found) + 1)


_NO_TIME = np.iinfo(np.int64).min


def _max_ms(part: pd.Series) -> pd.Series:
    ts = kernels.times_ms(part)
    return pd.Series([int(ts.max()) if len(ts) else _NO_TIME], dtype=np.int64)


def _anchor_times(anchors: Sequence[Anchor], specs: Sequence[AggregateSpec], spec_sources: Sequence[str],
                  frames: Mapping[str, Any], table: dd.DataFrame, id_column: str, cutoff_ms: int,
                  client: Any) -> dict[str, pd.Series]:
    """Each anchor as a Series: entity hash (uint64, sorted) -> time in ms."""
    pieces: dict[str, list[Any]] = {}
    for anchor in anchors:
        if anchor.events is not None:
            index = [s.name for s in specs].index(anchor.events)
            spec, source = specs[index], spec_sources[index]
            function = named(kernels.first_times, f"aggregates-{_word(anchor.name)}-anchor")
            pieces[anchor.name] = [function(part, id_column=spec.id, time=spec.time, cutoff_ms=cutoff_ms)
                                   for part in frames[source][[spec.id, spec.time]].to_delayed()]
        else:
            function = named(kernels.column_times, f"aggregates-{_word(anchor.name)}-anchor")
            pieces[anchor.name] = [function(part, id_column=id_column, column=anchor.column)
                                   for part in table[[id_column, anchor.column]].to_delayed()]
    if not pieces:
        return {}
    computed = compute(list(pieces.values()), client)
    out = {}
    for anchor, parts in zip(anchors, computed, strict=True):
        frame = pd.concat(parts, ignore_index=True)
        times = frame.groupby(kernels.ENTITY, sort=True)["ms"].min()
        if anchor.floor_day:
            times = times // kernels.DAY_MS * kernels.DAY_MS
        out[anchor.name] = times.astype(np.int64)
    return out


def _word(name: str) -> str:
    # Dashboard task prefixes stop at the first word holding a digit: letters only.
    return "".join(ch for ch in name if ch.isalpha()) or "events"


def _meta(table_meta: pd.DataFrame, specs: Sequence[AggregateSpec], history: Sequence[int], cutoff_ms: int,
          label: EventLabel | None, settings: dict[str, Any]) -> pd.DataFrame:
    empty = table_meta.assign(**{kernels.ENTITY: np.zeros(0, np.uint64)})
    pieces = [[kernels.event_partials(_empty_events(spec), spec=spec, cutoff_ms=cutoff_ms, n_buckets=1)[0]]
              for spec in specs]
    return kernels.bucket_features([empty], pieces, [] if label is not None else None, **settings)


def _empty_events(spec: AggregateSpec) -> pd.DataFrame:
    columns: dict[str, Any] = {c: pd.Series([], dtype=object) for c in spec.columns}
    columns[spec.time] = pd.Series([], dtype="datetime64[ms]")
    for column in spec.numeric:
        columns[column] = pd.Series([], dtype=np.float64)
    return pd.DataFrame(columns)


def _check_spans(specs: Sequence[AggregateSpec], sources: Sequence[str], stats: Sequence[Any],
                 cutoff: pd.Timestamp, cutoff_ms: int, where: str) -> dict[str, tuple[int, int]]:
    """Each source's (first, last) event in ms. The cutoff must lie after every source's first event
    and at most on the day after the latest event of them all (a log that ends earlier, e.g. ads that
    stopped, is data too: its entities have no recent events)."""
    spans: dict[str, tuple[int, int]] = {}
    found = [_span(source_stats) for source_stats in stats]
    latest = max((last for _, _, last in found if last is not None), default=None)
    for spec, source, (n, first, last) in zip(specs, sources, found, strict=True):
        if n == 0 or first is None or last is None or latest is None:
            raise DataError(f"{where}.events.{spec.name}: source {source!r} has no event with a time in "
                            f"column {spec.time!r}: expected an event log. Check the source's uri and "
                            "filters")
        end = (latest // kernels.DAY_MS + 1) * kernels.DAY_MS
        if not first < cutoff_ms <= end:
            raise DataError(f"{where}.cutoff {cutoff} is outside the data of source {source!r}: column "
                            f"{spec.time!r} ({where}.events.{spec.name}.time) holds {_stamp(first)} .. "
                            f"{_stamp(last)}: expected a cutoff after its first event and at most "
                            f"{_stamp(end).date()} (the day after the last event read). Set {where}.cutoff "
                            "inside the data")
        spans[source] = (first, last)
    return spans


def _check_label_window(label: EventLabel, label_stats: Sequence[Any], spec_stats: Sequence[Any],
                        sources: Sequence[str], cutoff: pd.Timestamp, cutoff_ms: int) -> None:
    """The label window [cutoff, cutoff + within_days) must end by the day after the data's last event."""
    lasts = [_span(s)[2] for s in [label_stats, *spec_stats]]
    known = [v for v in lasts if v is not None]
    window_end = cutoff_ms + int(label.within_days * kernels.DAY_MS)
    data_end = (max(known) // kernels.DAY_MS + 1) * kernels.DAY_MS if known else None
    if data_end is None or window_end > data_end:
        latest = _stamp(max(known)) if known else "no event"
        read = ", ".join(dict.fromkeys([label.source, *sources]))
        raise DataError(f"features.table.label: the label window [{cutoff}, {_stamp(window_end)}) "
                        f"(features.aggregates.cutoff + within_days={label.within_days:g}) is not fully "
                        f"observed: the latest event of {read} (column {label.time!r} of {label.source!r}) "
                        f"is {latest}. Choose an earlier features.aggregates.cutoff or a smaller "
                        "within_days, so the window ends by the day after the data's last event")


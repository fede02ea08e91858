"""Per-partition code of the aggregates (``features.aggregates``): pure pandas and NumPy, no Dask.

The Dask layer (``_aggregates``) runs two stages of these functions:

1. :func:`event_partials` reduces one partition of an event log to small pieces, split by
   the hash bucket of the entity: one row per (entity, ring, day) with counts, sums,
   minima, maxima and category counts; the distinct (entity, value) pairs of each
   ``nunique`` column with the earliest ring they occur in; and the partition's sessions
   as intervals. A *ring* is the shortest window an event falls in (windows all end at
   the cutoff, so they nest: ring 0 is the shortest window, the last ring holds what only
   ``all`` sees), so a window's aggregate is the sum (or min, max) over its rings.
2. :func:`bucket_features` receives every piece of one bucket (and that bucket's rows of
   the entity table) and makes one feature row per entity.

Only events strictly before the cutoff reach stage 2, which is what makes the features
point-in-time correct; the label's events (:func:`label_partials`) are those in
[cutoff, cutoff + within). Entities are keyed by a 64-bit hash of their ID as text (so an
integer ID in the events joins the same integer in the table), values of ``nunique``
columns by a 64-bit hash too: two different IDs or values would have to collide in 64
bits to be counted as one (odds about n^2 / 2^65 for n distinct ones).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

__all__ = ["DAY_MS", "ENTITY", "AggregateSpec", "window_ms", "event_partials", "label_partials",
           "table_pieces", "bucket_features", "entity_hash", "times_ms", "first_times", "column_times",
           "anchor_of"]

DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
#: The column (uint64) that carries the hash of the entity's ID between the stages.
ENTITY = "__entity__"
_WINDOW = re.compile(r"^([1-9][0-9]*)([dh])$")


def window_ms(text: str) -> int | None:
    """A window's length in ms: ``"7d"`` (days), ``"12h"`` (hours); ``None`` for ``"all"``.

    Raises ``ValueError`` for anything else.
    """
    if text == "all":
        return None
    match = _WINDOW.match(str(text))
    if match is None:
        raise ValueError(f"{text!r} is not a duration: expected <n>d (days), <n>h (hours) or all, "
                         "e.g. 7d, 28d, 12h, all")
    return int(match.group(1)) * (DAY_MS if match.group(2) == "d" else _HOUR_MS)


@dataclass(frozen=True)
class AggregateSpec:
    """One event source's aggregates, as plain values (``features.aggregates.events.<name>``).

    ``share`` is a tuple of (column, values) pairs; ``session_gap_minutes`` ``None`` means no
    sessions. Feature names are ``<name>_<aggregate>[_<column>]_<window>``
    (:meth:`feature_names`).
    """

    name: str
    id: str
    time: str
    windows: tuple[str, ...] = ("all",)
    count: bool = True
    sum: tuple[str, ...] = ()
    mean: tuple[str, ...] = ()
    min: tuple[str, ...] = ()
    max: tuple[str, ...] = ()
    nunique: tuple[str, ...] = ()
    active_days: bool = False
    recency: bool = False
    share: tuple[tuple[str, tuple[str, ...]], ...] = ()
    session_gap_minutes: float | None = None
    #: Also the share of events with none of the values (missing included): ``..._share_<col>_other_<w>``.
    share_other: bool = False
    #: Anchors (per-entity times, by name): only events at or after ``since``; with ``until``, only
    #: events before it, and windows and recency end there (the entity's own cutoff).
    since: str | None = None
    until: str | None = None
    _lengths: tuple[int, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        lengths = sorted({w for w in (window_ms(t) for t in self.windows) if w is not None})
        object.__setattr__(self, "_lengths", tuple(lengths))

    @property
    def lengths(self) -> tuple[int, ...]:
        """The finite windows' lengths in ms, ascending; the rings' upper bounds."""
        return self._lengths

    @property
    def n_rings(self) -> int:
        return len(self._lengths) + 1

    def ring_of(self, window: str) -> int:
        """The last ring a window covers."""
        length = window_ms(window)
        return len(self._lengths) if length is None else self._lengths.index(length)

    @property
    def numeric(self) -> tuple[str, ...]:
        """Columns whose values are aggregated (sum, mean, min, max), each once."""
        return tuple(dict.fromkeys([*self.sum, *self.mean, *self.min, *self.max]))

    @property
    def columns(self) -> list[str]:
        """Every column of the source this spec reads."""
        return list(dict.fromkeys([self.id, self.time, *self.numeric, *self.nunique,
                                   *(c for c, _ in self.share)]))

    def feature_names(self) -> list[str]:
        """The feature columns, in the order :func:`bucket_features` makes them."""
        names = []
        for window in self.windows:
            names += self._window_names(window)
        if self.recency:
            names += [f"{self.name}_days_since_last", f"{self.name}_days_since_first"]
        return names

    def _window_names(self, window: str) -> list[str]:
        n, w = self.name, window
        names = [f"{n}_count_{w}"] if self.count else []
        for kind in ("sum", "mean", "min", "max"):
            names += [f"{n}_{kind}_{c}_{w}" for c in getattr(self, kind)]
        names += [f"{n}_nunique_{c}_{w}" for c in self.nunique]
        names += [f"{n}_active_days_{w}"] if self.active_days else []
        names += [f"{n}_sessions_{w}"] if self.session_gap_minutes is not None else []
        for column, values in self.share:
            shown = (*values, "other") if self.share_other else values
            names += [f"{n}_share_{column}_{v}_{w}" for v in shown]
        return names


# -- shared helpers -------------------------------------------------------------------


def _hash_text(values: Any) -> np.ndarray:
    """A 64-bit hash of each value's text (the same in every process: a fixed key)."""
    text = np.asarray(pd.Series(np.asarray(values, dtype=object)).astype(str), dtype=object)
    return pd.util.hash_array(text, categorize=False)


def entity_hash(ids: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(code per row, hash per code): factorised first, so each distinct ID is hashed once.

    A missing ID has code -1.
    """
    code, uniques = pd.factorize(ids.reset_index(drop=True))
    return code, _hash_text(uniques)


def times_ms(series: pd.Series) -> np.ndarray:
    """int64 ms since the epoch (UTC; a zone-less time is UTC) for any unit; NaT is int64 min."""
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    elif isinstance(series.dtype, pd.ArrowDtype) and getattr(series.dtype.pyarrow_dtype, "tz", None):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    return pd.to_datetime(series).to_numpy(dtype="datetime64[ms]").astype(np.int64)


_NAT = np.iinfo(np.int64).min


def _split(frame: pd.DataFrame, buckets: np.ndarray, n_buckets: int) -> list[pd.DataFrame]:
    """``frame``'s rows by bucket, as ``n_buckets`` frames."""
    order = np.argsort(buckets, kind="stable")
    bounds = np.searchsorted(buckets[order], np.arange(n_buckets + 1))
    frame = frame.iloc[order]
    return [frame.iloc[bounds[b]:bounds[b + 1]].reset_index(drop=True) for b in range(n_buckets)]


def _bucket(hashes: np.ndarray, n_buckets: int) -> np.ndarray:
    return (hashes % np.uint64(n_buckets)).astype(np.int64)


# -- anchors: one time per entity ----------------------------------------------------------


def first_times(frame: pd.DataFrame, *, id_column: str, time: str, cutoff_ms: int) -> pd.DataFrame:
    """Each entity's first event before the cutoff in one partition: ``ENTITY`` (hash) and ``ms``."""
    ts = times_ms(frame[time])
    code, hashes = entity_hash(frame[id_column])
    keep = (ts != _NAT) & (ts < cutoff_ms) & (code >= 0)
    first = np.full(len(hashes), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, code[keep], ts[keep])
    has = first != np.iinfo(np.int64).max
    return pd.DataFrame({ENTITY: hashes[has].astype(np.uint64), "ms": first[has]})


def column_times(frame: pd.DataFrame, *, id_column: str, column: str) -> pd.DataFrame:
    """A time column of the entity table per entity: ``ENTITY`` (hash) and ``ms``; missing times left out."""
    ts = times_ms(frame[column])
    code, hashes = entity_hash(frame[id_column])
    keep = (ts != _NAT) & (code >= 0)
    return pd.DataFrame({ENTITY: hashes[code[keep]].astype(np.uint64), "ms": ts[keep]})


def anchor_of(hashes: np.ndarray, anchor: pd.Series | None) -> np.ndarray:
    """The anchor's time (ms) of each entity hash; int64 min (no anchor) where it has none."""
    if anchor is None or not len(hashes):
        return np.full(len(hashes), _NAT, dtype=np.int64)
    position = anchor.index.get_indexer(np.asarray(hashes, dtype=np.uint64))
    values = anchor.to_numpy(dtype=np.int64)
    return np.where(position >= 0, values[np.maximum(position, 0)] if len(values) else _NAT, _NAT)


def _reference(anchor: np.ndarray, cutoff_ms: int) -> np.ndarray:
    """Each entity's own cutoff: its ``until`` anchor when it has one (and it is earlier), else the cutoff."""
    return np.where(anchor != _NAT, np.minimum(anchor, cutoff_ms), cutoff_ms)


# -- stage 1: partials of one partition --------------------------------------------------


def _stats(ts: np.ndarray) -> tuple[int, int | None, int | None]:
    known = ts[ts != _NAT]
    if not len(known):
        return 0, None, None
    return len(known), int(known.min()), int(known.max())


def _codes(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(code per row, text hash per code) of a whole column; missing values have code -1."""
    code, uniques = pd.factorize(series.reset_index(drop=True))
    return code, _hash_text(uniques)


def _slices(sorted_buckets: np.ndarray, n_buckets: int) -> np.ndarray:
    return np.searchsorted(sorted_buckets, np.arange(n_buckets + 1))


def event_partials(frame: pd.DataFrame, *, spec: AggregateSpec, cutoff_ms: int, n_buckets: int,
                   since: pd.Series | None = None, until: pd.Series | None = None) -> tuple[Any, ...]:
    """One partition's pieces: ``n_buckets`` (rows, pairs, intervals) triples, then its time stats.

    The stats are (events with a time, earliest, latest) in ms, over every event (before the
    cutoff or not), so the Dask layer can check the cutoff against the data's span. ``since``
    and ``until`` are the spec's anchors (entity hash -> ms; :func:`anchor_of`).
    """
    ts_all = times_ms(frame[spec.time])
    stats = _stats(ts_all)
    keep = (ts_all != _NAT) & (ts_all < cutoff_ms)  # point in time: nothing at or after the cutoff
    code_all, hashes = _codes(frame[spec.id])
    keep &= code_all >= 0
    reference = np.full(len(ts_all), cutoff_ms, dtype=np.int64)
    safe = np.maximum(code_all, 0)
    if since is not None:  # events from the entity's anchor on; none for an entity without one
        start = anchor_of(hashes, since)[safe] if len(hashes) else np.full(len(ts_all), _NAT)
        keep &= (start != _NAT) & (ts_all >= start)
    if until is not None:  # the entity's own cutoff: nothing at or after its anchor
        reference = _reference(anchor_of(hashes, until)[safe], cutoff_ms) if len(hashes) else reference
        keep &= ts_all < reference
    # Renumber the entities in bucket order: everything sorted by entity is then sorted by
    # bucket too, and each bucket's piece is a slice (no gather of whole frames).
    buckets = _bucket(hashes, n_buckets)
    by_bucket = np.argsort(buckets, kind="stable")
    rank = np.empty(len(hashes), dtype=np.int64)
    rank[by_bucket] = np.arange(len(hashes))
    hashes, buckets = hashes[by_bucket], buckets[by_bucket]
    rows = np.flatnonzero(keep)
    code, ts = rank[code_all[rows]], ts_all[rows]
    ring = np.searchsorted(np.asarray(spec.lengths, dtype=np.int64), reference[rows] - ts, side="left")
    order = np.lexsort((ts, ring, code))  # by entity, ring, time (so by day within a ring too)
    positions = rows[order]
    c, r, t = code[order], ring[order], ts[order]
    d = t // DAY_MS
    n = len(t)

    new = np.ones(n, dtype=bool)
    if n:
        new[1:] = (c[1:] != c[:-1]) | (r[1:] != r[:-1]) | (d[1:] != d[:-1])
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], n].astype(np.int64)
    piece: dict[str, Any] = {ENTITY: hashes[c[starts]], "ring": r[starts].astype(np.int8),
                             "day": d[starts], "count": (ends - starts).astype(np.int64),
                             "first_ms": t[starts], "last_ms": t[ends - 1] if n else t[:0]}
    for j, column in enumerate(spec.numeric):
        values = frame[column]
        if not (is_numeric_dtype(values.dtype) or is_bool_dtype(values.dtype)):
            values = pd.to_numeric(values, errors="coerce")
        x = values.to_numpy(dtype=np.float64, na_value=np.nan)[positions]
        missing = np.isnan(x)
        piece[f"sum{j}"] = np.add.reduceat(np.where(missing, 0.0, x), starts) if n else x[:0]
        piece[f"valid{j}"] = np.add.reduceat((~missing).astype(np.int64), starts) if n else starts[:0]
        piece[f"min{j}"] = np.fmin.reduceat(x, starts) if n else x[:0]
        piece[f"max{j}"] = np.fmax.reduceat(x, starts) if n else x[:0]
    k = 0
    for column, values in spec.share:
        code_of, uniques = pd.factorize(frame[column].reset_index(drop=True))
        names = np.asarray(pd.Series(np.asarray(uniques, dtype=object)).astype(str), dtype=object)
        code_of = code_of[positions]
        for value in values:
            hit = np.zeros(len(names) + 1, dtype=np.int64)  # the last entry: a missing value (code -1)
            hit[:-1] = names == str(value)
            match = hit[code_of]
            piece[f"share{k}"] = np.add.reduceat(match, starts) if n else match[:0]
            k += 1
    piece_frame = pd.DataFrame(piece)
    piece_bounds = _slices(buckets[c[starts]], n_buckets)

    pairs, pair_bounds = [], []
    for j, column in enumerate(spec.nunique):
        value_code, value_hashes = _codes(frame[column])
        value_code = value_code[positions]
        has = value_code >= 0
        key = c[has] * max(len(value_hashes), 1) + value_code[has]
        # Events are sorted by entity then ring: an (entity, value) pair's first occurrence has its
        # earliest ring, and the kept pairs stay sorted by entity (so by bucket).
        first = ~pd.Series(key).duplicated(keep="first").to_numpy()
        entity = c[has][first]
        pairs.append(pd.DataFrame({ENTITY: hashes[entity], "value": value_hashes[value_code[has][first]],
                                   "ring": r[has][first].astype(np.int8),
                                   "column": np.full(len(entity), j, dtype=np.int8)}))
        pair_bounds.append(_slices(buckets[entity], n_buckets))

    if spec.session_gap_minutes is not None:
        gap = int(spec.session_gap_minutes * 60_000)
        # A local session: events of one entity and ring, each within the gap of the previous.
        starts_s = np.ones(n, dtype=bool)
        if n:
            starts_s[1:] = (c[1:] != c[:-1]) | (r[1:] != r[:-1]) | (t[1:] - t[:-1] > gap)
        first_s = np.flatnonzero(starts_s)
        last_s = np.r_[first_s[1:], n].astype(np.int64) - 1
        intervals = pd.DataFrame({ENTITY: hashes[c[first_s]], "ring": r[first_s].astype(np.int8),
                                  "start": t[first_s], "end": t[last_s] if n else t[:0]})
        interval_bounds = _slices(buckets[c[first_s]], n_buckets)
    else:
        intervals, interval_bounds = _empty_intervals(), np.zeros(n_buckets + 1, dtype=np.int64)

    out = []
    for b in range(n_buckets):
        pair_piece = pd.concat([f.iloc[bounds[b]:bounds[b + 1]] for f, bounds in zip(pairs, pair_bounds,
                                                                                      strict=True)],
                               ignore_index=True) if pairs else _empty_pairs()
        out.append((piece_frame.iloc[piece_bounds[b]:piece_bounds[b + 1]], pair_piece,
                    intervals.iloc[interval_bounds[b]:interval_bounds[b + 1]]))
    return (*out, stats)


def _empty_pairs() -> pd.DataFrame:
    return pd.DataFrame({ENTITY: np.zeros(0, np.uint64), "value": np.zeros(0, np.uint64),
                         "ring": np.zeros(0, np.int8), "column": np.zeros(0, np.int8)})


def _empty_intervals() -> pd.DataFrame:
    return pd.DataFrame({ENTITY: np.zeros(0, np.uint64), "ring": np.zeros(0, np.int8),
                         "start": np.zeros(0, np.int64), "end": np.zeros(0, np.int64)})


def label_partials(frame: pd.DataFrame, *, id_column: str, time: str, start_ms: int, end_ms: int,
                   n_buckets: int, anchor: pd.Series | None = None, within_ms: int = 0,
                   cutoff_ms: int = 0, closed: str = "left") -> tuple[Any, ...]:
    """The hashes of entities with an event in [start_ms, end_ms), by bucket; then the time stats.

    With ``anchor`` (entity hash -> ms), each entity's window is [anchor, anchor + within_ms)
    instead, and only events before ``cutoff_ms`` (the data observed) count. ``closed="right"``:
    the windows are (start, end] instead: an event at the start is out, one at the end is in.
    """
    ts = times_ms(frame[time])
    stats = _stats(ts)
    code, hashes = entity_hash(frame[id_column])
    if anchor is not None:
        start = anchor_of(hashes, anchor)[np.maximum(code, 0)] if len(hashes) else np.full(len(ts), _NAT)
        end = start + within_ms
        within = (ts > start) & (ts <= end) if closed == "right" else (ts >= start) & (ts < end)
        inside = (ts != _NAT) & (start != _NAT) & within & (ts < cutoff_ms) & (code >= 0)
    else:
        within = (ts > start_ms) & (ts <= end_ms) if closed == "right" else (ts >= start_ms) & (ts < end_ms)
        inside = (ts != _NAT) & within & (code >= 0)
    found = np.unique(hashes[np.unique(code[inside])])
    buckets = _bucket(found, n_buckets)
    return (*(found[buckets == b] for b in range(n_buckets)), stats)


def table_pieces(frame: pd.DataFrame, *, id_column: str, n_buckets: int) -> tuple[pd.DataFrame, ...]:
    """One partition of the entity table by bucket, its rows tagged with ``ENTITY``."""
    code, hashes = entity_hash(frame[id_column])
    entity = np.where(code >= 0, hashes[np.maximum(code, 0)] if len(hashes) else 0, np.uint64(0))
    tagged = frame.reset_index(drop=True).assign(**{ENTITY: entity.astype(np.uint64)})
    return tuple(_split(tagged, _bucket(tagged[ENTITY].to_numpy(), n_buckets), n_buckets))


# -- stage 2: one bucket's features --------------------------------------------------------


def _concat(frames: Sequence[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    full = [f for f in frames if len(f)]
    if len(full) == 1:
        return full[0]
    return pd.concat(full, ignore_index=True) if full else (frames[0] if len(frames) else empty)


def _per_ring(index: np.ndarray, ring: np.ndarray, weights: np.ndarray | None, n: int,
              n_rings: int) -> np.ndarray:
    """(n, n_rings) sums of ``weights`` (or counts), accumulated over rings: column i = rings <= i."""
    flat = np.bincount(index * n_rings + ring, weights=weights, minlength=n * n_rings)
    return np.cumsum(flat.reshape(n, n_rings), axis=1)


def _extreme(index: np.ndarray, ring: np.ndarray, values: np.ndarray, n: int, n_rings: int,
             smallest: bool) -> np.ndarray:
    """(n, n_rings) min (or max) over rings <= i; NaN where there is none."""
    fill = np.inf if smallest else -np.inf
    out = np.full(n * n_rings, fill)
    (np.fmin if smallest else np.fmax).at(out, index * n_rings + ring, values)
    out = (np.minimum if smallest else np.maximum).accumulate(out.reshape(n, n_rings), axis=1)
    return np.where(np.isinf(out), np.nan, out)


def _sessions(index: np.ndarray, ring: np.ndarray, start: np.ndarray, end: np.ndarray, n: int,
              n_rings: int, gap: int) -> np.ndarray:
    """(n, n_rings) sessions over rings <= i: intervals merged where the silence is <= gap."""
    out = np.zeros((n, n_rings), dtype=np.int64)
    for last in range(n_rings):
        inside = ring <= last
        i, s, e = index[inside], start[inside], end[inside]
        order = np.lexsort((s, i))
        i, s, e = i[order], s[order], e[order]
        if not len(i):
            continue
        # The latest end so far of the entity's earlier intervals: a start beyond it + gap opens a session.
        reach = pd.Series(e).groupby(i).cummax().to_numpy()
        opens = np.ones(len(i), dtype=bool)
        opens[1:] = (i[1:] != i[:-1]) | (s[1:] - reach[:-1] > gap)
        out[:, last] = np.bincount(i[opens], minlength=n)
    return out


def bucket_features(table: Sequence[pd.DataFrame], events: Sequence[Sequence[tuple[pd.DataFrame, ...]]],
                    labels: Sequence[np.ndarray] | None, *, specs: Sequence[AggregateSpec], cutoff_ms: int,
                    history_ms: Sequence[int], label_column: str | None,
                    anchors: dict[str, pd.Series] | None = None, anchor_columns: Sequence[str] = (),
                    label_anchor: str | None = None, label_within_ms: int = 0,
                    censor_column: str | None = None, label_closed: str = "left") -> pd.DataFrame:
    """One bucket of the entity table with every spec's features (and the label) joined.

    ``table``: the bucket's pieces of the entity table (:func:`table_pieces`);
    ``events[k]``: spec k's (rows, pairs, intervals) pieces of this bucket from every
    partition; ``labels``: the hashes of entities with a label event; ``history_ms[k]``:
    the earliest event of spec k's source (what ``days_since_*`` default to); ``anchors``:
    every anchor by name (entity hash -> ms), of which ``anchor_columns`` become timestamp
    columns; ``label_anchor``: the anchor the label's window [anchor, anchor + within) starts
    at: entities without it get a missing label, and ``censor_column`` (when given) is true
    where the window ends after the cutoff (not fully observed; the label is then missing too).

    Defaults for an entity without events in a window: 0 for counts, sums, ``nunique``,
    active days, sessions and shares; 0 for mean, min and max too (their count is 0);
    ``days_since_last`` and ``days_since_first``: the days from the source's first event to
    the cutoff (the longest history observed).
    """
    frame = pd.concat(list(table), ignore_index=True)
    anchors = anchors or {}
    keys, inverse = np.unique(frame[ENTITY].to_numpy(dtype=np.uint64), return_inverse=True)
    columns: dict[str, Any] = {}
    for name in anchor_columns:
        ms = anchor_of(keys, anchors[name])[inverse]
        columns[name] = np.where(ms != _NAT, ms, np.datetime64("NaT", "ms").astype(np.int64)
                                 ).astype("datetime64[ms]")
    for spec, pieces, start_ms in zip(specs, events, history_ms, strict=True):
        rows = _concat([p[0] for p in pieces], pd.DataFrame({ENTITY: np.zeros(0, np.uint64),
                                                              "ring": np.zeros(0, np.int8)}))
        reference = np.full(len(keys), cutoff_ms, dtype=np.int64)
        if spec.until is not None:
            reference = _reference(anchor_of(keys, anchors[spec.until]), cutoff_ms)
        values = _spec_features(spec, rows, _concat([p[1] for p in pieces], _empty_pairs()),
                                _concat([p[2] for p in pieces], _empty_intervals()), keys, reference,
                                start_ms)
        columns.update({name: column[inverse] for name, column in values.items()})
    out = frame.drop(columns=[ENTITY]).assign(**columns)
    if label_column is not None:
        found = np.concatenate([np.asarray(h, dtype=np.uint64) for h in labels or ()] or
                               [np.zeros(0, np.uint64)])
        hit = np.isin(frame[ENTITY].to_numpy(dtype=np.uint64), found).astype(np.int8)
        if label_anchor is None:
            out[label_column] = hit
        else:
            start = anchor_of(keys, anchors[label_anchor])[inverse]
            # Observed: every instant of the window is before the cutoff ((a, a + w] needs a + w too).
            last = start + label_within_ms + (1 if label_closed == "right" else 0)
            censored = (start != _NAT) & (last > cutoff_ms)
            known = (start != _NAT) & ~censored
            out[label_column] = pd.array(np.where(known, hit, 0), dtype="Int8")
            out.loc[~known, label_column] = pd.NA
            if censor_column is not None:
                out[censor_column] = censored
    return out


def _index_of(keys: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Position of each hash in the unique ``keys``; -1 when not there (an entity not in the table)."""
    return pd.Index(keys).get_indexer(hashes)


def _first_ring(index: np.ndarray, other: np.ndarray, ring: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index, ring) of each distinct (index, other) pair, with its earliest ring."""
    # One 64-bit key per pair (wrapping arithmetic; a collision is as unlikely as one of the hashes).
    with np.errstate(over="ignore"):
        key = index.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + other.astype(np.uint64)
    order = np.argsort(ring, kind="stable")  # earliest ring first, so the first of a key is its earliest
    first = order[~pd.Series(key[order]).duplicated(keep="first").to_numpy()]
    return index[first], ring[first]


def _spec_features(spec: AggregateSpec, rows: pd.DataFrame, pairs: pd.DataFrame, intervals: pd.DataFrame,
                   keys: np.ndarray, cutoff_ms: np.ndarray, history_ms: int) -> dict[str, np.ndarray]:
    """Every feature of ``spec`` per entity of ``keys``; ``cutoff_ms``: each entity's own cutoff."""
    n, n_rings = len(keys), spec.n_rings
    index = _index_of(keys, rows[ENTITY].to_numpy(dtype=np.uint64))
    known = index >= 0
    rows = rows[known]
    index, ring = index[known], rows["ring"].to_numpy(dtype=np.int64)
    weights = rows["count"].to_numpy(dtype=np.float64) if len(rows) else None
    count = _per_ring(index, ring, weights, n, n_rings)
    per_window: dict[str, np.ndarray] = {"count": count}
    for j, column in enumerate(spec.numeric):
        total = _per_ring(index, ring, rows[f"sum{j}"].to_numpy(dtype=np.float64), n, n_rings)
        valid = _per_ring(index, ring, rows[f"valid{j}"].to_numpy(dtype=np.float64), n, n_rings)
        per_window[f"sum_{column}"] = total
        with np.errstate(invalid="ignore", divide="ignore"):
            per_window[f"mean_{column}"] = np.where(valid > 0, total / np.maximum(valid, 1), 0.0)
        for kind, smallest in (("min", True), ("max", False)):
            values = rows[f"{kind}{j}"].to_numpy(dtype=np.float64)
            extreme = _extreme(index, ring, values, n, n_rings, smallest)
            per_window[f"{kind}_{column}"] = np.nan_to_num(extreme, nan=0.0)
    if spec.nunique:
        pair_index = _index_of(keys, pairs[ENTITY].to_numpy(dtype=np.uint64))
        for j, column in enumerate(spec.nunique):
            chosen = (pairs["column"].to_numpy() == j) & (pair_index >= 0)
            i, first = _first_ring(pair_index[chosen], pairs["value"].to_numpy()[chosen],
                                   pairs["ring"].to_numpy(dtype=np.int64)[chosen])
            per_window[f"nunique_{column}"] = _per_ring(i, first, None, n, n_rings)
    if spec.active_days:
        i, first = _first_ring(index, rows["day"].to_numpy(dtype=np.int64), ring)
        per_window["active_days"] = _per_ring(i, first, None, n, n_rings)
    if spec.session_gap_minutes is not None:
        interval_index = _index_of(keys, intervals[ENTITY].to_numpy(dtype=np.uint64))
        inside = interval_index >= 0
        per_window["sessions"] = _sessions(interval_index[inside],
                                           intervals["ring"].to_numpy(dtype=np.int64)[inside],
                                           intervals["start"].to_numpy(dtype=np.int64)[inside],
                                           intervals["end"].to_numpy(dtype=np.int64)[inside], n, n_rings,
                                           int(spec.session_gap_minutes * 60_000))
    k = 0
    for column, values in spec.share:
        named = np.zeros_like(count)
        for value in values:
            hits = _per_ring(index, ring, rows[f"share{k}"].to_numpy(dtype=np.float64), n, n_rings)
            named += hits
            with np.errstate(invalid="ignore", divide="ignore"):
                per_window[f"share_{column}_{value}"] = np.where(count > 0, hits / np.maximum(count, 1), 0.0)
            k += 1
        if spec.share_other:  # whole counts: count - named is exact, so is its share
            with np.errstate(invalid="ignore", divide="ignore"):
                other = (count - named) / np.maximum(count, 1)
                per_window[f"share_{column}_other"] = np.where(count > 0, other, 0.0)

    out: dict[str, np.ndarray] = {}
    integral = {"count", "active_days", "sessions", *(f"nunique_{c}" for c in spec.nunique)}
    for window in spec.windows:
        at = spec.ring_of(window)
        for name in spec._window_names(window):
            key = name[len(spec.name) + 1:-(len(window) + 1)]
            values = per_window[key][:, at]
            out[name] = np.rint(values).astype(np.int64) if key in integral else values.astype(np.float64)
    if spec.recency:
        first = _extreme(index, ring, rows["first_ms"].to_numpy(dtype=np.float64), n, n_rings, True)[:, -1]
        last = _extreme(index, ring, rows["last_ms"].to_numpy(dtype=np.float64), n, n_rings, False)[:, -1]
        longest = (cutoff_ms - history_ms) / DAY_MS  # per entity: its own cutoff
        out[f"{spec.name}_days_since_last"] = np.where(np.isnan(last), longest, (cutoff_ms - last) / DAY_MS)
        out[f"{spec.name}_days_since_first"] = np.where(np.isnan(first), longest,
                                                        (cutoff_ms - first) / DAY_MS)
    return out

"""The retired bespoke builder of the house-ad feature table, kept as the reference it must equal.

``configs/conversion.yaml`` builds this table on the generic layer (features.table,
features.aggregates, features.derived); tests/features/test_aggregates_conversion.py checks the
two are equal column by column. This was ``daskflow.features._conversion`` (its encoder, split and
storage are gone with it); it is test code now, not part of the package.

How :func:`build_conversion_features` runs (docs/conversion_features.md has the features):

1. Every partition of every log is reduced by a pandas kernel (``_conversion_blocks``) to
   partials: one row per (user, day) of listens, one per user of impressions, the distinct
   (user, item) pairs, the conversions. Each row carries a hash bucket of its user.
2. The partials (one table for the user rows, listen days, impressions and conversions;
   one for the pairs) are shuffled into ``split_out`` buckets with ``set_index`` on the
   bucket and fixed divisions, so both come out co-partitioned: partition ``b`` of each
   holds the same users. That is the hash-partitioned combine a ``groupby(...,
   split_out=)`` does, done twice for everything instead of one groupby and one join per
   group of features; only the reduced partials move, never a whole log.
3. One kernel per bucket combines the partials into feature rows; the result is persisted,
   with the span of the logs (first day, latest event) reduced from the partials.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd

from daskflow._dask import compute, persist
from daskflow._errors import DataError, ParameterError, SchemaError
from daskflow._progress import wait_with_progress
from tests.features import _house_ad_blocks as blocks

__all__ = ["build_conversion_features", "DEFAULT_PLATFORMS", "DEFAULT_PLACEMENTS"]

log = logging.getLogger("daskflow")

#: Platforms and ad placements that get a share column each (others count as "other").
DEFAULT_PLATFORMS = ("mobile", "desktop", "web", "tablet")
DEFAULT_PLACEMENTS = ("audio", "display", "video", "banner")

_REQUIRED = {
    "listens": ("user_id", "track_id", "artist_id", "ms_played", "ts", "platform"),
    "users": ("user_id", "age", "gender", "country", "product", "signup_date"),
    "ad_impressions": ("user_id", "campaign", "placement", "ts"),
    "conversions": ("user_id", "ts"),
}
_PARTIALS_PER_BUCKET = 8  # default split_out: one bucket per this many listen partitions


def build_conversion_features(listens: dd.DataFrame | pd.DataFrame, users: dd.DataFrame | pd.DataFrame,
                              impressions: dd.DataFrame | pd.DataFrame,
                              conversions: dd.DataFrame | pd.DataFrame, *, window_days: float = 7,
                              session_gap_minutes: float = 30, end: str | pd.Timestamp | None = None,
                              platforms: Sequence[str] = DEFAULT_PLATFORMS,
                              placements: Sequence[str] = DEFAULT_PLACEMENTS,
                              split_out: int | None = None, client: Any = None) -> dd.DataFrame:
    """One row of features per user of ``users``, with the conversion label.

    Parameters
    ----------
    listens, users, impressions, conversions
        The lake tables (Dask or pandas DataFrames), e.g. from
        :func:`daskflow.io.read_table`; see docs/conversion_features.md for the columns used.
    window_days
        Label window: a user is positive when a conversion follows the first impression
        by at most this many days.
    session_gap_minutes
        A silence longer than this between two listens starts a new session.
    end
        End of observation: events after it are ignored, and users whose label window
        runs past it are ``censored``. Default: the latest listen or impression.
    platforms, placements
        Values of ``listens.platform`` / ``impressions.placement`` that get a share column;
        other values are pooled in ``*_share_other``.
    split_out
        Number of output partitions (user buckets). Default: one per 8 partitions of
        ``listens`` and at least one per partition of ``users``.
    client
        A ``distributed.Client`` to run on; default: dask's current scheduler.

    Returns
    -------
    dask.dataframe.DataFrame
        Persisted; columns ``user_id``, behaviour, demographics, exposure, ``exposed``,
        ``label`` (int8) and ``censored`` (see the docs for each definition and unit).

    Raises
    ------
    SchemaError
        A table lacks a required column or has a column of the wrong type.
    DataError
        An empty table, missing IDs or times, duplicate users, log rows of users missing
        from ``users``, or no user exposed to an ad by ``end``.
    ParameterError
        ``window_days``, ``session_gap_minutes`` or ``split_out`` out of range, or an
        ``end`` that is not a time.

    Examples
    --------
    >>> names = ("listens", "users", "ad_impressions", "conversions")
    >>> features = build_conversion_features(*(read_table(f"lake/{n}") for n in names))  # doctest: +SKIP
    """
    if not window_days > 0:
        raise ParameterError(f"window_days={window_days!r} is not a positive number of days: expected > 0, "
                             "e.g. 7")
    if not session_gap_minutes > 0:
        raise ParameterError(f"session_gap_minutes={session_gap_minutes!r} is not positive: expected "
                             "> 0, e.g. 30")
    if split_out is not None and (not isinstance(split_out, int) or split_out < 1):
        raise ParameterError(f"split_out={split_out!r} is not a positive integer: expected >= 1 or None")
    tables = {"listens": listens, "users": users, "ad_impressions": impressions, "conversions": conversions}
    tables = {name: _as_dask(frame, name) for name, frame in tables.items()}
    end_ms = None if end is None else _ms(_utc(end))
    platforms, placements = tuple(platforms), tuple(placements)
    n_buckets = split_out or max(tables["users"].npartitions,
                                 math.ceil(tables["listens"].npartitions / _PARTIALS_PER_BUCKET))
    gap_ms = int(session_gap_minutes * 60_000)

    listen_columns = tables["listens"][list(_REQUIRED["listens"])]
    impression_columns = tables["ad_impressions"][list(_REQUIRED["ad_impressions"])]
    schema = blocks.row_schema(platforms, placements)
    people = _rows(tables["users"][list(_REQUIRED["users"])], blocks.user_rows, blocks.SOURCE_USERS, schema,
                   n_buckets=n_buckets)
    days = _rows(listen_columns, blocks.listen_day_partials, blocks.SOURCE_LISTEN_DAYS, schema,
                 n_buckets=n_buckets, platforms=platforms, gap_ms=gap_ms, end_ms=end_ms)
    ads = _rows(impression_columns, blocks.impression_partials, blocks.SOURCE_IMPRESSIONS, schema,
                n_buckets=n_buckets, placements=placements, end_ms=end_ms)
    converted = _rows(tables["conversions"][["user_id", "ts"]], blocks.conversion_rows,
                      blocks.SOURCE_CONVERSIONS, schema, n_buckets=n_buckets, end_ms=end_ms)
    pairs = dd.concat([_partials(listen_columns, blocks.listen_pairs, n_buckets=n_buckets, end_ms=end_ms),
                       _partials(impression_columns, blocks.impression_pairs, n_buckets=n_buckets,
                                 end_ms=end_ms)])
    # The span of the logs, from the partials in the same pass (no separate scan): the
    # latest listen or impression is the end of observation unless one was given.
    span = (days["day"].min(), ads["first_impression_ms"].min(), days["last_ms"].max(), ads["last_ms"].max(),
            people["user_id"].size)
    settings = dict(end_ms=end_ms, window_ms=int(window_days * blocks.DAY_MS), gap_ms=gap_ms,
                    platforms=platforms, placements=placements)
    inputs = [_by_bucket(dd.concat([people, days, ads, converted]), n_buckets), _by_bucket(pairs, n_buckets)]
    meta = blocks.user_features(*(frame._meta for frame in inputs), start_day=0, **{**settings, "end_ms": 0})
    features = dd.map_partitions(_bucket_features, *inputs, *span, meta=meta, clear_divisions=True,
                                 align_dataframes=False, token="features-aggregate", **settings)
    (features, *span) = persist([features, *span], client)
    wait_with_progress([features], client=client, label="conversion features")
    _summarize(features, pd.Timestamp(_end_of(end_ms, *compute(span[2:4], client)), unit="ms"), client)
    return features


def _bucket_features(rows: pd.DataFrame, pairs: pd.DataFrame, first_listen_day: Any, first_ad_ms: Any,
                     last_listen_ms: Any, last_ad_ms: Any, n_users: int, *, end_ms: int | None,
                     **settings: Any) -> pd.DataFrame:
    """:func:`_conversion_blocks.user_features` with the span of the logs resolved."""
    if n_users == 0:
        raise DataError("the users table is empty: expected one row per user. Check the source's uri and "
                        "filters")
    first_days = [v for v in (first_listen_day, _floor_day(first_ad_ms)) if _known(v)]
    end = _end_of(end_ms, last_listen_ms, last_ad_ms)
    if not first_days:
        raise DataError("the listens and ad_impressions tables have no rows (at or before end): expected "
                        "event logs to build features from. Check the sources' uris and filters")
    start_day = int(min(first_days))
    if end < start_day * blocks.DAY_MS:
        raise DataError(f"end={pd.Timestamp(end, unit='ms')} is before the first day of the logs "
                        f"({pd.Timestamp(start_day * blocks.DAY_MS, unit='ms').date()}): expected an end "
                        "of observation within or after the logs")
    return blocks.user_features(rows, pairs, start_day=start_day, end_ms=end, **settings)


def _known(value: Any) -> bool:
    return value is not None and not pd.isna(value)


def _floor_day(ms: Any) -> Any:
    return int(ms) // blocks.DAY_MS if _known(ms) else None


def _end_of(end_ms: int | None, last_listen_ms: Any, last_ad_ms: Any) -> int:
    if end_ms is not None:
        return end_ms
    known = [int(v) for v in (last_listen_ms, last_ad_ms) if _known(v)]
    return max(known) if known else 0


def _as_dask(frame: Any, name: str) -> dd.DataFrame:
    if isinstance(frame, pd.DataFrame):
        frame = dd.from_pandas(frame, npartitions=1)
    if not isinstance(frame, dd.DataFrame):
        raise SchemaError(f"the {name} table is a {type(frame).__name__}: expected a Dask or pandas "
                          f"DataFrame, e.g. read_table('<lake>/{name}')")
    missing = [c for c in _REQUIRED[name] if c not in frame.columns]
    if missing:
        raise SchemaError(f"the {name} table lacks column(s) {', '.join(map(repr, missing))}: expected "
                          f"{', '.join(_REQUIRED[name])}; found {', '.join(map(str, frame.columns))}. "
                          "Rename the columns or read the table with them")
    dtypes = frame.dtypes
    for column in ("ts",) if "ts" in _REQUIRED[name] else ():
        if not _is_datetime(dtypes[column]):
            raise SchemaError(f"column 'ts' of the {name} table has type {dtypes[column]}: expected a "
                              "timestamp. Convert it (e.g. pd.to_datetime) or fix the source's schema")
    for column in {"listens": ("ms_played",), "users": ("age",)}.get(name, ()):
        if not pd.api.types.is_numeric_dtype(dtypes[column]):
            raise SchemaError(f"column {column!r} of the {name} table has type {dtypes[column]}: "
                              "expected a number. Fix the data or the source's schema")
    return frame


def _is_datetime(dtype: Any) -> bool:
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return True
    arrow = getattr(dtype, "pyarrow_dtype", None)
    return arrow is not None and str(arrow).startswith("timestamp")


def _ms(stamp: pd.Timestamp) -> int:
    return int(stamp.to_datetime64().astype("datetime64[ms]").astype(np.int64))


def _utc(value: Any) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"end={value!r} is not a time: expected a timestamp or a string such as "
                             "'2026-01-28 23:59'") from exc
    if stamp is pd.NaT:
        raise ParameterError(f"end={value!r} is not a time: expected a timestamp, or None for the "
                             "latest event")
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp


def _partials(frame: dd.DataFrame, function: Callable[..., pd.DataFrame], token: str | None = None,
              **kwargs: Any) -> dd.DataFrame:
    # Dashboard task prefix after the kernel, e.g. features-listen-day-partials.
    token = token or "features-" + function.__name__.strip("_").replace("_", "-")
    return frame.map_partitions(function, meta=function(frame._meta, **kwargs), token=token, **kwargs)


def _rows(frame: dd.DataFrame, kernel: Callable[..., pd.DataFrame], source: int,
          schema: dict[str, tuple[Any, Any]], **kwargs: Any) -> dd.DataFrame:
    token = "features-" + kernel.__name__.strip("_").replace("_", "-")
    return _partials(frame, blocks.partial_rows, token=token, kernel=kernel, source=source, schema=schema,
                     **kwargs)


#: Up to this many input partitions the shuffles run as plain tasks; above it, dask's
#: default (p2p on a distributed cluster), whose fixed cost of a few seconds then pays off.
_TASK_SHUFFLE_PARTITIONS = 256


def _by_bucket(frame: dd.DataFrame, n_buckets: int) -> dd.DataFrame:
    # Fixed divisions: no sampling pass, and every table gets the same partition per bucket
    # (the last division is inclusive, so buckets 0 .. n-1 need divisions 0 .. n).
    method = "tasks" if frame.npartitions <= _TASK_SHUFFLE_PARTITIONS else None
    return frame.set_index("bucket", divisions=list(range(n_buckets + 1)), shuffle_method=method)


def _summarize(features: dd.DataFrame, end: pd.Timestamp, client: Any) -> None:
    population = features["exposed"] & ~features["censored"]
    n_users, n_listens, n_exposed, n_population, n_positive = compute(
        [features["user_id"].size, features["n_listens"].sum(), features["exposed"].sum(), population.sum(),
         features["label"][population].sum()], client)
    if n_listens == 0:
        raise DataError(f"the listens table has no rows at or before end={end}: expected the listening "
                        "log of the users. Check the source's uri and filters")
    if n_exposed == 0:
        raise DataError(f"no user saw a house ad by end={end}: the conversion label is defined on exposed "
                        "users. Check the ad_impressions table and its filters, or choose a later end")
    log.info("conversion features: %d users, %d exposed, %d exposed and uncensored (%d converted) as of %s",
             n_users, n_exposed, n_population, n_positive, end)

"""Per-partition kernels of the retired bespoke house-ad builder (``_house_ad_reference``), kept for the test.

The Dask layer (``_house_ad_reference.py``) maps two stages of kernels over partitions:

1. *Partials* reduce one partition of a log to small pieces, each row tagged with the
   hash bucket of its user: listens to one row per (user, day) with counts, listening
   time, platform counts, first/last listen and sessions; impressions to one row per user;
   distinct (user, item) pairs; conversion times; user rows. All but the pairs are
   widened to one schema (:func:`partial_rows`) so they travel as one table.
2. :func:`user_features` receives every piece of one bucket of users (the Dask layer
   co-partitions the pieces by bucket) and combines them into one feature row per user.

Times are handled as int64 milliseconds since the epoch (UTC) and days as whole UTC days
since the epoch, whatever unit or time zone the input columns have.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from daskflow._errors import DataError

__all__ = ["DAY_MS", "ID_DTYPE", "bucket_of", "unit_fraction", "listen_day_partials", "listen_pairs",
           "impression_partials", "impression_pairs", "conversion_rows", "user_rows", "row_schema",
           "partial_rows", "user_features", "feature_columns", "share_column", "PAIR_TRACK", "PAIR_ARTIST",
           "PAIR_CAMPAIGN", "SOURCE_USERS", "SOURCE_LISTEN_DAYS", "SOURCE_IMPRESSIONS", "SOURCE_CONVERSIONS"]

DAY_MS = 86_400_000
#: Every user ID and categorical value leaves the kernels with this dtype, so hashes and
#: joins agree whatever the reader produced (object, str, string[pyarrow]).
ID_DTYPE = pd.StringDtype("pyarrow")
PAIR_TRACK, PAIR_ARTIST, PAIR_CAMPAIGN = 0, 1, 2
_NEVER = np.iinfo(np.int64).max  # "no first time yet": the identity of min
_OTHER = "other"


# -- shared helpers -----------------------------------------------------------------


def bucket_of(user_ids: pd.Series | pd.Index | np.ndarray, n_buckets: int) -> np.ndarray:
    """The bucket (0 .. n_buckets - 1) of every user: a stable hash, the same in every process."""
    return (_hash(user_ids) % np.uint64(n_buckets)).astype(np.int64)


def unit_fraction(user_ids: pd.Series, seed: int) -> np.ndarray:
    """A deterministic pseudo-random number in [0, 1) per user, fixed by ``seed``.

    SipHash of the ID under a key made from the seed: stable across processes, platforms
    and partitionings (Python's ``hash`` is salted per process, so it cannot be used).
    """
    hashes = _hash(user_ids, key=f"dfsplit-{seed & 0xFFFFFFFF:08x}")  # keys have 16 characters
    return (hashes >> np.uint64(11)).astype(np.float64) / float(2**53)


def share_column(prefix: str, value: str) -> str:
    return f"{prefix}_share_{value}"


def _ids(series: pd.Series, table: str, column: str = "user_id") -> pd.Series:
    values = series.astype(ID_DTYPE)
    missing = values.isna()
    if missing.any():
        raise DataError(f"column {column!r} of the {table} table has {int(missing.sum())} missing "
                        f"values in one partition: expected an ID on every row. Drop or fill those rows "
                        "before building features")
    return values.reset_index(drop=True)


def _times(series: pd.Series, table: str, column: str = "ts") -> np.ndarray:
    """int64 ms since the epoch (UTC) for any datetime unit or time zone; no NaT allowed."""
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    values = pd.to_datetime(series).to_numpy(dtype="datetime64[ms]")
    missing = np.isnat(values)
    if missing.any():
        raise DataError(f"column {column!r} of the {table} table has {int(missing.sum())} missing "
                        "timestamps in one partition: expected a time on every event. Drop those rows "
                        "before building features")
    return values.astype(np.int64)


def _until(ts: np.ndarray, end_ms: int | None) -> np.ndarray:
    """Rows at or before ``end_ms``; all rows when the end is not known yet (it is their maximum)."""
    return ts <= end_ms if end_ms is not None else np.ones(len(ts), dtype=bool)


def _category_codes(series: pd.Series, values: Sequence[str]) -> np.ndarray:
    """Index of each value in ``values``; anything else (and nulls) is ``len(values)`` ("other")."""
    # Factorise first (fast on Arrow strings), then look up only the distinct values.
    code, uniques = pd.factorize(series.astype(ID_DTYPE).reset_index(drop=True))
    known = pd.Index(list(values), dtype=object).get_indexer(np.asarray(uniques, dtype=object))
    known[known < 0] = len(values)
    return np.where(code >= 0, known[code] if len(known) else code, len(values)).astype(np.int64)


def _group_counts(group: np.ndarray, codes: np.ndarray, n_groups: int, n_codes: int) -> np.ndarray:
    """(n_groups, n_codes) table of how often each code occurs in each group."""
    flat = np.bincount(group * n_codes + codes, minlength=n_groups * n_codes)
    return flat.reshape(n_groups, n_codes)


# -- stage 1: partials of one partition ---------------------------------------------------


def listen_day_partials(frame: pd.DataFrame, *, platforms: Sequence[str], gap_ms: int,
                        end_ms: int | None, n_buckets: int) -> pd.DataFrame:
    """One row per (user, UTC day) of a partition of listens at or before ``end_ms`` (if given).

    Columns: ``bucket``, ``user_id``, ``day``, ``n_listens``, ``ms_played``, ``first_ms``,
    ``last_ms``, ``sessions`` (within the day: a new session starts after a silence longer
    than ``gap_ms``), and ``platform_<p>`` counts for ``platforms`` plus ``platform_other``.
    """
    ts = _times(frame["ts"], "listens")
    keep = _until(ts, end_ms)
    users = _ids(frame["user_id"], "listens")[keep].reset_index(drop=True)
    ts = ts[keep]
    played = pd.to_numeric(frame["ms_played"]).to_numpy(dtype=np.float64, na_value=0.0)[keep]
    if (played < 0).any():
        raise DataError("column 'ms_played' of the listens table has negative values: expected "
                        "milliseconds >= 0. Clean the data or filter those rows out")
    platform = _category_codes(frame["platform"][keep], platforms)
    code, uniques = pd.factorize(users)
    day = ts // DAY_MS
    order = np.lexsort((ts, day, code))
    code, ts, day, played, platform = code[order], ts[order], day[order], played[order], platform[order]
    n = len(code)
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = (code[1:] != code[:-1]) | (day[1:] != day[:-1])
    new_session = new_group.copy()
    new_session[1:] |= np.diff(ts) > gap_ms
    starts = np.flatnonzero(new_group)
    ends = np.r_[starts[1:], n][:len(starts)] - 1
    group = np.cumsum(new_group) - 1
    counts = _group_counts(group, platform, len(starts), len(platforms) + 1)
    first_user = code[starts]
    out = {
        "bucket": bucket_of(uniques, n_buckets)[first_user] if n else np.zeros(0, np.int64),
        "user_id": pd.array(np.asarray(uniques, dtype=object)[first_user], dtype=ID_DTYPE),
        "day": day[starts].astype(np.int64),
        "n_listens": np.diff(np.r_[starts, n]).astype(np.int64),
        "ms_played": np.add.reduceat(played, starts) if n else np.zeros(0),
        "first_ms": ts[starts],
        "last_ms": ts[ends],  # sorted by time within a group
        "sessions": np.add.reduceat(new_session.astype(np.int64), starts) if n else np.zeros(0, np.int64),
    }
    for index, value in enumerate([*platforms, _OTHER]):
        out[f"platform_{value}"] = counts[:, index].astype(np.int64)
    return pd.DataFrame(out)


def _pairs(user_code: np.ndarray, user_uniques: Any, user_buckets: np.ndarray, items: pd.Series,
           kind: int) -> pd.DataFrame:
    """Distinct (user, item) pairs, the item as a 64-bit hash (cheaper to shuffle than a string).

    A hash collision between two items of one user would undercount by one; at 64 bits
    that takes billions of items per user.
    """
    item_code, item_uniques = pd.factorize(items.astype(ID_DTYPE).reset_index(drop=True))
    valid = item_code >= 0  # a missing item is not a distinct item
    n_items = max(len(item_uniques), 1)
    key = np.unique(user_code[valid].astype(np.int64) * n_items + item_code[valid])
    user, item = key // n_items, key % n_items
    return pd.DataFrame({"bucket": user_buckets[user],
                         "user_id": pd.array(np.asarray(user_uniques, dtype=object)[user], dtype=ID_DTYPE),
                         "kind": np.full(len(key), kind, dtype=np.int8),
                         "item": _hash(item_uniques)[item]})


def _hash(values: Any, key: str | None = None) -> np.ndarray:
    series = pd.Series(np.asarray(values, dtype=object))
    if key is None:
        return pd.util.hash_pandas_object(series, index=False).to_numpy()
    return pd.util.hash_pandas_object(series, index=False, hash_key=key).to_numpy()


def listen_pairs(frame: pd.DataFrame, *, end_ms: int | None, n_buckets: int) -> pd.DataFrame:
    """Distinct (user, track) and (user, artist) pairs of a partition: ``kind`` tells which."""
    keep = _until(_times(frame["ts"], "listens"), end_ms)
    user_code, user_uniques = pd.factorize(_ids(frame["user_id"], "listens")[keep])
    buckets = bucket_of(user_uniques, n_buckets)
    return pd.concat([_pairs(user_code, user_uniques, buckets, frame["track_id"][keep], PAIR_TRACK),
                      _pairs(user_code, user_uniques, buckets, frame["artist_id"][keep], PAIR_ARTIST)],
                     ignore_index=True)


def impression_partials(frame: pd.DataFrame, *, placements: Sequence[str], end_ms: int | None,
                        n_buckets: int) -> pd.DataFrame:
    """One row per user of a partition of impressions: count, placement counts, first and last time."""
    ts = _times(frame["ts"], "ad_impressions")
    keep = _until(ts, end_ms)
    users = _ids(frame["user_id"], "ad_impressions")[keep].reset_index(drop=True)
    placement = _category_codes(frame["placement"][keep], placements)
    code, uniques = pd.factorize(users)
    n_users = len(uniques)
    counts = _group_counts(code, placement, n_users, len(placements) + 1)
    first = np.full(n_users, _NEVER, dtype=np.int64)
    np.minimum.at(first, code, ts[keep])
    last = np.full(n_users, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, code, ts[keep])
    out = {"bucket": bucket_of(uniques, n_buckets),
           "user_id": pd.array(np.asarray(uniques, dtype=object), dtype=ID_DTYPE),
           "impressions": counts.sum(axis=1).astype(np.int64),
           "first_impression_ms": first, "last_ms": last}
    for index, value in enumerate([*placements, _OTHER]):
        out[f"placement_{value}"] = counts[:, index].astype(np.int64)
    return pd.DataFrame(out)


def impression_pairs(frame: pd.DataFrame, *, end_ms: int | None, n_buckets: int) -> pd.DataFrame:
    """Distinct (user, campaign) pairs of a partition of impressions."""
    keep = _until(_times(frame["ts"], "ad_impressions"), end_ms)
    user_code, user_uniques = pd.factorize(_ids(frame["user_id"], "ad_impressions")[keep])
    return _pairs(user_code, user_uniques, bucket_of(user_uniques, n_buckets), frame["campaign"][keep],
                  PAIR_CAMPAIGN)


def conversion_rows(frame: pd.DataFrame, *, end_ms: int | None, n_buckets: int) -> pd.DataFrame:
    """``bucket``, ``user_id``, ``ts_ms`` of the conversions at or before ``end_ms`` (if given)."""
    ts = _times(frame["ts"], "conversions")
    keep = _until(ts, end_ms)
    users = _ids(frame["user_id"], "conversions")[keep].reset_index(drop=True)
    return pd.DataFrame({"bucket": bucket_of(users, n_buckets), "user_id": users, "ts_ms": ts[keep]})


def user_rows(frame: pd.DataFrame, *, n_buckets: int) -> pd.DataFrame:
    """The users table with a bucket, normalised dtypes and the signup as a UTC day number."""
    users = _ids(frame["user_id"], "users")
    signup = pd.to_datetime(frame["signup_date"].reset_index(drop=True))
    if isinstance(signup.dtype, pd.DatetimeTZDtype):
        signup = signup.dt.tz_convert("UTC").dt.tz_localize(None)
    signup_ms = signup.to_numpy(dtype="datetime64[ms]")
    signup_day = np.where(np.isnat(signup_ms), np.nan, signup_ms.astype(np.int64) // DAY_MS)
    out = pd.DataFrame({"bucket": bucket_of(users, n_buckets), "user_id": users,
                        "age": pd.to_numeric(frame["age"]).to_numpy(dtype=np.float64, na_value=np.nan)})
    for column in ("gender", "country", "product"):
        out[column] = frame[column].astype(ID_DTYPE).reset_index(drop=True)
    out["signup_day"] = signup_day.astype(np.float64)
    return out


#: What a row of the per-user partials is. The four kinds travel as one table with the
#: union of their columns, so that one shuffle moves them all (each shuffle has a fixed
#: cost, large with distributed's p2p); pairs, the bulk, travel on their own.
SOURCE_USERS, SOURCE_LISTEN_DAYS, SOURCE_IMPRESSIONS, SOURCE_CONVERSIONS = 0, 1, 2, 3


def row_schema(platforms: Sequence[str], placements: Sequence[str]) -> dict[str, tuple[Any, Any]]:
    """Column -> (dtype, value for rows of another kind) of the union of the partials."""
    counts = [f"platform_{p}" for p in [*platforms, _OTHER]] \
        + [f"placement_{p}" for p in [*placements, _OTHER]]
    schema: dict[str, tuple[Any, Any]] = {"bucket": (np.int64, 0), "source": (np.int8, 0),
                                          "user_id": (ID_DTYPE, pd.NA)}
    for column in ("day", "n_listens", "first_ms", "last_ms", "sessions", "impressions",
                   "first_impression_ms", "ts_ms", *counts):
        schema[column] = (np.int64, 0)
    schema.update({"ms_played": (np.float64, 0.0), "age": (np.float64, np.nan), "gender": (ID_DTYPE, pd.NA),
                   "country": (ID_DTYPE, pd.NA), "product": (ID_DTYPE, pd.NA),
                   "signup_day": (np.float64, np.nan)})
    return schema


def partial_rows(frame: pd.DataFrame, *, kernel: Callable[..., pd.DataFrame], source: int,
                 schema: dict[str, tuple[Any, Any]], **kwargs: Any) -> pd.DataFrame:
    """``kernel(frame, **kwargs)`` widened to ``schema``, its rows tagged with ``source``."""
    part = kernel(frame, **kwargs)
    n = len(part)
    out: dict[str, Any] = {}
    for column, (dtype, filler) in schema.items():
        strings = isinstance(dtype, pd.StringDtype)  # not `is ID_DTYPE`: schemas travel pickled
        if column == "source":
            out[column] = np.full(n, source, dtype=np.int8)
        elif column in part:
            out[column] = part[column].array if strings else part[column].to_numpy()
        else:
            out[column] = pd.array([filler] * n, dtype=dtype) if strings else np.full(n, filler, dtype=dtype)
    return pd.DataFrame(out)


def _of_source(rows: pd.DataFrame, source: int) -> pd.DataFrame:
    return rows[rows["source"].to_numpy() == source].reset_index(drop=True)


# -- stage 2: one bucket of users ---------------------------------------------------------


def feature_columns(platforms: Sequence[str], placements: Sequence[str]) -> list[str]:
    """The output columns of :func:`user_features`, in order."""
    return ["user_id", "n_listens", "listen_hours", "active_days", "days_observed", "active_share",
            "listens_per_active_day", "sessions", "distinct_tracks", "distinct_artists", "recency_days",
            *[share_column("platform", p) for p in [*platforms, _OTHER]],
            "age", "gender", "country", "product", "tenure_days",
            "impressions", "distinct_campaigns",
            *[share_column("placement", p) for p in [*placements, _OTHER]],
            "listens_since_first_impression", "ads_per_listen", "first_impression_ts",
            "days_since_first_impression", "exposed", "label", "censored"]


def _arrow_ids(values: Any) -> pa.Array:
    return pa.array(pd.Series(values).astype(ID_DTYPE), type=pa.large_string())


def _positions(known: pa.Array, ids: pd.Series, table: str) -> np.ndarray:
    """Row of every ID in the bucket's users (a hash lookup in Arrow, no Python strings)."""
    position = pc.index_in(_arrow_ids(ids), value_set=known).fill_null(-1).to_numpy().astype(np.int64)
    if (position < 0).any():
        unknown = pd.unique(np.asarray(ids, dtype=object)[position < 0])
        examples = ", ".join(repr(u) for u in sorted(unknown)[:3])
        raise DataError(f"the {table} table has user IDs that are not in the users table (e.g. "
                        f"{examples}): expected every user of the logs to have a row in users. Add the "
                        "missing users, or filter the logs to known users")
    return position


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (nothing observed)."""
    out = np.zeros(len(numerator), dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def user_features(rows: pd.DataFrame, pairs: pd.DataFrame, *, start_day: int, end_ms: int,
                  window_ms: int, gap_ms: int, platforms: Sequence[str],
                  placements: Sequence[str]) -> pd.DataFrame:
    """Feature rows of one bucket of users from the partials of those users.

    ``rows`` holds the users, listen-day, impression and conversion partials (see
    :func:`partial_rows`), ``pairs`` the distinct (user, item) pairs. ``start_day`` is the
    first UTC day of the logs, ``end_ms`` the end of observation. Raises
    :class:`DataError` for duplicate users and for log rows of unknown users.
    """
    users, days, impressions, conversions = (_of_source(rows, source) for source in (
        SOURCE_USERS, SOURCE_LISTEN_DAYS, SOURCE_IMPRESSIONS, SOURCE_CONVERSIONS))
    ids = users["user_id"]
    if ids.duplicated().any():
        duplicated = sorted(pd.unique(np.asarray(ids[ids.duplicated()], dtype=object)))[:3]
        raise DataError(f"the users table has duplicate user IDs (e.g. {', '.join(map(repr, duplicated))}): "
                        "expected one row per user. Deduplicate the users table")
    known = _arrow_ids(ids)
    n = len(known)
    end_day = end_ms // DAY_MS

    # Listening: sums over the (user, day) partials of every partition.
    user = _positions(known, days["user_id"], "listens")
    n_day = days["n_listens"].to_numpy(np.int64)
    n_listens = np.bincount(user, n_day, minlength=n).astype(np.int64)
    ms_played = np.bincount(user, days["ms_played"].to_numpy(np.float64), minlength=n)
    day = days["day"].to_numpy(np.int64)
    # Distinct (user, day) keys: a day may come in several partials (one per partition).
    day_offset = day - day.min() if len(day) else day
    active_days = np.bincount(np.unique((user.astype(np.int64) << 32) | day_offset) >> 32, minlength=n)
    last_listen = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last_listen, user, days["last_ms"].to_numpy(np.int64))
    sessions = _sessions(user, days["first_ms"].to_numpy(np.int64), days["last_ms"].to_numpy(np.int64),
                         days["sessions"].to_numpy(np.int64), n, gap_ms)

    # Ad exposure: the first impression fixes the label window and the ad-load period.
    ad_user = _positions(known, impressions["user_id"], "ad_impressions")
    n_impressions = np.bincount(ad_user, impressions["impressions"].to_numpy(np.float64),
                                minlength=n).astype(np.int64)
    first_impression = np.full(n, _NEVER, dtype=np.int64)
    np.minimum.at(first_impression, ad_user, impressions["first_impression_ms"].to_numpy(np.int64))
    exposed = first_impression != _NEVER
    # Ads are served while listening, so the ad load is measured against the listens of
    # the days from the first impression on (whole days: the first day's ads depend on
    # that day's listening, not only on the listens after the first ad).
    since = day >= first_impression[user] // DAY_MS
    listens_since = np.bincount(user[since], n_day[since], minlength=n).astype(np.int64)

    # Pairs were deduplicated per partition; a pair seen in several partitions counts once.
    pair_user = _positions(known, pairs["user_id"], "listens")
    unique_pairs = pairs.assign(position=pair_user).drop_duplicates(["position", "kind", "item"])
    distinct = _group_counts(unique_pairs["position"].to_numpy(np.int64),
                             unique_pairs["kind"].to_numpy(np.int64), n, 3)

    # Label: a conversion in (first impression, first impression + window], seen by end_ms.
    conversion_user = _positions(known, conversions["user_id"], "conversions")
    conversion_ts = conversions["ts_ms"].to_numpy(np.int64)
    first_of_converter = first_impression[conversion_user]
    in_window = (first_of_converter != _NEVER) & (conversion_ts > first_of_converter) \
        & (conversion_ts - first_of_converter <= window_ms) & (conversion_ts <= end_ms)
    label = np.bincount(conversion_user[in_window], minlength=n) > 0
    censored = exposed & (first_impression > end_ms - window_ms)

    signup_day = users["signup_day"].to_numpy(np.float64)
    observed_from = np.where(np.isnan(signup_day), start_day, np.maximum(signup_day, start_day))
    days_observed = np.maximum(end_day - observed_from + 1, 1).astype(np.int64)
    listened = n_listens > 0
    out = {
        "user_id": users["user_id"].reset_index(drop=True),
        "n_listens": n_listens,
        "listen_hours": ms_played / 3_600_000,
        "active_days": active_days.astype(np.int64),
        "days_observed": days_observed,
        "active_share": active_days / days_observed,
        "listens_per_active_day": _ratio(n_listens, active_days),
        "sessions": sessions,
        "distinct_tracks": distinct[:, PAIR_TRACK].astype(np.int64),
        "distinct_artists": distinct[:, PAIR_ARTIST].astype(np.int64),
        # Never listened: as if the last listen were just before observation began.
        "recency_days": np.where(listened, (end_ms - last_listen) / DAY_MS, days_observed).astype(np.float64),
    }
    platform_counts = np.column_stack([np.bincount(user, days[f"platform_{p}"].to_numpy(np.float64),
                                                   minlength=n) for p in [*platforms, _OTHER]])
    for index, value in enumerate([*platforms, _OTHER]):
        out[share_column("platform", value)] = _ratio(platform_counts[:, index], n_listens)
    out["age"] = users["age"].to_numpy(np.float64)
    for column in ("gender", "country", "product"):
        out[column] = users[column].reset_index(drop=True)
    out["tenure_days"] = end_day - signup_day
    out["impressions"] = n_impressions
    out["distinct_campaigns"] = distinct[:, PAIR_CAMPAIGN].astype(np.int64)
    for value in [*placements, _OTHER]:
        placed = np.bincount(ad_user, impressions[f"placement_{value}"].to_numpy(np.float64), minlength=n)
        out[share_column("placement", value)] = _ratio(placed, n_impressions)
    out["listens_since_first_impression"] = listens_since
    out["ads_per_listen"] = _ratio(n_impressions, listens_since)
    not_a_time = np.datetime64("NaT", "ms").astype(np.int64)
    out["first_impression_ts"] = np.where(exposed, first_impression, not_a_time).astype("datetime64[ms]")
    out["days_since_first_impression"] = np.where(exposed, (end_ms - first_impression) / DAY_MS, 0.0)
    out["exposed"] = exposed
    out["label"] = label.astype(np.int8)
    out["censored"] = censored
    frame = pd.DataFrame(out)
    # A fixed row order (by ID) makes the result independent of how the shuffle
    # delivered the users of the bucket.
    return frame.sort_values("user_id", ignore_index=True)[feature_columns(platforms, placements)]


def _sessions(user: np.ndarray, first: np.ndarray, last: np.ndarray, partial_sessions: np.ndarray,
              n_users: int, gap_ms: int) -> np.ndarray:
    """Sessions per user from per-(user, day, partition) partials.

    Each partial counted its own sessions; where a partial starts within ``gap_ms`` of the
    latest end of the user's earlier partials (a session running past midnight, or a day
    split between files), the two sessions are one, so one is taken off. Exact when the
    partials of a user do not overlap in time, as with date-partitioned logs.
    """
    order = np.lexsort((first, user))
    user, first, last = user[order], first[order], last[order]
    if len(user) == 0:
        return np.zeros(n_users, dtype=np.int64)
    latest = pd.Series(last).groupby(user).cummax().to_numpy()
    joins = np.zeros(len(user), dtype=bool)
    joins[1:] = (user[1:] == user[:-1]) & (first[1:] - latest[:-1] <= gap_ms)
    total = np.bincount(user, partial_sessions[order], minlength=n_users)
    return (total - np.bincount(user[joins], minlength=n_users)).astype(np.int64)

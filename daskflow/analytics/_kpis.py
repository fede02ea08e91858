"""Product KPIs out of core: active users, lifecycle, retention and funnels on the cluster.

The events are read once per KPI family. Each partition is reduced to its distinct
(user, day) pairs with their event counts, the pairs are shuffled by user (a user's
days end up in one partition), and the Dask-free kernels of ``_kpis_kernels`` turn each
partition into counts per day, period or (cohort, offset), which add up across
partitions. Only those counts reach the client. A funnel is a chain of Dask merges, one
per step, that keeps each entering user's first time at every step; one row per
entering user (its step times) reaches the client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd

from daskflow._dask import compute
from daskflow._errors import DataError, SchemaError
from daskflow.analytics._kpis_kernels import (
    NO_COHORT,
    active_user_counts,
    active_users_table,
    day_numbers,
    funnel_table,
    lifecycle_counts,
    lifecycle_table,
    period_index,
    retention_counts,
    retention_table,
)

__all__ = ["FunnelStep", "KpiTables", "activity_kpis", "funnel", "user_days"]

_OPS = {"=": "eq", "==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


@dataclass(frozen=True)
class FunnelStep:
    """One step of a funnel: the rows of ``source`` that match ``where`` (DNF filters)."""

    name: str
    source: str
    where: list[Any] | None = None
    time: str = "ts"


@dataclass
class KpiTables:
    """What :func:`activity_kpis` computes, as small pandas tables (docs/analytics.md)."""

    active_users: pd.DataFrame
    lifecycle: pd.DataFrame
    retention: pd.DataFrame
    retention_average: pd.DataFrame
    first_day: pd.Timestamp
    last_day: pd.Timestamp
    info: dict[str, Any] = field(default_factory=dict)


def _require(frame: dd.DataFrame, columns: Sequence[str], what: str, where: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError(f"{what} has no column {', '.join(map(repr, missing))} ({where}): found "
                          f"{', '.join(map(str, frame.columns))}. Set {where} to one of those columns")


def _check_time(frame: dd.DataFrame, column: str, what: str, where: str) -> None:
    dtype = frame.dtypes[column]
    if not pd.api.types.is_datetime64_any_dtype(dtype):
        raise SchemaError(f"column {column!r} of {what} is a {dtype} column ({where}): expected timestamps. "
                          f"Store it as a timestamp or set {where} to a timestamp column")


def _conjunctions(filters: list[Any] | None) -> list[list[tuple[str, str, Any]]]:
    if not filters:
        return []
    if all(isinstance(f, tuple) for f in filters):
        return [list(filters)]
    return [list(group) for group in filters]


def filter_columns(filters: list[Any] | None) -> list[str]:
    """The columns a DNF filter reads."""
    return list(dict.fromkeys(column for group in _conjunctions(filters) for column, _, _ in group))


def apply_filter(frame: dd.DataFrame, filters: list[Any] | None, what: str, where: str) -> dd.DataFrame:
    """The rows of ``frame`` matching DNF ``filters`` (``[[column, op, value], ...]`` or a list
    of such conjunctions, OR-ed), as data.sources' filters are written."""
    groups = _conjunctions(filters)
    if not groups:
        return frame
    _require(frame, filter_columns(filters), what, where)
    mask = None
    for group in groups:
        conjunction = None
        for column, op, value in group:
            series = frame[column]
            if op == "in":
                term = series.isin(list(value))
            elif op == "not in":
                term = ~series.isin(list(value))
            else:
                term = getattr(series, _OPS[op])(value)
            conjunction = term if conjunction is None else conjunction & term
        mask = conjunction if mask is None else mask | conjunction
    return frame[mask]


def _partial_counts(part: pd.DataFrame, user: str, time: str) -> pd.DataFrame:
    """One partition's events per (user, day): most of the reduction before any shuffle."""
    part = part[part[user].notna() & part[time].notna()]
    frame = pd.DataFrame({user: part[user].to_numpy(), "day": day_numbers(part[time])})
    return frame.groupby([user, "day"], sort=False).size().rename("events").reset_index()


def _final_counts(part: pd.DataFrame, user: str, min_events: int) -> pd.DataFrame:
    counts = part.groupby([user, "day"], sort=False)["events"].sum().reset_index()
    return counts.loc[counts["events"] >= min_events, [user, "day"]]


def user_days(events: dd.DataFrame, *, user: str, time: str, where: list[Any] | None = None,
              min_events: int = 1, label: str = "the events table", key: str = "kpis") -> dd.DataFrame:
    """The active (user, day) pairs of an event log, partitioned so that each user is in one
    partition: a day counts when the user has at least ``min_events`` events matching
    ``where`` on it (UTC days).

    Raises
    ------
    SchemaError
        The user, time or a filter column is missing, or the time column holds no timestamps.
    """
    _require(events, [user], label, f"{key}.user")
    _require(events, [time], label, f"{key}.time")
    _check_time(events, time, label, f"{key}.time")
    chosen = apply_filter(events[list(dict.fromkeys([user, time, *filter_columns(where)]))], where, label,
                          f"{key}.active.where")
    meta = pd.DataFrame({user: pd.Series([], dtype=events.dtypes[user]), "day": pd.Series([], dtype="int64"),
                         "events": pd.Series([], dtype="int64")})
    partial = chosen[[user, time]].map_partitions(_partial_counts, user, time, meta=meta,
                                                  token="kpis-user-day-partial")
    shuffled = partial.shuffle(on=user)
    return shuffled.map_partitions(_final_counts, user, min_events, meta=meta[[user, "day"]],
                                   token="kpis-user-days")


def _active_part(part: pd.DataFrame, user: str, windows: tuple[int, ...]) -> pd.DataFrame:
    return active_user_counts(part[user], part["day"], windows)


def _lifecycle_part(part: pd.DataFrame, user: str, period: str) -> pd.DataFrame:
    return lifecycle_counts(part[user], period_index(part["day"].to_numpy(), period))


def _retention_part(part: pd.DataFrame, user: str, period: str) -> pd.DataFrame:
    periods = period_index(part["day"].to_numpy(), period)
    if "cohort" in part.columns:  # signup cohorts, joined in
        cohorts = part["cohort"]
    else:  # first-activity cohorts: users are whole in the partition
        cohorts = pd.Series(periods, index=part.index).groupby(part[user].to_numpy()).transform("min")
    return retention_counts(part[user], periods, cohorts.to_numpy())


def _signup_cohorts(part: pd.DataFrame, user: str, signup: str, period: str) -> pd.DataFrame:
    part = part[part[user].notna() & part[signup].notna()]
    return pd.DataFrame({user: part[user].to_numpy(),
                         "cohort": period_index(day_numbers(part[signup]), period)})


def activity_kpis(events: dd.DataFrame, *, user: str, time: str, where: list[Any] | None = None,
                  min_events: int = 1, lifecycle_period: str = "week", retention_period: str = "day",
                  retention_offsets: int | None = None, signups: dd.DataFrame | None = None,
                  signup_column: str = "signup_date", wau_days: int = 7, mau_days: int = 30,
                  label: str = "the events table", key: str = "kpis", client: Any = None) -> KpiTables:
    """DAU/WAU/MAU and stickiness, lifecycle and the retention cohort matrix, in one computation.

    Parameters
    ----------
    events : the event log, lazily read
    user, time : its user and timestamp columns
    where, min_events : what makes a user active on a day (matching rows, at least this many)
    lifecycle_period, retention_period : ``day``, ``week`` or ``month``
    retention_offsets : the last offset of the matrix; default all the data can observe
    signups : a users table with ``user`` and ``signup_column``: cohorts by signup period
        (users who signed up but were never active count in their cohort); default cohorts
        by the period of first activity
    wau_days, mau_days : the trailing windows of WAU and MAU

    Raises
    ------
    SchemaError
        A column is missing or not a timestamp.
    DataError
        The log is empty, or no user is active.
    """
    days = user_days(events, user=user, time=time, where=where, min_events=min_events, label=label, key=key)
    windows = (1, wau_days, mau_days)
    active_meta = pd.DataFrame({"day": pd.Series([], dtype="int64"),
                                **{f"active_{w}": pd.Series([], dtype="int64") for w in windows}})
    active = days.map_partitions(_active_part, user, windows, meta=active_meta,
                                 token="kpis-active").groupby("day").sum()
    lifecycle_meta = pd.DataFrame({c: pd.Series([], dtype="int64")
                                   for c in ("period", "new", "returning", "resurrected", "dormant")})
    lifecycle = days.map_partitions(_lifecycle_part, user, lifecycle_period,
                                    meta=lifecycle_meta, token="kpis-lifecycle").groupby("period").sum()
    retention_input = days
    tasks: list[Any] = [active, lifecycle, events[time].min(), events[time].max()]
    if signups is not None:
        _require(signups, [user], "the users table", f"{key}.retention.users (its user column {user!r})")
        _require(signups, [signup_column], "the users table", f"{key}.retention.signup")
        cohorts = signups[[user, signup_column]].map_partitions(
            _signup_cohorts, user, signup_column, retention_period, token="kpis-cohorts",
            meta=pd.DataFrame({user: pd.Series([], dtype=signups.dtypes[user]),
                               "cohort": pd.Series([], dtype="int64")}))
        # One cohort per user: the first signup row counts (a repeated row must not split a user).
        cohorts = cohorts.groupby(user).cohort.min().reset_index()
        retention_input = days.merge(cohorts, on=user, how="left")
        tasks.append(cohorts.groupby("cohort")[user].count())
    retention_meta = pd.DataFrame({c: pd.Series([], dtype="int64")
                                   for c in ("cohort", "offset", "on", "last")})
    retention = retention_input.map_partitions(_retention_part, user, retention_period, meta=retention_meta,
                                               token="kpis-retention")
    tasks.insert(2, retention.groupby(["cohort", "offset"]).sum().reset_index())
    results = compute(tasks, client)
    active_counts, lifecycle_counts_, retention_counts_, first, last = results[:5]
    if pd.isna(first):
        raise DataError(f"{label} has no rows with a {time} ({key}): nothing to count. Check the source's "
                        "uri and filters")
    first_day, last_day = (int(day_numbers([t])[0]) for t in (first, last))
    no_cohort = retention_counts_[retention_counts_["cohort"] == NO_COHORT]
    retention_counts_ = retention_counts_[retention_counts_["cohort"] != NO_COHORT]
    if signups is not None:
        sizes = results[5]
    else:
        at_zero = retention_counts_[retention_counts_["offset"] == 0]
        sizes = at_zero.set_index("cohort")["on"]
    if len(active_counts) == 0 or int(active_counts["active_1"].sum()) == 0:
        raise DataError(f"no user of {label} is active on any day ({key}.active: where {where!r}, "
                        f"min_events {min_events}): loosen {key}.active")
    matrix, average = retention_table(retention_counts_, sizes, first_day, last_day, retention_period,
                                      retention_offsets)
    info = {"users_without_cohort": int(no_cohort["on"].sum()) if len(no_cohort) else 0,
            "active_user_days": int(active_counts["active_1"].sum())}
    return KpiTables(
        active_users=active_users_table(active_counts.reset_index(), first_day, last_day,
                                        wau_days=wau_days, mau_days=mau_days),
        lifecycle=lifecycle_table(lifecycle_counts_.reset_index(), first_day, last_day, lifecycle_period),
        retention=matrix, retention_average=average, first_day=pd.Timestamp(first).floor("D"),
        last_day=pd.Timestamp(last).floor("D"), info=info)


def funnel(sources: Mapping[str, dd.DataFrame], steps: Sequence[FunnelStep], *, user: str,
           window: pd.Timedelta, breakdown: str | None = None, key: str = "kpis.funnels",
           client: Any = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """An ordered funnel: each entering user's first time at every step, and its table.

    A user enters at their first event of step 0; step k is reached at the user's first
    step-k event strictly after the time step k-1 was reached and at most ``window``
    after entering. A user who does step k without step k-1 before it does not reach
    step k. ``breakdown`` is a column of step 0's source, taken from the entering event
    (first touch; the smallest value when several events tie).

    Returns
    -------
    table : :func:`~daskflow.analytics._kpis_kernels.funnel_table`
    info : users entering and the window

    Raises
    ------
    SchemaError
        A step's source lacks the user, time, filter or breakdown column.
    DataError
        No row matches the first step.
    """
    frames = []
    for index, step in enumerate(steps):
        where = f"{key}.steps[{index}]"
        events = sources[step.source]
        what = f"source {step.source!r} of step {step.name!r}"
        _require(events, [user], what, f"{where}.source (the user column {user!r})")
        _require(events, [step.time], what, f"{where}.time")
        _check_time(events, step.time, what, f"{where}.time")
        extra = [breakdown] if index == 0 and breakdown is not None else []
        if extra:
            _require(events, extra, what, f"{key}.breakdown")
        wanted = list(dict.fromkeys([user, step.time, *extra, *filter_columns(step.where)]))
        chosen = apply_filter(events[wanted], step.where, what, f"{where}.where")
        chosen = chosen[[user, step.time, *extra]].rename(columns={step.time: "ts"})
        frames.append(chosen[chosen["ts"].notnull() & chosen[user].notnull()])
    first = frames[0]
    reached = first.groupby(user)["ts"].min().rename("t0").reset_index()
    if breakdown is not None:
        entering = first.merge(reached, on=user)
        entering = entering[entering["ts"] == entering["t0"]]
        values = entering.groupby(user)[breakdown].min().reset_index()
        reached = reached.merge(values, on=user, how="left")
    for k in range(1, len(steps)):
        before = reached[reached[f"t{k - 1}"].notnull()][list(dict.fromkeys([user, "t0", f"t{k - 1}"]))]
        candidates = frames[k][[user, "ts"]].merge(before, on=user)
        keep = (candidates["ts"] > candidates[f"t{k - 1}"]) & (candidates["ts"] - candidates["t0"] <= window)
        times = candidates[keep].groupby(user)["ts"].min().rename(f"t{k}").reset_index()
        reached = reached.merge(times, on=user, how="left")
    columns = [f"t{k}" for k in range(len(steps))] + ([breakdown] if breakdown else [])
    users = compute([reached[columns]], client)[0]
    if len(users) == 0:
        raise DataError(f"no row of source {steps[0].source!r} matches the first step {steps[0].name!r} "
                        f"({key}.steps[0].where {steps[0].where!r}): nobody enters the funnel. Check the "
                        "step's source and filter")
    for column in columns[:len(steps)]:
        users[column] = pd.to_datetime(users[column])
    table = funnel_table(users, [s.name for s in steps], breakdown=breakdown)
    return table, {"entered": int(len(users)), "window_seconds": float(window.total_seconds())}


def as_day_strings(values: Any) -> list[str]:
    """ISO dates, for metrics.json."""
    return [str(np.datetime64(v, "D")) for v in np.asarray(values)]

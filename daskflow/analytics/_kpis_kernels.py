"""Product KPIs in memory: active users, lifecycle, retention and funnels (no Dask).

Two kinds of functions live here. *Partition kernels* (``active_user_counts``,
``lifecycle_counts``, ``retention_counts``) take the distinct (user, day) or (user,
period) rows of a set of users that are whole in one partition (the Dask layer shuffles
by user first) and return a few counts per day, period or (cohort, offset); those counts
simply add up over partitions. *Finishers* (``active_users_table``, ``lifecycle_table``,
``retention_table``, ``funnel_table``) turn the summed counts into the published
tables, marking what the data's time span cannot fully observe. Days are whole days
since 1970-01-01 (UTC); definitions and references: docs/analytics.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["PERIODS", "day_numbers", "period_index", "period_bounds", "active_user_counts",
           "active_users_table", "lifecycle_counts", "lifecycle_table", "retention_counts",
           "retention_table", "funnel_table", "NO_COHORT"]

PERIODS = ("day", "week", "month")
#: The cohort value the retention kernel uses for active users without a cohort (no signup row).
NO_COHORT = -(2 ** 62)


def day_numbers(times: Any) -> np.ndarray:
    """Whole days since 1970-01-01 of timestamps (or dates), as int64."""
    series = pd.to_datetime(pd.Series(times))
    if series.dt.tz is not None:  # aware timestamps count in UTC days
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    values = series.to_numpy()
    return values.astype("datetime64[D]").astype(np.int64)


def period_index(days: np.ndarray, period: str) -> np.ndarray:
    """The ordinal of the period (day, ISO week from Monday, calendar month) of each day."""
    days = np.asarray(days, dtype=np.int64)
    if period == "day":
        return days
    if period == "week":
        return (days + 3) // 7  # 1970-01-01 was a Thursday: weeks start on Monday
    if period == "month":
        return days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    raise ValueError(f"unknown period {period!r}: expected one of {', '.join(PERIODS)}")


def period_bounds(index: np.ndarray, period: str) -> tuple[np.ndarray, np.ndarray]:
    """First and last day (inclusive) of each period ordinal."""
    index = np.asarray(index, dtype=np.int64)
    if period == "day":
        return index, index
    if period == "week":
        return 7 * index - 3, 7 * index + 3
    if period == "month":
        first = index.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
        after = (index + 1).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
        return first, after - 1
    raise ValueError(f"unknown period {period!r}: expected one of {', '.join(PERIODS)}")


def _sorted_pairs(users: Any, values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user code, value) pairs sorted by user then value."""
    codes = pd.factorize(pd.Series(users), sort=False)[0].astype(np.int64)
    pairs = np.unique(np.stack([codes, np.asarray(values, dtype=np.int64)], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def active_user_counts(users: Any, days: Any, windows: Sequence[int] = (1, 7, 30)) -> pd.DataFrame:
    """Per day, the users with an active day in the trailing window of each length.

    A user active on days ``a_1 < a_2 < ...`` covers ``[a_i, min(a_i + w, a_{i+1}))`` for
    window ``w``; counting starts and ends of those disjoint spans (a difference array)
    gives every day's count in one pass, without expanding each active day ``w`` times.

    Returns
    -------
    One row per day from the first active day to the last one plus ``max(windows) - 1``:
    ``day`` and ``active_<w>`` per window.
    """
    user, day = _sorted_pairs(users, days)
    columns: dict[str, np.ndarray] = {}
    if len(day) == 0:
        return pd.DataFrame({"day": np.zeros(0, np.int64), **{f"active_{w}": np.zeros(0, np.int64)
                                                             for w in windows}})
    first, span = int(day.min()), int(day.max() - day.min()) + max(windows)
    same_user_next = np.r_[user[1:] == user[:-1], False]
    next_day = np.where(same_user_next, np.r_[day[1:], 0], np.iinfo(np.int64).max)
    for w in windows:
        end = np.minimum(day + w, next_day)
        diff = np.zeros(span + 1, dtype=np.int64)
        np.add.at(diff, day - first, 1)
        np.add.at(diff, np.minimum(end - first, span), -1)
        columns[f"active_{w}"] = np.cumsum(diff)[:span]
    return pd.DataFrame({"day": np.arange(first, first + span, dtype=np.int64), **columns})


def active_users_table(counts: pd.DataFrame, first_day: int, last_day: int, *, wau_days: int = 7,
                       mau_days: int = 30) -> pd.DataFrame:
    """DAU, WAU, MAU and stickiness (DAU / MAU) per day of the data, with completeness flags.

    ``counts`` is the sum over partitions of :func:`active_user_counts` with windows
    ``(1, wau_days, mau_days)``. A day's WAU (MAU) is complete when its whole trailing
    window lies in the data: ``day - wau_days + 1 >= first_day``.
    """
    days = np.arange(first_day, last_day + 1, dtype=np.int64)
    by_day = counts.groupby("day").sum().reindex(days, fill_value=0)
    frame = pd.DataFrame({
        "date": days.astype("datetime64[D]").astype("datetime64[ms]"),
        "dau": by_day["active_1"].to_numpy(np.int64),
        "wau": by_day[f"active_{wau_days}"].to_numpy(np.int64),
        "mau": by_day[f"active_{mau_days}"].to_numpy(np.int64),
    })
    frame["stickiness"] = np.where(frame["mau"] > 0, frame["dau"] / frame["mau"].where(frame["mau"] > 0, 1),
                                   np.nan)
    frame["wau_complete"] = days - wau_days + 1 >= first_day
    frame["mau_complete"] = days - mau_days + 1 >= first_day
    return frame


def lifecycle_counts(users: Any, periods: Any) -> pd.DataFrame:
    """Per period: users new, returning, resurrected, and dormant (active the period before only).

    ``periods`` are period ordinals (:func:`period_index`) of the users' active rows.
    A user's first active period makes them new; active in the previous period too,
    returning; active earlier but not in the previous period, resurrected. A user active
    in ``p`` but not in ``p + 1`` is counted dormant in ``p + 1``.
    """
    user, period = _sorted_pairs(users, periods)
    if len(period) == 0:
        return pd.DataFrame({c: np.zeros(0, np.int64)
                             for c in ("period", "new", "returning", "resurrected", "dormant")})
    first_row = np.r_[True, user[1:] != user[:-1]]
    previous = np.r_[np.int64(0), period[:-1]]
    returning = ~first_row & (previous == period - 1)
    resurrected = ~first_row & ~returning
    last_row = np.r_[user[1:] != user[:-1], True]
    next_period = np.r_[period[1:], np.int64(0)]
    dormant_at = period[last_row | (next_period != period + 1)] + 1
    status = pd.DataFrame({"period": period, "new": first_row, "returning": returning,
                           "resurrected": resurrected}).groupby("period").sum()
    dormant = pd.Series(dormant_at).value_counts().rename("dormant")
    table = status.join(dormant, how="outer").fillna(0).astype(np.int64)
    return table.rename_axis("period").reset_index()


def lifecycle_table(counts: pd.DataFrame, first_day: int, last_day: int, period: str) -> pd.DataFrame:
    """The summed :func:`lifecycle_counts` over the data's periods, with ``complete`` flags.

    A period is complete when it and the period before it lie wholly in the data: before
    that, "new" cannot be told from "returning" (the data starts there).
    """
    first, last = period_index(np.array([first_day, last_day]), period)
    ordinals = np.arange(first, last + 1, dtype=np.int64)
    summed = counts.groupby("period").sum().reindex(ordinals, fill_value=0)
    starts, ends = period_bounds(ordinals, period)
    previous_start = period_bounds(ordinals - 1, period)[0]
    frame = pd.DataFrame({
        "period": starts.astype("datetime64[D]").astype("datetime64[ms]"),
        **{k: summed[k].to_numpy(np.int64) for k in ("new", "returning", "resurrected", "dormant")},
    })
    frame["active"] = frame["new"] + frame["returning"] + frame["resurrected"]
    frame["complete"] = (previous_start >= first_day) & (ends <= last_day)
    return frame


def retention_counts(users: Any, periods: Any, cohorts: Any) -> pd.DataFrame:
    """Per (cohort, offset): users active in period ``cohort + offset``, and users whose last
    active period is that one (the finisher turns these into "on or after" counts).

    ``cohorts`` is each row's user's cohort ordinal (constant per user); ``None``/NaN or
    :data:`NO_COHORT` marks users without one: they are counted in one row
    ``cohort = NO_COHORT`` (``on`` = number of such users) and nowhere else. Activity
    before the user's cohort (negative offsets) is ignored.
    """
    cohort_values = pd.Series(cohorts, dtype="float64").fillna(NO_COHORT).to_numpy()
    codes = pd.factorize(pd.Series(users), sort=False)[0].astype(np.int64)
    frame = pd.DataFrame({"user": codes, "period": np.asarray(periods, dtype=np.int64),
                          "cohort": cohort_values.astype(np.int64)}).drop_duplicates()
    missing = frame[frame["cohort"] == NO_COHORT]
    frame = frame[frame["cohort"] != NO_COHORT]
    frame = frame.assign(offset=frame["period"] - frame["cohort"])
    frame = frame[frame["offset"] >= 0]
    on = frame.groupby(["cohort", "offset"]).size().rename("on")
    last = frame.groupby("user").agg(cohort=("cohort", "first"), offset=("offset", "max"))
    ends = last.groupby(["cohort", "offset"]).size().rename("last")
    table = pd.concat([on, ends], axis=1).fillna(0).astype(np.int64).reset_index()
    if len(missing):
        table = pd.concat([table, pd.DataFrame({"cohort": [NO_COHORT], "offset": [0],
                                                "on": [missing["user"].nunique()], "last": [0]})])
    return table.astype(np.int64)


def retention_table(counts: pd.DataFrame, cohort_sizes: pd.Series, first_day: int, last_day: int,
                    period: str, max_offset: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cohort matrix (long form) and its average row.

    Parameters
    ----------
    counts : summed :func:`retention_counts` (without the ``NO_COHORT`` row)
    cohort_sizes : users per cohort ordinal (the cohort's first-period users, or its signups)
    max_offset : the last offset shown; default the last the data can observe

    Returns
    -------
    matrix : one row per (cohort, offset): ``cohort`` (its first day), ``offset``,
        ``cohort_users``, ``retained`` (active in period cohort + offset), ``retained_on_or_after``
        (active then or later), their ``rate`` and ``rate_on_or_after``, and ``complete``:
        the cohort's period and period cohort + offset lie wholly in the data.
    average : per offset, the cohort-size-weighted rates over complete cells only, with the
        number of cohorts and users they average.
    """
    last_ordinal = int(period_index(np.array([last_day]), period)[0])
    sizes = cohort_sizes[cohort_sizes > 0].sort_index()
    rows = []
    summed = counts.groupby(["cohort", "offset"])[["on", "last"]].sum()
    for cohort, size in sizes.items():
        cohort = int(cohort)
        top = last_ordinal - cohort if max_offset is None else max_offset
        offsets = np.arange(0, max(top, 0) + 1, dtype=np.int64)
        if cohort in summed.index.get_level_values(0):
            part = summed.loc[cohort]
        else:
            part = pd.DataFrame({"on": [], "last": []}, dtype=np.int64)
        beyond = int(part.loc[part.index > offsets[-1], "last"].sum())  # last seen after the shown offsets
        part = part.reindex(offsets, fill_value=0)
        on_or_after = part["last"][::-1].cumsum()[::-1].to_numpy() + beyond
        rows.append(pd.DataFrame({"cohort_ordinal": cohort, "offset": offsets, "cohort_users": int(size),
                                  "retained": part["on"].to_numpy(), "retained_on_or_after": on_or_after}))
    columns = ["cohort_ordinal", "offset", "cohort_users", "retained", "retained_on_or_after"]
    matrix = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame({c: [] for c in columns},
                                                                          dtype=np.int64)
    matrix = matrix.astype({c: np.int64 for c in columns})
    cohort_first, cohort_last = period_bounds(matrix["cohort_ordinal"].to_numpy(), period)
    cell_last = period_bounds(matrix["cohort_ordinal"].to_numpy() + matrix["offset"].to_numpy(), period)[1]
    matrix["complete"] = (cohort_first >= first_day) & (cell_last <= last_day)
    matrix["rate"] = matrix["retained"] / matrix["cohort_users"]
    matrix["rate_on_or_after"] = matrix["retained_on_or_after"] / matrix["cohort_users"]
    matrix.insert(0, "cohort", cohort_first.astype("datetime64[D]").astype("datetime64[ms]"))
    complete = matrix[matrix["complete"]]
    grouped = complete.groupby("offset")
    average = pd.DataFrame({
        "cohorts": grouped.size(), "cohort_users": grouped["cohort_users"].sum(),
        "retained": grouped["retained"].sum(), "retained_on_or_after": grouped["retained_on_or_after"].sum(),
    }).reset_index()
    average["rate"] = average["retained"] / average["cohort_users"]
    average["rate_on_or_after"] = average["retained_on_or_after"] / average["cohort_users"]
    return matrix, average


def funnel_table(users: pd.DataFrame, steps: Sequence[str], *, breakdown: str | None = None
                 ) -> pd.DataFrame:
    """Users reaching each step, step-to-step and overall conversion, median times to convert.

    Parameters
    ----------
    users : one row per user who entered the funnel: ``t0 .. t{k-1}`` the times the user
        reached each step (NaT when not reached; a step is only reached after the one
        before it), and the ``breakdown`` column when given
    steps : the step names, in order

    Returns
    -------
    One row per (breakdown value, step): ``users``, ``conversion_from_previous``,
    ``conversion_overall``, ``median_seconds_from_previous`` and
    ``median_seconds_from_start`` (over the users who reached the step). Without a
    breakdown the value column is absent; with one, a group ``(all)`` comes first.
    """
    groups: list[tuple[Any, pd.DataFrame]] = [("(all)", users)]
    if breakdown is not None:
        values = users[breakdown].astype("string").fillna("(none)")
        groups += [(value, users[values == value]) for value in sorted(values.unique())]
    rows = []
    for value, frame in groups:
        entered = len(frame)
        previous_count = entered
        for k, step in enumerate(steps):
            reached = frame[f"t{k}"].notna()
            count = int(reached.sum())
            row: dict[str, Any] = {} if breakdown is None else {breakdown: value}
            row.update(step=step, step_index=k, users=count,
                       conversion_from_previous=count / previous_count if previous_count else np.nan,
                       conversion_overall=count / entered if entered else np.nan)
            if k == 0 or count == 0:
                row["median_seconds_from_previous"] = row["median_seconds_from_start"] = np.nan
            else:
                got = frame[reached]
                row["median_seconds_from_previous"] = float(
                    ((got[f"t{k}"] - got[f"t{k - 1}"]).dt.total_seconds()).median())
                row["median_seconds_from_start"] = float(((got[f"t{k}"] - got["t0"]).dt.total_seconds())
                                                         .median())
            rows.append(row)
            previous_count = count
    return pd.DataFrame(rows)

"""Data KPIs of an event log: rows, distinct users and items, daily active users."""

from __future__ import annotations

from typing import Any

import dask.dataframe as dd
import pandas as pd
from dask.base import tokenize

from daskflow._dask import compute
from daskflow._errors import DataError, SchemaError
from daskflow.io._read import naming_unreadable_file

__all__ = ["log_kpis", "check_kpi_columns"]


def check_kpi_columns(events: dd.DataFrame, user_col: str, item_col: str, time_col: str) -> None:
    """The columns :func:`log_kpis` reads, checked on the frame's schema (the files' footers)."""
    missing = [c for c in (user_col, item_col, time_col) if c not in events.columns]
    if missing:
        raise SchemaError(f"KPIs need column(s) {', '.join(map(repr, missing))}, not found among "
                          f"{', '.join(map(str, events.columns))}: set features.interactions.* "
                          "to the table's columns")
    dtype = events.dtypes[time_col]
    if not pd.api.types.is_datetime64_any_dtype(dtype):
        raise SchemaError(f"time column {time_col!r} is a {dtype} column, expected timestamps (KPIs count "
                          "events per day): store it as a timestamp (declare data.sources.<name>.schema: "
                          f"{{{time_col}: timestamp}} to have it checked before any work), or set "
                          "features.interactions.time_col to a timestamp column")


def log_kpis(events: dd.DataFrame, *, user_col: str = "user_id", item_col: str = "track_id",
             time_col: str = "ts", allow_empty_ids: bool = False,
             client: Any = None) -> tuple[dict[str, float], pd.DataFrame]:
    """Rows, distinct users and items, and daily active users, in one pass.

    Empty or whitespace-only string IDs are an error, as :func:`build_interactions`
    makes them, unless ``allow_empty_ids``: the two stages count the same users.

    Returns
    -------
    kpis : dict
        ``rows``, ``users``, ``items``, ``days``, ``dau_mean``, ``dau_max``.
    dau : pandas.DataFrame
        One row per day: ``date``, ``active_users``, ``events``.

    Raises
    ------
    SchemaError
        A column is missing, or the time column does not hold timestamps.
    DataError
        Empty IDs, or a file whose data cannot be read.
    """
    check_kpi_columns(events, user_col, item_col, time_col)
    token = tokenize(events)
    frame = events[[user_col, item_col, time_col]]
    day = frame[time_col].dt.floor("D").rename("date")
    daily = frame.assign(date=day)
    active = daily[["date", user_col]].drop_duplicates().groupby("date")[user_col].count()
    per_day = daily.groupby("date")[user_col].count()
    tasks = [frame.shape[0], frame[user_col].nunique(), frame[item_col].nunique(), active, per_day]
    blank_columns = [] if allow_empty_ids else \
        [c for c in (user_col, item_col) if _is_text(events.dtypes[c])]
    tasks += [_blank(frame[c]).sum() for c in blank_columns]
    with naming_unreadable_file(events, token, client):
        results = compute(tasks, client)
    rows, users, items, active, per_day = results[:5]
    for column, count in zip(blank_columns, results[5:]):
        if count:
            other = item_col if column == user_col else user_col
            example = compute([frame[_blank(frame[column])].head(1, npartitions=-1)], client)[0]
            raise DataError(f"column {column!r} has {int(count)} empty or whitespace-only IDs in the "
                            f"events table (e.g. {example[column].iloc[0]!r} in the row with "
                            f"{other}={example[other].iloc[0]!r}): expected a non-blank ID per row. Drop "
                            "or fill those rows (e.g. with a filter), or set "
                            "features.interactions.allow_empty_ids: true to count them as an ID")
    dau = pd.DataFrame({"active_users": active, "events": per_day}).sort_index()
    dau = dau.rename_axis("date").reset_index()
    kpis = {"rows": int(rows), "users": int(users), "items": int(items), "days": int(len(dau)),
            "dau_mean": float(dau["active_users"].mean()) if len(dau) else 0.0,
            "dau_max": int(dau["active_users"].max()) if len(dau) else 0}
    return kpis, dau


def _is_text(dtype: Any) -> bool:
    return pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype) \
        or (isinstance(dtype, pd.CategoricalDtype) and pd.api.types.is_string_dtype(dtype.categories))


def _blank(ids: dd.Series) -> dd.Series:
    """Whether each ID is an empty or whitespace-only string (nulls and non-strings are not)."""
    return ids.map_partitions(_blank_partition, meta=(ids.name, bool))


def _blank_partition(ids: pd.Series) -> pd.Series:
    text = ids.astype("string[pyarrow]") if not pd.api.types.is_string_dtype(ids.dtype) \
        or isinstance(ids.dtype, pd.CategoricalDtype) else ids
    return (text.str.strip() == "").fillna(False).astype(bool)

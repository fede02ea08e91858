"""Data KPIs of an event log: rows, distinct users and items, daily active users."""

from __future__ import annotations

from typing import Any

import dask
import dask.dataframe as dd
import pandas as pd

from daskflow._errors import SchemaError

__all__ = ["log_kpis"]


def log_kpis(events: dd.DataFrame, *, user_col: str = "user_id", item_col: str = "track_id",
             time_col: str = "ts", client: Any = None) -> tuple[dict[str, float], pd.DataFrame]:
    """Rows, distinct users and items, and daily active users, in one pass.

    Returns
    -------
    kpis : dict
        ``rows``, ``users``, ``items``, ``days``, ``dau_mean``, ``dau_max``.
    dau : pandas.DataFrame
        One row per day: ``date``, ``active_users``, ``events``.
    """
    missing = [c for c in (user_col, item_col, time_col) if c not in events.columns]
    if missing:
        raise SchemaError(f"KPIs need column(s) {', '.join(map(repr, missing))}, not found among "
                          f"{', '.join(map(str, events.columns))}: set features.interactions.* "
                          "to the table's columns")
    frame = events[[user_col, item_col, time_col]]
    day = frame[time_col].dt.floor("D").rename("date")
    daily = frame.assign(date=day)
    active = daily[["date", user_col]].drop_duplicates().groupby("date")[user_col].count()
    per_day = daily.groupby("date")[user_col].count()
    tasks = (frame.shape[0], frame[user_col].nunique(), frame[item_col].nunique(), active, per_day)
    rows, users, items, active, per_day = (client.gather(client.compute(list(tasks)))
                                           if client is not None else dask.compute(*tasks))
    dau = pd.DataFrame({"active_users": active, "events": per_day}).sort_index()
    dau = dau.rename_axis("date").reset_index()
    kpis = {"rows": int(rows), "users": int(users), "items": int(items), "days": int(len(dau)),
            "dau_mean": float(dau["active_users"].mean()) if len(dau) else 0.0,
            "dau_max": int(dau["active_users"].max()) if len(dau) else 0}
    return kpis, dau

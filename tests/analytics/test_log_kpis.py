"""The data KPIs of an event log (rows, users, items, daily active users) against pandas."""

from __future__ import annotations

from pathlib import Path

import pytest

from daskflow.analytics import log_kpis
from daskflow.io import read_table


def test_log_kpis_match_pandas(tiny_lake: Path, client: object) -> None:
    df = read_table(str(tiny_lake / "listens"), columns=["user_id", "track_id", "ts"])
    kpis, dau = log_kpis(df, client=client)
    pdf = df.compute()
    assert kpis["rows"] == len(pdf)
    assert kpis["users"] == pdf.user_id.nunique() and kpis["items"] == pdf.track_id.nunique()
    expected = pdf.groupby(pdf.ts.dt.floor("D")).user_id.nunique()
    assert dau.active_users.tolist() == expected.tolist()
    assert kpis["days"] == 5 and kpis["dau_mean"] == pytest.approx(expected.mean())

"""Bad input to the aggregates (features.aggregates) and to a label from events.

Run through the CLI by :func:`tests.catalogue._harness.check_case`; docs/errors.md lists them.
Each case writes its own customers table and event logs (Parquet) and experiment file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.catalogue._harness import Case, check_case

CUTOFF = "2026-01-22"


def shop_tables(n: int = 300, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Customers, their visits over January 2026 and purchases: frequent visitors buy more."""
    rng = np.random.default_rng(seed)
    ids = [f"C{i:05d}" for i in range(n)]
    rate = rng.gamma(1.0, 3.0, n)
    counts = rng.poisson(rate * 3)
    who = np.repeat(np.arange(n), counts)
    ts = pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 31 * 24 * 60, len(who)), unit="min")
    visits = pd.DataFrame({"customer_id": np.asarray(ids)[who], "ts": ts.astype("datetime64[ms]"),
                           "seconds": rng.integers(5, 600, len(who)),
                           "page": rng.choice(["home", "product", "cart"], len(who)),
                           "device": rng.choice(["mobile", "desktop"], len(who))})
    buys = rng.random(n) < 1 / (1 + np.exp(-(rate - 3)))
    bought = np.flatnonzero(buys)
    after = pd.Timestamp(CUTOFF) + pd.to_timedelta(rng.integers(0, 7 * 24, len(bought)), unit="h")
    purchases = pd.DataFrame({"customer_id": np.asarray(ids)[bought], "ts": after.astype("datetime64[ms]")})
    customers = pd.DataFrame({"customer_id": ids, "plan": rng.choice(["basic", "plus"], n),
                              "split": np.where(rng.random(n) < 0.3, "test", "train")})
    return {"customers": customers, "visits": visits, "purchases": purchases}


def shop_config(work: Path, **aggregates: Any) -> dict[str, Any]:
    """An experiment on :func:`shop_tables` written under ``work``: aggregates of visits, a label
    from purchases within 7 days of the cutoff."""
    for name, frame in shop_tables().items():
        frame.to_parquet(work / f"{name}.parquet", index=False)
    events = {"visits": {"id": "customer_id", "time": "ts", "windows": ["7d", "all"], "sum": ["seconds"],
                         "nunique": ["page"], "active_days": True, "recency": True,
                         "share": {"device": ["mobile"]}, "sessions": {"gap_minutes": 30}}}
    label = aggregates.pop("label", {"source": "purchases", "time": "ts", "within_days": 7})
    events["visits"].update(aggregates.pop("visits", {}))
    return {
        "experiment": {"name": "bad", "stages": ["features", "classify", "score"]},
        "cluster": {"n_workers": 1, "processes": False, "dashboard_address": ":0"},
        "data": {"sources": {name: {"uri": str(work / f"{name}.parquet")}
                             for name in ("customers", "visits", "purchases")}},
        "features": {"table": {"source": "customers", "id": "customer_id", "label": label,
                               "split": {"column": "split", "train": "train", "test": "test"}},
                     "aggregates": {"cutoff": CUTOFF, "events": events, **aggregates}},
        "classify": {"models": {"lr": {"model": "logistic_regression"}}},
        "output": {"dir": str(work / "out")}}


def _shop(top: dict[str, Any] | None = None, **aggregates: Any) -> Callable[[Path, Path], list[str]]:
    def make(lake: Path, work: Path) -> list[str]:
        config = shop_config(work, **aggregates)
        config.update(top or {})
        if top is not None and "features" in top:
            config["features"] = top["features"]
        (work / "shop.yaml").write_text(yaml.safe_dump(config))
        return ["--argv", str(work / "shop.yaml")]
    return make


def _without_aggregates(lake: Path, work: Path) -> list[str]:
    config = shop_config(work)
    del config["features"]["aggregates"]
    (work / "shop.yaml").write_text(yaml.safe_dump(config))
    return ["--argv", str(work / "shop.yaml")]


CASES: dict[str, Case] = {
    "aggregate sum of a text column": Case(
        _shop(visits={"sum": ["seconds", "page"]}),
        ("features.aggregates.events.visits.sum names column(s) 'page' of type", "in source 'visits'",
         "expected numbers or booleans")),
    "unknown column in an aggregate": Case(
        _shop(visits={"nunique": ["song"]}),
        ("features.aggregates.events.visits.nunique names column(s) 'song', not in source 'visits'",
         "found customer_id (", "page (")),
    "aggregate time column that is not a time": Case(
        _shop(visits={"time": "page"}),
        ("features.aggregates.events.visits.time names column 'page' of type",
         "expected a timestamp column")),
    "aggregate window that is not a duration": Case(
        _shop(visits={"windows": ["7days", "all"]}),
        ("features.aggregates.events.visits.windows", "'7days' is not a duration: expected <n>d (days), <n>h "
         "(hours) or all")),
    "aggregate cutoff outside the data": Case(
        _shop(cutoff="2025-06-01"),
        ("features.aggregates.cutoff 2025-06-01 00:00:00+00:00 is outside the data of source 'visits'",
         "column 'ts' (features.aggregates.events.visits.time) holds 2026-01-01")),
    "label window not fully observed": Case(
        _shop(label={"source": "purchases", "time": "ts", "within_days": 30}),
        ("features.table.label: the label window [2026-01-22 00:00:00+00:00, 2026-02-21 00:00:00+00:00)",
         "is not fully observed: the latest event of purchases, visits", "Choose an earlier")),
    "label from events without aggregates": Case(
        _without_aggregates,
        ("features.table.label.source (a label from events) needs features.aggregates.cutoff",)),
    "aggregate source not in data.sources": Case(
        _shop(visits={"source": "clicks"}),
        ("features.aggregates.events.visits.source is 'clicks' but data.sources has only customers, "
         "purchases, visits",)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_aggregates_input(name: str, lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(CASES[name], lake, tmp_path, capsys, monkeypatch)

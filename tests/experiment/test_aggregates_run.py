"""A classification run on features.aggregates and a label from events, through the CLI.

The shop's customers table has no behaviour of its own: the planted signal (frequent
visitors buy) reaches the classifier only through the aggregates of the visits log, so a
ranking better than chance shows the generated columns flow into the encoder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from daskflow.cli import main
from tests.catalogue.test_aggregates import shop_config, shop_tables


@pytest.mark.slow
def test_a_run_learns_from_the_aggregates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = shop_config(tmp_path)
    (tmp_path / "shop.yaml").write_text(yaml.safe_dump(config))
    assert main(["-q", "validate", str(tmp_path / "shop.yaml")]) == 0, capsys.readouterr().err
    assert main(["-q", "run", str(tmp_path / "shop.yaml")]) == 0, capsys.readouterr().err
    (run_dir,) = (tmp_path / "out" / "bad").iterdir()
    classify = json.loads((run_dir / "metrics.json").read_text())["classify"]
    numeric = classify["population"]["features"]["numeric"]
    assert {"visits_count_7d", "visits_sum_seconds_all", "visits_nunique_page_7d", "visits_active_days_all",
            "visits_sessions_7d", "visits_share_device_mobile_all", "visits_days_since_last"} <= set(numeric)
    assert "purchases_within_7d" not in numeric  # the label
    assert "plan" in classify["population"]["features"]["categorical"]
    assert classify["models"]["lr"]["roc_auc"] > 0.65  # the signal is only in the visits
    customers = shop_tables()["customers"]
    (predictions,) = (run_dir / "predictions").glob("*.parquet")
    scores = pd.read_parquet(predictions)
    assert list(scores.columns) == ["customer_id", "probability", "decile"]
    assert set(scores.customer_id) == set(customers.customer_id)

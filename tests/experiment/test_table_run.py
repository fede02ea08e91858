"""Classification on the user's own table (features.table): a churn example, run as written.

The table is generated here with a planted relationship (short tenure, the basic plan and
low spend churn), written as one Parquet file, and the experiment file of the issue runs
through the CLI in a temporary working directory.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from daskflow.cli import main

#: The churn example of docs/features.md, a user's own table, verbatim.
CHURN_YAML = textwrap.dedent("""\
    experiment: {name: churn, seed: 0, stages: [features, classify, score]}
    cluster: {kind: local, n_workers: 1, threads_per_worker: 2}
    data:
      sources:
        customers: {uri: data/churn/customers.parquet}
    features:
      table:
        source: customers
        id: customer_id
        label: {column: churned, positive: "yes"}
        split: {column: split, train: train, test: test}
    classify:
      models:
        lr: {model: logistic_regression, params: {C: 0.01}}
        boosted: {model: boosted_trees}
    """)


def churn_table(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    """Customers whose churn follows a logistic function of tenure, plan and spend."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, n)
    plan = rng.choice(["basic", "standard", "premium"], n, p=[0.4, 0.4, 0.2])
    monthly_spend = np.round(rng.gamma(2.0, 25.0, n), 2)
    logit = 1.5 - 0.08 * tenure + np.select([plan == "basic", plan == "premium"], [1.2, -1.2], 0.0) \
        - 0.01 * monthly_spend
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame({"customer_id": [f"C{i:05d}" for i in range(n)], "tenure": tenure, "plan": plan,
                         "monthly_spend": monthly_spend, "churned": np.where(churned, "yes", "no"),
                         "split": np.where(rng.random(n) < 0.25, "test", "train")})


@pytest.mark.slow
def test_the_churn_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "churn").mkdir(parents=True)
    customers = churn_table()
    customers.to_parquet(tmp_path / "data" / "churn" / "customers.parquet", index=False)  # a file
    (tmp_path / "churn.yaml").write_text(CHURN_YAML)
    assert main(["-q", "run", "churn.yaml"]) == 0, capsys.readouterr().err
    (run_dir,) = (tmp_path / "outputs" / "churn").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    classify = metrics["classify"]
    assert classify["population"]["rows"] == len(customers)
    assert classify["split"]["test_rows"] == int((customers.split == "test").sum())
    for name in ("lr", "boosted"):
        assert 0.7 < classify["models"][name]["roc_auc"] <= 1, name  # the planted relationship
        assert "validation_roc_auc" in classify["models"][name]  # the choice, from training rows
    assert classify["score"]["model"] in ("lr", "boosted")
    (predictions,) = (run_dir / "predictions").glob("*.parquet")
    scores = pd.read_parquet(predictions)
    assert list(scores.columns) == ["customer_id", "probability", "decile"]
    assert len(scores) == len(customers) and scores.customer_id.is_unique
    assert set(scores.customer_id) == set(customers.customer_id)
    assert scores.probability.between(0, 1).all() and set(scores.decile) == set(range(1, 11))
    assert scores.groupby("decile").probability.mean().is_monotonic_decreasing
    # The scores rank the churners first.
    joined = scores.merge(customers, on="customer_id")
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(joined.churned == "yes", joined.probability) > 0.7

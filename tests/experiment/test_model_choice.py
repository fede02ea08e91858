"""The scoring model is chosen on the training rows only: the test split cannot sway it.

Two runs on the same table differ only in the labels of the test rows, which the second
flips: every test ROC AUC becomes one minus itself, so a choice by test score would switch
models. The choice by validation on the training rows (classify.selection) must not move.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from daskflow.config import Config
from daskflow.experiment import run_experiment
from tests.experiment.test_table_run import churn_table


def churn_config(uri: Path, out: Path) -> Config:
    return Config.model_validate({
        "experiment": {"name": "choice", "seed": 0, "stages": ["features", "classify", "score"]},
        "cluster": {"n_workers": 1, "threads_per_worker": 2, "processes": False, "dashboard_address": ":0"},
        "data": {"sources": {"customers": {"uri": str(uri)}}},
        "features": {"table": {"source": "customers", "id": "customer_id",
                               "label": {"column": "churned", "positive": "yes"},
                               "split": {"column": "split", "train": "train", "test": "test"}}},
        "classify": {"models": {"lr": {"model": "logistic_regression"},
                                "stump": {"model": "decision_tree", "params": {"max_depth": 1}}},
                     "selection": {"folds": 3}},
        "output": {"dir": str(out)}})


@pytest.mark.slow
def test_flipping_the_test_labels_leaves_the_choice_unchanged(tmp_path: Path) -> None:
    customers = churn_table(1200, seed=3)
    flipped = customers.copy()
    test = flipped.split == "test"
    flipped.loc[test, "churned"] = np.where(flipped.loc[test, "churned"] == "yes", "no", "yes")
    customers.to_parquet(tmp_path / "original.parquet", index=False)
    flipped.to_parquet(tmp_path / "flipped.parquet", index=False)
    runs = [run_experiment(churn_config(tmp_path / f"{name}.parquet", tmp_path / name)).metrics["classify"]
            for name in ("original", "flipped")]
    original, changed = ({name: m for name, m in run["models"].items()} for run in runs)
    for name in ("lr", "stump"):
        # The test split did change every test score ...
        assert changed[name]["roc_auc"] == pytest.approx(1 - original[name]["roc_auc"], abs=1e-9)
        # ... and no validation score, which sees the training rows only.
        assert changed[name]["validation_roc_auc"] == original[name]["validation_roc_auc"]
    assert runs[0]["score"]["model"] == runs[1]["score"]["model"] == "lr"
    # A choice by test ROC AUC would have switched to the stump on the flipped labels.
    assert max(changed, key=lambda n: changed[n]["roc_auc"]) == "stump"

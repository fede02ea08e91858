"""Bad input to the entity table (features.table) and the classifiers' section (classify).

Run through the CLI by :func:`tests.catalogue._harness.check_case`; docs/errors.md lists them.
Each case writes its own customers table (one Parquet file) and experiment file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.catalogue._harness import Case, check_case
from tests.experiment.test_table_run import churn_table


def _churn(change: Callable[[pd.DataFrame], pd.DataFrame] = lambda f: f, top: dict[str, Any] | None = None,
           **table: Any) -> Callable[[Path, Path], list[str]]:
    """A case: the churn table after ``change``, ``table`` keys over the example's, ``top`` sections."""
    def make(lake: Path, work: Path) -> list[str]:
        change(churn_table(300)).to_parquet(work / "customers.parquet", index=False)
        config = {
            "experiment": {"name": "bad", "stages": ["features", "classify", "score"]},
            "cluster": {"n_workers": 1, "processes": False, "dashboard_address": ":0"},
            "data": {"sources": {"customers": {"uri": str(work / "customers.parquet")}}},
            "features": {"table": {"source": "customers", "id": "customer_id",
                                   "label": {"column": "churned", "positive": "yes"},
                                   "split": {"column": "split", "train": "train", "test": "test"},
                                   **table}},
            "classify": {"models": {"lr": {"model": "logistic_regression"}}},
            "output": {"dir": str(work / "out")}}
        config.update(top or {})
        (work / "churn.yaml").write_text(yaml.safe_dump(config))
        return ["--argv", str(work / "churn.yaml")]
    return make


CASES: dict[str, Case] = {
    "unknown column in features.table.categorical": Case(
        _churn(categorical=["plan", "region"]),
        ("features.table.categorical names column(s) 'region', not in source 'customers'",
         "found customer_id, tenure, plan")),
    "unknown split column": Case(
        _churn(split={"column": "fold", "train": "train", "test": "test"}),
        ("features.table.split.column names column(s) 'fold', not in source 'customers'",)),
    "numeric feature of text": Case(
        _churn(numeric=["plan"]),
        ("features.table.numeric (or log) names column(s) 'plan' of type", "list them under categorical")),
    "label with three values": Case(
        _churn(lambda f: f.assign(churned=f.churned.where(f.index % 7 > 0, "maybe"))),
        ("features.table.label.column 'churned' of source 'customers' holds 3 distinct value(s) ('maybe', "
         "'no', 'yes'): expected exactly two",)),
    "positive label value that never occurs": Case(
        _churn(label={"column": "churned", "positive": "Yes"}),
        ("features.table.label.positive 'Yes' never occurs in column 'churned'",
         "values found: 'no', 'yes'")),
    "split leaving no test rows": Case(
        _churn(lambda f: f.assign(split="train")),
        ("features.table.split by column 'split'", "leaves 300 training and 0 test rows",
         "column 'split' holds 'train'")),
    "entity id that is not unique": Case(
        _churn(lambda f: pd.concat([f, f.iloc[:2]], ignore_index=True)),
        ("features.table.id column 'customer_id' of source 'customers' is not unique: 2 ID(s) appear more "
         "than once, e.g. 'C00000' (2 rows)",)),
    "split by a column and a hash": Case(
        _churn(split={"column": "split", "train": "train", "test": "test", "hash": "customer_id"}),
        ("features.table.split", "give exactly one of column (with train and test), hash (with test_size) "
         "or time (with cutoff), got column, hash")),
    "entity table source not in data.sources": Case(
        _churn(source="clients"),
        ("features.table.source is 'clients' but data.sources has only customers",)),
    "conversion.models beside classify.models": Case(
        _churn(top={"conversion": {"models": {"nb": {"model": "naive_bayes"}}}}),
        ("the conversion: section is gone", "conversion.models -> classify.models")),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_table_input(name: str, lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                         monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(CASES[name], lake, tmp_path, capsys, monkeypatch)

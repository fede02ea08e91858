"""The entity table: roles, label, the three splits, the bad-input checks, and TableEncoder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from daskflow import DataError, SchemaError
from daskflow.features.tabular import TableEncoder, TableSplit, build_entity_table
from daskflow.features.tabular._table_kernels import LABEL, PART, TEST, TRAIN, hash_fraction

BY_COLUMN = TableSplit("column", "split", ("train",), ("test",))


def customers(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "customer_id": pd.array([f"c{i:04d}" for i in range(n)], dtype="string"),
        "tenure": rng.integers(1, 60, n),
        "plan": pd.array(rng.choice(["basic", "plus", "pro"], n), dtype="string"),
        "monthly_spend": rng.gamma(2.0, 20.0, n),
        "signed_up": pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
        "churned": np.where(rng.random(n) < 0.4, "yes", "no"),
        "split": np.where(np.arange(n) % 4 == 0, "test", "train")})
    return frame


def build(frame: pd.DataFrame, split: TableSplit = BY_COLUMN, **options: object) -> object:
    return build_entity_table(frame, id_column="customer_id", label_column="churned", positive="yes",
                              split=split, where="features.table", source="customers", **options)


def test_roles_are_inferred_from_the_schema_and_times_left_out(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="daskflow"):
        table = build(customers(), log_columns=["monthly_spend"])
    assert table.categorical == ["plan"]
    assert sorted(table.numeric) == ["monthly_spend", "tenure"] and table.log == ["monthly_spend"]
    assert "column 'tenure' inferred numeric (int64)" in caplog.text
    assert "column 'signed_up' inferred unused" in caplog.text


def test_label_and_column_split() -> None:
    frame = customers()
    table = build(frame, drop=["signed_up"])
    rows = table.frame.compute().set_index("customer_id")
    expected = (frame.set_index("customer_id").churned == "yes").astype(int)
    assert (rows[LABEL] == expected).all()
    assert (rows[PART] == np.where(frame.split == "test", TEST, TRAIN)).all()
    assert table.counts == {"rows": 200, "train_rows": 150, "test_rows": 50,
                            "train_positives": int(expected[frame.split.to_numpy() == "train"].sum()),
                            "test_positives": int(expected[frame.split.to_numpy() == "test"].sum())}


def test_hash_split_is_stable_and_near_its_share() -> None:
    frame = customers(2000)
    split = TableSplit("hash", "customer_id", test_size=0.2)
    first = build(frame, split).frame.compute()
    again = build(frame.iloc[::-1], split).frame.compute()
    assert 0.17 < (first[PART] == TEST).mean() < 0.23
    assert first.set_index("customer_id")[PART].equals(again.set_index("customer_id")[PART].loc[
        first.customer_id])
    assert np.array_equal(hash_fraction(frame.customer_id[:5], 0), hash_fraction(frame.customer_id[:5], 0))


def test_time_split_by_cutoff() -> None:
    frame = customers()
    rows = build(frame, TableSplit("time", "signed_up", cutoff="2025-10-01")).frame.compute()
    late = frame.set_index("customer_id").signed_up >= pd.Timestamp("2025-10-01")
    assert (rows.set_index("customer_id")[PART] == np.where(late, TEST, TRAIN)).all()
    assert "signed_up" not in rows.columns  # the time is the split, never a feature


def test_a_missing_label_is_scored_but_neither_trained_nor_tested() -> None:
    frame = customers()
    frame.loc[:9, "churned"] = None
    rows = build(frame).frame.compute()
    assert len(rows) == 200 and (rows[PART][rows[LABEL] < 0] == 0).all() and (rows[LABEL] < 0).sum() == 10


@pytest.mark.parametrize(("change", "error", "match"), [
    (dict(categorical=["plan", "region"]), SchemaError,
     r"features.table.categorical names column\(s\) 'region', not in source 'customers': found customer_id"),
    (dict(numeric=["plan"]), SchemaError,
     r"features.table.numeric \(or log\) names column\(s\) 'plan' of type"),
    (dict(numeric=["tenure"], categorical=["tenure"]), SchemaError, "already features.table.categorical"),
    (dict(drop=["churned"]), SchemaError, "already features.table.label.column"),
])
def test_bad_columns(change: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        build(customers(), **change)


def test_a_label_with_three_values() -> None:
    frame = customers().assign(churned=lambda f: np.where(np.arange(len(f)) % 3 == 0, "maybe", f.churned))
    with pytest.raises(DataError, match=r"features.table.label.column 'churned' of source 'customers' "
                       r"holds 3 distinct value\(s\) \('maybe', 'no', 'yes'\): expected exactly two"):
        build(frame)


def test_a_positive_value_that_never_occurs() -> None:
    with pytest.raises(DataError, match=r"features.table.label.positive 'Yes' never occurs in column "
                       r"'churned' of source 'customers' \(values found: 'no', 'yes'\)"):
        build_entity_table(customers(), id_column="customer_id", label_column="churned", positive="Yes",
                           split=BY_COLUMN, where="features.table", source="customers")


def test_numeric_labels_match_their_yaml_spelling() -> None:
    frame = customers().assign(churned=lambda f: (f.churned == "yes").astype(int))
    table = build_entity_table(frame, id_column="customer_id", label_column="churned", positive="1",
                               split=BY_COLUMN)
    assert table.counts["train_positives"] + table.counts["test_positives"] == frame.churned.sum()


def test_an_id_that_is_not_unique() -> None:
    frame = customers()
    frame.loc[5, "customer_id"] = "c0001"
    with pytest.raises(DataError, match=r"features.table.id column 'customer_id' of source 'customers' "
                       r"is not unique: 1 ID\(s\) appear more than once, e.g. 'c0001' \(2 rows\)"):
        build(frame)


def test_a_split_leaving_no_test_rows() -> None:
    frame = customers().assign(split="train")
    with pytest.raises(DataError, match=r"features.table.split by column 'split' \(train: 'train'; test: "
                       r"'test'\) leaves 200 training and 0 test rows of the 200 in source 'customers'; "
                       r"column 'split' holds 'train'"):
        build(frame)


def test_encoder_fits_on_training_rows_and_encodes_unseen_values_as_zeros() -> None:
    train = pd.DataFrame({"plan": ["a", "b", "a", None], "spend": [0.0, 10.0, 100.0, np.nan]})
    encoder = TableEncoder(categorical_columns=["plan"], numeric_columns=["spend"],
                           log_columns=["spend"]).fit(train)
    assert list(encoder.get_feature_names_out()) == ["log1p_spend", "plan_a", "plan_b"]
    X = encoder.transform(pd.DataFrame({"plan": ["c", "b"], "spend": [np.nan, 10.0]}))
    logs = np.log1p([0.0, 10.0, 100.0])
    assert X[0].tolist() == [0.0, 0.0, 0.0]  # missing -> the mean; unseen -> all zeros
    assert X[1, 0] == pytest.approx((np.log1p(10.0) - logs.mean()) / logs.std())
    assert X[1, 1:].tolist() == [0.0, 1.0]


def test_encoder_out_of_core_equals_in_memory() -> None:
    import dask.dataframe as dd

    frame = customers()[["plan", "tenure", "monthly_spend"]]
    encoder = TableEncoder(categorical_columns=["plan"], numeric_columns=["tenure", "monthly_spend"])
    lazy = encoder.fit(dd.from_pandas(frame, npartitions=3)).transform(dd.from_pandas(frame, npartitions=3))
    eager = TableEncoder(categorical_columns=["plan"], numeric_columns=["tenure", "monthly_spend"]
                         ).fit(frame).transform(frame)
    np.testing.assert_allclose(lazy.compute(), eager)

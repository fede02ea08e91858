"""daskflow.prediction.score_entities: every row's id, probability and decile, on the session's cluster."""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from daskflow._errors import SchemaError
from daskflow.features.tabular import TableEncoder
from daskflow.prediction import score_entities


def _table(n: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    plan = rng.choice(["a", "b"], n)
    y = (x + (plan == "a") + rng.normal(scale=0.5, size=n) > 0.5).astype(int)
    return pd.DataFrame({"customer_id": [f"c{i:04d}" for i in range(n)], "x": x, "plan": plan, "y": y})


def test_scores_every_row_with_its_decile(client: object) -> None:
    table = _table()
    encoder = TableEncoder(categorical_columns=["plan"], numeric_columns=["x"]).fit(table)
    model = LogisticRegression().fit(encoder.transform(table), table["y"])
    scores = score_entities(dd.from_pandas(table, npartitions=4), encoder, model, id_column="customer_id",
                            client=client)
    got = scores.frame.compute().set_index("customer_id").loc[table["customer_id"]]
    expected = model.predict_proba(encoder.transform(table))[:, 1]
    np.testing.assert_allclose(got["probability"].to_numpy(), expected, rtol=1e-12)
    assert scores.rows == len(table) and scores.mean_probability == pytest.approx(expected.mean(), rel=1e-12)
    cutoffs = np.quantile(expected, np.linspace(0.1, 0.9, 9))
    np.testing.assert_allclose(scores.decile_cutoffs, cutoffs, rtol=1e-12)
    # Decile 1: the tenth most likely positive; each decile a tenth of the rows.
    deciles = 10 - np.searchsorted(cutoffs, expected, side="right")
    assert got["decile"].to_numpy().tolist() == deciles.tolist()
    assert got.groupby("decile").size().between(95, 105).all()
    assert got.groupby("decile")["probability"].mean().is_monotonic_decreasing


def test_refuses_an_unknown_id_column() -> None:
    table = _table(50)
    encoder = TableEncoder(numeric_columns=["x"]).fit(table)
    model = LogisticRegression().fit(encoder.transform(table), table["y"])
    with pytest.raises(SchemaError, match=r"id column 'user_id' is not a column of the table"):
        score_entities(table, encoder, model, id_column="user_id")

"""Cold-start evaluation: the four scorers on held-out items, and configs/cold.yaml end to end."""

from __future__ import annotations

import json
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pytest
import scipy.sparse as sp

from daskflow import DataError
from daskflow.cli import main
from daskflow.evaluation import COLD_SCORERS, evaluate_cold_items
from daskflow.evaluation._cold_start import _metrics
from daskflow.features import build_interactions
from daskflow.models import ContentEncoder, ImplicitALS, ItemContent
from daskflow.sample import generate_lake

REPO = Path(__file__).parents[2]


def _inputs(lake: Path) -> tuple[object, ItemContent]:
    listens = dd.read_parquet(lake / "listens", columns=["user_id", "track_id", "ts"])
    content = ItemContent(dd.read_parquet(lake / "tracks"), id_col="track_id",
                          encoder=ContentEncoder(separators={"tags": " "}))
    return build_interactions(listens), content


def test_metrics_of_a_perfect_and_a_reversed_scorer() -> None:
    test = sp.csr_matrix(np.array([[1, 0, 0, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=np.float32))
    seen = sp.csr_matrix(np.array([[0, 1, 0, 0, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=np.float32))
    # A scorer is (user factors, item factors): scores = U @ V.T, here the test rows themselves.
    scores = _metrics((np.eye(3), (test.toarray() - 0.1 * seen.toarray()).T), seen, test, (1, 2))
    assert scores["auc"] == 1.0 and scores["recall@2"] == 1.0 and scores["n_users"] == 2
    assert scores["recall@1"] == pytest.approx((0.5 + 1.0) / 2) and scores["ndcg@2"] == 1.0
    reversed_ = _metrics((np.eye(3), -(test.toarray()).T), seen, test, (2,))
    assert reversed_["auc"] == 0.0 and reversed_["recall@2"] == 0.0


def test_four_scorers_on_the_same_held_out_items(tiny_lake: Path) -> None:
    matrix, content = _inputs(tiny_lake)
    result = evaluate_cold_items(ImplicitALS(n_factors=8, n_iter=5), matrix, content, share=0.25, k=(5, 10))
    assert list(result["scorers"]) == list(COLD_SCORERS)
    assert result["n_cold_items"] == round(0.25 * result["n_items_with_content"])
    assert result["n_cold_items"] + result["n_warm_items"] == matrix.n_items
    for scores in result["scorers"].values():
        assert set(scores) == {"auc", "recall@5", "recall@10", "ndcg@5", "ndcg@10"}
    auc = {name: scores["auc"] for name, scores in result["scorers"].items()}
    assert abs(auc["random"] - 0.5) < 0.05
    assert auc["content"] > auc["random"] + 0.1 and auc["true_factors"] > auc["random"] + 0.1
    assert result["baseline"] in ("random", "content_neighbour_popularity")
    low, high = result["scorers"][result["baseline"]]["auc"], auc["true_factors"]
    assert result["gap_closed"]["auc"] == pytest.approx((auc["content"] - low) / (high - low))
    # Deterministic for a seed.
    again = evaluate_cold_items(ImplicitALS(n_factors=8, n_iter=5), matrix, content, share=0.25, k=(5, 10))
    assert again == result


def test_share_must_be_inside_zero_and_one(tiny_lake: Path) -> None:
    matrix, content = _inputs(tiny_lake)
    with pytest.raises(DataError, match=r"cold item share must be in \(0, 1\), got 1.0"):
        evaluate_cold_items(ImplicitALS(), matrix, content, share=1.0)


@pytest.mark.slow
def test_sample_lake_figures(tmp_path: Path) -> None:
    """The measured claim of docs/als.md: on the small sample lake the content model's cold AUC
    is >= 0.70 and goes >= 80% of the way from the best content-free baseline to ALS with the
    items' plays."""
    generate_lake(str(tmp_path / "lake"), scale="small", seed=0)
    matrix, content = _inputs(tmp_path / "lake")
    result = evaluate_cold_items(ImplicitALS(n_factors=32, n_iter=10), matrix, content, share=0.2, k=(10,))
    assert result["scorers"]["content"]["auc"] >= 0.70
    assert result["gap_closed"]["auc"] >= 0.8


@pytest.mark.slow
def test_cold_yaml_runs_as_written(tiny_lake: Path, tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    code = main(["-q", "run", str(REPO / "configs" / "cold.yaml"), "data.sample=null",
                 f"data.sources.listens.uri={tiny_lake / 'listens'}",
                 f"data.sources.tracks.uri={tiny_lake / 'tracks'}", f"output.dir={out}",
                 "cluster.n_workers=1", "cluster.processes=false", "cluster.dashboard_address=:0"])
    assert code == 0
    (run,) = (out / "cold").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    cold = metrics["cold_start"]
    assert list(cold["scorers"]) == list(COLD_SCORERS) and cold["share"] == 0.2
    assert all(0 <= scores["auc"] <= 1 and "recall@10" in scores and "ndcg@10" in scores
               for scores in cold["scorers"].values())
    assert "random" in metrics["evaluation"]["als"]
    report = (run / "report.html").read_text()
    assert "Cold items (held out entirely)" in report and "true_factors" in report
    # The trained model carries its content model, so items can be added to the saved model.
    model = ImplicitALS.load(str(run / "artifacts" / "model.npz"))
    assert model.content_id_col_ == "track_id" and model.content_regressor_.model == "ridge"

"""The conversion stages end to end on configs/conversion.yaml's generic feature table: features ->
classify -> tune -> score, on a real LocalCluster."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import xarray as xr
import yaml

from daskflow._errors import OutputError
from daskflow.config import Config
from daskflow.experiment import run_experiment
from daskflow.sample import Scale, generate_lake

#: Enough exposed users for a test split with both classes, quick to generate.
SCALE = Scale(n_users=2_400, n_artists=80, n_tracks=400, n_days=21, n_genres=6,
              mean_listens_per_active_day=2.0, users_per_chunk=1_200)


#: configs/conversion.yaml's features section (features.table, aggregates, derived): the house-ad table.
FEATURES = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs" / "conversion.yaml").read_text())[
    "features"]


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("conversion") / "lake"
    generate_lake(str(root), scale=SCALE, format="parquet", seed=11)
    return root


def config(lake: Path, out: Path, **sections: dict) -> Config:
    data = {
        "experiment": {"name": "conv", "seed": 1, "stages": ["features", "classify", "tune", "score"]},
        "cluster": {"n_workers": 2, "threads_per_worker": 1, "memory_limit": "1GiB",
                    "dashboard_address": ":0"},
        "data": {"sources": {name: {"uri": str(lake / name)}
                             for name in ("listens", "users", "ad_impressions", "conversions")}},
        "features": FEATURES,
        "classify": {
            "models": {"newton": {"model": "logistic_regression", "params": {"solver": "newton"}},
                       "sgd": {"model": "logistic_regression",
                               "params": {"solver": "sgd", "step_size": 0.5, "max_iter": 30,
                                          "mini_batch_fraction": 0.5, "random_state": 0}},
                       "nb": {"model": "naive_bayes"}},
            "convergence": {"model": "sgd", "step_sizes": [0.1, 1.0]}},
        "tune": {"model": "newton", "params": {"C": [0.01, 1.0]}, "folds": 2},
        "output": {"dir": str(out)},
    }
    for name, section in sections.items():
        data[name] = {**data.get(name, {}), **section}
    return Config.model_validate(data)


@pytest.mark.slow
def test_conversion_run_publishes_metrics_plots_and_scores(lake: Path, tmp_path: Path) -> None:
    # in_memory_bytes 0: every fit block by block on the cluster (the quickstart's end-to-end
    # test covers the gathered, in-memory path).
    result = run_experiment(config(lake, tmp_path, classify={"in_memory_bytes": 0}))
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    conversion = metrics["classify"]
    population = conversion["population"]
    assert population["rows"] == SCALE.n_users
    # Labelled rows: the exposed, uncensored users; a minority of them converted, on both sides.
    labelled = population["train_rows"] + population["test_rows"]
    assert 0 < labelled < SCALE.n_users and population["test_rows"] > 0
    assert 0 < population["train_positives"] + population["test_positives"] < labelled
    assert conversion["split"]["by"] == "hash"
    assert "log1p_n_listens" in " ".join(conversion["split"]["features"])
    for name in ("newton", "sgd", "nb", "newton_tuned"):
        scores = conversion["models"][name]
        assert 0.5 < scores["roc_auc"] <= 1 and scores["log_loss"] > 0, name  # quality: see features tests
        assert len(scores["gains"]["lift"]) == 5
    assert len(conversion["models"]["sgd"]["loss_curve"]) == 30
    assert metrics["tune"]["best_params"]["C"] in (0.01, 1.0)
    tuning = xr.open_dataset(result.run_dir / "artifacts" / "tuning.nc")
    assert tuning["roc_auc_mean"].dims == ("C",) and tuning.sizes["fold"] == 2
    tuning.close()
    for plot in ("roc", "precision_recall", "gains", "calibration", "sgd_convergence", "tuning_C"):
        assert (result.run_dir / "plots" / f"{plot}.png").stat().st_size > 1000, plot
    report = (result.run_dir / "report.html").read_text()
    # ROC, precision-recall, gains, calibration, SGD convergence, tuning along C
    assert report.count("<img ") == 6
    scores = pd.read_parquet(result.run_dir / "predictions" / "scores.parquet")
    assert list(scores.columns) == ["user_id", "probability", "decile"]
    assert len(scores) == SCALE.n_users and scores.user_id.is_unique
    assert scores.probability.between(0, 1).all() and set(scores.decile) == set(range(1, 11))
    # Decile 1 holds the highest probabilities.
    assert scores.groupby("decile").probability.mean().is_monotonic_decreasing


@pytest.mark.slow
def test_results_outside_the_run_appear_only_if_the_run_succeeds(lake: Path, tmp_path: Path) -> None:
    # score's URI is taken: the run fails before any work (outputs are claimed up front), and
    # neither the run, the recommendations table nor any temporary directory appears. A stage
    # failing after predict wrote its table: tests/catalogue/test_integrity.py.
    recommendations, taken = tmp_path / "recommendations", tmp_path / "scores"
    taken.mkdir()
    failing = config(lake, tmp_path / "out",
                     experiment={"stages": ["interactions", "train", "predict", "features", "classify",
                                            "score"]},
                     predict={"uri": str(recommendations)},
                     classify={"models": {"newton": {"model": "logistic_regression"}}, "convergence": None,
                               "score": {"uri": str(taken)}})
    with pytest.raises(OutputError, match="already exists"):
        run_experiment(failing)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores"]

    succeeding = failing.model_copy(update={"classify": failing.classify.model_copy(
        update={"score": failing.classify.score.model_copy(update={"uri": str(tmp_path / "scores2")})})})
    run_experiment(succeeding)
    assert (recommendations / "_SUCCESS").exists() and (tmp_path / "scores2" / "_SUCCESS").exists()

"""The experiment runner: stages, run directories, publish-on-success."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from daskflow import DataError, OutputError
from daskflow.config import stages_to_run, validate_config
from daskflow.experiment import run_experiment


def config(lake: Path, out: Path, **sections: Any) -> Any:
    raw: dict[str, Any] = {
        "experiment": {"name": "test", "stages": ["kpis", "evaluate", "predict"]},
        "cluster": {"n_workers": 1, "threads_per_worker": 2, "processes": False,
                    "dashboard_address": ":0"},
        "data": {"sources": {"listens": {"uri": str(lake / "listens"),
                                         "schema": {"user_id": "string", "ts": "timestamp"}}}},
        "features": {"interactions": {"block_size": 100, "weight": "ms_played"}},
        "evaluate": {"k": [5, 10]},
        "output": {"dir": str(out)},
    }
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values}
    return validate_config(raw)


def test_stage_dependencies_are_added_in_order(tiny_lake: Path, tmp_path: Path) -> None:
    assert stages_to_run(config(tiny_lake, tmp_path)) == ["kpis", "interactions", "train", "evaluate",
                                                          "predict"]
    only_eval = config(tiny_lake, tmp_path, experiment={"name": "x", "stages": ["evaluate"]})
    assert stages_to_run(only_eval) == ["interactions", "evaluate"]


def test_run_publishes_config_metrics_artifacts(tiny_lake: Path, tmp_path: Path) -> None:
    result = run_experiment(config(tiny_lake, tmp_path, output={"run_id": "first"}))
    run_dir = tmp_path / "test" / "first"
    assert result.run_dir == run_dir
    assert sorted(p.name for p in (tmp_path / "test").iterdir()) == ["first"]  # no temporaries
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(result.metrics))
    assert metrics["interactions"]["weight"] == "ms_played"
    assert set(metrics["timings_s"]) == {"kpis", "interactions", "train", "evaluate", "predict"}
    assert metrics["evaluation"]["popularity"]["by_time"]["n_users"] > 100
    saved = (run_dir / "config.yaml").read_text()
    assert "run_id: first" in saved and "weight: ms_played" in saved
    recommendations = pd.read_parquet(run_dir / "predictions" / "recommendations.parquet")
    assert recommendations["rank"].max() == 10
    assert "stage evaluate done" in (run_dir / "run.log").read_text()


def test_existing_run_directory_is_refused(tiny_lake: Path, tmp_path: Path) -> None:
    (tmp_path / "test" / "taken").mkdir(parents=True)
    with pytest.raises(OutputError, match=r"run directory .*taken already exists"):
        run_experiment(config(tiny_lake, tmp_path, output={"run_id": "taken"}))


def test_unwritable_output_dir(tiny_lake: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"cannot create the output directory .*file/test .*set "
                                          r"output.dir to a writable location"):
        run_experiment(config(tiny_lake, tmp_path / "file"))


def test_failed_stage_publishes_nothing(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    (lake / "listens").mkdir(parents=True)
    bad = pd.DataFrame({"user_id": ["a", "b"], "track_id": ["x", "y"], "ms_played": [100, -5],
                        "ts": pd.to_datetime(["2026-01-01", "2026-01-02"])})
    bad.to_parquet(lake / "listens" / "p.parquet")
    with pytest.raises(DataError, match="column 'ms_played' has 1 negative, NaN or infinite values"):
        run_experiment(config(lake, tmp_path / "out"))
    assert list((tmp_path / "out" / "test").iterdir()) == []


def test_tuning_the_recommender_feeds_predict(tiny_lake: Path, tmp_path: Path) -> None:
    cfg = config(tiny_lake, tmp_path, experiment={"name": "x", "stages": ["tune", "predict"]},
                 model={"name": "als", "params": {"n_iter": 3, "random_state": 0}},
                 tune={"target": "recommender", "params": {"n_factors": [4, 16]}, "folds": 2})
    result = run_experiment(cfg)
    tune = result.metrics["tune"]
    assert tune["target"] == "recommender" and tune["metric"] == "ndcg@10" and tune["folds"] == 2
    assert tune["best_params"]["n_factors"] in (4, 16)
    assert (result.run_dir / "artifacts" / "tuning.nc").exists()
    assert (result.run_dir / "plots" / "tuning_n_factors.png").exists()
    assert (result.run_dir / "predictions" / "recommendations.parquet" / "_SUCCESS").exists()


@pytest.mark.slow
def test_run_on_a_separately_started_scheduler(tiny_lake: Path, tmp_path: Path, scheduler: str) -> None:
    cfg = config(tiny_lake, tmp_path)
    # The remote kind has none of the LocalCluster settings (daskflow.config._kinds).
    cfg = cfg.model_copy(update={"cluster": type(cfg.cluster)(address=scheduler, connect_timeout=30)})
    assert cfg.cluster.kind == "remote"
    result = run_experiment(cfg)
    assert result.metrics["evaluation"]["popularity"]["random"]["ndcg@10"] > 0
    assert result.metrics["dashboard_link"].startswith("http://")

"""The recommender is tuned on the training part only; its test holdout reports once.

Two runs on logs that differ only in the evaluation's held-out interactions must tune
alike: the same chosen parameters and the same validation score on every fold. The test
metrics of the default and tuned models, which those interactions decide, may differ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from daskflow.cli import main
from daskflow.config import validate_config
from daskflow.experiment import run_experiment

BLOCK_SIZE = 100
TUNE = {"target": "recommender", "params": {"n_factors": [4, 16], "regularization": [0.01, 1.0]}, "folds": 2}


def raw_config(listens: Path, out: Path, stages: list[str], splits: list[str]) -> dict[str, Any]:
    return {
        "experiment": {"name": "tuned", "seed": 3, "stages": stages},
        "cluster": {"n_workers": 1, "threads_per_worker": 2, "processes": False, "dashboard_address": ":0"},
        "data": {"sources": {"listens": {"uri": str(listens)}}},
        "features": {"interactions": {"block_size": BLOCK_SIZE, "weight": "ms_played"}},
        "model": {"name": "als", "params": {"n_factors": 8, "n_iter": 3, "random_state": 0}},
        "evaluate": {"splits": splits, "k": [5, 10]},
        "tune": TUNE,
        "output": {"dir": str(out)},
    }


def listens_of(lake: Path) -> pd.DataFrame:
    frame = pd.read_parquet(lake / "listens").drop(columns="date")
    return frame.sort_values(["ts", "user_id", "track_id"], kind="stable").reset_index(drop=True)


def write_listens(frame: pd.DataFrame, directory: Path) -> Path:
    directory.mkdir(parents=True)
    frame.to_parquet(directory / "part.parquet", index=False)
    return directory


def tuning_of(result: Any) -> tuple[dict[str, Any], float, np.ndarray]:
    tune = result.metrics["tune"]
    with xr.open_dataset(result.run_dir / "artifacts" / "tuning.nc") as dataset:
        per_fold = np.asarray(dataset["ndcg@10"].values)
    return tune["best_params"], tune["best_cv_score"], per_fold


def latest_items(frame: pd.DataFrame, min_items: int = 3) -> pd.DataFrame:
    """The by_time holdout from the raw log: each user's most recent item (users with 3+ items)."""
    pairs = frame.groupby(["user_id", "track_id"], as_index=False)["ts"].max()
    counts = pairs.groupby("user_id")["track_id"].transform("size")
    pairs = pairs[counts >= min_items]
    top = pairs.groupby("user_id")["ts"].transform("max")
    latest = pairs[pairs["ts"] == top]
    return latest[~latest.duplicated("user_id", keep=False)]  # a tie would leave the choice to item order


@pytest.mark.slow
def test_permuting_the_held_out_items_changes_the_test_but_not_the_tuning(tiny_lake: Path,
                                                                          tmp_path: Path) -> None:
    listens = listens_of(tiny_lake)
    held_out = latest_items(listens)
    seen = listens.groupby("user_id")["track_id"].agg(set)
    # Each held-out item moves to the next held-out user, unless that user already has it:
    # the same items and users, the same training part, another test holdout.
    moved = dict(zip(held_out["user_id"], np.roll(held_out["track_id"].to_numpy(), 1), strict=True))
    moved = {user: item for user, item in moved.items() if item not in seen[user]}
    assert len(moved) > 100
    permuted = listens.copy()
    keys = set(zip(held_out["user_id"], held_out["track_id"], strict=True))
    rows = np.array([(u, t) in keys and u in moved for u, t in zip(permuted["user_id"], permuted["track_id"],
                                                                   strict=True)])
    permuted.loc[rows, "track_id"] = permuted.loc[rows, "user_id"].map(moved)
    assert set(permuted["track_id"]) == set(listens["track_id"])
    results = []
    for name, frame in (("original", listens), ("permuted", permuted)):
        directory = write_listens(frame, tmp_path / name / "listens")
        # The stages in an odd order: they run in the pipeline's order whatever is written.
        config = validate_config(raw_config(directory, tmp_path / "out" / name,
                                            ["tune", "evaluate"], ["by_time"]))
        results.append(run_experiment(config))
    original, changed = results
    best, score, per_fold = tuning_of(original)
    assert tuning_of(changed)[0] == best and tuning_of(changed)[1] == score
    np.testing.assert_array_equal(tuning_of(changed)[2], per_fold)
    assert original.metrics["tune"]["training_interactions"] == \
        changed.metrics["tune"]["training_interactions"]
    # The held-out interactions decide the reported test metrics, of both models.
    for which in ("default", "tuned"):
        before = original.metrics["tune"]["test"]["by_time"][which]
        after = changed.metrics["tune"]["test"]["by_time"][which]
        assert before["test_nnz"] == after["test_nnz"]
        assert before["ndcg@10"] != after["ndcg@10"]
    for result in results:
        tune = result.metrics["tune"]
        assert tune["test"]["by_time"]["tuned"]["params"] == {"n_factors": best["n_factors"], "n_iter": 3,
                                                              "random_state": 0,
                                                              "regularization": best["regularization"]}
        # The default model's test is the evaluate stage's, from one fit on the same split.
        default = {k: v for k, v in tune["test"]["by_time"]["default"].items() if k != "params"}
        assert default == result.metrics["evaluation"]["als"]["by_time"]
        assert tune["held_out_interactions"] == default["test_nnz"]


@pytest.mark.slow
def test_changing_the_held_out_weights_of_both_splits_leaves_the_tuning(tiny_lake: Path, tmp_path: Path,
                                                                        client: Any) -> None:
    from daskflow.features import build_interactions, leave_k_out_split

    listens = listens_of(tiny_lake)
    original = write_listens(listens, tmp_path / "original" / "listens")
    matrix = build_interactions(dd.read_parquet(original), weight="ms_played", block_size=BLOCK_SIZE,
                                client=client)
    held_out = set()
    for split in ("random", "by_time"):
        _, test = leave_k_out_split(matrix, k=1, min_items=3, mode=split, seed=3, client=client)
        users, items = test.to_scipy(client=client).nonzero()
        held_out |= set(zip(matrix.user_ids[users].astype(str), matrix.item_ids[items].astype(str),
                            strict=True))
    heavier = listens.copy()
    rows = np.array([pair in held_out for pair in zip(heavier["user_id"], heavier["track_id"], strict=True)])
    heavier.loc[rows, "ms_played"] *= 50  # same interactions, 50 times the weight
    heavier_dir = write_listens(heavier, tmp_path / "heavier" / "listens")
    stages, splits = ["evaluate", "train", "tune"], ["random", "by_time"]
    results = [run_experiment(validate_config(raw_config(directory, tmp_path / "out" / directory.parent.name,
                                                         stages, splits)))
               for directory in (original, heavier_dir)]
    # ALS on the whole matrix sees the change ...
    assert results[0].metrics["model"]["loss_curve"] != results[1].metrics["model"]["loss_curve"]
    # ... tuning, on the part with both splits' held-out interactions removed, does not.
    assert tuning_of(results[0])[:2] == tuning_of(results[1])[:2]
    np.testing.assert_array_equal(tuning_of(results[0])[2], tuning_of(results[1])[2])
    tune = results[0].metrics["tune"]
    assert tune["held_out_interactions"] == len(held_out)
    assert tune["training_interactions"] + len(held_out) == results[0].metrics["interactions"]["nnz"]
    assert set(tune["test"]) == {"random", "by_time"}


@pytest.mark.slow
def test_daskflow_run_reports_default_and_tuned_on_one_holdout(tiny_lake: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    directory = write_listens(listens_of(tiny_lake), tmp_path / "lake" / "listens")
    runs = {}
    for name, stages in (("full", ["predict", "tune", "evaluate"]), ("alone", ["tune"])):
        raw = raw_config(directory, tmp_path / "out", stages, ["random", "by_time"])
        raw["output"]["run_id"] = name
        Path(f"{name}.yaml").write_text(yaml.safe_dump(raw))
        assert main(["-q", "run", f"{name}.yaml"]) == 0
        runs[name] = tmp_path / "out" / "tuned" / name
    metrics = {name: json.loads((run / "metrics.json").read_text()) for name, run in runs.items()}
    full, alone = metrics["full"]["tune"], metrics["alone"]["tune"]
    # Whether evaluate runs, and where it is written, changes nothing that tuning sees or reports.
    for key in ("best_params", "training_interactions", "held_out_interactions"):
        assert full[key] == alone[key], key
    # Scores of separate runs on a busy two-thread cluster are not bit-identical: a tied pair in
    # a top-10 can swap. Measured: 0.006315 in every quiet run; 0.006222 and 0.0061 in two loaded
    # runs (1.5% and 3.4% off; the cause is not yet found). A tuning run that saw other
    # interactions moves the parameters or the counts above, which stay exact.
    assert full["best_cv_score"] == pytest.approx(alone["best_cv_score"], rel=0.05)
    assert pd.json_normalize(full["test"]).iloc[0].to_dict() == pytest.approx(
        pd.json_normalize(alone["test"]).iloc[0].to_dict(), rel=0.05)
    for split in ("random", "by_time"):
        assert set(full["test"][split]) == {"default", "tuned"}
        assert full["test"][split]["default"]["params"] == {"n_factors": 8, "n_iter": 3, "random_state": 0}
        scores = {k: v for k, v in full["test"][split]["default"].items() if k != "params"}
        assert scores == metrics["full"]["evaluation"]["als"][split]
    page = (runs["full"] / "report.html").read_text()
    assert "Default and tuned models on the same test holdout" in page
    assert "als (default parameters)" in page and "als (tuned)" in page
    assert (runs["full"] / "predictions" / "recommendations.parquet" / "_SUCCESS").exists()

"""Two `daskflow run` processes racing for one destination: exactly one publishes, the other names it.

Real processes (``python -m daskflow``) started together, locally and with ``predict.uri``
on the moto S3 server; the winner's result is the one published, whole.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import fsspec
import pytest
import yaml

from daskflow.io import SUCCESS_MARKER, read_table

pytestmark = pytest.mark.slow


def write_config(lake: Path, out: Path, path: Path, **sections: dict) -> Path:
    config = {
        "experiment": {"name": "race", "stages": ["interactions", "train", "predict"]},
        "cluster": {"n_workers": 1, "processes": False, "dashboard_address": ":0"},
        "data": {"sources": {"listens": {"uri": str(lake / "listens")}}},
        "model": {"name": "popularity"},
        "output": {"dir": str(out)},
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value}
    path.write_text(yaml.safe_dump(config))
    return path


def race(first: list[str], second: list[str], cwd: Path) -> list[tuple[int, subprocess.CompletedProcess]]:
    """Start both commands at once; returns (pid, result) of each."""
    command = [sys.executable, "-m", "daskflow", "-q", "run"]
    processes = [subprocess.Popen([*command, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for args in (first, second)]
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=180)
        results.append((process.pid, subprocess.CompletedProcess(process.args, process.returncode,
                                                                 stdout, stderr)))
    return results


def split(results: list[tuple[int, subprocess.CompletedProcess]]) -> tuple[int, int, str]:
    """(index of the winner, winner's pid, the loser's stderr), asserting one of each."""
    codes = sorted(result.returncode for _, result in results)
    assert codes == [0, 2], [result.stderr for _, result in results]
    winner = next(i for i, (_, result) in enumerate(results) if result.returncode == 0)
    loser_err = results[1 - winner][1].stderr
    assert "Traceback" not in loser_err
    errors = [line for line in loser_err.splitlines() if line.startswith("daskflow: error:")]
    assert len(errors) == 1, loser_err
    return winner, results[winner][0], errors[0]


def test_two_runs_with_one_run_id(tiny_lake: Path, tmp_path: Path) -> None:
    config = write_config(tiny_lake, tmp_path / "out", tmp_path / "race.yaml", output={"run_id": "same"})
    # experiment.seed marks whose run the published directory holds.
    results = race([str(config), "experiment.seed=1"], [str(config), "experiment.seed=2"], tmp_path)
    winner, pid, error = split(results)
    run_dir = tmp_path / "out" / "race" / "same"
    # The loser names the winner: still writing (its claim, with its pid), or already published
    # (a popularity run on the tiny lake can finish before the other process has imported dask).
    assert (f"run directory {run_dir} is being written by run same (pid {pid} on " in error
            or f"run directory {run_dir} already exists: choose another output.run_id" in error), error
    assert json.loads(results[winner][1].stdout)["run_dir"] == str(run_dir)
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["same"]  # no claim, no temporary
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["experiment"]["seed"] == winner + 1
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["run_id"] == "same" and "predict" in metrics["timings_s"]
    assert (run_dir / SUCCESS_MARKER).exists()


def test_two_runs_with_one_predict_uri_on_s3(tiny_lake: Path, tmp_path: Path,
                                              s3_server: dict[str, object]) -> None:
    s3 = fsspec.filesystem("s3", **s3_server)
    s3.mkdir("race-results")
    target = "s3://race-results/recs.parquet"
    configs = [write_config(tiny_lake, tmp_path / "out", tmp_path / f"race-{n}.yaml",
                            predict={"uri": target, "n": n, "storage_options": s3_server}) for n in (3, 5)]
    results = race([str(configs[0])], [str(configs[1])], tmp_path)
    winner, pid, error = split(results)
    # As above: the winner still writing (named with its pid), or already published.
    assert (f"output {target!r} is being written by run " in error and f"(pid {pid} on " in error) \
        or f"output {target!r} already exists" in error, error
    s3.invalidate_cache()
    assert s3.exists(f"race-results/recs.parquet/{SUCCESS_MARKER}")
    assert [p for p in s3.ls("race-results", detail=False) if p != "race-results/recs.parquet"] == []
    table = read_table(target, storage_options=s3_server).compute()
    assert table.groupby("user_id").size().max() == (3, 5)[winner]  # the winner's n, whole
    # The loser published nothing: only the winner's run directory exists.
    published = [p.name for p in (tmp_path / "out" / "race").iterdir()]
    assert published == [json.loads(results[winner][1].stdout)["run_dir"].rsplit("/", 1)[1]]

"""A whole run killed mid-ALS resumes from its last checkpoint and ends with the same factors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from daskflow.cli import main


def write_config(lake: Path, out: Path, path: Path) -> Path:
    config = {
        "experiment": {"name": "resume", "seed": 0, "stages": ["interactions", "train"]},
        "cluster": {"n_workers": 1, "threads_per_worker": 2, "dashboard_address": ":0"},
        "data": {"sources": {"listens": {"uri": str(lake / "listens")}}},
        "features": {"interactions": {"block_size": 100}},
        "model": {"name": "als", "params": {"n_factors": 48, "n_iter": 24, "checkpoint_every": 2,
                                            "random_state": 3, "regularization": 0.05}},
        "output": {"dir": str(out)},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def factors(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(run_dir / "artifacts" / "model.npz") as data:
        return data["user_factors"], data["item_factors"]


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_checkpoint(tiny_lake: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    config = write_config(tiny_lake, out, tmp_path / "resume.yaml")
    # The run in its own process group, killed (SIGKILL, workers included) once a checkpoint
    # is committed: nothing gets to clean up, as when a machine goes away.
    process = subprocess.Popen([sys.executable, "-m", "daskflow", "-q", "run", str(config)],
                               start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    latest = None
    while time.monotonic() < deadline and process.poll() is None:
        found = list((out / "resume").glob(".*.tmp-*/checkpoints/train/latest.json"))
        if found:
            latest = found[0]
            if json.loads(latest.read_text())["iteration"] >= 4:
                break
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed: give it more iterations"
    assert latest is not None, "no checkpoint appeared"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    work_dir = latest.parents[2]
    killed_at = json.loads(latest.read_text())["iteration"]
    assert killed_at < 24 and not any(p.name != work_dir.name for p in (out / "resume").iterdir())

    assert main(["-q", "run", str(config), "--resume", str(work_dir)]) == 0
    resumed_dir = json.loads(capsys.readouterr().out)["run_dir"]
    assert Path(resumed_dir).name == work_dir.name[1:].split(".tmp-")[0]
    metrics = json.loads((Path(resumed_dir) / "metrics.json").read_text())
    assert len(metrics["model"]["loss_curve"]) == 24

    assert main(["-q", "run", str(config), "output.run_id=undisturbed"]) == 0
    for resumed, undisturbed in zip(factors(Path(resumed_dir)), factors(out / "resume" / "undisturbed"),
                                    strict=True):
        np.testing.assert_allclose(resumed, undisturbed, rtol=1e-5, atol=1e-6)


def test_resume_refuses_another_config_or_directory(tiny_lake: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    config = write_config(tiny_lake, out, tmp_path / "resume.yaml")
    unfinished = out / "resume" / ".r1.tmp-abc"
    unfinished.mkdir(parents=True)
    (unfinished / "config.yaml").write_text("experiment: {name: other}\n")
    assert main(["-q", "run", str(config), "--resume", str(unfinished)]) == 2
    assert "the config differs from the interrupted run's" in capsys.readouterr().err
    assert main(["-q", "run", str(config), "--resume", str(tmp_path)]) == 2
    assert "not the working directory of an interrupted run" in capsys.readouterr().err

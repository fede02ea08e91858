"""A whole run killed mid-ALS resumes from its last checkpoint and ends with the same factors.

An interrupted one (SIGINT, SIGTERM) keeps its working directory only when it holds a
checkpoint, and then prints the command that resumes it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
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
    # With an external output, claimed (and its temporary made) when the run starts.
    recs = tmp_path / "recs"
    external = ["experiment.stages=[interactions,train,predict]", f"predict.uri={recs}"]
    # The run in its own process group, killed (SIGKILL, workers included) once a checkpoint
    # is committed: nothing gets to clean up, as when a machine goes away.
    process = subprocess.Popen([sys.executable, "-m", "daskflow", "-q", "run", str(config), *external],
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
    run_id = work_dir.name[1:].split(".tmp-")[0]
    # What a killed run leaves: its working directory and its claim on the run id.
    assert killed_at < 24
    assert sorted(p.name for p in (out / "resume").iterdir()) == sorted([work_dir.name, f".{run_id}.claim"])
    assert main(["-q", "run", str(config), f"output.run_id={run_id}"]) == 2
    refused = capsys.readouterr().err
    assert f"run {run_id} (pid {process.pid}" in refused and "which is no longer running" in refused
    assert f"resume it with --resume {work_dir}" in refused
    assert [p.name for p in tmp_path.glob(".recs.*")] != []  # the killed attempt's claim on recs

    assert main(["-q", "run", str(config), *external, "--resume", str(work_dir)]) == 0
    resumed_dir = json.loads(capsys.readouterr().out)["run_dir"]
    assert Path(resumed_dir).name == run_id
    assert sorted(p.name for p in (out / "resume").iterdir()) == [run_id]  # the claim is released
    metrics = json.loads((Path(resumed_dir) / "metrics.json").read_text())
    assert len(metrics["model"]["loss_curve"]) == 24
    # The resumed run took its own outputs back: published, nothing of the killed attempt left.
    assert (recs / "_SUCCESS").exists() and [p.name for p in tmp_path.glob(".recs*")] == []

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
    err = capsys.readouterr().err
    assert "the config differs from the interrupted run's" in err
    # The keys that differ are named (here nearly all: the saved config is one line).
    assert re.search(r"\) at [a-z_]+\.[a-z_.]+, [a-z_]+\.[a-z_.]+, .* and \d+ more; resume", err), err
    assert main(["-q", "run", str(config), "--resume", str(tmp_path)]) == 2
    assert "not the working directory of an interrupted run" in capsys.readouterr().err


def start(config: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "daskflow", "-q", "run", str(config), *args],
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(process: subprocess.Popen, pattern: str, root: Path, *, timeout: float = 120) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        found = list(root.glob(pattern))
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"{pattern} never appeared (exit code {process.poll()})")


@pytest.mark.slow
def test_an_interrupted_run_prints_the_command_that_resumes_it(tiny_lake: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    config = write_config(tiny_lake, out, tmp_path / "resume.yaml")
    process = start(config, "output.run_id=ctrl-c")
    latest = wait_for(process, ".ctrl-c.tmp-*/checkpoints/train/latest.json", out / "resume")
    process.send_signal(signal.SIGINT)  # Ctrl-C after a checkpoint
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    work_dir = latest.parents[2]
    message = stderr.strip().splitlines()[-1]
    assert message.startswith("daskflow: interrupted (SIGINT); nothing was published"), stderr
    assert message.endswith(f"--resume {work_dir}")
    # The hint is true: the directory, its checkpoint and its claim are there ...
    assert sorted(p.name for p in (out / "resume").iterdir()) == sorted([work_dir.name, ".ctrl-c.claim"])
    assert latest.exists()
    # ... and the printed command continues the run.
    command = shlex.split(message[message.index("daskflow run "):])
    assert command[:3] == ["daskflow", "run", str(config)]
    assert main(["-q", *command[1:]]) == 0
    run_dir = Path(json.loads(capsys.readouterr().out)["run_dir"])
    assert run_dir == out / "resume" / "ctrl-c"
    assert len(json.loads((run_dir / "metrics.json").read_text())["model"]["loss_curve"]) == 24
    assert sorted(p.name for p in (out / "resume").iterdir()) == ["ctrl-c"]


@pytest.mark.slow
def test_a_run_terminated_before_any_checkpoint_leaves_nothing(tiny_lake: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = write_config(tiny_lake, out, tmp_path / "resume.yaml")
    process = start(config, "output.run_id=early")
    wait_for(process, ".early.tmp-*/run.log", out / "resume")
    process.send_signal(signal.SIGTERM)  # before the first checkpoint: nothing worth resuming
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == "daskflow: interrupted (SIGTERM); nothing was published"
    assert list((out / "resume").iterdir()) == []

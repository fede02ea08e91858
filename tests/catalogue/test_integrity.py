"""Publishing and run integrity: claimed destinations, results that appear meanwhile, resumes.

The catalogue cases run through the CLI (:func:`tests.catalogue._harness.check_case`);
docs/errors.md lists them. The tests after them check what the catalogue cannot: what is
left where a failed publish could not clean up, external results rolled back from an S3
bucket, ``~`` in ``output.dir`` and the owner-only modes of a run directory.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import fsspec
import pytest
import yaml

from daskflow.cli import main
from tests.catalogue._harness import Case, base_config, check_case

#: This test process: alive for as long as the cases run, so a claim naming it is a live one.
PID = os.getpid()


def write_claim(path: Path, owner: str, pid: int, work: str = "") -> None:
    import psutil

    started = psutil.Process(pid).create_time() if pid == PID else None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"owner": owner, "pid": pid, "host": socket.gethostname(),
                                "pid_started": started, "since": "2026-01-01T00:00:00Z", "work": work,
                                "token": "theirs"}))


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def when(path: Callable[[], bool], action: Callable[[], None]) -> None:
    """Run ``action`` in a thread as soon as ``path()`` is true (a run reached some point)."""
    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if path():
                action()
                return
            time.sleep(0.005)
    threading.Thread(target=watch, daemon=True).start()


def started(out: Path) -> Callable[[], bool]:
    """True once a run under ``out`` has claimed everything and started logging."""
    return lambda: any(out.glob(".*.tmp-*/run.log"))


def predicting(work: Path, target: Path) -> list[str]:
    return ["experiment.stages=[interactions,train,predict]", f"predict.uri={target}"]


def resolved(work: Path, overrides: list[str]) -> str:
    """The config.yaml a run of the case's config with ``overrides`` saves."""
    from daskflow.config import config_to_yaml, load_config

    return config_to_yaml(load_config(str(work / "config.yaml"), overrides))


# Claims planted by a case live under another output.dir: the harness counts every entry
# of out/bad, a claim included, as something a failed run published.
def _live_run_id_claim(lake: Path, work: Path) -> list[str]:
    write_claim(work / "elsewhere" / "bad" / ".r1.claim", "r1", PID, ".r1.tmp-0123")
    return [f"output.dir={work / 'elsewhere'}", "output.run_id=r1"]


def _stale_run_id_claim(lake: Path, work: Path) -> list[str]:
    write_claim(work / "elsewhere" / "bad" / ".r2.claim", "r2", dead_pid(), ".r2.tmp-0123")
    return [f"output.dir={work / 'elsewhere'}", "output.run_id=r2"]


def _killed_run(lake: Path, work: Path) -> list[str]:
    elsewhere = work / "elsewhere"
    write_claim(elsewhere / "bad" / ".r3.claim", "r3", dead_pid(), ".r3.tmp-0123")
    (elsewhere / "bad" / ".r3.tmp-0123" / "checkpoints").mkdir(parents=True)
    return [f"output.dir={elsewhere}", "output.run_id=r3"]


def _existing_external(lake: Path, work: Path) -> list[str]:
    (work / "recs").mkdir()
    (work / "recs" / "part.0.parquet").write_bytes(b"someone's result")
    return predicting(work, work / "recs")


def _empty_external(lake: Path, work: Path) -> list[str]:
    (work / "recs").mkdir()  # os.rename would silently replace an empty directory
    return predicting(work, work / "recs")


def _claimed_external(lake: Path, work: Path) -> list[str]:
    write_claim(work / ".recs.claim", "other-run", PID, ".recs.tmp-0123")
    return predicting(work, work / "recs")


def _existing_score_output(lake: Path, work: Path) -> list[str]:
    (work / "scores").mkdir()
    from tests.catalogue.test_basics import HOUSE_AD

    return ["experiment.stages=[score]", *HOUSE_AD, f"classify.score.uri={work / 'scores'}"]


def _run_dir_appears(lake: Path, work: Path) -> list[str]:
    out = work / "out" / "bad"
    when(started(out), lambda: (out / "fixed").mkdir())  # an empty directory, not by daskflow
    return ["output.run_id=fixed"]


def _external_appears(lake: Path, work: Path) -> list[str]:
    when(started(work / "out" / "bad"), lambda: (work / "recs").mkdir())
    return predicting(work, work / "recs")


def _resume_published(lake: Path, work: Path) -> list[str]:
    published = work / "out" / "bad" / "fixed"
    published.mkdir(parents=True)
    (published / "config.yaml").write_text(resolved(work, []))
    (published / "_SUCCESS").touch()
    return ["--resume", str(published)]


def _resume_other_config(lake: Path, work: Path) -> list[str]:
    unfinished = work / "out" / "other" / ".r1.tmp-0123"
    unfinished.mkdir(parents=True)
    (unfinished / "config.yaml").write_text(resolved(work, ["model.name=als"]))
    return ["--resume", str(unfinished)]


def _resume_running(lake: Path, work: Path) -> list[str]:
    overrides = [f"output.dir={work / 'elsewhere'}"]
    unfinished = work / "elsewhere" / "bad" / ".r4.tmp-0123"
    unfinished.mkdir(parents=True)
    (unfinished / "config.yaml").write_text(resolved(work, overrides))
    write_claim(unfinished.parent / ".r4.claim", "r4", PID, unfinished.name)
    return [*overrides, "--resume", str(unfinished)]


def _resume_moved(lake: Path, work: Path) -> list[str]:
    unfinished = work / "elsewhere" / "bad" / ".r5.tmp-0123"
    unfinished.mkdir(parents=True)
    (unfinished / "config.yaml").write_text(resolved(work, []))
    return ["--resume", str(unfinished)]


CASES: dict[str, Case] = {
    "run id claimed by a running run": Case(_live_run_id_claim, (
        "run directory", "/bad/r1 is being written by run r1", f"(pid {PID} on {socket.gethostname()}",
        "wait for it to finish, or choose another output.run_id")),
    "stale claim on a run id": Case(_stale_run_id_claim, (
        "run directory", "is claimed by run r2", "which is no longer running", "remove the stale claim (rm ",
        "/bad/.r2.claim) to start again")),
    "run id of a killed run": Case(_killed_run, (
        "is claimed by run r3", "which is no longer running", "working directory",
        "/bad/.r3.tmp-0123 is kept", "resume it with --resume ", "or remove both (rm -r ")),
    "predict output that already exists": Case(_existing_external, ("output '", "/recs' already exists",
                                                                    "choose another location")),
    "empty directory at the predict output": Case(_empty_external, ("/recs' already exists",)),
    "predict output claimed by a running run": Case(_claimed_external, (
        "/recs' is being written by run other-run", f"(pid {PID} on ",
        "wait for it to finish, or choose another location")),
    "score output that already exists": Case(_existing_score_output, ("/scores' already exists",)),
    "run directory appearing during the run": Case(_run_dir_appears, (
        "run directory ", "/bad/fixed appeared while this run was writing it", "nothing was published",
        "move it away, or choose another output.run_id")),
    "predict output appearing during the run": Case(_external_appears, (
        "/recs' appeared while this run was writing it", "nothing was published")),
    "resume of a published run": Case(_resume_published, (
        "--resume ", "/bad/fixed: not the working directory of an interrupted run but a published one",
        "nothing to resume; run without --resume")),
    "resume with another config": Case(_resume_other_config, (
        "the config differs from the interrupted run's", ") at model.name;",
        "resume with the same config file and overrides")),
    "resume of a run still running": Case(_resume_running, (
        "/bad/r4 is being written by run r4", f"(pid {PID} on ")),
    "resume from another output directory": Case(_resume_moved, (
        "/elsewhere/bad/.r5.tmp-0123' is not an unfinished attempt at", "/out/bad/r5",
        "expected a directory named .r5.tmp-* beside it")),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_with_one_actionable_message(name: str, lake: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(CASES[name], lake, tmp_path, capsys, monkeypatch)


def test_a_losing_writer_leaves_the_winners_claim_and_result(lake: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(CASES["predict output claimed by a running run"], lake, tmp_path, capsys, monkeypatch)
    assert json.loads((tmp_path / ".recs.claim").read_text())["token"] == "theirs"
    assert not (tmp_path / "recs").exists()
    (tmp_path / ".recs.claim").unlink()
    check_case(CASES["predict output that already exists"], lake, tmp_path, capsys, monkeypatch)
    assert sorted(p.name for p in (tmp_path / "recs").iterdir()) == ["part.0.parquet"]
    assert (tmp_path / "recs" / "part.0.parquet").read_bytes() == b"someone's result"
    assert [p.name for p in tmp_path.glob(".recs*")] == []


def make_unwritable(directory: Path) -> None:
    """No entry can be added to or removed from ``directory`` (root ignores modes: chattr +i)."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(directory)], check=True, capture_output=True)
    else:
        directory.chmod(0o555)


def make_writable(directory: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(directory)], check=True, capture_output=True)
    else:
        directory.chmod(0o755)


@pytest.fixture
def can_make_unwritable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    probe = tmp_path_factory.mktemp("probe")
    try:
        make_unwritable(probe)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("cannot make a directory unwritable here (root without chattr +i)")
    try:
        with pytest.raises(OSError):
            (probe / "x").mkdir()
    finally:
        make_writable(probe)
    yield


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("daskflow: error:")]
    assert len(errors) == 1, err
    return errors[0]


def test_output_dir_unwritable_at_publish_time(lake: Path, tmp_path: Path, can_make_unwritable: None,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "bad"
    config = base_config(lake, tmp_path / "out")
    config["experiment"]["stages"] = ["interactions", "train", "predict"]
    config["predict"] = {"uri": str(tmp_path / "recs")}
    config["output"]["run_id"] = "r1"
    out.mkdir(parents=True)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    when(started(out), lambda: make_unwritable(out))  # the stages run, publishing cannot
    try:
        assert main(["-q", "run", str(tmp_path / "run.yaml")]) == 2
        error = one_error(capsys)
        left = sorted(p.name for p in out.iterdir())
    finally:
        make_writable(out)
    assert f"cannot publish run directory {out / 'r1'}: the directory {out} is not writable (" in error
    assert "nothing was published" in error and "Make it writable, or choose another location" in error
    # What could not be removed is named; everything inside the working directory is gone.
    work = [name for name in left if ".tmp-" in name]
    assert left == sorted([".r1.claim", *work]) and len(work) == 1
    assert f"left behind, remove when writable: {out / work[0]}, {out / '.r1.claim'}" in error
    assert list((out / work[0]).iterdir()) == []
    # The external result was rolled back with the run (its directory stayed writable).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "run.yaml"]


def test_s3_output_is_rolled_back_when_the_run_directory_cannot_be_published(
        lake: Path, tmp_path: Path, s3_server: dict[str, object],
        capsys: pytest.CaptureFixture[str]) -> None:
    s3 = fsspec.filesystem("s3", **s3_server)
    s3.mkdir("rollback")
    out = tmp_path / "out" / "bad"
    config = base_config(lake, tmp_path / "out")
    config["experiment"]["stages"] = ["interactions", "train", "predict"]
    config["predict"] = {"uri": "s3://rollback/recs.parquet", "storage_options": s3_server}
    config["output"]["run_id"] = "fixed"
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    when(started(out), lambda: (out / "fixed").mkdir())  # the run directory is taken meanwhile
    assert main(["-q", "run", str(tmp_path / "run.yaml")]) == 2
    assert "/bad/fixed appeared while this run was writing it" in one_error(capsys)
    s3.invalidate_cache()
    assert s3.find("rollback", withdirs=True) == []  # no table, no _SUCCESS, no claim, no temporary
    assert sorted(p.name for p in out.iterdir()) == ["fixed"] and list((out / "fixed").iterdir()) == []


def test_home_relative_output_dir_and_owner_only_modes(lake: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    config = base_config(lake, tmp_path)
    config["experiment"]["stages"] = ["interactions", "train", "predict"]
    config["output"] = {"dir": "~/runs", "run_id": "mine"}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    assert main(["-q", "run", str(tmp_path / "run.yaml")]) == 0
    run_dir = home / "runs" / "bad" / "mine"
    assert json.loads(capsys.readouterr().out)["run_dir"] == str(run_dir)
    assert list(cwd.iterdir()) == []  # no literal ./~
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    for name in ("config.yaml", "metrics.json", "report.html", "run.log"):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o600, name
    for path in run_dir.rglob("*"):  # artifacts and predictions hold data too
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
    assert (run_dir / "predictions" / "recommendations.parquet" / "_SUCCESS").exists()

"""Every shell command shown in README.md and docs/*.md, run as written.

The commands are taken from the fenced blocks (``bash``/``sh`` ones, and plain ones whose
lines start with ``daskflow``) and run through the real CLI (``daskflow.cli.main``), one
fresh working directory per document, holding a copy of ``configs/``: relative paths
(``data/sample-small``, ``outputs/``) land there as they would in a clone. What cannot
run here is in :data:`SKIP` and what must be adapted in :data:`SUBSTITUTE`, each with the
reason and what runs instead; a command in neither list that is not a ``daskflow``
command fails the test, so a new command in the docs is run or explicitly excused.

Two adaptations apply to every run, for time only: the copied configs' ``cluster``
sections get ``processes: false`` (worker threads instead of processes: ~10 s less per run
on two cores) and ``dashboard_address: ':0'`` (a free port, as runs beside each other need);
``DASKFLOW_MEMORY_LIMIT`` is ``0`` (threads share this process's memory, see the test).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from daskflow.cli import main

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: Commands (or the start of one) that are not run, and why; what runs instead is named.
SKIP = {
    "python3 -m venv": "creates an environment; this test runs inside the one it creates",
    ". .venv/bin/activate": "the same environment, already active",
    "pip install": "needs the package index (no network in tests); the installed package is "
                   "what this test runs",
    "python -m pytest": "this test suite itself",
    "helm ": "needs a Kubernetes cluster with the operator; `daskflow k8s manifest` runs instead "
             "(tests/cluster/test_kubernetes.py checks its manifests against the operator's CRD)",
    "kubectl ": "needs a Kubernetes cluster; the remote-scheduler command after it runs against a "
                "real `dask scheduler` process instead of the port-forward",
    "daskflow run configs/quickstart.yaml key.sub=value ...": "syntax, not a command: the README's "
                                                               "commands with overrides run instead",
}

#: Parts of commands replaced before they run, and why.
SUBSTITUTE = {
    "tcp://scheduler:8786": "a placeholder host: the `dask scheduler` and `dask worker` processes "
                            "of the scheduler fixture",
    "tcp://localhost:8786": "the port-forward of a DaskCluster: the scheduler fixture instead",
    "--scale medium": "--scale small: the medium lake is 22M listens (minutes); the code path is "
                      "the same",
    "outputs/quickstart/.<run_id>.tmp-<...>": "the working directory of a real run of the quickstart, "
                                              "interrupted after an ALS checkpoint by this test",
}

#: What docs/kubernetes.md calls configs/my-experiment.yaml: an experiment of yours with its
#: Kubernetes cluster section; here configs/ab.yaml (the shortest run) with that section.
MY_EXPERIMENT = "configs/my-experiment.yaml"


def fenced_commands() -> list[tuple[str, int, str]]:
    """(document, line, command) for every command of every fenced shell block, in order."""
    found = []
    for doc in DOCS:
        block: list[tuple[int, str]] | None = None
        shell = False
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            fence = re.match(r"^\s*```(\w*)", line)
            if fence and block is None:
                block, shell = [], fence.group(1) in ("bash", "sh", "shell", "console")
                continue
            if fence and block is not None:
                if shell or any(text.lstrip().startswith("daskflow ") for _, text in block):
                    found.extend((doc.name, n, text) for n, text in _joined(block))
                block = None
                continue
            if block is not None:
                block.append((number, line))
    return found


def _joined(block: list[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """Lines with their backslash continuations joined, comments dropped, ` && ` chains split."""
    pending: tuple[int, str] | None = None
    for number, line in block:
        start, text = pending if pending is not None else (number, "")
        text = f"{text} {line.strip()}".strip()
        if text.endswith("\\"):
            pending = (start, text[:-1])
            continue
        pending = None
        text = re.sub(r"(^|\s)#.*$", "", text).strip()  # no '#' inside the docs' quotes
        text = text.removesuffix("&").strip()  # a background process (kubectl port-forward ... &)
        for part in (p.strip() for p in text.split(" && ")):
            if part:
                yield start, re.sub(r"\s+", " ", part)


def skip_reason(command: str) -> str | None:
    return next((reason for start, reason in SKIP.items() if command.startswith(start)), None)


def test_every_command_is_run_or_excused() -> None:
    commands = fenced_commands()
    assert len(commands) > 15  # the extraction finds the README's and the docs' blocks
    unknown = [f"{doc}:{line}: {command}" for doc, line, command in commands
               if skip_reason(command) is None and not command.startswith("daskflow ")]
    assert unknown == [], "commands neither run nor in SKIP (add the reason)"


def _prepare(cwd: Path) -> None:
    shutil.copytree(ROOT / "configs", cwd / "configs")
    for path in (cwd / "configs").glob("*.yaml"):
        raw = yaml.safe_load(path.read_text())
        raw.setdefault("cluster", {}).update(processes=False, dashboard_address=":0")
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
    kubernetes = (ROOT / "docs" / "kubernetes.md").read_text()
    section = yaml.safe_load(re.search(r"```yaml\n(cluster:.*?)```", kubernetes, re.S).group(1))
    raw = yaml.safe_load((cwd / "configs" / "ab.yaml").read_text())
    raw["cluster"] = section["cluster"]
    (cwd / MY_EXPERIMENT).write_text(yaml.safe_dump(raw, sort_keys=False))


def _interrupted_quickstart(cwd: Path) -> str:
    """Run the quickstart, Ctrl-C it after an ALS checkpoint; return the --resume directory.

    A process of its own, as a terminal's: the claim on the run directory names the
    interrupted process, and a resume takes it over only once that process is gone.
    """
    process = subprocess.Popen([sys.executable, "-m", "daskflow", "run", "configs/quickstart.yaml"],
                               cwd=cwd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                               start_new_session=True)
    try:
        assert process.stderr is not None
        lines = []
        for line in process.stderr:
            lines.append(line)
            if "ALS checkpoint after iteration" in line:
                os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the terminal's whole group
                break
        lines.extend(process.stderr.read().splitlines())
        assert process.wait(timeout=60) == 130, "".join(lines)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    match = re.search(r"; continue from its checkpoints with: (daskflow run .*)$", "\n".join(lines), re.M)
    assert match, lines
    command = shlex.split(match.group(1))
    assert command[:3] == ["daskflow", "run", "configs/quickstart.yaml"] and command[3] == "--resume", command
    return command[4]


def _run_one(argv: list[str], capsys: pytest.CaptureFixture[str], cwd: Path) -> None:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, f"daskflow {shlex.join(argv)} exited {code}:\n{err[-3000:]}"
    if argv[0] == "run":
        run_dir = cwd / json.loads(out)["run_dir"]
        assert (run_dir / "_SUCCESS").exists() and (run_dir / "metrics.json").exists()
    elif argv[0] == "validate":
        assert err.startswith("# valid: stages") or "# valid: stages" in err, err
    elif argv[0] == "generate":
        assert (cwd / json.loads(out)["out"]).is_dir()
    elif argv[0] == "k8s":
        assert "valid DaskCluster" in err, err
        if "--output" in argv:
            written = cwd / argv[argv.index("--output") + 1]
            assert yaml.safe_load(written.read_text())["kind"] == "DaskCluster"


@pytest.mark.slow
def test_every_documented_command_runs(tmp_path: Path, scheduler: str, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    # No memory limit: the workers are threads of this test process (processes: false), whose
    # memory monitor measures the whole pytest process. Late in the suite that process holds
    # over 80% of 1 GiB, the workers pause, and the run waits forever for their tasks.
    monkeypatch.setenv("DASKFLOW_MEMORY_LIMIT", "0")
    done: set[str] = set()
    ran = 0
    for doc in [path.name for path in DOCS]:
        commands = [command for name, _, command in fenced_commands() if name == doc]
        commands = [c for c in commands if skip_reason(c) is None and c not in done]
        if not commands:
            continue
        cwd = tmp_path / doc.removesuffix(".md")
        cwd.mkdir()
        _prepare(cwd)
        monkeypatch.chdir(cwd)
        for command in commands:
            done.add(command)  # the same command in two documents runs once
            for placeholder in ("tcp://scheduler:8786", "tcp://localhost:8786"):
                command = command.replace(placeholder, scheduler)
            command = command.replace("--scale medium", "--scale small")
            if "<run_id>" in command:
                work_dir = _interrupted_quickstart(cwd)
                shown = re.search(r"--resume (\S+)", command).group(1)
                pattern = re.escape(shown).replace(re.escape("<run_id>"), r"[^/]+") \
                    .replace(re.escape("<...>"), r"[^/]+")
                # The docs show the real shape (the hint prints it absolute).
                assert re.fullmatch(pattern, os.path.relpath(work_dir, cwd)), (shown, work_dir)
                command = command.replace(shown, work_dir)
            argv = shlex.split(command)
            assert argv[0] == "daskflow"
            _run_one(argv[1:], capsys, cwd)
            ran += 1
    assert ran >= 12

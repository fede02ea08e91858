"""Progress on the terminal: a bar redrawn in place on a TTY, a line every few seconds on a pipe."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
import yaml

N_ITER = 40


def _config(lake: Path, tmp_path: Path) -> Path:
    config = {
        "experiment": {"name": "progress", "stages": ["interactions", "train"]},
        "cluster": {"n_workers": 1, "dashboard_address": ":0"},
        "data": {"sources": {"listens": {"uri": str(lake / "listens")}}},
        "features": {"interactions": {"source": "listens", "user_col": "user_id", "item_col": "track_id",
                                      "time_col": "ts", "block_size": 100}},
        "model": {"name": "als", "params": {"n_factors": 4, "n_iter": N_ITER, "checkpoint_every": 10}},
        "output": {"dir": str(tmp_path / "out")},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run(config: Path, *, tty: bool) -> tuple[str, dict[str, object]]:
    """Run CONFIG with stderr on a pseudo-terminal or a pipe; returns stderr and the printed summary."""
    command = [sys.executable, "-m", "daskflow", "run", str(config)]
    # A plain line every 0.2 s, so that this short fit prints some.
    env = {**os.environ, "DASKFLOW_PROGRESS_SECONDS": "0.2"}
    if not tty:
        result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
        assert result.returncode == 0, result.stderr
        return result.stderr, json.loads(result.stdout)
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))  # 120 columns
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=terminal, text=True, env=env)
    os.close(terminal)
    chunks = []
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the run closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.stdout is not None
        stdout = process.stdout.read()
        assert process.wait(timeout=60) == 0, b"".join(chunks).decode(errors="replace")
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
            process.wait()
    return b"".join(chunks).decode(errors="replace"), json.loads(stdout)


def _run_log(summary: dict[str, object]) -> str:
    return (Path(str(summary["run_dir"])) / "run.log").read_text()


def _check_run_log(log_text: str) -> None:
    # Every iteration in run.log, although the terminal showed one progress line for them.
    iterations = [int(n) for n in re.findall(rf"ALS iteration (\d+)/{N_ITER}: ", log_text)]
    assert iterations == list(range(1, N_ITER + 1)), log_text
    assert re.search(rf"ALS: {N_ITER}/{N_ITER} iterations in [\d.]+s, loss \S+ -> \S+", log_text), log_text


@pytest.mark.slow
def test_a_terminal_gets_a_bar_redrawn_in_place(tiny_lake: Path, tmp_path: Path) -> None:
    output, summary = _run(_config(tiny_lake, tmp_path), tty=True)
    bars = re.findall(r"\r\x1b\[KALS \[[#.]{24}\] (\d+)/" + str(N_ITER) + r" iterations +\d+%  \S+  ETA (\S+)"
                      r"  loss \S+", output)
    assert len(bars) >= 2, output  # redrawn as it goes, with an ETA once an iteration is done
    assert [int(done) for done, _ in bars] == sorted(int(done) for done, _ in bars)
    assert any(re.fullmatch(r"[\d.]+s|\d+m\d\ds", eta) for _, eta in bars), bars
    # The per-iteration lines stay off the terminal; the summary, checkpoints and stages stay on it.
    assert "ALS iteration" not in output
    assert re.search(rf"ALS: {N_ITER}/{N_ITER} iterations in [\d.]+s, loss", output), output
    assert "ALS checkpoint after iteration 10" in output and "stage train ..." in output
    # A log line printed while a bar is up clears the bar first: on the screen (what is left
    # of each line after its last carriage return) no line is a bar with a log line after it.
    screen = [line.rsplit("\r", 1)[-1].replace("\x1b[K", "")
              for line in output.replace("\r\n", "\n").split("\n")]
    assert not [line for line in screen if re.search(r"\] \d+/\d+ iterations.*\d\d:\d\d:\d\d ", line)], screen
    summary_line = rf"\d\d:\d\d:\d\d ALS: {N_ITER}/{N_ITER} iterations in .*"
    assert any(re.fullmatch(summary_line, line) for line in screen), screen
    _check_run_log(_run_log(summary))


@pytest.mark.slow
def test_a_pipe_gets_a_plain_line_every_few_seconds(tiny_lake: Path, tmp_path: Path) -> None:
    output, summary = _run(_config(tiny_lake, tmp_path), tty=False)
    assert "\r" not in output and "\x1b" not in output
    lines = re.findall(rf"^\d\d:\d\d:\d\d ALS: (\d+)/{N_ITER} iterations \(\d+%\), \S+, ETA (\S+), loss \S+$",
                       output, re.M)
    assert lines, output
    assert all(eta != "?" for _, eta in lines)
    assert "ALS iteration" not in output
    assert re.search(rf"ALS: {N_ITER}/{N_ITER} iterations in [\d.]+s, loss \S+ -> \S+", output), output
    _check_run_log(_run_log(summary))

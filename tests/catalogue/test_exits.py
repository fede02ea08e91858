"""Bad-input cases of peers, interruptions and clean exits.

Wrong peers at ``cluster.address`` (a web server, a silent listener, a worker, a plain
scheduler behind tls://) must fail within ``cluster.connect_timeout``; a missing
dependency of a requested output must be found before any stage runs; a user error
raised inside a worker process must be said once. Run through the CLI by
:func:`tests.catalogue._harness.check_case`; docs/errors.md lists them. What needs a
separate process (the worker's own stderr, exit codes) has its own tests below.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from tests.catalogue._harness import Case, base_config, check_case, listens_rows, write_day
from tests.cluster._peers import http_server, silent_server

#: Addresses of the real peers the cases point at, set by the module's ``peers`` fixture.
PEERS: dict[str, str] = {}

#: Seconds every peer case may wait (cluster.connect_timeout) and the bound on its run.
TIMEOUT, BOUND = 1, 8.0


@pytest.fixture(scope="module", autouse=True)
def peers() -> Iterator[dict[str, str]]:
    from distributed import LocalCluster

    with http_server() as web, silent_server() as silent, \
            LocalCluster(n_workers=1, processes=False, protocol="tcp", dashboard_address=":0") as cluster:
        PEERS.update(web=f"127.0.0.1:{web}", silent=f"127.0.0.1:{silent}",
                     scheduler=cluster.scheduler_address.removeprefix("tcp://"),
                     worker=next(iter(cluster.workers.values())).address)
        yield PEERS
        PEERS.clear()


def _address(peer: str, scheme: str = "tcp") -> Callable[[Path, Path], list[str]]:
    def make(lake: Path, work: Path) -> list[str]:
        address = PEERS[peer] if "://" in PEERS[peer] else f"{scheme}://{PEERS[peer]}"
        return [f"cluster.address={address}", f"cluster.connect_timeout={TIMEOUT}"]
    return make


def _static(*arguments: str) -> Callable[[Path, Path], list[str]]:
    return lambda lake, work: list(arguments)


def _nan_weights(lake: Path, work: Path) -> list[str]:
    root = work / "counts"
    write_day(root, "2026-01-01", listens_rows(["u1", "u2", "u3"], pa.array([4.0, 2.0, 1.0])))
    write_day(root, "2026-01-02", listens_rows(["u1", "u2"], pa.array([float("nan"), 5.0])))
    return [f"data.sources.listens.uri={root}", "data.sources.listens.schema.ms_played=number",
            "features.interactions.weight=ms_played", "cluster.processes=true"]


def _existing_lake(lake: Path, work: Path) -> list[str]:
    (work / "lake").mkdir()
    (work / "lake" / "mine.txt").write_text("not to be replaced")
    return ["--argv", str(work / "lake"), "--workers", "1"]


def _lake_over_a_file(lake: Path, work: Path) -> list[str]:
    (work / "a-file").write_text("a file, not a directory")
    return ["--argv", str(work / "a-file" / "lake"), "--workers", "1"]


CASES: dict[str, Case] = {
    "web server at the scheduler address": Case(
        _address("web"), ("is not a Dask scheduler (it answered like HTTP?)", "point cluster.address at "
                          "the scheduler's port")),
    "silent listener at the scheduler address": Case(
        _address("silent"), ("accepted the connection but sent no Dask handshake within 1s",
                             "cluster.connect_timeout")),
    "tls address of a plain scheduler": Case(
        _address("scheduler", "tls"), ("asks for TLS, but the scheduler at", "speaks plain TCP: use tcp://")),
    "tls address without certificates": Case(
        _address("silent", "tls"), ("asks for TLS, but no TLS certificate is configured",
                                    "distributed.comm.tls.ca-file")),
    "worker address as the scheduler address": Case(
        _address("worker"), ("is a Dask Worker, not a scheduler", "point cluster.address at the scheduler")),
    "inproc scheduler address": Case(
        _static("cluster.address=inproc://127.0.0.1/1/1"), ("inproc:// address", "tcp://")),
    "scheduler address without a port": Case(
        _static("cluster.address=tcp://127.0.0.1", f"cluster.connect_timeout={TIMEOUT}"),
        ("cluster.address 'tcp://127.0.0.1' is not a scheduler address", "missing port")),
    "connect_timeout 0": Case(_static("cluster.address=tcp://127.0.0.1:8786", "cluster.connect_timeout=0"),
                              ("cluster.connect_timeout", "greater than 0")),
    "negative connect_timeout": Case(
        _static("cluster.address=tcp://127.0.0.1:8786", "cluster.connect_timeout=-2"),
        ("cluster.connect_timeout", "greater than 0")),
    "performance report without bokeh": Case(
        _static("output.performance_report=true"),
        ("output.performance_report is true, but bokeh is not installed", "pip install 'bokeh>=3.1'",
         "output.performance_report=false")),
    "user error raised in a worker process": Case(
        _nan_weights, ("column 'ms_played' has 1 negative, NaN or infinite values",)),
    "generate into an existing directory": Case(
        _existing_lake, ("already exists: pass --overwrite to replace it",), command="generate"),
    "generate under a file": Case(_lake_over_a_file, ("a-file",), command="generate"),
}

#: Cases run with bokeh unimportable in this process.
WITHOUT_BOKEH = {"performance report without bokeh"}


@pytest.mark.parametrize("name", list(CASES))
def test_exit_mistake_exits_2_with_one_actionable_message(name: str, lake: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    if name in WITHOUT_BOKEH:
        # The one stand-in of this catalogue: bokeh is a dependency of daskflow, so its
        # absence is simulated by making it unimportable here (an import of it raises
        # ImportError while sys.modules holds None), not by uninstalling it.
        monkeypatch.setitem(sys.modules, "bokeh", None)
    started = time.monotonic()
    check_case(CASES[name], lake, tmp_path, capsys, monkeypatch)
    assert time.monotonic() - started < BOUND + 20  # a peer case that hung would not get here
    if name == "generate into an existing directory":
        assert (tmp_path / "lake" / "mine.txt").read_text() == "not to be replaced"
        assert [p.name for p in (tmp_path / "lake").iterdir()] == ["mine.txt"]


@pytest.mark.parametrize("peer", ["web", "silent"])
def test_a_wrong_peer_fails_within_the_connect_timeout(peer: str, lake: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    started = time.monotonic()
    check_case(Case(_address(peer), ("the peer at",)), lake, tmp_path, capsys, monkeypatch)
    # One wait of connect_timeout and, for a silent peer, a second asking whether it is a
    # web server: no retries (it answered, so it is there), no cluster started.
    assert time.monotonic() - started < 2 * TIMEOUT + 1.5


@pytest.mark.slow
def test_a_user_error_in_a_worker_process_is_said_once(lake: Path, tmp_path: Path) -> None:
    # Through a real process: distributed's "Compute Failed" record of the worker goes to
    # the worker process's own stderr, which only a separate process's capture sees.
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base_config(lake, tmp_path / "out")))
    result = subprocess.run([sys.executable, "-m", "daskflow", "-q", "run", str(config),
                             *_nan_weights(lake, tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    # With -q, the one line is all there is: no "Compute Failed", task or traceback first.
    [line] = result.stderr.splitlines()
    assert line.startswith("daskflow: error: ") and "extra.parquet" in line
    assert "column 'ms_played' has 1 negative, NaN or infinite values" in line
    assert not (tmp_path / "out" / "bad").exists() or not any((tmp_path / "out" / "bad").iterdir())

"""Cluster connection: embedded LocalCluster, a separately started scheduler, failures."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daskflow import ClusterError
from daskflow.cluster import connect, dashboard_link

from ..conftest import free_port
from ._peers import http_server, silent_server


def test_local_cluster_uses_the_settings() -> None:
    with connect("local", n_workers=1, threads_per_worker=2, memory_limit="1GiB",
                 dashboard_address=":0") as client:
        workers = client.scheduler_info()["workers"].values()
        assert [w["nthreads"] for w in workers] == [2]
        assert [w["memory_limit"] for w in workers] == [2**30]
        assert dashboard_link(client).startswith("http://")
        assert client.submit(sum, [1, 2, 3]).result() == 6


def test_bad_local_settings() -> None:
    with pytest.raises(ClusterError, match=r"cannot start a LocalCluster .*memory_limit='lots'"):
        with connect("local", n_workers=1, memory_limit="lots", dashboard_address=":0"):
            pass


def test_unknown_kind() -> None:
    with pytest.raises(ClusterError, match="unknown cluster kind 'yarn'"):
        with connect("yarn"):
            pass


def test_unreachable_scheduler_retries_then_fails() -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ClusterError, match=rf"cannot reach the Dask scheduler at {address} after 3 "
                                           r"attempts .*start it \(dask scheduler\) or fix cluster.address"):
        with connect("remote", address=address, connect_timeout=0.5):
            pass
    assert time.monotonic() - started < 30


@pytest.mark.slow
def test_remote_scheduler_started_separately(scheduler: str) -> None:
    with connect("remote", address=scheduler, connect_timeout=20) as client:
        client.wait_for_workers(1, timeout=60)
        assert client.submit(lambda x: x * 2, 21).result() == 42


# Peers that accept the connection but are not Dask schedulers: distributed's Client reads
# their handshake without a deadline, so each of these hung before the address was checked.
@pytest.mark.parametrize("peer, fragment", [
    (http_server, r"is not a Dask scheduler \(it answered like HTTP\?\): point cluster.address at the "
                  r"scheduler's port"),
    (silent_server, r"accepted the connection but sent no Dask handshake within 1s "
                    r"\(cluster.connect_timeout\)"),
])
def test_a_peer_that_is_not_a_scheduler_fails_within_the_timeout(peer: Any, fragment: str) -> None:
    with peer() as port:
        address = f"tcp://127.0.0.1:{port}"
        started = time.monotonic()
        with pytest.raises(ClusterError, match=rf"the peer at {address} {fragment}"):
            with connect("remote", address=address, connect_timeout=1):
                pass
        # One attempt (the peer answered, wrongly: retrying would not help), plus at most
        # a second asking it whether it speaks HTTP.
        assert time.monotonic() - started < 4


def test_tls_to_a_silent_peer_without_certificates() -> None:
    with silent_server() as port:
        with pytest.raises(ClusterError, match=rf"cluster.address tls://127.0.0.1:{port} asks for TLS, "
                                               r"but no TLS certificate is configured"):
            with connect("remote", address=f"tls://127.0.0.1:{port}", connect_timeout=1):
                pass


@pytest.fixture(scope="module")
def in_process_scheduler() -> Iterator[tuple[str, str]]:
    """A real scheduler and worker on loopback TCP, in this process; yields both addresses."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, processes=False, protocol="tcp", dashboard_address=":0") as cluster:
        yield cluster.scheduler_address, next(iter(cluster.workers.values())).address


def test_tls_address_of_a_plain_tcp_scheduler(in_process_scheduler: tuple[str, str]) -> None:
    host_port = in_process_scheduler[0].removeprefix("tcp://")
    with pytest.raises(ClusterError, match=rf"asks for TLS, but the scheduler at {host_port} speaks plain "
                                           rf"TCP: use tcp://{host_port}"):
        with connect("remote", address=f"tls://{host_port}", connect_timeout=1):
            pass


def test_a_workers_address_is_not_a_scheduler(in_process_scheduler: tuple[str, str]) -> None:
    worker = in_process_scheduler[1]
    with pytest.raises(ClusterError, match=rf"the peer at {worker} is a Dask Worker, not a scheduler"):
        with connect("remote", address=worker, connect_timeout=1):
            pass


def test_the_checked_scheduler_is_then_used(in_process_scheduler: tuple[str, str]) -> None:
    with connect("remote", address=in_process_scheduler[0], connect_timeout=5) as client:
        assert client.submit(sum, [1, 2, 3]).result() == 6


@pytest.mark.parametrize("timeout", [0, -1.5])
def test_a_timeout_that_is_no_wait(timeout: float) -> None:
    with pytest.raises(ClusterError, match=rf"cluster.connect_timeout is {timeout}: expected a number of "
                                           r"seconds > 0"):
        with connect("remote", address="tcp://127.0.0.1:8786", connect_timeout=timeout):
            pass


def test_an_inproc_address_is_refused() -> None:
    with pytest.raises(ClusterError, match=r"inproc:// address, which names a scheduler inside one process"):
        with connect("remote", address="inproc://127.0.0.1/1/1"):
            pass


def test_a_scheduler_still_starting_is_waited_for() -> None:
    # Nothing listens for the first half second: the connect waits (within connect_timeout)
    # instead of failing at the first refused connection.
    from distributed import Scheduler

    port = free_port()
    started: dict[str, Any] = {}

    def later() -> None:
        import asyncio

        async def serve() -> None:
            async with Scheduler(host="127.0.0.1", port=port, dashboard_address=":0") as scheduler:
                started["scheduler"] = scheduler
                while not started.get("stop"):
                    await asyncio.sleep(0.05)

        time.sleep(0.5)
        asyncio.run(serve())

    thread = threading.Thread(target=later, daemon=True)
    thread.start()
    try:
        with connect("remote", address=f"tcp://127.0.0.1:{port}", connect_timeout=10, retries=1) as client:
            assert client.scheduler_info()["type"] == "Scheduler"
    finally:
        started["stop"] = True
        thread.join(10)


def test_workers_of_a_local_cluster_do_not_get_sigint() -> None:
    # A terminal's Ctrl-C reaches the whole process group; the workers leave it to the
    # parent, which tears them down (otherwise each prints a KeyboardInterrupt traceback).
    import psutil

    with connect("local", n_workers=1, processes=True, dashboard_address=":0") as client:
        pids = list(client.run(os.getpid).values())
        assert len(pids) == 1
        blocked = [line for line in Path(f"/proc/{pids[0]}/status").read_text().splitlines()
                   if line.startswith("SigBlk:")]
        assert int(blocked[0].split()[1], 16) & (1 << (signal.SIGINT - 1))
        assert psutil.Process(pids[0]).is_running()
    # ...and this thread's own mask is as it was.
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())

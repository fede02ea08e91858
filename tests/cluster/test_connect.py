"""Cluster connection: embedded LocalCluster, a separately started scheduler, failures."""

from __future__ import annotations

import time

import pytest

from daskflow import ClusterError
from daskflow.cluster import connect, dashboard_link

from ..conftest import free_port


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

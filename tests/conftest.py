"""Shared fixtures: a small generated lake, a real LocalCluster, a local S3 server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from daskflow.sample import Scale, generate_lake

#: A lake small enough to generate in about a second, big enough for every code path.
TINY = Scale(n_users=300, n_artists=60, n_tracks=400, n_days=5, n_genres=6,
             mean_listens_per_active_day=6.0, users_per_chunk=120)


@pytest.fixture(scope="session")
def tiny_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Parquet sample lake (3 user chunks x 5 days), generated once per session."""
    root = tmp_path_factory.mktemp("lake") / "parquet"
    generate_lake(str(root), scale=TINY, format="parquet", seed=7)
    return root


@pytest.fixture(scope="session")
def tiny_orc_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same lake as ``tiny_lake``, written as ORC."""
    root = tmp_path_factory.mktemp("lake") / "orc"
    generate_lake(str(root), scale=TINY, format="orc", seed=7)
    return root


@pytest.fixture(scope="session")
def client() -> Iterator[object]:
    """A real two-worker LocalCluster (worker processes), shared by the session."""
    from daskflow.cluster import connect

    with connect("local", n_workers=2, threads_per_worker=1, memory_limit="2GiB",
                 dashboard_address=":0") as client:
        yield client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, object]]:
    """A moto S3 server on 127.0.0.1; yields the ``storage_options`` to reach it."""
    pytest.importorskip("s3fs")
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                             "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1")
    try:
        yield {"key": "testing", "secret": "testing", "endpoint_url": endpoint}
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A `dask scheduler` and one `dask worker`, started as separate processes on loopback."""
    tmp_path = tmp_path_factory.mktemp("scheduler")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask_cli = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    scheduler = subprocess.Popen([*dask_cli, "--host", "127.0.0.1", "--port", str(port),
                                  "--dashboard-address", ":0"], cwd=tmp_path,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                               "--nthreads", "1", "--memory-limit", "1GiB", "--no-dashboard"],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield address
    finally:
        for process in (worker, scheduler):
            process.terminate()
            process.wait(timeout=30)

"""Shared fixtures: a small generated lake, a real LocalCluster, a local S3 server."""

from __future__ import annotations

import os
import socket
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, object]]:
    """A moto S3 server on 127.0.0.1; yields the ``storage_options`` to reach it."""
    pytest.importorskip("s3fs")
    from moto.server import ThreadedMotoServer

    port = _free_port()
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

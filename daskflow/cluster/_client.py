"""The one place that creates a ``distributed.Client``.

Backends are looked up by ``kind`` in :data:`BACKENDS`; each is a context manager that
yields a connected client and tears down what it started, even on failure. A Kubernetes
backend plugs in here (``BACKENDS["kubernetes"]``) without touching the runner.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from daskflow._errors import ClusterError

__all__ = ["connect", "BACKENDS", "dashboard_link"]

log = logging.getLogger("daskflow")


@contextlib.contextmanager
def _local(*, n_workers: int = 2, threads_per_worker: int = 1, memory_limit: str = "auto",
           processes: bool = True, dashboard_address: str = ":8787", **_: Any) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    try:
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                               memory_limit=memory_limit, processes=processes,
                               dashboard_address=dashboard_address, silence_logs=logging.ERROR)
    except (ValueError, TypeError) as exc:
        raise ClusterError(f"cannot start a LocalCluster with n_workers={n_workers}, "
                           f"threads_per_worker={threads_per_worker}, memory_limit={memory_limit!r}: "
                           f"{exc}. Fix the cluster: section") from exc
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


@contextlib.contextmanager
def _remote(*, address: str, connect_timeout: float = 10.0, retries: int = 3, **_: Any) -> Iterator[Any]:
    from distributed import Client

    delay = 0.5
    for attempt in range(1, retries + 1):
        try:
            client = Client(address, timeout=connect_timeout)
            break
        except (OSError, TimeoutError) as exc:
            if attempt == retries:
                raise ClusterError(f"cannot reach the Dask scheduler at {address} after {retries} "
                                   f"attempts ({exc}): start it (dask scheduler) or fix "
                                   "cluster.address") from exc
            log.warning("scheduler %s not reachable (attempt %d/%d), retrying in %.1fs", address,
                        attempt, retries, delay)
            time.sleep(delay)
            delay *= 2
    with client:
        yield client


def _kubernetes(**_: Any) -> Iterator[Any]:
    raise ClusterError("cluster.kind 'kubernetes' is not available in this version of daskflow: "
                       "use kind 'local', or start a scheduler yourself and set cluster.address")


#: kind -> context manager factory taking the cluster settings as keywords.
BACKENDS: dict[str, Callable[..., contextlib.AbstractContextManager[Any]]] = {
    "local": _local,
    "remote": _remote,
    "kubernetes": _kubernetes,
}


@contextlib.contextmanager
def connect(kind: str = "local", **settings: Any) -> Iterator[Any]:
    """Start or reach a Dask cluster and yield a connected ``distributed.Client``.

    Parameters
    ----------
    kind
        ``"local"`` (an embedded LocalCluster) or ``"remote"`` (``address=...``).
    **settings
        Backend settings: ``n_workers``, ``threads_per_worker``, ``memory_limit``,
        ``processes``, ``dashboard_address`` for local; ``address``, ``connect_timeout``
        for remote.

    Examples
    --------
    >>> with connect("local", n_workers=1) as client:   # doctest: +SKIP
    ...     print(dashboard_link(client))
    """
    if kind not in BACKENDS:
        raise ClusterError(f"unknown cluster kind {kind!r}: expected one of {', '.join(BACKENDS)}")
    with BACKENDS[kind](**settings) as client:
        yield client


def dashboard_link(client: Any) -> str | None:
    """The dashboard URL of ``client``'s scheduler (it may not be on port 8787)."""
    with contextlib.suppress(Exception):
        return client.dashboard_link
    return None

"""The one place that creates a ``distributed.Client``.

Backends are looked up by ``kind`` in :data:`BACKENDS`; each is a context manager that
yields a connected client and tears down what it started, even on failure. The Kubernetes
backend creates a DaskCluster through the dask-kubernetes operator and deletes it again.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from daskflow._errors import ClusterError
from daskflow.cluster import _kubernetes as k8s

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


@contextlib.contextmanager
def _kubernetes(*, kubernetes: Mapping[str, Any] | None = None, **_: Any) -> Iterator[Any]:
    from distributed import Client

    settings = dict(kubernetes or {})
    # Validated before anything is sent: a bad value never reaches the API server.
    manifest = k8s.build_manifest(**settings)
    name = manifest["metadata"]["name"]
    namespace = k8s.check_api(name=name, namespace=settings.get("namespace"),
                              timeout=settings.get("api_timeout", 10.0),
                              retries=settings.get("api_retries", 3))
    manifest["metadata"]["namespace"] = namespace
    log.info("creating DaskCluster %s in namespace %s (%d workers, image %s)", name, namespace,
             manifest["spec"]["worker"].get("replicas", 1),
             manifest["spec"]["worker"]["spec"]["containers"][0]["image"])
    cluster = k8s.start_kubecluster(manifest, namespace=namespace,
                                    startup_timeout=settings.get("startup_timeout", 300.0))
    try:
        with Client(cluster) as client:
            yield client
    finally:
        # Deleted whatever happened inside: a cluster left behind keeps its nodes busy.
        if k8s.stop_kubecluster(cluster):
            log.info("deleted DaskCluster %s in namespace %s", name, namespace)


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
        ``"local"`` (an embedded LocalCluster), ``"remote"`` (``address=...``) or
        ``"kubernetes"`` (a DaskCluster created through the dask-kubernetes operator and
        deleted on exit, even on failure).
    **settings
        Backend settings: ``n_workers``, ``threads_per_worker``, ``memory_limit``,
        ``processes``, ``dashboard_address`` for local; ``address``, ``connect_timeout``
        for remote; ``kubernetes={...}`` for kubernetes: the keywords of
        :func:`render_manifest` plus ``api_timeout``, ``api_retries`` (reaching the
        Kubernetes API) and ``startup_timeout`` (seconds for the scheduler to be ready).

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

"""The one place that creates a ``distributed.Client``.

Backends are looked up by ``kind`` in :data:`BACKENDS`; each is a context manager that
yields a connected client and tears down what it started, even on failure. The Kubernetes
backend creates a DaskCluster through the dask-kubernetes operator and deletes it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from daskflow._errors import ClusterError
from daskflow._retry import retry
from daskflow.cluster import _kubernetes as k8s

__all__ = ["connect", "BACKENDS", "dashboard_link", "start_local", "reach_remote", "start_kubernetes"]

log = logging.getLogger("daskflow")


@contextlib.contextmanager
def start_local(*, n_workers: int = 2, threads_per_worker: int = 1, memory_limit: str = "auto",
                processes: bool = True, dashboard_address: str = ":8787", **_: Any) -> Iterator[Any]:
    """The ``local`` backend: start an embedded LocalCluster, yield its client, close both.

    Workers are separate processes (``processes=True``) that ignore a terminal's Ctrl-C,
    which the calling process handles; a user error raised in a task is logged once.
    """
    from distributed import Client, LocalCluster

    from daskflow.cluster._quiet import QuietUserErrors

    cluster = None
    try:
        try:
            with _workers_ignore_sigint():
                cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                                       memory_limit=memory_limit, processes=processes,
                                       dashboard_address=dashboard_address, silence_logs=logging.ERROR)
        except (ValueError, TypeError) as exc:
            raise ClusterError(f"cannot start a LocalCluster with n_workers={n_workers}, "
                               f"threads_per_worker={threads_per_worker}, memory_limit={memory_limit!r}: "
                               f"{exc}. Fix the cluster: section") from exc
        with Client(cluster) as client:
            # The embedded cluster's workers log to this terminal: a user error raised in a
            # task is said once, by the CLI, not first as distributed's "Compute Failed".
            client.register_plugin(QuietUserErrors())
            yield client
    finally:
        if cluster is not None:
            cluster.close()


@contextlib.contextmanager
def _workers_ignore_sigint() -> Iterator[None]:
    """Start the LocalCluster with SIGINT blocked in the threads and processes it creates.

    A Ctrl-C in a terminal reaches the whole process group: each worker process would
    print its own ``KeyboardInterrupt`` traceback, though the parent tears them down
    anyway. A thread or process inherits the signal mask of the thread that creates it,
    and the cluster's event-loop thread (which spawns the nannies' worker processes, also
    any restarted later) is created here, so they keep SIGINT blocked. This thread gets a
    Ctrl-C pressed meanwhile as soon as its mask is restored.
    """
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no process groups to speak of
        yield
        return
    # multiprocessing's resource tracker, started on first use by whichever thread spawns
    # first, UNBLOCKs SIGINT in that thread after spawning itself; started here beforehand,
    # it leaves the event-loop thread's mask alone.
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def reach_remote(*, address: str, connect_timeout: float = 10.0, retries: int = 3,
                 **_: Any) -> Iterator[Any]:
    """The ``remote`` backend: connect to the running scheduler at ``address`` and yield the client.

    The peer must answer a Dask handshake within ``connect_timeout`` seconds; only an
    unreachable address is retried (``retries`` attempts in all, with backoff).
    """
    from distributed import Client
    from distributed.security import Security

    if not connect_timeout > 0:
        raise ClusterError(f"cluster.connect_timeout is {connect_timeout}: expected a number of seconds "
                           f"> 0 to wait for the scheduler at {address}. Set e.g. cluster.connect_timeout=10")
    # The same TLS settings (dask config distributed.comm.tls.*) the Client will use.
    connection_args = Security().get_connection_args("client")
    try:  # only "nothing accepted the connection" is retried: a peer that answered wrongly will again
        retry(lambda: _check_scheduler(address, connect_timeout, connection_args), attempts=retries,
              what=f"reaching the scheduler at {address}",
              transient=lambda exc: isinstance(exc, _Unreachable))
    except _Unreachable as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address} after {retries} "
                           f"attempts ({exc}): start it (dask scheduler) or fix cluster.address") from None
    try:
        # The peer answered the handshake as a scheduler just now, so this connect is bounded
        # in practice; distributed's own handshake read has no deadline of its own.
        client = Client(address, timeout=connect_timeout)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"the Dask scheduler at {address} answered, then the client could not "
                           f"connect within {connect_timeout:g}s ({exc}): check the scheduler's log, or "
                           "raise cluster.connect_timeout") from None
    with client:
        yield client


class _Unreachable(Exception):
    """Nothing accepted a connection at the address (worth retrying: it may be starting)."""


#: A Dask comm message starts with its length (8 bytes, native order); a scheduler's handshake
#: is well under a kilobyte, so a first message claiming more than this is not Dask talking.
_MAX_HANDSHAKE = 1 << 20


def _looks_like_dask(head: bytes | None) -> bool:
    return head is not None and len(head) == 8 and 0 < struct.unpack("Q", head)[0] <= _MAX_HANDSHAKE


def _sniff(host: str, port: int, timeout: float) -> bytes | None:
    """The first 8 bytes a TCP peer sends unprompted within ``timeout``.

    A Dask server writes its handshake as soon as it accepts, so a scheduler answers at
    once; ``None`` means the peer stayed silent, fewer than 8 bytes that it closed the
    connection. Raises ``_Unreachable`` when nothing accepts a connection within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    pause = 0.05
    while True:  # a scheduler still starting refuses connections: wait for it, up to the deadline
        try:
            sock = socket.create_connection((host, port), timeout=max(0.001, deadline - time.monotonic()))
            break
        except OSError as exc:
            if time.monotonic() + pause >= deadline:
                raise _Unreachable(exc.strerror or str(exc) or type(exc).__name__) from None
            time.sleep(pause)
            pause = min(2 * pause, 1.0)
    head = b""
    with sock:
        try:
            while len(head) < 8:
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = sock.recv(8 - len(head))
                if not chunk:
                    return head
                head += chunk
        except TimeoutError:
            return head or None
        except OSError:
            return head
    return head


def _answers_http(host: str, port: int, timeout: float) -> bool:
    """Whether the peer answers an HTTP request like a web server (for the error message)."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(b"GET / HTTP/1.0\r\nHost: " + host.encode() + b"\r\n\r\n")
        return sock.recv(5).startswith(b"HTTP/")
    return False


def _not_dask(address: str, host: str, port: int, head: bytes | None, timeout: float) -> ClusterError:
    fix = ("point cluster.address at the scheduler's port (8786 unless it was started with --port; "
           "its log says 'Scheduler at: tcp://...')")
    if (head or b"").startswith(b"HTTP") or (head is None and _answers_http(host, port, min(timeout, 1.0))):
        return ClusterError(f"the peer at {address} is not a Dask scheduler (it answered like HTTP?): "
                            f"{fix}, not a dashboard (8787) or another web server")
    if head is None:
        return ClusterError(f"the peer at {address} accepted the connection but sent no Dask handshake "
                            f"within {timeout:g}s (cluster.connect_timeout): expected a Dask scheduler, "
                            f"which answers at once. {fix[0].upper()}{fix[1:]}, or raise "
                            "cluster.connect_timeout if the scheduler is overloaded")
    if not head:
        return ClusterError(f"the peer at {address} closed the connection without a Dask handshake: "
                            f"expected a Dask scheduler. {fix[0].upper()}{fix[1:]}")
    return ClusterError(f"the peer at {address} is not a Dask scheduler (it answered {head!r}, not the "
                        f"Dask protocol): {fix}")


def check_address_form(address: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a scheduler address, or the error saying what is wrong with it.

    Looks at the address only (nothing is contacted), so ``daskflow validate`` checks it too.
    """
    from distributed.comm import parse_address, registry
    from distributed.comm.addressing import get_address_host_port

    scheme = address.split("://", 1)[0] if "://" in address else "tcp"
    if scheme == "inproc":
        raise ClusterError(f"cluster.address {address} is an inproc:// address, which names a scheduler "
                           "inside one process only: expected the scheduler's network address, e.g. "
                           "tcp://10.0.0.5:8786")
    try:
        registry.get_backend(scheme)
    except ValueError as exc:
        raise ClusterError(f"cluster.address {address} uses the {scheme}:// protocol, which this "
                           f"installation does not support ({exc}): expected tcp:// or tls://, or "
                           f"install the {scheme} backend of distributed") from None
    try:
        scheme, _ = parse_address(address)
        host, port = get_address_host_port(address)
    except ValueError as exc:
        raise ClusterError(f"cluster.address {address!r} is not a scheduler address ({exc}): expected "
                           "e.g. tcp://10.0.0.5:8786") from None
    return scheme, host, port


def _check_scheduler(address: str, timeout: float, connection_args: Mapping[str, Any]) -> None:
    """Check, within about ``timeout`` seconds whatever the peer does, that a scheduler answers.

    ``Client(address, timeout=...)`` alone is no bound: distributed reads the peer's
    handshake without a deadline, so a web server or a silent listener at the address
    hangs it forever, and bytes that are not Dask's are read as a (huge) message length.
    """
    scheme, host, port = check_address_form(address)
    if scheme == "tcp":
        head = _sniff(host, port, timeout)
        if not _looks_like_dask(head):
            raise _not_dask(address, host, port, head, timeout)
    elif scheme == "tls" and connection_args.get("ssl_context") is None:
        raise _tls_mismatch(address, host, port, timeout) or ClusterError(
            f"cluster.address {address} asks for TLS, but no TLS certificate is configured: set dask's "
            "distributed.comm.tls.ca-file, .client.cert and .client.key (e.g. the environment variable "
            "DASK_DISTRIBUTED__COMM__TLS__CA_FILE), or use a tcp:// address")
    identity = _identity(address, host, port, timeout, connection_args)
    if identity.get("type") != "Scheduler":
        raise ClusterError(f"the peer at {address} is a Dask {identity.get('type', 'server')}, not a "
                           "scheduler: point cluster.address at the scheduler (its log says "
                           "'Scheduler at: tcp://...')")


def _tls_mismatch(address: str, host: str, port: int, timeout: float) -> ClusterError | None:
    """The error for a tls:// address whose peer speaks Dask in plain TCP, if it does."""
    with contextlib.suppress(_Unreachable):
        if _looks_like_dask(_sniff(host, port, min(timeout, 2.0))):
            return ClusterError(f"cluster.address {address} asks for TLS, but the scheduler at {host}:{port} "
                                f"speaks plain TCP: use tcp://{host}:{port}")
    return None


def _identity(address: str, host: str, port: int, timeout: float,
              connection_args: Mapping[str, Any]) -> dict[str, Any]:
    """The peer's answer to Dask's ``identity`` call, within ``timeout`` seconds.

    Runs in a thread with its own event loop (the caller may be inside one), under
    ``asyncio.wait_for`` and, as a second guard, a bounded ``join``.
    """
    from distributed.core import rpc

    async def ask() -> dict[str, Any]:
        async with rpc(address, timeout=timeout, connection_args=dict(connection_args)) as remote:
            return await remote.identity()

    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            # A little over distributed's own connect deadline, so that a peer where nothing
            # listens fails as unreachable (retried), not as a stalled handshake.
            outcome["identity"] = asyncio.run(asyncio.wait_for(ask(), timeout + 0.5))
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="daskflow-scheduler-check", daemon=True)
    thread.start()
    thread.join(timeout + 5.0)
    error = outcome.get("error")
    if "identity" in outcome and isinstance(outcome["identity"], dict):
        return outcome["identity"]
    if isinstance(error, OSError) and "Timed out trying to connect" in str(error):
        cause = error.__cause__ or error
        raise _Unreachable(str(cause) or type(cause).__name__)
    if address.startswith("tls://"):
        mismatch = _tls_mismatch(address, host, port, timeout)
        if mismatch is not None:
            raise mismatch
    if error is None or isinstance(error, TimeoutError):
        raise ClusterError(f"the peer at {address} accepted the connection but did not complete the Dask "
                           f"handshake within {timeout:g}s (cluster.connect_timeout): expected a Dask "
                           "scheduler. Check cluster.address (scheme and port), or raise "
                           "cluster.connect_timeout if the scheduler is overloaded")
    if isinstance(error, OSError | ValueError | TypeError | EOFError):
        raise ClusterError(f"the peer at {address} did not answer as a Dask scheduler ({error}): check "
                           "cluster.address (scheme, host and port) and the scheduler's TLS settings")
    raise error


@contextlib.contextmanager
def start_kubernetes(*, kubernetes: Mapping[str, Any] | None = None, **_: Any) -> Iterator[Any]:
    """The ``kubernetes`` backend: create a DaskCluster, yield its client, delete the cluster.

    ``kubernetes`` holds the keywords of :func:`render_manifest` plus ``api_timeout`` and
    ``api_retries`` (of :func:`check_api`) and ``startup_timeout`` (of
    :func:`start_kubecluster`); a setting left out takes that function's default.
    """
    from distributed import Client

    settings = dict(kubernetes or {})
    # Validated before anything is sent: a bad value never reaches the API server.
    manifest = k8s.build_manifest(**settings)
    name = manifest["metadata"]["name"]
    namespace = k8s.check_api(name=name, namespace=settings.get("namespace"),
                              **_given(settings, "api_timeout", "api_retries"))
    manifest["metadata"]["namespace"] = namespace
    log.info("creating DaskCluster %s in namespace %s (%d workers, image %s)", name, namespace,
             manifest["spec"]["worker"].get("replicas", 1),
             manifest["spec"]["worker"]["spec"]["containers"][0]["image"])
    cluster = k8s.start_kubecluster(manifest, namespace=namespace, **_given(settings, "startup_timeout"))
    try:
        with Client(cluster) as client:
            yield client
    finally:
        # Deleted whatever happened inside: a cluster left behind keeps its nodes busy.
        if k8s.stop_kubecluster(cluster):
            log.info("deleted DaskCluster %s in namespace %s", name, namespace)


def _given(settings: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """The ``keys`` present in ``settings``: one left out takes the called function's default."""
    return {key: settings[key] for key in keys if key in settings}


#: kind -> context manager factory taking the cluster settings as keywords.
BACKENDS: dict[str, Callable[..., contextlib.AbstractContextManager[Any]]] = {
    "local": start_local,
    "remote": reach_remote,
    "kubernetes": start_kubernetes,
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
    from daskflow.cluster._quiet import quiet_abandoned_gathers

    quiet_abandoned_gathers()
    with BACKENDS[kind](**settings) as client:
        yield client


def dashboard_link(client: Any) -> str | None:
    """The dashboard URL of ``client``'s scheduler (it may not be on port 8787)."""
    with contextlib.suppress(Exception):
        return client.dashboard_link
    return None

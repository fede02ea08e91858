"""Dask clusters on Kubernetes through the dask-kubernetes operator.

Three steps, each usable on its own:

1. :func:`render_manifest` turns plain settings into a ``DaskCluster`` resource;
2. :func:`validate_manifest` checks it against the CRD schema that the installed
   dask-kubernetes package ships (no cluster needed), so a bad value is an error naming
   its path in the manifest before anything is sent;
3. :func:`check_api` and :func:`start_kubecluster` reach the Kubernetes API (bounded
   retries with backoff) and create the cluster through ``KubeCluster``, deleting it
   again when its start fails or times out.

dask-kubernetes (and kr8s, its Kubernetes client) are imported lazily: they are the
``k8s`` extra.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import importlib.resources
import inspect
import json
import logging
import os
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import yaml

from daskflow._errors import ClusterError, ManifestError
from daskflow._retry import retry

__all__ = ["ManifestError", "default_image", "render_manifest", "validate_manifest", "manifest_to_yaml",
           "build_manifest", "check_api", "start_kubecluster"]

log = logging.getLogger("daskflow")

API_GROUP = "kubernetes.dask.org"
API_VERSION = f"{API_GROUP}/v1"
#: The fully expanded CRD (the one the operator's Helm chart installs), inside the package.
CRD_FILE = "operator/deployment/helm/dask-kubernetes-operator/crds/daskcluster.yaml"
INSTALL_HINT = "install the Kubernetes extra: pip install 'daskflow[k8s]'"
OPERATOR_HINT = ("install the operator: helm repo add dask https://helm.dask.org && helm install "
                 "--create-namespace -n dask-operator --generate-name dask/dask-kubernetes-operator "
                 "(see docs/kubernetes.md)")
#: cluster.kubernetes settings that steer the connection rather than the manifest.
CONNECTION_SETTINGS = ("api_timeout", "api_retries", "startup_timeout")
#: RFC 1123 label, at most 53 characters: the scheduler Service is "<name>-scheduler" (63 at most).
NAME_PATTERN = r"^(?=.{1,53}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
NAMESPACE_PATTERN = r"^(?=.{1,63}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def _operator() -> Any:
    try:
        import dask_kubernetes.operator as operator
    except ImportError as exc:
        raise ClusterError(f"Kubernetes clusters need the dask-kubernetes package ({exc}): "
                           f"{INSTALL_HINT}") from exc
    return operator


# -- rendering ------------------------------------------------------------------------------


def default_image() -> str:
    """The official Dask image matching this process's dask and Python versions.

    The client, the scheduler and the workers must run the same dask and distributed
    (tasks and graphs are pickled between them), and the same Python minor version.

    Examples
    --------
    >>> default_image()  # doctest: +SKIP
    'ghcr.io/dask/dask:2026.8.0-py3.11'
    """
    import dask

    version = dask.__version__.split("+")[0]
    return f"ghcr.io/dask/dask:{version}-py{sys.version_info.major}.{sys.version_info.minor}"


def render_manifest(*, name: str = "daskflow", namespace: str | None = None, image: str | None = None,
                    n_workers: int = 2, worker_cores: int = 1, worker_memory: str | int = "4GiB",
                    scheduler_service_type: str = "ClusterIP", env: Mapping[str, Any] | None = None,
                    env_from_secrets: Iterable[str] = (), extra_pip_packages: Iterable[str] = (),
                    idle_timeout: int = 0) -> dict[str, Any]:
    """Render the ``DaskCluster`` resource of the dask-kubernetes operator.

    The worker container gets ``worker_cores`` CPUs and ``worker_memory`` as both requests
    and limits, and matching ``--nthreads`` / ``--memory-limit`` arguments, so Dask spills
    and pauses before Kubernetes would kill the pod. The result is not validated: pass it
    to :func:`validate_manifest`.

    Parameters
    ----------
    name
        The DaskCluster name (its scheduler Service is ``<name>-scheduler``).
    namespace
        Written into ``metadata.namespace`` when given; otherwise the namespace of the
        current kubeconfig context applies.
    image
        Scheduler and worker image; default :func:`default_image`.
    n_workers, worker_cores, worker_memory
        Worker replicas, CPUs and memory (a size such as ``"4GiB"``) per worker.
    scheduler_service_type
        ``ClusterIP``, ``NodePort`` or ``LoadBalancer``.
    env
        Environment variables of the scheduler and workers.
    env_from_secrets
        Kubernetes Secrets whose keys become environment variables (storage credentials).
    extra_pip_packages
        Installed by the official image's entrypoint at start (``EXTRA_PIP_PACKAGES``).
    idle_timeout
        Seconds without work after which the operator deletes the cluster; 0 never.

    Raises
    ------
    ManifestError
        ``worker_memory`` is not a size or ``worker_cores`` not a positive integer.

    Examples
    --------
    >>> manifest = render_manifest(name="demo", n_workers=3, worker_memory="8GiB")  # doctest: +SKIP
    >>> manifest["spec"]["worker"]["replicas"]  # doctest: +SKIP
    3
    """
    operator = _operator()
    memory = _memory_bytes(worker_memory)
    if isinstance(worker_cores, bool) or not isinstance(worker_cores, int) or worker_cores < 1:
        # Written as a CPU quantity string, which the CRD cannot check.
        raise ManifestError(f"worker_cores {worker_cores!r} is not a CPU count: expected an integer >= 1")
    variables = {str(key): _env_value(value) for key, value in (env or {}).items()}
    packages = list(extra_pip_packages)
    if packages:
        variables["EXTRA_PIP_PACKAGES"] = " ".join(packages)
    # `dask worker`, not make_cluster_spec's default `dask-worker`: distributed no longer
    # ships the dask-worker / dask-scheduler console scripts, only the `dask` command.
    worker_command = ["dask", "worker", "--nthreads", str(worker_cores), "--memory-limit", str(memory)]
    manifest = operator.make_cluster_spec(name=name, image=image or default_image(), n_workers=n_workers,
                                          env=variables or None, worker_command=worker_command,
                                          scheduler_service_type=scheduler_service_type,
                                          idle_timeout=idle_timeout)
    manifest["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "daskflow"}
    if namespace:
        manifest["metadata"]["namespace"] = namespace
    spec = manifest["spec"]
    scheduler = spec["scheduler"]["spec"]["containers"][0]
    scheduler["args"] = ["dask", "scheduler", *scheduler["args"][1:]]
    worker = spec["worker"]["spec"]["containers"][0]
    # Quantities are strings in this CRD (an integer would be rejected by the API server).
    quantities = {"cpu": str(worker_cores), "memory": _quantity(memory)}
    worker["resources"] = {"requests": dict(quantities), "limits": dict(quantities)}
    secrets = [{"secretRef": {"name": secret}} for secret in env_from_secrets]
    if secrets:
        scheduler["envFrom"] = copy.deepcopy(secrets)
        worker["envFrom"] = secrets
    return _prune_nulls(manifest)


def build_manifest(**settings: Any) -> dict[str, Any]:
    """Render and validate the manifest for the ``cluster.kubernetes`` settings.

    The keywords are those of :func:`render_manifest`; the connection settings
    (``api_timeout``, ``api_retries``, ``startup_timeout``) are accepted and ignored.

    Raises
    ------
    ManifestError
        An unknown setting, or a manifest the CRD rejects.
    """
    rendered = {k: v for k, v in settings.items() if k not in CONNECTION_SETTINGS}
    allowed = list(inspect.signature(render_manifest).parameters)
    unknown = sorted(set(rendered) - set(allowed))
    if unknown:
        raise ManifestError(f"unknown Kubernetes setting(s) {', '.join(unknown)}: expected some of "
                            f"{', '.join([*allowed, *CONNECTION_SETTINGS])}")
    return validate_manifest(render_manifest(**rendered))


def manifest_to_yaml(manifest: Mapping[str, Any]) -> str:
    """The manifest as YAML that ``kubectl apply -f`` accepts."""
    return yaml.safe_dump(_plain(manifest), sort_keys=False, default_flow_style=False)


def _memory_bytes(value: str | int) -> int:
    from dask.utils import parse_bytes

    try:
        memory = parse_bytes(value) if not isinstance(value, bool) else -1
    except (ValueError, TypeError):
        memory = -1
    if memory <= 0:
        raise ManifestError(f"worker_memory {value!r} is not a size: expected a positive size such as "
                            "'4GiB' or '512MiB'")
    return memory


def _quantity(n_bytes: int) -> str:
    """Bytes as the shortest exact Kubernetes quantity: 8GiB -> '8Gi', 4GB -> '4G'."""
    units = (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10),
             ("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3))
    exact = [f"{n_bytes // size}{unit}" for unit, size in units if n_bytes % size == 0]
    return min(exact, key=len, default=str(n_bytes))


def _env_value(value: Any) -> str:
    if isinstance(value, bool):  # YAML true -> "true", as a shell would spell it
        return str(value).lower()
    return str(value)


def _prune_nulls(value: Any) -> Any:
    # The API server drops null fields the schema does not mark nullable before validating
    # (make_cluster_spec writes env: null and resources: null when unset).
    if isinstance(value, dict):
        return {k: _prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune_nulls(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# -- validation against the CRD -------------------------------------------------------------


def validate_manifest(manifest: Any) -> dict[str, Any]:
    """Check a DaskCluster manifest against the CRD shipped with dask-kubernetes.

    The check mirrors what the API server does: null fields are dropped first, types,
    required fields and ``int32`` ranges are enforced, list-map keys must be unique. It is
    stricter on one point: an unknown field is an error (the API server would silently
    drop it, losing a setting).

    Parameters
    ----------
    manifest
        A mapping as :func:`render_manifest` returns it or as read from YAML.

    Returns
    -------
    dict
        The manifest with null fields dropped.

    Raises
    ------
    ManifestError
        Listing every problem with its path in the manifest (e.g. ``spec.worker.replicas``),
        what the CRD expects and what was given.

    Examples
    --------
    >>> validate_manifest(render_manifest(name="demo"))  # doctest: +SKIP
    """
    if not isinstance(manifest, Mapping):
        raise ManifestError(f"a DaskCluster manifest must be a mapping, got {type(manifest).__name__}")
    document = _prune_nulls(_plain(manifest))
    validator = _crd_validator()
    errors = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        # dict.fromkeys: jsonschema reports `required` once per missing field, each naming all.
        problems = list(dict.fromkeys(line for error in errors for line in _describe(error)))
        from importlib.metadata import version

        header = (f"invalid DaskCluster manifest ({len(problems)} problem{'s' if len(problems) > 1 else ''}"
                  f", checked against the CRD of dask-kubernetes {version('dask-kubernetes')}):")
        footer = ("nothing was sent to Kubernetes: fix the cluster.kubernetes settings (or the manifest) "
                  "and check again with `daskflow k8s manifest CONFIG`")
        raise ManifestError("\n  ".join([header, *problems, footer]))
    return document


@functools.lru_cache(maxsize=1)
def _crd_validator() -> Any:
    import jsonschema

    _operator()
    source = importlib.resources.files("dask_kubernetes").joinpath(CRD_FILE)
    try:
        crd = yaml.load(source.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        version = next(v for v in crd["spec"]["versions"] if f"{API_GROUP}/{v['name']}" == API_VERSION)
        openapi = version["schema"]["openAPIV3Schema"]
    except (OSError, yaml.YAMLError, KeyError, TypeError, StopIteration) as exc:
        raise ClusterError(f"cannot read the DaskCluster CRD at dask_kubernetes/{CRD_FILE} ({exc!r}): "
                           "reinstall dask-kubernetes (pip install 'daskflow[k8s]')") from exc
    schema = _json_schema(openapi)
    # apiVersion, kind and metadata are implicit in a CRD's schema; spell them out.
    schema["properties"].update({
        "apiVersion": {"enum": [API_VERSION]},
        "kind": {"enum": [crd["spec"]["names"]["kind"]]},
        "metadata": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "pattern": NAME_PATTERN},
            "namespace": {"type": "string", "pattern": NAMESPACE_PATTERN},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        }},
    })
    schema["required"] = sorted({*schema.get("required", ()), "apiVersion", "kind", "metadata"})
    schema["additionalProperties"] = False
    checker = jsonschema.FormatChecker(formats=())
    for name, bits in (("int32", 32), ("int64", 64)):
        checker.checks(name)(functools.partial(_fits, bits=bits))
    # OpenAPI v3.0 schemas follow draft 4 (boolean exclusiveMinimum, 1.0 is not an integer).
    cls = jsonschema.validators.extend(jsonschema.Draft4Validator,
                                       validators={"x-kubernetes-list-type": _list_type})
    return cls(schema, format_checker=checker)


def _json_schema(node: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAPI v3 structural schema as JSON Schema, with Kubernetes' extensions applied.

    - ``x-kubernetes-int-or-string``: an integer or a string. (This CRD instead spells such
      fields ``type: string, format: int-or-string``; the API server then enforces the
      string, see dask/dask-kubernetes#778, and so does this check.)
    - ``nullable``: null is allowed (other nulls were pruned before validation).
    - ``x-kubernetes-preserve-unknown-fields``: unknown fields allowed; otherwise an object
      with declared properties is closed.
    - ``x-kubernetes-embedded-resource``: apiVersion, kind and metadata are allowed.
    - ``x-kubernetes-list-type`` (map/set): uniqueness, checked by :func:`_list_type`;
      ``x-kubernetes-map-type`` and the ``atomic`` list type only steer merges.
    """
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _json_schema(child) for name, child in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, Mapping):
            out[key] = _json_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [_json_schema(child) for child in value]
        elif key not in ("nullable", "x-kubernetes-int-or-string"):
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("nullable") and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"]
    if node.get("x-kubernetes-embedded-resource"):
        out.setdefault("properties", {}).update(
            {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}})
    if ("properties" in out and "additionalProperties" not in out
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def _fits(value: Any, *, bits: int) -> bool:
    if not isinstance(value, int) or isinstance(value, bool):
        return True  # the type check reports non-integers
    return -(2 ** (bits - 1)) <= value < 2 ** (bits - 1)


def _list_type(validator: Any, list_type: str, instance: Any, schema: Mapping[str, Any]) -> Iterator[Any]:
    from jsonschema import ValidationError

    if not isinstance(instance, list) or list_type not in ("map", "set"):
        return
    seen: dict[str, int] = {}
    keys = schema.get("x-kubernetes-list-map-keys", [])
    item_fields = schema.get("items", {}).get("properties", {})
    for index, item in enumerate(instance):
        if list_type == "map":
            if not isinstance(item, dict):
                continue  # the items' type check reports it
            # Missing keys take their schema default (protocol: TCP), as the API server does.
            identity = {k: item.get(k, item_fields.get(k, {}).get("default")) for k in keys}
        else:
            identity = item
        marker = json.dumps(identity, sort_keys=True)
        if marker in seen:
            what = f"with {', '.join(f'{k}={v!r}' for k, v in identity.items())}" if list_type == "map" \
                else repr(item)
            yield ValidationError(f"duplicate entry {what} (same as entry [{seen[marker]}]); the CRD keys "
                                  f"this list by {', '.join(keys) or 'value'}", path=[index])
        else:
            seen[marker] = index


_TYPE_NAMES = {"integer": "an integer", "string": "a string", "object": "a mapping", "array": "a list",
               "boolean": "a boolean (true/false)", "number": "a number", "null": "null"}


def _describe(error: Any) -> list[str]:
    """One line per problem: path in the manifest, what the CRD expects, what was given."""
    path = _json_path(error.absolute_path)
    kind, instance, schema = error.validator, error.instance, error.schema
    if kind == "required":
        missing = [f for f in error.validator_value if isinstance(instance, dict) and f not in instance]
        return [f"{_join(path, field)}: missing; the CRD requires it" for field in missing]
    if kind == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        shown = ", ".join(allowed[:12]) + (", ..." if len(allowed) > 12 else "")
        return [f"{_join(path, field)}: unknown field (the API server would drop it); allowed here: {shown}"
                for field in instance if field not in allowed]
    if kind == "type":
        types = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        expected = " or ".join(_TYPE_NAMES.get(t, t) for t in types)
        hint = ""
        if schema.get("format") == "int-or-string":
            hint = ("; this CRD declares int-or-string fields as strings, so quote the number or use the "
                    "port's name (dask/dask-kubernetes#778)")
        elif path.startswith("spec.") and ".resources." in path:
            hint = "; quantities are strings here, e.g. '2' or '4Gi'"
        return [f"{path}: expected {expected}, got {instance!r}{hint}"]
    if kind == "enum":
        return [f"{path}: expected {' or '.join(map(repr, error.validator_value))}, got {instance!r}"]
    if kind == "pattern" and path in ("metadata.name", "metadata.namespace"):
        limit = 53 if path == "metadata.name" else 63
        return [f"{path}: {instance!r} is not a valid name: expected lowercase letters, digits and '-', "
                f"starting and ending with a letter or digit, at most {limit} characters"]
    if kind == "format":
        return [f"{path}: {instance!r} is out of range for {error.validator_value}"]
    return [f"{path}: {error.message}"]


def _json_path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<manifest>"


def _join(path: str, field: str) -> str:
    return field if path == "<manifest>" else f"{path}.{field}"


# -- the Kubernetes API ---------------------------------------------------------------------

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _run(coroutine: Any, timeout: float) -> Any:
    """Run ``coroutine`` on daskflow's Kubernetes API event loop, for at most ``timeout`` s.

    kr8s caches its API clients per (thread, event loop); one long-lived loop keeps that
    cache valid, where a fresh ``asyncio.run`` per call could meet a cached client bound to
    an earlier, closed loop.
    """
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="daskflow-kubernetes-api", daemon=True).start()
    return asyncio.run_coroutine_threadsafe(asyncio.wait_for(coroutine, timeout), _loop).result()


def _kubeconfig() -> str | None:
    # Passed to kr8s explicitly so that its client cache follows a changed KUBECONFIG.
    return os.environ.get("KUBECONFIG") or None


def _api_source() -> str:
    """Where the credentials come from, and the API server they name (for messages)."""
    path = _kubeconfig()
    if path is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "the in-cluster service account"
    source = f"KUBECONFIG={path}" if path else "~/.kube/config"
    server = None
    try:
        files = [os.path.expanduser(p) for p in (path or "~/.kube/config").split(os.pathsep) if p]
        existing = [f for f in files if os.path.exists(f)]
        if not existing:
            return f"{source}, which does not exist"
        with open(existing[0]) as stream:
            config = yaml.safe_load(stream) or {}
        context = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
        server = next(c["cluster"]["server"] for c in config["clusters"] if c["name"] == context["cluster"])
    except Exception:  # only decorates a message: an unreadable kubeconfig is reported by kr8s
        pass
    return f"{server} (from {source})" if server else source


def check_api(*, name: str, namespace: str | None = None, api_timeout: float = 10.0,
              api_retries: int = 3) -> str:
    """Reach the Kubernetes API and check a DaskCluster ``name`` can be created there.

    Connection failures and timeouts are retried ``api_retries`` times in all, with backoff;
    missing credentials, refused credentials, a missing operator or an existing cluster of
    that name fail at once.

    Returns
    -------
    str
        The namespace to create the cluster in (``namespace``, or the kubeconfig context's).

    Raises
    ------
    ClusterError
        With what was tried and how to fix it.
    """
    import httpx
    import kr8s

    unreachable = (TimeoutError, OSError, httpx.TransportError, kr8s.APITimeoutError, kr8s.ServerError)

    def transient(exc: Exception) -> bool:  # no answer, or the server's own 5xx trouble
        return isinstance(exc, unreachable) and not (isinstance(exc, kr8s.ServerError) and _status(exc) < 500)

    try:
        return retry(lambda: _run(_probe(name, namespace), api_timeout), attempts=api_retries,
                     transient=transient, what="reaching the Kubernetes API")
    except ClusterError:
        raise
    except unreachable as exc:
        if isinstance(exc, kr8s.ServerError) and _status(exc) < 500:
            raise _refused(exc, namespace) from exc
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else f"no answer within {api_timeout:g} s"
        raise ClusterError(f"cannot reach the Kubernetes API at {_api_source()} after {api_retries} "
                           f"attempt{'s' if api_retries > 1 else ''} ({reason}): check that "
                           "`kubectl get nodes` works with the same KUBECONFIG, or raise "
                           "cluster.kubernetes.api_timeout / api_retries") from exc
    except Exception as exc:  # kr8s found no usable credentials, or a malformed kubeconfig
        raise ClusterError(f"no usable Kubernetes credentials ({type(exc).__name__}: {exc}; looked in "
                           f"{_api_source()}): point KUBECONFIG at your cluster's kubeconfig, "
                           "or run daskflow in a pod with a service account") from exc


async def _probe(name: str, namespace: str | None) -> str:
    import kr8s
    import kr8s.asyncio

    api = await kr8s.asyncio.api(kubeconfig=_kubeconfig())
    namespace = namespace or api.namespace
    where = dict(version=API_VERSION, base="/apis", namespace=namespace)
    try:
        async with api.call_api("GET", url="daskclusters", params={"limit": "1"}, **where):
            pass
    except kr8s.ServerError as exc:
        if _status(exc) == 404:
            raise ClusterError(f"the Kubernetes API at {_api_source()} does not know DaskCluster resources "
                               f"({API_VERSION}): the dask-kubernetes operator is not installed; "
                               f"{OPERATOR_HINT}") from exc
        raise
    try:
        async with api.call_api("GET", url=f"daskclusters/{name}", **where):
            pass
    except kr8s.ServerError as exc:
        if _status(exc) == 404:
            return namespace
        raise
    raise ClusterError(f"a DaskCluster named {name!r} already exists in namespace {namespace!r}: delete it "
                       f"(kubectl delete daskcluster {name} -n {namespace}) or choose another "
                       "cluster.kubernetes.name")


def _status(exc: Any) -> int:
    response = getattr(exc, "response", None)
    return int(getattr(response, "status_code", 0) or 0)


def _refused(exc: Any, namespace: str | None) -> ClusterError:
    status = _status(exc)
    where = f"namespace {namespace!r}" if namespace else "the context's namespace"
    if status in (401, 403):
        return ClusterError(f"the Kubernetes API at {_api_source()} refused the request ({status}: {exc}): "
                            "check the kubeconfig's credentials; the user needs to get, list, create and "
                            f"delete daskclusters.{API_GROUP} in {where}")
    return ClusterError(f"the Kubernetes API at {_api_source()} rejected the request ({status}: {exc})")


# -- KubeCluster lifecycle -------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _tracked_kubecluster() -> Any:
    KubeCluster = _operator().KubeCluster  # noqa: N806

    class DaskflowKubeCluster(KubeCluster):  # type: ignore[misc, valid-type]
        """A KubeCluster that hands itself out before it starts.

        Its constructor blocks until the scheduler is up; keeping hold of the object lets
        a failed or timed-out start still be closed (which deletes the DaskCluster).
        """

        def __init__(self, *, on_created: Any, **kwargs: Any) -> None:
            on_created(self)
            super().__init__(**kwargs)

    return DaskflowKubeCluster


def start_kubecluster(manifest: Mapping[str, Any], *, namespace: str, startup_timeout: float = 300.0) -> Any:
    """Create the DaskCluster through ``KubeCluster`` and wait for its scheduler.

    The start is abandoned after ``startup_timeout`` seconds (KubeCluster itself would
    wait for a pod that cannot be scheduled or pulled forever); whatever the failure, a
    cluster this call created is deleted again.

    Raises
    ------
    ClusterError
        The operator did not act, the scheduler did not become ready, or the API refused.
    """
    from dask_kubernetes.operator.kubecluster.kubecluster import CreateMode

    name = manifest["metadata"]["name"]
    created: list[Any] = []
    outcome: dict[str, Any] = {}

    def start() -> None:
        try:
            outcome["cluster"] = _tracked_kubecluster()(
                on_created=created.append, custom_cluster_spec=copy.deepcopy(dict(manifest)),
                namespace=namespace, create_mode=CreateMode.CREATE_ONLY, resource_timeout=startup_timeout,
                quiet=True)
        except BaseException as exc:  # handed to the calling thread
            outcome["error"] = exc

    thread = threading.Thread(target=start, name=f"daskflow-kubecluster-{name}", daemon=True)
    thread.start()
    thread.join(startup_timeout)
    if thread.is_alive():
        thread.join(2.0)  # KubeCluster's own timeout (same length) may be raising right now
    if "cluster" in outcome:
        return outcome["cluster"]
    error = outcome.get("error")
    pod_state = None
    if error is None:  # still waiting: find out why, then stop the wait
        pod_state = _run_quietly(_scheduler_pod_state(name, namespace), 5.0)
        if created:
            _cancel_start(created[0])
            thread.join(2.0)
    if isinstance(error, ValueError) and "already exists" in str(error) and created:
        created[0].shutdown_on_close = False  # not ours: never delete it
    deleted = stop_kubecluster(created[0], timeout=60.0) if created else False
    fate = "it was deleted" if deleted else \
        f"delete it with: kubectl delete daskcluster {name} -n {namespace}"
    if error is None:
        state = f" (scheduler pod: {pod_state})" if pod_state else ""
        raise ClusterError(f"the Dask scheduler of DaskCluster {name!r} in namespace {namespace!r} was not "
                           f"ready within {startup_timeout:g} s{state}; {fate}. Usual causes: an image that "
                           "cannot be pulled (cluster.kubernetes.image), resource requests no node can "
                           "satisfy, or a slow image pull (raise cluster.kubernetes.startup_timeout)")
    if isinstance(error, TimeoutError) and "not actioned" in str(error):
        raise ClusterError(f"the dask-kubernetes operator did not act on DaskCluster {name!r} in namespace "
                           f"{namespace!r} within {startup_timeout:g} s; {fate}. Is the operator running "
                           f"(kubectl get pods -n dask-operator)? Otherwise {OPERATOR_HINT}") from error
    raise ClusterError(f"cannot start DaskCluster {name!r} in namespace {namespace!r} "
                       f"({type(error).__name__}: {error}); {fate}") from error


def stop_kubecluster(cluster: Any, *, timeout: float = 60.0) -> bool:
    """Close a KubeCluster, which deletes its DaskCluster; never raises.

    Returns
    -------
    bool
        Whether the close went through (False: the cluster may still exist).
    """
    from distributed.core import Status

    if getattr(cluster, "status", None) == Status.closed:
        return True  # KubeCluster closed (and deleted) it itself, e.g. after its own timeout
    try:
        cluster.close(timeout=timeout)
        return True
    except Exception as exc:
        log.error("could not delete DaskCluster %r in namespace %r (%s: %s): delete it with: kubectl delete "
                  "daskcluster %s -n %s", getattr(cluster, "name", "?"), getattr(cluster, "namespace", "?"),
                  type(exc).__name__, exc, getattr(cluster, "name", "<name>"),
                  getattr(cluster, "namespace", "<namespace>"))
        return False


def _cancel_start(cluster: Any) -> None:
    """Stop a KubeCluster's start, which would otherwise poll for its scheduler pod forever.

    Only the start's own task is cancelled (found by its coroutine, ``KubeCluster._start``):
    the cluster's event loop also runs the task that keeps the loop alive, and the close
    that follows needs it. Should the name ever change, nothing is cancelled and the wait
    merely polls on in the background.
    """

    async def cancel_the_start() -> None:
        for task in asyncio.all_tasks():
            if getattr(task.get_coro(), "__qualname__", "").endswith("KubeCluster._start"):
                task.cancel()

    try:
        cluster.sync(cancel_the_start, callback_timeout=5)
    except Exception as exc:  # the close that follows still deletes the cluster
        log.debug("could not cancel the start of %r: %s", getattr(cluster, "name", "?"), exc)


def _run_quietly(coroutine: Any, timeout: float) -> Any:
    try:
        return _run(coroutine, timeout)
    except Exception:  # diagnostics only
        return None


async def _scheduler_pod_state(name: str, namespace: str) -> str | None:
    """Phase and waiting reason of the scheduler pod, e.g. 'Pending, ImagePullBackOff: ...'."""
    import kr8s.asyncio

    api = await kr8s.asyncio.api(kubeconfig=_kubeconfig())
    selector = f"dask.org/cluster-name={name},dask.org/component=scheduler"
    async with api.call_api("GET", version="v1", namespace=namespace, url="pods",
                            params={"labelSelector": selector}) as response:
        pods = response.json().get("items", [])
    if not pods:
        return "none created"
    status = pods[0].get("status", {})
    details = [status.get("phase", "unknown phase")]
    for container in status.get("containerStatuses", []):
        waiting = container.get("state", {}).get("waiting")
        if waiting:
            details.append(f"{waiting.get('reason', 'waiting')}: {waiting.get('message', '')}".rstrip(": "))
    for condition in status.get("conditions", []):
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            details.append(f"not scheduled: {condition.get('message', '')}".rstrip(": "))
    return ", ".join(details)

"""Kubernetes clusters: the DaskCluster manifest, its check against the operator's CRD, the API.

No Kubernetes cluster is needed. The manifest is checked against the CRD file that the
installed dask-kubernetes ships. The API side runs against ``FakeKubernetes``: a small HTTP
server on 127.0.0.1 speaking the part of the Kubernetes API that kr8s and KubeCluster use,
with a stand-in operator that, on request, marks the cluster running and points its
scheduler Service at a real, separately started ``dask scheduler``.
"""

from __future__ import annotations

import copy
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

pytest.importorskip("dask_kubernetes", reason="the k8s extra is not installed (pip install -e '.[dev]')")

import dask  # noqa: E402

from daskflow import ClusterError, ConfigError  # noqa: E402
from daskflow.cluster import (  # noqa: E402
    ManifestError,
    build_manifest,
    connect,
    dashboard_link,
    default_image,
    manifest_to_yaml,
    render_manifest,
    validate_manifest,
)
from daskflow.cluster._kubernetes import _json_schema  # noqa: E402
from daskflow.config import load_config  # noqa: E402

from ..conftest import free_port  # noqa: E402

ROOT = Path(__file__).parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
CLUSTERS = "/apis/kubernetes.dask.org/v1/namespaces/team/daskclusters"


# -- rendering --------------------------------------------------------------------------------


def test_rendered_manifest_validates_against_the_shipped_crd() -> None:
    manifest = render_manifest(name="nightly", namespace="team", image="registry.example/dask:1",
                               n_workers=3, worker_cores=2, worker_memory="8GiB",
                               scheduler_service_type="LoadBalancer", env={"OMP_NUM_THREADS": 1},
                               env_from_secrets=["s3-credentials"], extra_pip_packages=["s3fs", "daskflow"],
                               idle_timeout=600)
    assert validate_manifest(manifest) == manifest
    assert manifest["apiVersion"] == "kubernetes.dask.org/v1" and manifest["kind"] == "DaskCluster"
    assert manifest["metadata"]["name"] == "nightly" and manifest["metadata"]["namespace"] == "team"
    spec = manifest["spec"]
    assert spec["idleTimeout"] == 600 and spec["worker"]["replicas"] == 3
    assert spec["scheduler"]["service"]["type"] == "LoadBalancer"
    worker = spec["worker"]["spec"]["containers"][0]
    scheduler = spec["scheduler"]["spec"]["containers"][0]
    assert worker["image"] == scheduler["image"] == "registry.example/dask:1"
    # Requests and limits agree with what the worker process is told.
    assert worker["resources"] == {"requests": {"cpu": "2", "memory": "8Gi"},
                                   "limits": {"cpu": "2", "memory": "8Gi"}}
    assert worker["args"][:6] == ["dask", "worker", "--nthreads", "2", "--memory-limit", str(8 * 2**30)]
    assert scheduler["args"][:2] == ["dask", "scheduler"]
    for container in (worker, scheduler):
        assert {"name": "EXTRA_PIP_PACKAGES", "value": "s3fs daskflow"} in container["env"]
        assert {"name": "OMP_NUM_THREADS", "value": "1"} in container["env"]
        assert container["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]


def test_defaults_render_a_valid_manifest_with_the_matching_image() -> None:
    manifest = build_manifest()
    version = dask.__version__.split("+")[0]
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert default_image() == f"ghcr.io/dask/dask:{version}-py{python}"
    worker = manifest["spec"]["worker"]["spec"]["containers"][0]
    assert worker["image"] == default_image()
    assert "env" not in worker and "namespace" not in manifest["metadata"]  # nulls are not written
    assert manifest["spec"]["worker"]["replicas"] == 2


@pytest.mark.parametrize("memory, quantity, limit", [
    ("512MiB", "512Mi", 2**29), ("1.5GiB", "1536Mi", 3 * 2**29), ("4GB", "4G", 4 * 10**9),
    (1000, "1k", 1000), (1001, "1001", 1001)])
def test_memory_becomes_a_kubernetes_quantity(memory: str | int, quantity: str, limit: int) -> None:
    worker = render_manifest(worker_memory=memory)["spec"]["worker"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["memory"] == quantity
    assert worker["args"][5] == str(limit)


def test_renderer_rejects_what_it_cannot_render() -> None:
    with pytest.raises(ManifestError, match=r"worker_memory 'lots' is not a size: expected a positive size"):
        render_manifest(worker_memory="lots")
    with pytest.raises(ManifestError, match=r"unknown Kubernetes setting\(s\) replicas: expected some of "
                                            r"name, namespace, image"):
        build_manifest(replicas=3)


def test_manifest_yaml_round_trips() -> None:
    manifest = build_manifest(name="demo", env={"A": "x"})
    assert validate_manifest(yaml.safe_load(manifest_to_yaml(manifest))) == manifest


# -- the CRD check ----------------------------------------------------------------------------


def _break(path: str, value: Any = None, *, delete: bool = False, append: Any = None) -> dict[str, Any]:
    manifest = copy.deepcopy(render_manifest(name="demo"))
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = manifest
    for part in parents:
        node = node[part]
    if delete:
        del node[last]
    elif append is not None:
        node[last].append(append)
    else:
        node[last] = value
    return manifest


WORKER = "spec.worker.spec.containers.0"


@pytest.mark.parametrize("manifest, message", [
    (_break("spec.worker.replicas", "two"), "spec.worker.replicas: expected an integer, got 'two'"),
    (_break("spec.worker.replicas", True), "spec.worker.replicas: expected an integer, got True"),
    (_break("spec.worker.replicas", 2.0), "spec.worker.replicas: expected an integer, got 2.0"),
    (_break("spec.worker.spec.containers", delete=True),
     "spec.worker.spec.containers: missing; the CRD requires it"),
    (_break("spec.scheduler.spec.containers.0.name", delete=True),
     "spec.scheduler.spec.containers[0].name: missing; the CRD requires it"),
    (_break("spec.scheduler.service", delete=True), "spec.scheduler.service: missing; the CRD requires it"),
    (_break(f"{WORKER}.resources.limits.cpu", 2),
     f"{WORKER.replace('.0', '[0]')}.resources.limits.cpu: expected a string, got 2; quantities are strings"),
    (_break("spec.scheduler.service.ports.0.targetPort", 8786),
     "spec.scheduler.service.ports[0].targetPort: expected a string, got 8786; this CRD declares "
     "int-or-string fields as strings"),
    (_break(f"{WORKER}.ports.0.containerPort", 2**40),
     "spec.worker.spec.containers[0].ports[0].containerPort: 1099511627776 is out of range for int32"),
    (_break(f"{WORKER}.ports", append={"containerPort": 8788, "name": "again"}),
     "spec.worker.spec.containers[0].ports[1]: duplicate entry with containerPort=8788, protocol='TCP' "
     "(same as entry [0])"),
    (_break("spec.worker.replica", 3),
     "spec.worker.replica: unknown field (the API server would drop it); allowed here: metadata, "
     "replicas, spec"),
    (_break("metadata.name", "Nightly_Run"), "metadata.name: 'Nightly_Run' is not a valid name"),
    (_break("metadata.name", delete=True), "metadata.name: missing; the CRD requires it"),
    (_break("kind", "Pod"), "kind: expected 'DaskCluster', got 'Pod'"),
    (_break("apiVersion", "kubernetes.dask.org/v2"),
     "apiVersion: expected 'kubernetes.dask.org/v1', got 'kubernetes.dask.org/v2'"),
])
def test_broken_manifest_is_rejected_naming_the_path(manifest: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError, match=r"^invalid DaskCluster manifest \(1 problem, checked against "
                                            r"the CRD of dask-kubernetes [0-9.]+\):") as caught:
        validate_manifest(manifest)
    assert message in str(caught.value)
    assert str(caught.value).endswith("nothing was sent to Kubernetes: fix the cluster.kubernetes settings "
                                      "(or the manifest) and check again with `daskflow k8s manifest CONFIG`")


def test_every_problem_is_listed_once() -> None:
    manifest = _break("spec.worker.replicas", "two")
    manifest["spec"]["worker"]["spec"]["containers"][0]["resources"]["requests"]["memory"] = 4096
    with pytest.raises(ManifestError, match=r"\(2 problems,") as caught:
        validate_manifest(manifest)
    lines = str(caught.value).splitlines()
    assert len(lines) == 4 and lines[1] == "  spec.worker.replicas: expected an integer, got 'two'"
    assert "resources.requests.memory: expected a string, got 4096" in lines[2]
    with pytest.raises(ManifestError, match=r"\(3 problems,.*\n  kind: missing; the CRD requires it\n  "
                                            r"metadata: missing"):
        validate_manifest({"apiVersion": "kubernetes.dask.org/v1"})
    with pytest.raises(ManifestError, match="a DaskCluster manifest must be a mapping, got list"):
        validate_manifest([])


def test_nulls_are_dropped_as_the_api_server_does() -> None:
    manifest = render_manifest(name="demo")
    manifest["spec"]["worker"]["spec"]["containers"][0]["env"] = None
    assert "env" not in validate_manifest(manifest)["spec"]["worker"]["spec"]["containers"][0]


def test_service_type_is_not_restricted_by_the_crd_but_by_the_config() -> None:
    # The CRD declares spec.scheduler.service.type a plain string: only the config catches it.
    validate_manifest(_break("spec.scheduler.service.type", "Ingress"))
    with pytest.raises(ConfigError, match=r"cluster.kubernetes.scheduler_service_type = 'Ingress' is invalid "
                                          r".*'ClusterIP', 'NodePort' or 'LoadBalancer'"):
        load_config(QUICKSTART, ["cluster.kind=kubernetes",
                                 "cluster.kubernetes.scheduler_service_type=Ingress"])


def test_kubernetes_extensions_of_the_schema() -> None:
    """Extensions this CRD does not use (yet) are honoured too."""
    import jsonschema

    schema = _json_schema({"type": "object", "properties": {
        "port": {"x-kubernetes-int-or-string": True},
        "note": {"type": "string", "nullable": True},
        "free": {"type": "object", "properties": {"a": {"type": "integer"}},
                 "x-kubernetes-preserve-unknown-fields": True},
        "closed": {"type": "object", "properties": {"a": {"type": "integer"}},
                   "x-kubernetes-map-type": "atomic"},
        "pod": {"type": "object", "properties": {"spec": {"type": "object"}},
                "x-kubernetes-embedded-resource": True},
    }})
    valid = {"port": 80, "note": None, "free": {"a": 1, "b": 2}, "closed": {"a": 1},
             "pod": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {}}}
    jsonschema.Draft4Validator(schema).validate(valid)
    jsonschema.Draft4Validator(schema).validate({**valid, "port": "http"})
    for bad in ({"port": 1.5}, {"closed": {"b": 1}}, {"extra": 1}):
        assert not jsonschema.Draft4Validator(schema).is_valid({**valid, **bad}), bad


# -- the config ---------------------------------------------------------------------------------


def test_config_section_and_its_errors() -> None:
    config = load_config(QUICKSTART, ["cluster.kind=kubernetes", "cluster.kubernetes.env={THREADS: 1}"])
    kubernetes = config.cluster.kubernetes
    assert kubernetes is not None and kubernetes.image == default_image()
    assert kubernetes.env == {"THREADS": "1"}
    assert build_manifest(**kubernetes.model_dump())["spec"]["worker"]["replicas"] == 2
    implied = load_config(QUICKSTART, ["cluster={kubernetes: {n_workers: 0}}"]).cluster
    assert implied.kind == "kubernetes"
    assert implied.kubernetes is not None and implied.kubernetes.n_workers == 0
    for overrides, message in [
        (["cluster.kubernetes.n_workers=two"],
         r"cluster.kubernetes.n_workers = 'two' is invalid \(cluster.kubernetes.n_workers, set on the "
         r"command line\): expected an integer >= 0, got 'two'"),
        (["cluster.kubernetes.worker_cores=0"], r"worker_cores = 0 is invalid .*expected an integer >= 1"),
        (["cluster.kubernetes.worker_memory=lots"],
         r"expected a size such as '4GiB' or '512MiB', got 'lots'"),
        (["cluster.kubernetes.name=Nightly"], r"cluster.kubernetes.name = 'Nightly' is invalid .*lowercase"),
        (["cluster.kubernetes.env={EXTRA_PIP_PACKAGES: s3fs}"], r"set extra_pip_packages rather than env"),
        (["cluster.kubernetes.extra_pip_packages=['s3fs gcsfs']"], r"without spaces"),
        (["cluster.kubernetes.replicas=3"], r"unknown key 'cluster.kubernetes.replicas'"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_config(QUICKSTART, ["cluster.kind=kubernetes", *overrides])
    # An override of a key only kubernetes reads switches the quickstart's `kind: local`
    # (docs/configuration.md, "Cluster kinds and overrides") ...
    switched = load_config(QUICKSTART, ["cluster.kubernetes.n_workers=1"]).cluster
    assert switched.kind == "kubernetes" and switched.kubernetes.n_workers == 1
    # ... but a key of a third kind beside an explicit kind is an error naming both.
    with pytest.raises(ConfigError, match=r"cluster.address = 'tcp://127.0.0.1:8786' is a setting of kind "
                                          r"'remote', but the cluster's kind is 'kubernetes'.*kind set by "
                                          r"cluster.kind"):
        load_config(QUICKSTART, ["cluster.kind=kubernetes", "cluster.address=tcp://127.0.0.1:8786"])


# -- the Kubernetes API -----------------------------------------------------------------------------


def _resources(group_version: str, *kinds: str) -> dict[str, Any]:
    return {"kind": "APIResourceList", "groupVersion": group_version, "resources": [
        {"name": kind.lower() + "s", "singularName": kind.lower(), "namespaced": True, "kind": kind,
         "verbs": ["get", "list", "create", "delete"]} for kind in kinds]}


DISCOVERY = {
    "/version": {"major": "1", "minor": "33", "gitVersion": "v1.33.0"},
    "/api": {"kind": "APIVersions", "versions": ["v1"]},
    "/api/v1": _resources("v1", "Pod", "Service"),
    "/apis": {"kind": "APIGroupList", "groups": [{"name": "kubernetes.dask.org", "versions": [
        {"groupVersion": "kubernetes.dask.org/v1", "version": "v1"}]}]},
    "/apis/kubernetes.dask.org/v1": _resources("kubernetes.dask.org/v1", "DaskCluster", "DaskWorkerGroup"),
}
OBJECT_PATH = re.compile(r"/(api/v1|apis/kubernetes\.dask\.org/v1)/namespaces/([^/]+)/([a-z]+)(?:/([^/]+))?")


class FakeKubernetes:
    """The Kubernetes API on 127.0.0.1, as far as kr8s and KubeCluster go, with a stand-in operator.

    ``operator``: act on a new DaskCluster (status Running, a scheduler pod and Service);
    ``scheduler``: the address the Service points at (type LoadBalancer on 127.0.0.1, so no
    DNS and no port-forward is involved); ``waiting``: leave the scheduler pod Pending with
    this reason; ``crd``: whether DaskCluster resources exist; ``token``: the accepted token.
    """

    def __init__(self, *, operator: bool = True, scheduler: str | None = None, waiting: str | None = None,
                 crd: bool = True, token: str = "good-token") -> None:
        self.operator, self.scheduler, self.waiting, self.crd, self.token = (
            operator, scheduler, waiting, crd, token)
        self.objects: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.created: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._serve(self, "GET")

            def do_POST(self) -> None:
                fake._serve(self, "POST")

            def do_DELETE(self) -> None:
                fake._serve(self, "DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, path: Path, token: str = "good-token") -> Path:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "me", "namespace": "team"}}],
            "users": [{"name": "me", "user": {"token": token}}]}))
        return path

    @property
    def writes(self) -> list[tuple[str, str]]:
        return [request for request in self.requests if request[0] != "GET"]

    def _reply(self, handler: BaseHTTPRequestHandler, code: int, body: Any) -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        handler.send_response(code)
        handler.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _failure(self, handler: BaseHTTPRequestHandler, code: int, message: str) -> None:
        self._reply(handler, code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                    "message": message, "code": code})

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(handler.path)
        path, query = url.path.rstrip("/") or "/", parse_qs(url.query)
        self.requests.append((method, path))
        body = None
        if method == "POST":
            body = json.loads(handler.rfile.read(int(handler.headers.get("Content-Length", 0))))
        if handler.headers.get("Authorization") != f"Bearer {self.token}":
            return self._failure(handler, 401, "Unauthorized")
        if path in DISCOVERY and method == "GET":
            return self._reply(handler, 200, DISCOVERY[path])
        match = OBJECT_PATH.fullmatch(path)
        if match is None:
            return self._failure(handler, 404, f"the server could not find {path}")
        group, namespace, plural, name = match.groups()
        if group != "api/v1" and not self.crd:
            return self._reply(handler, 404, "404 page not found")
        prefix = f"{namespace}/{plural}/"
        if method == "GET" and name is None:
            items = [o for key, o in self.objects.items() if key.startswith(prefix)]
            for selector, lookup in (("labelSelector", lambda o, k: o["metadata"].get("labels", {}).get(k)),
                                     ("fieldSelector", _field)):
                for term in filter(None, query.get(selector, [""])[0].split(",")):
                    key, value = term.split("=")
                    items = [o for o in items if lookup(o, key) == value]
            return self._reply(handler, 200, {"kind": "List", "apiVersion": "v1", "metadata": {},
                                              "items": items})
        if method == "POST":
            assert body is not None
            self.created.append(copy.deepcopy(body))
            name = body["metadata"]["name"]
            body["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()), resourceVersion="1",
                                    generation=1, creationTimestamp="2026-01-01T00:00:00Z")
            self.objects[prefix + name] = body
            if plural == "daskclusters" and self.operator:
                self._operate(namespace, body)
            return self._reply(handler, 201, body)
        if prefix + name not in self.objects:
            return self._failure(handler, 404, f'{plural} "{name}" not found')
        if method == "DELETE":
            del self.objects[prefix + name]
            if plural == "daskclusters":  # the operator removes what it made
                for key in [k for k, o in self.objects.items()
                            if o["metadata"].get("labels", {}).get("dask.org/cluster-name") == name]:
                    del self.objects[key]
            return self._reply(handler, 200, {"kind": "Status", "status": "Success"})
        return self._reply(handler, 200, self.objects[prefix + name])

    def _operate(self, namespace: str, cluster: dict[str, Any]) -> None:
        name = cluster["metadata"]["name"]
        cluster["status"] = {"phase": "Running"}
        labels = {"dask.org/cluster-name": name, "dask.org/component": "scheduler"}
        status: dict[str, Any] = {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}]}
        if self.waiting:
            status = {"phase": "Pending", "containerStatuses": [{"name": "scheduler", "state": {
                "waiting": {"reason": self.waiting, "message": "Back-off pulling image"}}}]}
        self.objects[f"{namespace}/pods/{name}-scheduler-7d9f"] = {
            "apiVersion": "v1", "kind": "Pod", "status": status,
            "metadata": {"name": f"{name}-scheduler-7d9f", "namespace": namespace, "labels": labels}}
        if self.scheduler:
            port = int(self.scheduler.rsplit(":", 1)[1])
            self.objects[f"{namespace}/services/{name}-scheduler"] = {
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": f"{name}-scheduler", "namespace": namespace, "labels": labels},
                "spec": {"type": "LoadBalancer", "selector": labels, "ports": [
                    {"name": "tcp-comm", "port": port}, {"name": "http-dashboard", "port": 8787}]},
                "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}}


def _field(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = obj.get(part, {}) if isinstance(obj, dict) else {}
    return obj


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Make a FakeKubernetes and point KUBECONFIG at it: ``kube(**options)``."""
    servers: list[FakeKubernetes] = []
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)

    def make(token: str = "good-token", **options: Any) -> FakeKubernetes:
        fake = FakeKubernetes(**options)
        servers.append(fake)
        monkeypatch.setenv("KUBECONFIG", str(fake.kubeconfig(tmp_path / f"kubeconfig-{len(servers)}", token)))
        return fake

    yield make
    for fake in servers:
        fake.close()


def _kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "t"}}]}))
    return path


def test_no_credentials_fails_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    started = time.monotonic()
    missing = re.escape(str(tmp_path / "missing"))
    with pytest.raises(ClusterError, match=rf"no usable Kubernetes credentials \(.*looked in "
                                           rf"KUBECONFIG={missing}, which does not exist\): point "
                                           r"KUBECONFIG at your cluster's kubeconfig"):
        with connect("kubernetes", kubernetes={"name": "demo"}):
            pass
    assert time.monotonic() - started < 5


def test_unreachable_api_is_retried_with_backoff_then_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    server = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path, server)))
    started = time.monotonic()
    with pytest.raises(ClusterError, match=rf"cannot reach the Kubernetes API at {server} \(from KUBECONFIG="
                                           r".*\) after 3 attempts \(ConnectError: .*\): check that `kubectl "
                                           r"get nodes` works"):
        with connect("kubernetes", kubernetes={"name": "demo", "api_timeout": 2.0}):
            pass
    assert 1.5 <= time.monotonic() - started < 20  # backoff 0.5 s + 1 s
    assert [r.message.split(" (")[0] for r in caplog.records if "retrying" in r.message] == [
        "reaching the Kubernetes API failed"] * 2


def test_silent_api_is_bounded_by_api_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        server = f"https://127.0.0.1:{silent.getsockname()[1]}"
        monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path, server)))
        started = time.monotonic()
        with pytest.raises(ClusterError, match=r"after 2 attempts \(no answer within 0.5 s\)"):
            with connect("kubernetes", kubernetes={"name": "demo", "api_timeout": 0.5, "api_retries": 2}):
                pass
        assert time.monotonic() - started < 10


def test_bad_value_is_rejected_before_anything_is_sent(kube: Any) -> None:
    fake = kube()
    with pytest.raises(ManifestError, match=r"spec.worker.replicas: expected an integer, got 'two'"):
        with connect("kubernetes", kubernetes={"name": "demo", "n_workers": "two"}):
            pass
    assert fake.requests == []


@pytest.mark.parametrize("options, token, message", [
    ({"crd": False}, "good-token",
     r"does not know DaskCluster resources \(kubernetes.dask.org/v1\): the dask-kubernetes operator is not "
     r"installed; install the operator: helm repo add dask https://helm.dask.org"),
    ({}, "stale-token", r"refused the request \(401: Unauthorized\): check the kubeconfig's credentials"),
])
def test_api_refusals_fail_at_once(kube: Any, options: dict[str, Any], token: str, message: str) -> None:
    fake = kube(token=token, **options)
    with pytest.raises(ClusterError, match=message):
        with connect("kubernetes", kubernetes={"name": "demo"}):
            pass
    assert fake.writes == []


def test_existing_cluster_is_left_alone(kube: Any) -> None:
    fake = kube()
    fake.objects["team/daskclusters/demo"] = {"metadata": {"name": "demo", "namespace": "team"}}
    with pytest.raises(ClusterError, match=r"a DaskCluster named 'demo' already exists in namespace 'team': "
                                           r"delete it \(kubectl delete daskcluster demo -n team\)"):
        with connect("kubernetes", kubernetes={"name": "demo"}):
            pass
    assert fake.writes == [] and "team/daskclusters/demo" in fake.objects


def test_operator_not_running_deletes_the_cluster(kube: Any) -> None:
    fake = kube(operator=False)
    with pytest.raises(ClusterError, match=r"the dask-kubernetes operator did not act on DaskCluster "
                                           r"'demo' in namespace 'team' within 1 s; it was deleted. Is the "
                                           r"operator running"):
        with connect("kubernetes", kubernetes={"name": "demo", "startup_timeout": 1}):
            pass
    assert fake.writes == [("POST", CLUSTERS), ("DELETE", f"{CLUSTERS}/demo")]
    assert fake.objects == {}


def test_scheduler_never_ready_is_abandoned_and_deleted(kube: Any) -> None:
    fake = kube(waiting="ImagePullBackOff")
    started = time.monotonic()
    with pytest.raises(ClusterError, match=r"the Dask scheduler of DaskCluster 'demo' in namespace 'team' "
                                           r"was not ready within 1 s \(scheduler pod: Pending, "
                                           r"ImagePullBackOff: Back-off pulling image\); it was deleted. "
                                           r"Usual causes: an image"):
        with connect("kubernetes", kubernetes={"name": "demo", "startup_timeout": 1}):
            pass
    assert time.monotonic() - started < 15
    assert fake.writes == [("POST", CLUSTERS), ("DELETE", f"{CLUSTERS}/demo")]
    assert fake.objects == {}
    # KubeCluster's own wait for the pod was stopped too, not left polling the API.
    polls = len(fake.requests)
    time.sleep(1.0)
    assert len(fake.requests) == polls


@pytest.mark.slow
def test_cluster_is_created_used_and_deleted_even_on_failure(kube: Any, scheduler: str) -> None:
    fake = kube(scheduler=scheduler)
    settings = {"name": "demo", "n_workers": 1, "worker_memory": "1GiB", "startup_timeout": 60}
    with connect("kubernetes", kubernetes=settings) as client:
        assert client.submit(lambda x: x * 2, 21).result(timeout=60) == 42
        assert dashboard_link(client) == "http://127.0.0.1:8787/status"
        assert fake.writes == [("POST", CLUSTERS)]
    assert fake.writes == [("POST", CLUSTERS), ("DELETE", f"{CLUSTERS}/demo")] and fake.objects == {}
    # What was sent is the validated manifest, in the context's namespace.
    expected = build_manifest(**settings)
    expected["metadata"]["namespace"] = "team"
    assert fake.created == [expected]

    with pytest.raises(ZeroDivisionError):
        with connect("kubernetes", kubernetes=settings) as client:
            client.submit(lambda: 1 / 0).result(timeout=60)
    assert fake.writes[-2:] == [("POST", CLUSTERS), ("DELETE", f"{CLUSTERS}/demo")] and fake.objects == {}


def test_run_with_operator_down_exits_2_deletes_and_publishes_nothing(kube: Any, tmp_path: Path) -> None:
    """Through the CLI, in its own process: one message, no traceback (not even at exit)."""
    fake = kube(operator=False)
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "daskflow", "run", str(QUICKSTART), "cluster.kind=kubernetes",
         "cluster.kubernetes.name=demo", "cluster.kubernetes.startup_timeout=1", "output.run_id=k8s"],
        cwd=work, capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("daskflow: error:")]
    assert len(errors) == 1 and "the dask-kubernetes operator did not act on DaskCluster 'demo'" in errors[0]
    assert fake.writes == [("POST", CLUSTERS), ("DELETE", f"{CLUSTERS}/demo")]
    assert not (work / "outputs" / "quickstart" / "k8s").exists()

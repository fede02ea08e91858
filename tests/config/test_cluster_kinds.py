"""One rule for the cluster keys of each kind: an override switches the kind or an error names the key.

Every key of ``cluster`` is read by one backend (daskflow.config._kinds.KIND_OF_KEY); these
tests walk every (key, kind) pair, from the file and from the command line, so that no
setting is ever silently ignored.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from daskflow._errors import ConfigError
from daskflow.config import ClusterConfig, config_to_yaml, load_config
from daskflow.config._kinds import KIND_OF_KEY

FILE = """\
experiment: {{name: kinds}}
cluster:
{cluster}
data:
  sources:
    listens: {{uri: data/listens}}
"""

LOCAL = "  kind: local\n  n_workers: 3\n  memory_limit: 2GiB\n  dashboard_address: ':0'"
REMOTE = "  kind: remote\n  address: tcp://10.0.0.5:8786\n  connect_timeout: 5"
KUBERNETES = "  kind: kubernetes\n  kubernetes: {n_workers: 4, worker_memory: 8GiB}"

#: A value of each key that differs from its default (and is valid for its own kind).
VALUES = {"n_workers": 3, "threads_per_worker": 2, "memory_limit": "1GiB", "processes": False,
          "dashboard_address": ":0", "address": "tcp://10.0.0.5:8786", "connect_timeout": 5,
          "kubernetes": {"n_workers": 4}}
#: The key each local key maps to under kind kubernetes, when it has one.
KUBERNETES_KEY = {"n_workers": "n_workers", "threads_per_worker": "worker_cores",
                  "memory_limit": "worker_memory"}


def write(tmp_path: Path, cluster: str) -> Path:
    path = tmp_path / "kinds.yaml"
    path.write_text(FILE.format(cluster=cluster))
    return path


def test_every_key_has_a_kind_and_its_default() -> None:
    fields = set(ClusterConfig.model_fields) - {"kind"}
    assert set(KIND_OF_KEY) == fields == set(VALUES)


def test_address_on_the_command_line_switches_a_local_file_to_remote(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, LOCAL), ["cluster.address=tcp://scheduler:8786"])
    assert config.cluster.kind == "remote" and config.cluster.address == "tcp://scheduler:8786"
    # The file's LocalCluster settings described the cluster the command line replaced.
    assert config.cluster.n_workers == ClusterConfig.model_fields["n_workers"].default
    assert config.cluster.memory_limit == ClusterConfig.model_fields["memory_limit"].default


def test_a_kubernetes_key_on_the_command_line_switches_to_kubernetes(tmp_path: Path) -> None:
    for cluster in (LOCAL, REMOTE):
        config = load_config(write(tmp_path, cluster), ["cluster.kubernetes.n_workers=16"])
        assert config.cluster.kind == "kubernetes" and config.cluster.kubernetes is not None
        assert config.cluster.kubernetes.n_workers == 16 and config.cluster.address is None


def test_cluster_kind_on_the_command_line_drops_the_files_other_kind(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, KUBERNETES), ["cluster.kind=local"])
    assert config.cluster.kind == "local" and config.cluster.kubernetes is None
    config = load_config(write(tmp_path, REMOTE), ["cluster.kind=local", "cluster.n_workers=1"])
    assert (config.cluster.kind, config.cluster.address, config.cluster.n_workers) == ("local", None, 1)
    config = load_config(write(tmp_path, LOCAL), ["cluster.kind=kubernetes"])
    assert config.cluster.kubernetes is not None and config.cluster.kubernetes.n_workers == 2


@pytest.mark.parametrize("kind", ["local", "remote", "kubernetes"])
@pytest.mark.parametrize("key", sorted(VALUES))
def test_an_override_of_another_kinds_key_names_the_right_key(tmp_path: Path, key: str, kind: str) -> None:
    if KIND_OF_KEY[key] == kind:
        return
    extra = ["cluster.address=tcp://10.0.0.5:8786"] if kind == "remote" and key != "address" else []
    value = VALUES[key]
    typed = "{n_workers: 4}" if key == "kubernetes" else str(value).lower() if isinstance(value, bool) \
        else str(value)
    overrides = [f"cluster.kind={kind}", *extra, f"cluster.{key}={typed}"]
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, LOCAL), overrides)
    message = str(info.value)
    owner = KIND_OF_KEY[key]
    assert f"is a setting of kind {owner!r}, but the cluster's kind is {kind!r}" in message
    assert f"cluster.{key} set on the command line, kind set by cluster.kind" in message
    if kind == "kubernetes" and key in KUBERNETES_KEY:
        assert f"use cluster.kubernetes.{KUBERNETES_KEY[key]}={typed} instead" in message


def test_kubernetes_never_silently_renders_the_default_replicas(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cluster.n_workers = 8 is a setting of kind 'local', but the "
                                          r"cluster's kind is 'kubernetes': use "
                                          r"cluster.kubernetes.n_workers=8"):
        load_config(write(tmp_path, LOCAL), ["cluster.kind=kubernetes", "cluster.n_workers=8"])


@pytest.mark.parametrize("kind, cluster", [("remote", REMOTE), ("kubernetes", KUBERNETES)])
@pytest.mark.parametrize("key", ["n_workers", "threads_per_worker", "memory_limit", "processes",
                                 "dashboard_address"])
def test_a_files_setting_of_another_kind_is_an_error(tmp_path: Path, kind: str, cluster: str,
                                                     key: str) -> None:
    value = VALUES[key]
    line = f"\n  {key}: {str(value).lower() if isinstance(value, bool) else repr(value)}"
    with pytest.raises(ConfigError, match=rf"cluster is invalid \(cluster, line 2\): cluster.{key} = "
                                          rf".* is a setting of kind 'local', but the cluster's kind is "
                                          rf"'{kind}'"):
        load_config(write(tmp_path, cluster + line))


def test_connect_timeout_in_a_local_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cluster.connect_timeout = 5 is a setting of kind 'remote', but "
                                          r"the cluster's kind is 'local': it only applies to a remote"):
        load_config(write(tmp_path, LOCAL + "\n  connect_timeout: 5"))


def test_two_kinds_at_once_on_the_command_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sets cluster.address and cluster.kubernetes: settings of kinds "
                                          r"'remote' and 'kubernetes' at once"):
        load_config(write(tmp_path, LOCAL), ["cluster.address=tcp://a:1", "cluster.kubernetes.n_workers=2"])


@pytest.mark.parametrize("cluster, overrides", [(LOCAL, []), (REMOTE, []), (KUBERNETES, []),
                                                (LOCAL, ["cluster.address=tcp://a:1"]),
                                                (LOCAL, ["cluster.kubernetes.n_workers=5"])])
def test_a_resolved_config_loads_again(tmp_path: Path, cluster: str, overrides: list[str]) -> None:
    # validate prints every default of every kind; that text must be a valid file itself.
    config = load_config(write(tmp_path, cluster), overrides)
    again = tmp_path / "again.yaml"
    again.write_text(config_to_yaml(config))
    assert load_config(again) == config

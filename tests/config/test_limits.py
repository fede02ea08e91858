"""The loader's limits on what a YAML file may make, and sizes that cannot work."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
from dask.system import CPU_COUNT

from daskflow import ConfigError
from daskflow.config import load_config

MINIMAL = "experiment: {name: demo}\ndata: {sources: {listens: {uri: data/listens}}}\n"


def load(tmp_path: Path, text: str, *overrides: str) -> object:
    path = tmp_path / "experiment.yaml"
    path.write_text(text)
    return load_config(path, overrides, environ={})


def test_a_billion_laughs_is_refused_at_once_in_little_memory(tmp_path: Path) -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    text = MINIMAL + "bomb:\n" + "".join(f"  {line}\n" for line in lines)
    assert len(text) < 1024
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ConfigError, match=r"experiment.yaml: alias \*a\d at line \d+, column \d+ "
                                              r"repeats [\d,]+ YAML node\(s\).*past the limit of 10,000"):
            load(tmp_path, text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 1
    assert peak < 8 * 2**20


def test_aliases_of_small_sections_and_merge_keys_still_work(tmp_path: Path) -> None:
    text = """\
experiment: {name: demo}
data:
  sources:
    listens: &source {uri: data/listens, format: parquet, schema: {user_id: string}}
    users: {<<: *source, uri: data/users, format: orc}
"""
    config = load(tmp_path, text)
    assert config.data.sources["users"].format == "orc"
    assert config.data.sources["users"].required_schema == {"user_id": "string"}


def test_the_equals_operator_needs_no_quotes(tmp_path: Path) -> None:
    text = MINIMAL.replace("uri: data/listens", "uri: data/listens, filters: [[country, =, SE]]")
    assert load(tmp_path, text).data.sources["listens"].filters == [("country", "=", "SE")]


def test_a_byte_order_mark_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_config(path).experiment.name == "demo"


def test_duplicate_keys_in_an_override_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"duplicate key 'n' in override model.params at line 1, twice"):
        load(tmp_path, MINIMAL, "model.params={n: 1, n: 2}")


def test_tags_in_an_override_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"override model.name: tag !!python/name:os.system at line 1"):
        load(tmp_path, MINIMAL, "model.name=!!python/name:os.system")


@pytest.mark.parametrize("value, expected", [("auto", "auto"), ("AUTO", "auto"), ("0", "0"), (0, "0"),
                                             ("256MiB", "256MiB"), ("4GiB", "4GiB"), ("2 GB", "2 GB")])
def test_memory_limits_that_work(tmp_path: Path, value: object, expected: str) -> None:
    text = MINIMAL + f"cluster: {{memory_limit: {value!r}}}\n" if isinstance(value, str) else \
        MINIMAL + f"cluster: {{memory_limit: {value}}}\n"
    assert load(tmp_path, text).cluster.memory_limit == expected


@pytest.mark.parametrize("value, message", [
    ("1KiB", r"'1KiB' is invalid .*: 1KiB is 1,024 bytes per worker, below the floor of 256.00 MiB "
             r"\(268,435,456 bytes\) a Dask worker needs to start and hold any data: expected at least "
             r"256MiB, e.g. '2GiB', or 'auto', '0'"),
    ("255MiB", r"267,386,880 bytes per worker, below the floor"),
    ("-1GiB", r"below the floor"),
    ("abc", r"expected 'auto', '0', a size such as '4GiB' or '512MiB', got 'abc'"),
    ("true", r"expected 'auto', '0', a size"),
])
def test_memory_limits_that_cannot_work(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"cluster.memory_limit = .*" + message):
        load(tmp_path, MINIMAL, f"cluster.memory_limit={value}")


def test_local_workers_and_threads_are_bounded_by_the_cores(tmp_path: Path) -> None:
    limit = min(4 * CPU_COUNT, 512)
    assert load(tmp_path, MINIMAL, f"cluster.n_workers={limit}").cluster.n_workers == limit
    with pytest.raises(ConfigError, match=rf"cluster.n_workers = {limit + 1} is invalid .*local workers on "
                                          rf"this machine's {CPU_COUNT} core\(s\) is more than 4 per core: "
                                          rf"expected at most {limit}"):
        load(tmp_path, MINIMAL, f"cluster.n_workers={limit + 1}")
    with pytest.raises(ConfigError, match=r"cluster.threads_per_worker = .*n_workers x threads_per_worker"):
        load(tmp_path, MINIMAL, f"cluster.n_workers={limit}", "cluster.threads_per_worker=2")


def test_remote_clusters_are_not_bounded_by_this_machine(tmp_path: Path) -> None:
    # A remote scheduler's workers are its own: cluster.n_workers is local's, never ignored.
    with pytest.raises(ConfigError, match=r"cluster.n_workers = 1000 is a setting of kind 'local', but the "
                                          r"cluster's kind is 'remote': a remote scheduler's "
                                          r"workers are its own"):
        load(tmp_path, MINIMAL, "cluster.address=tcp://10.0.0.5:8786", "cluster.n_workers=1000")
    config = load(tmp_path, MINIMAL, "cluster.kubernetes.n_workers=1000")
    assert config.cluster.kind == "kubernetes" and config.cluster.kubernetes.n_workers == 1000


def test_kubernetes_worker_memory_has_the_floor(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cluster.kubernetes.worker_memory = '64MiB' is invalid .*"
                                          r"67,108,864 bytes per worker, below the floor"):
        load(tmp_path, MINIMAL, "cluster.kind=kubernetes", "cluster.kubernetes={worker_memory: 64MiB}")

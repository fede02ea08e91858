"""Bad-input cases of the config file itself, its secrets, and sizes that cannot work.

Run through the CLI by :func:`tests.catalogue._harness.check_case`; docs/errors.md lists them.
Every case runs with a secret in the environment, and no message may show it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from dask.system import CPU_COUNT

from daskflow.cli import main
from tests.catalogue._harness import Case, base_config, check_case

#: Planted in the environment of every case; no message may show it.
SECRET = "sk-catalogue-7f3a9c1e5b"
SECRET_VARIABLE = "DASKFLOW_CATALOGUE_SECRET"


def _config_file(edit: Callable[[str], str] | None = None, data: dict | None = None,
                 name: str = "raw.yaml") -> Callable[[Path, Path], list[str]]:
    """A case that writes its own config file: the base config's YAML, edited as text."""
    def make(lake: Path, work: Path) -> list[str]:
        config = data if data is not None else base_config(lake, work / "out")
        text = yaml.safe_dump(config, sort_keys=False)
        path = work / name
        path.write_text(edit(text) if edit else text, encoding="utf-8")
        return ["--argv", str(path)]
    return make


def _config_bytes(content: bytes) -> Callable[[Path, Path], list[str]]:
    def make(lake: Path, work: Path) -> list[str]:
        path = work / "raw.yaml"
        path.write_bytes(content)
        return ["--argv", str(path)]
    return make


def _with_secret(config: dict) -> dict:
    config["data"]["sources"]["listens"]["storage_options"] = {"key": f"${{env:{SECRET_VARIABLE}}}"}
    return config


def _secret_config(lake: Path, work: Path) -> dict:
    return _with_secret(base_config(lake, work / "out"))


def _alias_bomb(text: str) -> str:
    # Nine levels of nine aliases each: 9^9 nodes from ~400 bytes ("billion laughs").
    levels = ["lol0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * 9) + "]" for i in range(1, 10)]
    return text + "bomb:\n" + "".join(f"  {line}\n" for line in levels)


def _replace(placeholder: str, by: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert placeholder in text
        return text.replace(placeholder, by)
    return edit


def _placeholder_description(lake: Path, work: Path, by: str) -> list[str]:
    config = _secret_config(lake, work)
    config["experiment"] = {"description": "PLACEHOLDER", **config["experiment"]}  # at line 2
    return _config_file(_replace("PLACEHOLDER", by), data=config)(lake, work)


def _tagged(tag: str) -> Callable[[Path, Path], list[str]]:
    return lambda lake, work: _placeholder_description(lake, work, tag)


def _deep(lake: Path, work: Path) -> list[str]:
    return _placeholder_description(lake, work, "[" * 2000 + "]" * 2000)


def _bad_cluster_beside_a_secret(lake: Path, work: Path) -> list[str]:
    config = _secret_config(lake, work)
    # A local cluster with Kubernetes settings: the whole section is invalid, and it holds
    # the secret in kubernetes.env (an error message once printed the section's dict).
    config["cluster"]["kubernetes"] = {"env": {"API_TOKEN": f"${{env:{SECRET_VARIABLE}}}"}}
    config["cluster"]["kind"] = "local"
    return _config_file(data=config)(lake, work)


def _secret_of_the_wrong_type(lake: Path, work: Path) -> list[str]:
    config = _secret_config(lake, work)
    config["cluster"]["n_workers"] = f"${{env:{SECRET_VARIABLE}}}"
    return _config_file(data=config)(lake, work)


def _cores_limit() -> int:
    return min(4 * CPU_COUNT, 512)


def _threads_in_all(lake: Path, work: Path) -> list[str]:
    each = _cores_limit() // 2 + 1  # each within the limit, the product beyond it
    return [f"cluster.n_workers={each}", f"cluster.threads_per_worker={each}"]


def _static(*arguments: str) -> Callable[[Path, Path], list[str]]:
    return lambda lake, work: list(arguments)


def _large_file(lake: Path, work: Path) -> list[str]:
    return _placeholder_description(lake, work, "x" * (1 << 20))


CASES: dict[str, Case] = {
    "YAML alias bomb": Case(_config_file(_alias_bomb),
                            ("alias *lol", "past the limit of 10,000", "raw.yaml", "line ")),
    "recursive YAML alias": Case(_config_file(lambda text: text + "loop: &loop [*loop]\n"),
                                 ("alias *loop", "recursive alias")),
    "duplicate key in YAML": Case(_config_file(lambda text: text + "model: {name: als}\n"),
                                  ("duplicate key 'model'", "raw.yaml at lines", "keep one of them")),
    "duplicate key in a flow mapping": Case(
        _config_file(lambda text: text + "predict: {n: 5, n: 50}\n"),
        ("duplicate key 'predict.n'", "twice")),
    "binary config file": Case(_config_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
                               ("is a binary file, not YAML text", "NUL byte at offset 8")),
    "config file not UTF-8": Case(_config_bytes("experiment: {name: café}\n".encode("latin-1")),
                                  ("is not UTF-8 text", "byte 0xe9 at offset 22 (line 1)",
                                   "save the file as UTF-8")),
    "config file of several megabytes": Case(_large_file, ("is larger than 1,048,576 bytes",)),
    "control character in the config": Case(_tagged("a\x07b"), ("character U+0007", "line 2")),
    "python tag in the config": Case(_tagged("!!python/object/apply:os.system [echo]"),
                                     ("tag !!python/object/apply:os.system", "is not allowed",
                                      "never constructs objects")),
    "custom YAML tag": Case(_tagged("!include other.yaml"), ("tag !include", "line 2", "remove !include")),
    "deeply nested YAML": Case(_deep, ("nested more than 50 levels deep", "line 2")),
    "several YAML documents": Case(_config_file(lambda text: text + "---\nexperiment: {name: again}\n"),
                                   ("is not valid YAML at line", "a second document",
                                    "one experiment per file")),
    "integer of ten thousand digits": Case(_tagged("9" * 10_000), ("cannot be read", "line 2")),
    "secret beside a bad cluster section": Case(_bad_cluster_beside_a_secret,
                                                ("cluster is invalid (cluster, line",
                                                 "cluster.kubernetes is only used with kind")),
    "secret of the wrong type": Case(_secret_of_the_wrong_type,
                                     ("cluster.n_workers = '***' is invalid", "valid integer")),
    "memory_limit 1KiB": Case(_static("cluster.memory_limit=1KiB"),
                              ("cluster.memory_limit = '1KiB' is invalid", "1,024 bytes per worker",
                               "below the floor of 256.00 MiB", "expected at least 256MiB")),
    "memory_limit abc": Case(_static("cluster.memory_limit=abc"),
                             ("cluster.memory_limit = 'abc' is invalid",
                              "expected 'auto', '0', a size such as '4GiB'")),
    "kubernetes worker_memory below the floor": Case(
        _static("cluster.kind=kubernetes", "cluster.kubernetes={worker_memory: 100MiB}"),
        ("cluster.kubernetes.worker_memory", "104,857,600 bytes per worker", "below the floor"),
        command="validate"),
    "n_workers 1000": Case(_static("cluster.n_workers=1000"),
                           ("cluster.n_workers = 1000 is invalid", "1,000 local workers",
                            f"expected at most {_cores_limit()}")),
    "threads_per_worker beyond the cores": Case(
        _static("cluster.threads_per_worker=100000"),
        ("cluster.threads_per_worker", "100,000 local threads per worker", "per core")),
    "workers times threads beyond the cores": Case(
        _threads_in_all, ("cluster.threads_per_worker", "n_workers x threads_per_worker",
                          f"expected at most {_cores_limit()} in all")),
    "n_factors beyond the workers' memory": Case(
        _static("model.name=als", "model.params={n_factors: 100000000, n_iter: 1}"),
        ("ImplicitALS(n_factors=100,000,000) does not fit in memory", "x 100,000,000 x 4 bytes",
         "the memory_limit of the 1 worker(s) in all", "expected n_factors <=", "lower n_factors")),
}


@pytest.mark.parametrize("name", list(CASES))
def test_config_mistake_exits_2_with_one_actionable_message(name: str, lake: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_VARIABLE, SECRET)
    err = check_case(CASES[name], lake, tmp_path, capsys, monkeypatch)
    assert SECRET not in err


def test_a_python_tag_is_never_executed(lake: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "executed"
    config = base_config(lake, tmp_path / "out")
    config["experiment"]["description"] = "PLACEHOLDER"
    tag = f"!!python/object/apply:os.system ['touch {marker}']"
    text = yaml.safe_dump(config).replace("PLACEHOLDER", tag)
    path = tmp_path / "tagged.yaml"
    path.write_text(text)
    assert main(["-q", "validate", str(path)]) == 2
    assert "tag !!python/object/apply:os.system at line" in capsys.readouterr().err
    assert not marker.exists()

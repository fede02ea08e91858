"""daskflow.run: the Python API over the runner (path, dict or Config; the caller's client)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import daskflow
from daskflow import ClusterError, ConfigError
from daskflow.config import load_config

SECRET = "api-secret-from-env-31d7"


def experiment(lake: Path, out: Path) -> dict[str, Any]:
    return {
        "experiment": {"name": "api", "stages": ["predict"]},
        "cluster": {"n_workers": 1, "threads_per_worker": 2, "processes": False, "dashboard_address": ":0"},
        "data": {"sources": {"listens": {"uri": str(lake / "listens"),
                                         "storage_options": {"token": "${env:DASKFLOW_TEST_API_TOKEN}"}}}},
        "features": {"interactions": {"block_size": 100}},
        "model": {"name": "als", "params": {"n_factors": 4, "n_iter": 2, "random_state": 0}},
        "output": {"dir": str(out)},
    }


def test_import_daskflow_stays_light() -> None:
    code = ("import sys, daskflow; print('dask' in sys.modules, 'daskflow.experiment' in sys.modules); "
            "daskflow.run; print('daskflow.experiment' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "True"]


@pytest.mark.slow
def test_run_from_a_path_a_dict_and_a_config(tiny_lake: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASKFLOW_TEST_API_TOKEN", SECRET)
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(experiment(tiny_lake, tmp_path / "out")))
    from_path = daskflow.run(path, ["output.run_id=from-path", "predict.n=3"])
    assert from_path.run_dir == tmp_path / "out" / "api" / "from-path" and from_path.run_id == "from-path"
    frame = from_path.predictions["recommendations"]
    assert type(frame).__module__.startswith("dask")  # lazy, read back from the run directory
    table = frame.compute()
    assert table["rank"].max() == 3 and len(table) == 3 * from_path.metrics["interactions"]["users"]
    model = from_path.models["als"]
    assert model.user_factors_.shape == (from_path.metrics["interactions"]["users"], 4)
    from_dict = daskflow.run(experiment(tiny_lake, tmp_path / "out"), "output.run_id=from-dict")
    assert from_dict.models["als"].loss_curve_ == pytest.approx(model.loss_curve_)
    config = load_config(path)
    from_config = daskflow.run(config, ["output.run_id=from-config"])
    # The override re-validated the config; the secret it read from the environment stays hidden.
    assert SECRET not in (from_config.run_dir / "config.yaml").read_text()
    assert "token: '***'" in (from_config.run_dir / "config.yaml").read_text()
    assert from_config.config.data.sources["listens"].storage_options["token"] == SECRET


@pytest.mark.slow
def test_the_callers_client_is_used_and_left_open(tiny_lake: Path, tmp_path: Path, client: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASKFLOW_TEST_API_TOKEN", SECRET)
    raw = experiment(tiny_lake, tmp_path / "out")
    raw["cluster"] = {"kind": "remote", "address": "tcp://127.0.0.1:1"}  # would fail if it were used
    result = daskflow.run(raw, client=client)
    assert client.status == "running"
    assert result.metrics["dashboard_link"] == client.dashboard_link
    assert client.submit(lambda x: x + 1, 1).result() == 2


def test_mistakes_are_daskflow_errors(tiny_lake: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASKFLOW_TEST_API_TOKEN", SECRET)
    with pytest.raises(ConfigError, match="daskflow.run got a int as the experiment: expected the path"):
        daskflow.run(42)
    with pytest.raises(ConfigError, match="overrides is a mapping: expected a list of key.sub=value"):
        daskflow.run(experiment(tiny_lake, tmp_path), {"predict.n": 3})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"invalid config the config mapping:\s+predict.n"):
        daskflow.run(experiment(tiny_lake, tmp_path), ["predict.n=0"])
    with pytest.raises(ClusterError, match="client is a str: expected a connected distributed.Client"):
        daskflow.run(experiment(tiny_lake, tmp_path), client="tcp://127.0.0.1:8786")
    with pytest.raises(ConfigError, match="cannot read|does not exist|not found"):
        daskflow.run(tmp_path / "missing.yaml")
    assert not (tmp_path / "api").exists()

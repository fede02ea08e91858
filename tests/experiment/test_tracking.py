"""output.mlflow: a run logged to a real MLflow (SQLite store, and an `mlflow server` process).

Everything is read back with ``MlflowClient``; the secrets planted through ``${env:...}``
(in a source's ``storage_options``) and in the tracking URI's password are searched for in
every param, every metric key, every artifact, stdout and stderr.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from daskflow import ConfigError, DataError, OutputError
from daskflow.cli import main
from daskflow.config import load_config_data
from daskflow.experiment import preflight, run_experiment
from daskflow.experiment._tracking import flatten_metrics, flatten_params, mlflow_key
from tests.conftest import free_port

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

TOKEN = "mlflow-planted-token-4f1a9c"
PASSWORD = "tracking-password-77c2e0"


def experiment(lake: Path, out: Path, tracking_uri: str, **output: Any) -> dict[str, Any]:
    return {
        "experiment": {"name": "tracked", "stages": ["evaluate", "predict"]},
        "cluster": {"n_workers": 1, "threads_per_worker": 2, "processes": False, "dashboard_address": ":0"},
        "data": {"sources": {"listens": {"uri": str(lake / "listens"),
                                         "storage_options": {"token": "${env:DASKFLOW_TEST_MLFLOW_TOKEN}"}}}},
        "features": {"interactions": {"block_size": 100}},
        "model": {"name": "als", "params": {"n_factors": 4, "n_iter": 2, "random_state": 0}},
        "evaluate": {"splits": ["random"], "k": [5]},
        "output": {"dir": str(out), "mlflow": {"tracking_uri": tracking_uri, "timeout": 5}, **output},
    }


def every_artifact(tracker: Any, run_id: str, path: str | None = None) -> list[str]:
    found = []
    for entry in tracker.list_artifacts(run_id, path):
        found += every_artifact(tracker, run_id, entry.path) if entry.is_dir else [entry.path]
    return found


def check_logged(tracker: Any, run_dir: Path, leaked: tuple[str, ...], tmp_path: Path) -> Any:
    """The MLflow run metrics.json names: FINISHED, with params, metrics and artifacts, no secret."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    run = tracker.get_run(metrics["mlflow"]["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == run_dir.name
    params = run.data.params
    assert params["model.params.n_factors"] == "4" and params["experiment.name"] == "tracked"
    assert params["data.sources.listens.storage_options.token"] == "***"
    assert params["output.mlflow.timeout"] == "5.0"
    logged = run.data.metrics
    ndcg = metrics["evaluation"]["als"]["random"]["ndcg@5"]
    assert logged["evaluation.als.random.ndcg_at_5"] == pytest.approx(ndcg)
    assert logged["interactions.nnz"] == metrics["interactions"]["nnz"]
    loss = tracker.get_metric_history(run.info.run_id, "model.loss_curve")
    curve = [m.value for m in sorted(loss, key=lambda m: m.step)]
    assert curve == pytest.approx(metrics["model"]["loss_curve"])
    artifacts = every_artifact(tracker, run.info.run_id)
    for expected in ("config.yaml", "metrics.json", "report.html", "run.log", "plots/ranking_metrics.png",
                     "plots/als_loss.png", "artifacts/model.npz", "artifacts/user_index.parquet"):
        assert expected in artifacts
    assert not any(a.startswith("predictions") for a in artifacts)
    downloaded = Path(tracker.download_artifacts(run.info.run_id, "", str(tmp_path / "downloaded")))
    texts = [*params.keys(), *params.values(), *logged.keys(), json.dumps(run.data.tags)]
    for text in texts:
        assert not [s for s in leaked if s in text], text
    for file in downloaded.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            assert not [s for s in leaked if s.encode() in data], file
    assert json.loads((downloaded / "metrics.json").read_text())["mlflow"]["run_id"] == run.info.run_id
    return run


# -- what is logged, as data ----------------------------------------------------------------


def test_metric_keys_are_flattened_into_mlflow_names() -> None:
    metrics = {"evaluation": {"als": {"by_time": {"ndcg@10": 0.25, "n_users": 40}}},
               "model": {"loss_curve": [3.0, 2.0, 1.5], "name": "als"}, "stages": ["train"],
               "flag": True, "rows": [{"a": 1}, {"a": 2}]}
    assert flatten_metrics(metrics) == [
        ("evaluation.als.by_time.ndcg_at_10", 0.25, 0), ("evaluation.als.by_time.n_users", 40.0, 0),
        ("model.loss_curve", 3.0, 0), ("model.loss_curve", 2.0, 1), ("model.loss_curve", 1.5, 2),
        ("rows.0.a", 1.0, 0), ("rows.1.a", 2.0, 0)]
    assert mlflow_key(("sources", "my source!", "..")) == "sources.my source_._"
    assert flatten_params({"a": {"b": [1, 2], "c": None, "d": "x"}, "e": {}}) == {
        "a.b": "[1, 2]", "a.c": "null", "a.d": "x", "e": "{}"}


# -- found before any work (preflight, as validate and run call it) --------------------------


def test_unreachable_server_is_found_before_any_work_bounded(tiny_lake: Path, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    config = load_config_data(experiment(tiny_lake, tmp_path / "out",
                                         f"http://user:{PASSWORD}@127.0.0.1:{port}"),
                              environ={"DASKFLOW_TEST_MLFLOW_TOKEN": TOKEN})
    started = time.monotonic()
    with pytest.raises(OutputError, match=rf"cannot reach an MLflow tracking server at "
                                          rf"http://user:\*\*\*@127.0.0.1:{port} .*Start it") as caught:
        run_experiment(config)
    assert time.monotonic() - started < 20
    assert PASSWORD not in str(caught.value)
    assert not (tmp_path / "out" / "tracked").exists() or not any((tmp_path / "out" / "tracked").iterdir())


class _NotMlflow(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(404)
        self.end_headers()
        self.wfile.write(b"not here")

    def log_message(self, *args: Any) -> None:
        pass


class _Silent(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        time.sleep(30)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("handler, match", [(_NotMlflow, "404"), (_Silent, "(?i)timed? ?out|did not answer")])
def test_a_peer_that_is_not_mlflow_or_never_answers(handler: Any, match: str, tiny_lake: Path,
                                                    tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        raw = experiment(tiny_lake, tmp_path, uri)
        raw["output"]["mlflow"]["timeout"] = 1
        config = load_config_data(raw, environ={"DASKFLOW_TEST_MLFLOW_TOKEN": TOKEN})
        started = time.monotonic()
        with pytest.raises(OutputError, match=match):
            preflight(config)
        assert time.monotonic() - started < 15
    finally:
        server.shutdown()
        server.server_close()


def test_unusable_local_stores(tiny_lake: Path, tmp_path: Path) -> None:
    environ = {"DASKFLOW_TEST_MLFLOW_TOKEN": TOKEN}
    memory = load_config_data(experiment(tiny_lake, tmp_path, "sqlite:///:memory:"), environ=environ)
    with pytest.raises(ConfigError, match="names no SQLite file .*expected sqlite:///path/to/mlflow.db"):
        preflight(memory)
    (tmp_path / "file").write_text("x")
    inside_a_file = load_config_data(experiment(tiny_lake, tmp_path, f"sqlite:///{tmp_path}/file/m.db"),
                                     environ=environ)
    with pytest.raises(OutputError, match=r"cannot create .*file/m.db .*not a writable directory"):
        preflight(inside_a_file)
    assert preflight(load_config_data(experiment(tiny_lake, tmp_path, f"sqlite:///{tmp_path}/new/m.db"),
                                      environ=environ))
    assert not (tmp_path / "new").exists()  # validate creates nothing


def test_validate_exits_2_without_printing_the_password(tiny_lake: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASKFLOW_TEST_MLFLOW_TOKEN", TOKEN)
    path = tmp_path / "experiment.yaml"
    uri = f"https://user:{PASSWORD}@127.0.0.1:{free_port()}"
    path.write_text(yaml.safe_dump(experiment(tiny_lake, tmp_path / "out", uri)))
    assert main(["validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert "cannot reach an MLflow tracking server at https://user:***@127.0.0.1" in captured.err
    assert PASSWORD not in captured.out + captured.err and TOKEN not in captured.out + captured.err


def test_missing_mlflow_is_a_config_error_with_the_install_hint(tiny_lake: Path, tmp_path: Path) -> None:
    # A fresh interpreter where importing mlflow fails, as it does where the extra is not installed.
    code = f"""
import sys
sys.modules["mlflow"] = None
from daskflow.config import load_config_data
from daskflow.experiment import preflight
raw = {experiment(tiny_lake, tmp_path, f"sqlite:///{tmp_path}/m.db")!r}
try:
    preflight(load_config_data(raw, environ={{"DASKFLOW_TEST_MLFLOW_TOKEN": "x"}}))
except Exception as exc:
    print(type(exc).__name__, exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.startswith("ConfigError output.mlflow is set, but mlflow is not installed")
    assert "pip install 'daskflow[mlflow]'" in out


# -- real runs -------------------------------------------------------------------------------


@pytest.mark.slow
def test_run_is_logged_to_a_sqlite_store(tiny_lake: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASKFLOW_TEST_MLFLOW_TOKEN", TOKEN)
    monkeypatch.chdir(tmp_path)  # a SQLite store keeps its artifacts under ./mlruns by default
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(experiment(tiny_lake, tmp_path / "out", uri, run_id="first")))
    assert main(["-q", "run", str(path)]) == 0
    tracker = MlflowClient(uri)
    run = check_logged(tracker, tmp_path / "out" / "tracked" / "first", (TOKEN,), tmp_path)
    assert tracker.get_experiment(run.info.experiment_id).name == "tracked"


@pytest.mark.slow
def test_a_failed_run_leaves_no_finished_mlflow_run(tiny_lake: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    monkeypatch.setenv("DASKFLOW_TEST_MLFLOW_TOKEN", TOKEN)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    # 1. A stage fails: no MLflow run at all.
    lake = tmp_path / "lake"
    (lake / "listens").mkdir(parents=True)
    pd.DataFrame({"user_id": ["a", "b"], "track_id": ["x", "y"], "ms_played": [100, -5],
                  "ts": pd.to_datetime(["2026-01-01", "2026-01-02"])}
                 ).to_parquet(lake / "listens" / "p.parquet")
    raw = experiment(lake, tmp_path / "out", uri)
    raw["features"]["interactions"]["weight"] = "ms_played"
    with pytest.raises(DataError, match="negative"):
        run_experiment(load_config_data(raw))
    tracker = MlflowClient(uri)
    experiment_id = tracker.get_experiment_by_name("tracked")
    assert experiment_id is None or tracker.search_runs([experiment_id.experiment_id]) == []
    # 2. Logging fails after the MLflow run was created (no artifact can be stored): FAILED, nothing
    # published.
    (tmp_path / "blocked").write_text("a file where the artifact directory should be")
    tracker.create_experiment("blocked", artifact_location=(tmp_path / "blocked" / "artifacts").as_uri())
    raw = experiment(tiny_lake, tmp_path / "out", uri)
    raw["output"]["mlflow"]["experiment"] = "blocked"
    with pytest.raises(OutputError, match=r"cannot log the run to MLflow at sqlite:.* Nothing was published; "
                                          r"the MLflow run \w+ is set FAILED"):
        run_experiment(load_config_data(raw))
    runs = tracker.search_runs([tracker.get_experiment_by_name("blocked").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    assert list((tmp_path / "out" / "tracked").iterdir()) == []


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1 (SQLite backend, artifacts served by it), killed at the end."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
         "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start on {url} within 90 s (exit {server.poll()})")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


@pytest.mark.slow
def test_run_is_logged_to_an_mlflow_server(tiny_lake: Path, tmp_path: Path, mlflow_server: str,
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASKFLOW_TEST_MLFLOW_TOKEN", TOKEN)
    # The server does not check credentials; the client sends them, and must never show them.
    with_password = mlflow_server.replace("http://", f"http://user:{PASSWORD}@")
    raw = experiment(tiny_lake, tmp_path / "out", with_password, run_id="served")
    raw["output"]["mlflow"]["experiment"] = "served-experiment"
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["run_dir"].endswith("served")  # stdout is only the JSON line
    assert PASSWORD not in captured.out + captured.err and TOKEN not in captured.out + captured.err
    run_dir = tmp_path / "out" / "tracked" / "served"
    assert PASSWORD not in (run_dir / "metrics.json").read_text() + (run_dir / "run.log").read_text()
    tracker = MlflowClient(mlflow_server)
    run = check_logged(tracker, run_dir, (TOKEN, PASSWORD), tmp_path)
    assert tracker.get_experiment(run.info.experiment_id).name == "served-experiment"
    assert json.loads((run_dir / "metrics.json").read_text())["mlflow"]["tracking_uri"] == \
        with_password.replace(PASSWORD, "***")

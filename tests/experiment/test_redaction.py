"""Secrets are never written or printed: a whole run on the local S3 server, grepped for them.

The secrets come through ``${env:...}`` into ``storage_options`` (of the source read from S3
and of the predictions written there) and into a plain field; every file of the run
directory (recursively, binary ones included), the objects written to S3, stdout, stderr
and run.log are searched for each of them, and so are ``daskflow validate`` output and
the error messages that used to embed them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from daskflow.cli import main
from daskflow.config import load_config
from tests.conftest import free_port

ACCESS_KEY = "AKIAREDACTIONTEST7Q2X"
SECRET_KEY = "redaction-secret-9d41c7e2b8"
NOTE = "a-note-from-the-environment-5e0c"
ENVIRONMENT = {"DASKFLOW_TEST_ACCESS_KEY": ACCESS_KEY, "DASKFLOW_TEST_SECRET_KEY": SECRET_KEY,
               "DASKFLOW_TEST_NOTE": NOTE}

pytestmark = pytest.mark.slow


def storage_options(endpoint: str) -> dict[str, Any]:
    return {"key": "${env:DASKFLOW_TEST_ACCESS_KEY}", "secret": "${env:DASKFLOW_TEST_SECRET_KEY}",
            "endpoint_url": endpoint, "config_kwargs": {"retries": {"max_attempts": 1}}}


def experiment(lake_uri: str, endpoint: str, out: Path) -> dict[str, Any]:
    return {
        "experiment": {"name": "redact", "description": "${env:DASKFLOW_TEST_NOTE}",
                       "stages": ["kpis", "interactions", "train", "evaluate", "predict"]},
        "cluster": {"n_workers": 1, "threads_per_worker": 2, "processes": False, "dashboard_address": ":0"},
        "data": {"sources": {"listens": {"uri": f"{lake_uri}/listens", "storage_options":
                                         storage_options(endpoint)}}},
        "features": {"interactions": {"block_size": 100}},
        "model": {"name": "als", "params": {"n_factors": 4, "n_iter": 2}},
        "evaluate": {"splits": ["random"], "k": [5]},
        "predict": {"uri": "s3://redaction/out/recommendations.parquet",
                    "storage_options": storage_options(endpoint)},
        "output": {"dir": str(out)},
    }


def leaks(data: bytes, secrets: tuple[str, ...]) -> list[str]:
    return [secret for secret in secrets if secret.encode() in data]


@pytest.fixture
def s3_lake(tiny_lake: Path, s3_server: dict[str, Any]) -> tuple[str, str, Any]:
    import s3fs

    fs = s3fs.S3FileSystem(key=s3_server["key"], secret=s3_server["secret"],
                           endpoint_url=s3_server["endpoint_url"])
    if not fs.exists("redaction/lake/listens"):  # the server lives for the session
        fs.mkdir("redaction")
        fs.put(str(tiny_lake / "listens"), "redaction/lake/listens", recursive=True)
    return "s3://redaction/lake", str(s3_server["endpoint_url"]), fs


def test_a_run_writes_and_prints_no_secret(s3_lake: tuple[str, str, Any], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    lake_uri, endpoint, fs = s3_lake
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(experiment(lake_uri, endpoint, tmp_path / "out")))
    code = main(["run", str(path)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    run_dir = Path(json.loads(captured.out)["run_dir"])
    # storage_options values are hidden whatever they hold, so the endpoint is not shown either.
    secrets = (ACCESS_KEY, SECRET_KEY, NOTE, endpoint)

    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {"config.yaml", "metrics.json", "report.html", "run.log"} <= {p.name for p in files}
    assert {str(p.relative_to(run_dir)): leaks(p.read_bytes(), secrets) for p in files
            if leaks(p.read_bytes(), secrets)} == {}
    written = [f for f in fs.find("redaction/out") if f]
    assert written and all(leaks(fs.cat(f), secrets) == [] for f in written)
    assert leaks(captured.out.encode() + captured.err.encode(), secrets) == []
    assert "stage train done" in (run_dir / "run.log").read_text()  # the log was written, and scrubbed

    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    listens = saved["data"]["sources"]["listens"]
    assert listens["storage_options"] == {"key": "***", "secret": "***", "endpoint_url": "***",
                                          "config_kwargs": {"retries": {"max_attempts": "***"}}}
    assert listens["uri"] == f"{lake_uri}/listens"  # what is not secret stays readable
    assert saved["experiment"]["description"] == "***"
    assert saved["model"]["params"] == {"n_factors": 4, "n_iter": 2}
    assert "***" in (run_dir / "report.html").read_text()


def test_validate_prints_no_secret(s3_lake: tuple[str, str, Any], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "experiment.yaml"
    # A reachable lake: validate reads its sources' footers (an unreachable one is an error).
    lake_uri, endpoint, _ = s3_lake
    config = experiment(lake_uri, endpoint, tmp_path / "out")
    config["predict"]["uri"] = "s3://redaction/validated/recommendations.parquet"  # not the run test's
    config["data"]["sources"]["listens"]["storage_options"]["token"] = SECRET_KEY  # written in the file
    path.write_text(yaml.safe_dump(config))
    assert main(["validate", str(path)]) == 0
    captured = capsys.readouterr()
    assert leaks((captured.out + captured.err).encode(), (ACCESS_KEY, SECRET_KEY, NOTE)) == []
    shown = yaml.safe_load(captured.out)
    assert shown["data"]["sources"]["listens"]["storage_options"]["token"] == "***"
    assert shown["predict"]["storage_options"]["key"] == "***"


def test_error_messages_show_no_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    # An unreachable endpoint from the environment: the store's error names the endpoint URL,
    # which the message used to print; a bad cluster section used to print its dict.
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("DASKFLOW_TEST_ENDPOINT", endpoint)
    config = experiment("s3://bucket/lake", "${env:DASKFLOW_TEST_ENDPOINT}", tmp_path / "out")
    config["experiment"]["stages"] = ["kpis"]
    path = tmp_path / "unreachable.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["-q", "run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "cannot reach source 'listens'" in err
    assert leaks(err.encode(), (ACCESS_KEY, SECRET_KEY, NOTE, endpoint)) == []

    config["cluster"] = {"kind": "local", "kubernetes": {"env": {"AWS_SECRET_ACCESS_KEY":
                                                                 "${env:DASKFLOW_TEST_SECRET_KEY}"}}}
    path = tmp_path / "bad-cluster.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["-q", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "cluster.kubernetes is only used with kind 'kubernetes'" in err
    assert leaks(err.encode(), (SECRET_KEY,)) == []


def test_resume_with_another_secret_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Resume compares the redacted config.yaml: a rotated secret does not stop a resume."""
    from daskflow.config import config_to_yaml
    from daskflow.experiment._runner import _resumed_run_id

    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(experiment("s3://bucket/lake", "http://127.0.0.1:9", tmp_path / "out")))
    first = load_config(path, environ=ENVIRONMENT)
    work_dir = tmp_path / "out" / "redact" / ".r1.tmp-abc"
    work_dir.mkdir(parents=True)
    (work_dir / "config.yaml").write_text(config_to_yaml(first))
    rotated = load_config(path, environ={**ENVIRONMENT, "DASKFLOW_TEST_SECRET_KEY": "rotated-secret-0000"})
    assert config_to_yaml(rotated, redact_secrets=False) != config_to_yaml(first, redact_secrets=False)
    assert _resumed_run_id(rotated, work_dir) == "r1"
    assert SECRET_KEY not in (work_dir / "config.yaml").read_text()

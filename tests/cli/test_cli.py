"""The command line: exit codes, one-line user errors, no tracebacks for user mistakes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from daskflow import __version__
from daskflow.cli import _main, main

from ..conftest import free_port

ROOT = Path(__file__).parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
CONVERSION = ROOT / "configs" / "conversion.yaml"


def daskflow(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daskflow", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


def assert_user_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("daskflow: error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def test_version() -> None:
    result = daskflow("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"daskflow {__version__}"


def test_validate_prints_resolved_config() -> None:
    result = daskflow("validate", str(QUICKSTART), "cluster.n_workers=1")
    assert result.returncode == 0, result.stderr
    assert "n_workers: 1" in result.stdout and "memory_limit: 2GiB" in result.stdout
    assert ("valid: stages kpis -> interactions -> train -> evaluate -> features -> classify -> predict "
            "-> score") in result.stderr


def test_validate_unknown_key_exits_2_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    text = QUICKSTART.read_text().replace("  seed: 0\n", "  seed: 0\n  sede: 1\n")
    config.write_text(text)
    line = text.splitlines().index("  sede: 1") + 1
    assert_user_error(daskflow("validate", str(config)), "unknown key 'experiment.sede'", f"line {line}")


@pytest.mark.parametrize("args, fragments", [
    (["validate", str(QUICKSTART), "n_workers"], ["bad override 'n_workers'"]),
    (["validate", "missing.yaml"], ["config file 'missing.yaml' does not exist"]),
    (["validate", str(QUICKSTART), "model.name=bert"], ["unknown model 'bert'; available: als, popularity"]),
    (["validate", str(QUICKSTART), "evaluate.baselines=[pop]"], ["unknown model(s) ['pop']"]),
    (["frobnicate"], ["invalid choice: 'frobnicate'"]),
    (["generate"], ["the following arguments are required: OUT"]),
    (["validate", str(QUICKSTART), "experiment.stages=[tune]", "tune.target=recommender",
      "tune.params={n_factors: [8, 16]}", "tune.metric=roc_auc"],
     ["tune.metric 'roc_auc' is not a ranking metric"]),
    (["validate", str(QUICKSTART), "model.name=naive_bayes"], ["unknown model 'naive_bayes'"]),
    (["validate", str(CONVERSION), "classify.models.nb.model=bert"], ["unknown classifier 'bert'"]),
])
def test_user_errors_exit_2(args: list[str], fragments: list[str]) -> None:
    assert_user_error(daskflow(*args), *fragments)


def test_missing_data_exits_2_and_publishes_nothing(tmp_path: Path) -> None:
    result = daskflow("run", str(QUICKSTART), "data.sample=null", "cluster.n_workers=1",
                      "cluster.dashboard_address=:0", cwd=tmp_path)
    assert_user_error(result, "no data at source 'listens' at data/sample-small/listens")
    # The sources are checked before anything is created: not even the output directory.
    assert not (tmp_path / "outputs").exists()


def test_bad_schema_exits_2(tmp_path: Path, tiny_lake: Path) -> None:
    result = daskflow("run", str(QUICKSTART), "data.sample=null", "cluster.n_workers=1",
                      "cluster.dashboard_address=:0",
                      f"data.sources.listens.uri={tiny_lake}/listens",
                      "data.sources.listens.schema.user_id=integer", cwd=tmp_path)
    assert_user_error(result, "column 'user_id' of source 'listens'", "has type string, expected integer")


def test_internal_error_exits_1_with_traceback(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    def broken(args: object) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setitem(_main._COMMANDS, "validate", broken)
    assert main(["validate", str(QUICKSTART)]) == 1
    captured = capsys.readouterr()
    assert "internal error" in captured.err and "RuntimeError: a bug" in captured.err


def test_generate_writes_a_lake(tmp_path: Path) -> None:
    result = daskflow("generate", str(tmp_path / "lake"), "--scale", "small", "--format", "orc",
                      "--seed", "3", "--workers", "1")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rows"]["listens"] > 50_000
    assert len(list((tmp_path / "lake" / "listens").glob("date=*/*.orc"))) == 14
    again = daskflow("generate", str(tmp_path / "lake"), "--workers", "1")
    assert_user_error(again, "already exists")


def test_k8s_manifest_prints_a_valid_daskcluster(tmp_path: Path) -> None:
    pytest.importorskip("dask_kubernetes")
    from daskflow.cluster import build_manifest, validate_manifest

    args = ["k8s", "manifest", str(QUICKSTART), "cluster.kind=kubernetes", "cluster.kubernetes.n_workers=3",
            "cluster.kubernetes.namespace=team"]
    result = daskflow(*args)
    assert result.returncode == 0, result.stderr
    manifest = yaml.safe_load(result.stdout)
    assert validate_manifest(manifest) == manifest == build_manifest(n_workers=3, namespace="team")
    assert manifest["spec"]["worker"]["replicas"] == 3 and "valid DaskCluster" in result.stderr
    out = tmp_path / "daskcluster.yaml"
    written = daskflow(*args, "--output", str(out))
    assert written.returncode == 0 and written.stdout == "", written.stderr
    assert yaml.safe_load(out.read_text()) == manifest


@pytest.mark.parametrize("args, fragments", [
    (["k8s", "manifest", str(QUICKSTART), "cluster.kind=kubernetes", "cluster.kubernetes.n_workers=two"],
     ["cluster.kubernetes.n_workers = 'two' is invalid", "expected an integer >= 0, got 'two'"]),
    (["k8s", "manifest", str(QUICKSTART), "cluster.kind=kubernetes",
      "cluster.kubernetes.worker_memory=4 gigs"],
     ["cluster.kubernetes.worker_memory = '4 gigs' is invalid", "expected a size such as '4GiB'"]),
    (["k8s", "manifest", str(QUICKSTART)], ["runs on cluster.kind 'local': expected kind kubernetes"]),
    (["k8s", "manifest", str(QUICKSTART), "cluster.kind=kubernetes", "--output", "/nonexistent/dir/x.yaml"],
     ["cannot write the manifest to /nonexistent/dir/x.yaml"]),
    (["k8s"], ["the following arguments are required: COMMAND"]),
])
def test_k8s_manifest_user_errors_exit_2(args: list[str], fragments: list[str]) -> None:
    pytest.importorskip("dask_kubernetes")
    assert_user_error(daskflow(*args), *fragments)


def test_run_on_unreachable_kubernetes_exits_2_and_publishes_nothing(tmp_path: Path) -> None:
    pytest.importorskip("dask_kubernetes")
    server = f"https://127.0.0.1:{free_port()}"  # loopback, nothing listening
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "t"}}]}))
    started = time.monotonic()
    result = daskflow("run", str(QUICKSTART), "cluster.kind=kubernetes", "output.run_id=on-k8s", cwd=tmp_path,
                      env={"KUBECONFIG": str(kubeconfig)})
    assert_user_error(result, f"cannot reach the Kubernetes API at {server} (from KUBECONFIG={kubeconfig}) "
                              "after 3 attempts")
    assert result.stderr.count("reaching the Kubernetes API failed") == 2  # two retries, with backoff
    assert not (tmp_path / "outputs" / "quickstart" / "on-k8s").exists()
    assert time.monotonic() - started < 60  # the process start included; the retries take ~2 s


@pytest.mark.slow
def test_quickstart_end_to_end(tmp_path: Path) -> None:
    """The README's main command, in a fresh directory: generates the lake, runs, publishes."""
    shutil.copy(QUICKSTART, tmp_path / "quickstart.yaml")
    result = daskflow("run", "quickstart.yaml", "cluster.dashboard_address=:0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / json.loads(result.stdout)["run_dir"]
    assert "Dask dashboard: http://" in result.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["data"]["rows"] > 50_000 and metrics["data"]["dau_mean"] > 0
    assert metrics["interactions"]["nnz"] > 0
    for split in ("random", "by_time"):
        scores = metrics["evaluation"]["als"][split]
        assert {"precision@10", "recall@10", "map@10", "ndcg@10"} <= scores.keys()
        # The planted tastes make ALS clearly better than the popularity baseline.
        assert scores["ndcg@10"] > 1.3 * metrics["evaluation"]["popularity"][split]["ndcg@10"]
    assert len(metrics["model"]["loss_curve"]) == 10
    assert metrics["dashboard_link"].startswith("http://")
    for path in ("config.yaml", "run.log", "artifacts/user_index.parquet", "artifacts/item_index.parquet",
                 "artifacts/daily_active_users.parquet", "predictions/recommendations.parquet/_SUCCESS"):
        assert (run_dir / path).exists(), path
    import pandas as pd

    # The conversion model beside the recommender: it beats chance and scores every user.
    conversion = metrics["classify"]
    assert conversion["models"]["logistic_regression"]["roc_auc"] > 0.6
    scores = pd.read_parquet(run_dir / "predictions" / "scores.parquet")
    assert len(scores) == conversion["population"]["rows"] == 2_000
    page = (run_dir / "report.html").read_text()
    # ranking metrics, ALS loss, ROC, precision-recall, gains, calibration, daily active users
    assert page.count("<img ") == 7
    from tests.reporting.test_report import layout_in_chromium

    # Opened at 1280 px as a person would: every plot loads, no table runs off the page.
    layout = layout_in_chromium(run_dir / "report.html", tmp_path)
    assert layout["images"] == "7/7" and layout["overflowing"] == "", layout
    page = (run_dir / "report.html").read_text()
    for section in ("logistic_regression (chosen)", "ROC AUC 95% CI", "by decile of score",
                    "the strongest features", "A few users' recommendations", "Precision-recall curves",
                    "Daily active users", "every figure below is measured on"):
        assert section in page, section
    recommendations = pd.read_parquet(run_dir / "predictions" / "recommendations.parquet")
    users = pd.read_parquet(run_dir / "artifacts" / "user_index.parquet")
    assert set(recommendations.user_id) == set(users.user_id)
    assert recommendations.groupby("user_id").size().eq(10).all()


def test_performance_report_is_written_with_the_run(tmp_path: Path, tiny_lake: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "experiment": {"name": "perf", "stages": ["interactions", "train"]},
        "cluster": {"n_workers": 1, "processes": False, "dashboard_address": ":0"},
        "data": {"sources": {"listens": {"uri": str(tiny_lake / "listens")}}},
        "model": {"name": "popularity"},
        "output": {"dir": str(tmp_path / "out"), "performance_report": True}}))
    assert main(["-q", "run", str(config)]) == 0, capsys.readouterr().err
    run_dir = Path(json.loads(capsys.readouterr().out)["run_dir"])
    page = (run_dir / "dask-performance.html").read_text()
    # distributed's bokeh page: the task stream and worker profile of the stages' tasks.
    assert len(page) > 30_000 and "Bokeh" in page  # ~65 KB for these few tasks
    assert "Task Stream" in page and "Worker Profile" in page
    assert "interactions-read-factorize" in page  # a task of the interactions stage, by its prefix


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_unwinds_the_command_and_exits_with_one_line(signum: int, code: int,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    unwound = []

    def interrupted(args: object) -> int:
        try:
            os.kill(os.getpid(), signum)
            time.sleep(10)  # the signal's exception ends this at once
            return 0
        finally:
            unwound.append(True)  # cleanups run, as on Ctrl-C

    monkeypatch.setitem(_main._COMMANDS, "validate", interrupted)
    before = signal.getsignal(signal.SIGTERM)
    started = time.monotonic()
    assert main(["validate", str(QUICKSTART)]) == code
    assert time.monotonic() - started < 5 and unwound == [True]
    name = signal.Signals(signum).name
    assert capsys.readouterr().err == f"daskflow: interrupted ({name}); nothing was published\n"
    assert signal.getsignal(signal.SIGTERM) is before  # the CLI's handlers are gone again

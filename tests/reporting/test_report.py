"""report.html: self-contained, every plot embedded, and it renders in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from daskflow.reporting import plot_convergence, plot_ranking_metrics, write_report

METRICS = {
    "experiment": "demo", "run_id": "r1", "daskflow_version": "0.1.0", "stages": ["interactions", "train"],
    "timings_s": {"interactions": 1.25, "train": 3.5}, "wall_time_s": 5.0,
    "dashboard_link": "http://127.0.0.1:8787/status",
    "interactions": {"users": 300, "items": 400, "nnz": 5000},
    "evaluation": {"als": {"random": {"holdout": 1, "ndcg@10": 0.07, "precision@10": 0.01}}},
    "conversion": {"population": {"users": 300, "exposed_users": 150},
                   "models": {"newton": {"model": "logistic_regression", "roc_auc": 0.71, "pr_auc": 0.3,
                                         "log_loss": 0.41, "brier": 0.12,
                                         "gains": {"share_targeted": [0.1], "share_kept": [0.3],
                                                   "lift": [3.0]}}}},
}


@pytest.fixture
def report(tmp_path: Path) -> Path:
    plots = [plot_ranking_metrics({"als": {"ndcg@5": 0.05, "ndcg@10": 0.07}},
                                  tmp_path / "ranking_metrics.png"),
             plot_convergence({"als": [3.0, 2.0, 1.5]}, tmp_path / "als_loss.png")]
    return write_report(tmp_path / "run" / "report.html", METRICS, config_text="experiment: {name: demo}\n",
                        plots=plots)


def test_the_report_is_self_contained(report: Path) -> None:
    page = report.read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == 2 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<script" not in page and "http://127.0.0.1:8787/status" in page
    for fragment in ("Timings per stage", "Ranking metrics (leave-k-out)",
                     "Conversion models on the test users", "kept@10%", "lift@10%",
                     "experiment: {name: demo}", "0.71"):
        assert fragment in page, fragment


def images_loaded_in_chromium(page: Path, work: Path) -> str:
    """Open ``page`` in headless Chromium; return "<images>/<loaded>" as the browser counted them."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)")
    # The page has no script of its own; the check runs in a copy with one appended.
    checker = ("<script>window.addEventListener('load', () => { const images = [...document.images];"
               " const loaded = images.filter(i => i.complete && i.naturalWidth > 0).length;"
               " document.body.setAttribute('data-images', images.length + '/' + loaded); });</script>")
    probe = work / "probe.html"
    probe.write_text(page.read_text().replace("</body>", checker + "</body>"))
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={work / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
         probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r'data-images="(\d+/\d+)"', result.stdout)
    assert found, result.stdout[-2000:]
    return found.group(1)


def test_the_report_renders_in_headless_chromium_with_every_image(report: Path, tmp_path: Path) -> None:
    assert images_loaded_in_chromium(report, tmp_path) == "2/2"

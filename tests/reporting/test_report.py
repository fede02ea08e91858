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
    "classify": {"population": {"rows": 300, "labelled_rows": 150},
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
                     "Classifiers on the test rows", "kept@10%", "lift@10%",
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


def _wide_metrics() -> dict:
    """Eight classifiers with intervals and five depths: the table that ran off the page."""
    depths = [0.01, 0.05, 0.1, 0.2, 0.5]
    models = {}
    for i, name in enumerate(["newton", "lbfgs", "sgd", "linear_svm", "naive_bayes", "decision_tree",
                              "random_forest", "boosted_trees_with_a_long_name"]):
        models[name] = {"model": name, "fit_seconds": 1.5 + i, "roc_auc": 0.7 - i / 100, "pr_auc": 0.3,
                        "log_loss": 0.41, "brier": 0.12,
                        "gains": {"share_targeted": depths, "share_kept": [0.04, 0.2, 0.3, 0.5, 0.8],
                                  "lift": [4.0, 4.0, 3.0, 2.5, 1.6]},
                        "intervals": {"level": 0.95, "n_resamples": 200, "roc_auc": [0.68, 0.72],
                                      **{f"kept@{d * 100:g}%": [0.1, 0.2] for d in depths}},
                        "deciles": {"decile": list(range(1, 11)), "count": [100.0] * 10,
                                    "positives": [30.0, 20, 12, 9, 8, 6, 5, 4, 3, 3],
                                    "rate": [0.3, 0.2, 0.12, 0.09, 0.08, 0.06, 0.05, 0.04, 0.03, 0.03],
                                    "lift": [3.0, 2.0, 1.2, 0.9, 0.8, 0.6, 0.5, 0.4, 0.3, 0.3]},
                        "top_features": [{"feature": "listening_minutes_28d", "weight": 0.8,
                                          "meaning": "standardised coefficients"}]}
    return {**METRICS, "classify": {"population": {"rows": 300}, "models": models,
                                    "split": {"train_rows": 700, "test_rows": 300, "by": "hash"},
                                    "score": {"model": "lbfgs", "rows": 1000}},
            "predict": {"users": 300, "examples": [
                {"user": "u1", "1": "Song A — Artist", "2": "Song B — Artist", "3": "Song C — Artist"}]}}


def layout_in_chromium(page: Path, work: Path, width: int = 1280) -> dict[str, str]:
    """Open ``page`` at ``width`` px; the browser reports images loaded and tables past the edge."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)")
    checker = ("<script>window.addEventListener('load', () => { const images = [...document.images];"
               " const loaded = images.filter(i => i.complete && i.naturalWidth > 0).length;"
               " const edge = document.documentElement.clientWidth;"
               " const tables = [...document.querySelectorAll('table')];"
               " const over = tables.map((t, i) => t.getBoundingClientRect().right > edge ? i : -1)"
               ".filter(i => i >= 0);"
               " document.body.setAttribute('data-layout', images.length + '/' + loaded + ';' + tables.length"
               " + ';' + over.join(',') + ';' + edge); });</script>")
    probe = work / "layout.html"
    probe.write_text(page.read_text().replace("</body>", checker + "</body>"))
    common = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              f"--user-data-dir={work / 'profile'}", "--virtual-time-budget=5000",
              f"--window-size={width},2000", "--hide-scrollbars"]
    result = subprocess.run([*common, "--dump-dom", probe.as_uri()], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r'data-layout="([^"]*)"', result.stdout)
    assert found, result.stdout[-2000:]
    images, tables, over, edge = found.group(1).split(";")
    # A screenshot beside it, for a person to look at when this fails.
    subprocess.run([*common, f"--screenshot={work / 'report.png'}", page.as_uri()], capture_output=True,
                   timeout=120)
    return {"images": images, "tables": tables, "overflowing": over, "viewport": edge}


def test_every_table_fits_at_1280_px_and_every_image_loads(tmp_path: Path) -> None:
    from daskflow.reporting import plot_precision_recall, plot_roc

    curves = {"lbfgs": {"roc_curve": {"fpr": [0, 0.3, 1], "tpr": [0, 0.7, 1]}, "roc_auc": 0.7,
                        "pr_curve": {"recall": [0, 0.5, 1], "precision": [1, 0.4, 0.2]}, "pr_auc": 0.4,
                        "base_rate": 0.2}}
    plots = [plot_roc(curves, tmp_path / "roc.png"), plot_precision_recall(curves, tmp_path / "pr.png")]
    page = write_report(tmp_path / "run" / "report.html", _wide_metrics(), config_text="x: 1\n", plots=plots)
    text = page.read_text()
    for fragment in ("lbfgs (chosen)", 'class="chosen"', "ROC AUC 95% CI", "0.680 – 0.720",
                     "kept@10% CI", "by decile of score", "the strongest features", "listening_minutes_28d",
                     "fitted on 700 training rows", "300 test rows", "Song A — Artist"):
        assert fragment in text, fragment
    layout = layout_in_chromium(page, tmp_path)
    assert layout["viewport"] == "1280"
    assert layout["images"] == "2/2"
    assert int(layout["tables"]) >= 5 and layout["overflowing"] == "", layout

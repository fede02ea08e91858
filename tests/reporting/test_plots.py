"""Report plots: each writes a readable PNG, for one or several series, and refuses empty input."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from daskflow import DataError, OutputError
from daskflow.evaluation import ClassifierReport, evaluate_classifier
from daskflow.reporting import (
    plot_calibration,
    plot_convergence,
    plot_gains,
    plot_ranking_metrics,
    plot_roc,
    plot_tuning,
    plot_tuning_heatmap,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def classifier_report(seed: int, noise: float) -> ClassifierReport:
    rng = np.random.default_rng(seed)
    y = rng.random(400) < 0.1
    return evaluate_classifier(y, np.clip(0.1 + 0.4 * y + rng.normal(0, noise, 400), 0, 1))


LOGISTIC, FOREST = classifier_report(0, 0.15), classifier_report(1, 0.3)
TUNING = xr.Dataset(
    {"roc_auc_mean": (("step_size", "regularization"), [[0.70, 0.72, 0.69], [0.80, 0.83, 0.81],
                                                        [0.78, 0.79, np.nan], [0.60, np.nan, np.nan]]),
     "roc_auc_std": (("step_size", "regularization"), np.full((4, 3), 0.02))},
    coords={"step_size": [0.01, 0.1, 1.0, 10.0], "regularization": [0.0, 0.01, 0.1]})
RANKING = {"als": {"precision@5": 0.21, "precision@10": 0.17, "recall@5": 0.10, "recall@10": 0.16,
                   "map@5": 0.12, "map@10": 0.13, "ndcg@5": 0.25, "ndcg@10": 0.27, "auc": 0.91,
                   "n_users": 300},
           "popularity": {"precision@5": 0.08, "precision@10": 0.07, "ndcg@5": 0.10, "ndcg@10": 0.11}}

#: name -> (function, one series, several series, keyword arguments)
CASES: dict[str, tuple[Callable[..., Path], Any, Any, dict[str, Any]]] = {
    "roc": (plot_roc, {"logistic": LOGISTIC},
            {"logistic": LOGISTIC, "forest": FOREST.to_dict(), "points": ([0, 0.3, 1], [0, 0.8, 1])}, {}),
    "gains": (plot_gains, {"logistic": LOGISTIC}, {"logistic": LOGISTIC, "forest": FOREST.gains_curve}, {}),
    "calibration": (plot_calibration, {"logistic": LOGISTIC},
                    {"logistic": LOGISTIC.to_dict(), "forest": FOREST.calibration}, {}),
    "convergence": (plot_convergence, {"step_size=1": 1 / np.arange(1, 40)},
                    {"step_size=0.1": 1 / np.arange(1, 40), "step_size=1": 1 / np.arange(1, 40) ** 2,
                     "step_size=100": [1.0, 50.0, 1e6, np.inf, np.nan]}, {"title": "SGD"}),
    "ranking": (plot_ranking_metrics, {"als": {"ndcg@5": 0.25, "ndcg@10": 0.27, "ndcg@20": 0.30}},
                RANKING, {}),
}


def assert_png(path: Path, min_size: tuple[int, int] = (300, 400)) -> None:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] >= min_size[0] and image.shape[1] >= min_size[1]
    assert image[..., :3].std() > 0.05  # something was drawn


@pytest.mark.parametrize("case", CASES)
def test_one_and_several_series(case: str, tmp_path: Path) -> None:
    function, one, several, kwargs = CASES[case]
    for name, series in (("one", one), ("several", several)):
        path = tmp_path / "plots" / f"{case}-{name}.png"  # parent directories are created
        assert function(series, path, **kwargs) == path
        assert_png(path)


@pytest.mark.parametrize("case", CASES)
def test_empty_input_is_refused(case: str, tmp_path: Path) -> None:
    function, _, _, kwargs = CASES[case]
    with pytest.raises(DataError, match=rf"nothing to plot \({function.__name__}\): expected at least one"):
        function({}, tmp_path / "empty.png", **kwargs)
    with pytest.raises(DataError, match=rf"got a list \({function.__name__}\): expected a mapping of label"):
        function([], tmp_path / "empty.png", **kwargs)
    assert not (tmp_path / "empty.png").exists()


def test_series_without_points_or_the_wrong_shape(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"'logistic' has no points \(plot_roc"):
        plot_roc({"logistic": ([], [])}, tmp_path / "roc.png")
    with pytest.raises(DataError, match=r"'logistic' has 3 fpr values but 2 tpr values"):
        plot_roc({"logistic": ([0, 0.5, 1], [0, 1])}, tmp_path / "roc.png")
    with pytest.raises(DataError, match=r"the data of 'svm' has keys \['fpr'\] .*expected 'fpr' and 'tpr'"):
        plot_roc({"svm": {"fpr": [0, 1]}}, tmp_path / "roc.png")
    with pytest.raises(DataError, match=r"every objective value is NaN or infinite .*smaller step sizes"):
        plot_convergence({"step_size=100": [np.nan, np.inf]}, tmp_path / "sgd.png")
    with pytest.raises(DataError, match=r"no metric@k values to plot"):
        plot_ranking_metrics({"als": {"auc": 0.9}}, tmp_path / "ranking.png")


def test_calibration_needs_probabilities(tmp_path: Path) -> None:
    y = np.arange(20) % 4 == 0
    margins = evaluate_classifier(y, np.linspace(-3, 3, 20), probabilities=False)
    with pytest.raises(DataError, match=r"the report of 'svm' has no calibration .*probabilities=False"):
        plot_calibration({"svm": margins}, tmp_path / "calibration.png")


def test_the_same_data_gives_the_same_bytes(tmp_path: Path) -> None:
    first = plot_gains({"logistic": LOGISTIC}, tmp_path / "a.png")
    second = plot_gains({"logistic": LOGISTIC}, tmp_path / "b.png")
    assert first.read_bytes() == second.read_bytes()


def test_tuning_curve_from_a_dataset_and_a_table(tmp_path: Path) -> None:
    assert_png(plot_tuning(TUNING, tmp_path / "step.png", param="step_size", metric="roc_auc"))
    # Dataset.to_dataframe() output (hyperparameters in the index), one line per step size.
    assert_png(plot_tuning(TUNING.to_dataframe(), tmp_path / "hue.png", param="regularization",
                           metric="roc_auc", hue="step_size"))
    # One row per trial, a lower-is-better metric without std, a categorical hyperparameter.
    table = pd.DataFrame({"solver": ["newton", "lbfgs", "sgd"], "log_loss_mean": [0.31, 0.30, 0.42]})
    assert_png(plot_tuning(table, tmp_path / "solver.png", param="solver", metric="log_loss"))


def test_tuning_heatmap(tmp_path: Path) -> None:
    assert_png(plot_tuning_heatmap(TUNING, tmp_path / "grid.png", params=("step_size", "regularization"),
                                   metric="roc_auc"))
    with pytest.raises(DataError, match=r"params is \('step_size', 'step_size'\) .*two different"):
        plot_tuning_heatmap(TUNING, tmp_path / "grid.png", params=("step_size", "step_size"),
                            metric="roc_auc")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"param": "step_size", "metric": "pr_auc"},
     r"no metric 'pr_auc' in the tuning result \(plot_tuning\): expected a variable 'pr_auc_mean' .*"
     r"found \['roc_auc_mean', 'roc_auc_std'\]"),
    ({"param": "rank", "metric": "roc_auc"},
     r"no hyperparameter 'rank' .*expected one of \['step_size', 'regularization'\]"),
])
def test_tuning_errors(kwargs: dict[str, str], message: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=message):
        plot_tuning(TUNING, tmp_path / "tuning.png", **kwargs)


def test_best_over_other_dims_skips_failed_trials() -> None:
    from daskflow.reporting._plots import _tuning_grid

    mean, std, coords, others = _tuning_grid(TUNING, "test", "roc_auc", ("step_size",), None)
    np.testing.assert_allclose(mean, [0.72, 0.83, 0.79, 0.60])
    assert others == ["regularization"] and list(coords[0]) == [0.01, 0.1, 1.0, 10.0]
    lowest, _, _, _ = _tuning_grid(TUNING, "test", "roc_auc", ("step_size",), False)
    np.testing.assert_allclose(lowest, [0.69, 0.80, 0.78, 0.60])


def test_unwritable_path_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"could not write the plot \(plot_roc: "):
        plot_roc({"logistic": LOGISTIC}, tmp_path)  # a directory


def test_importing_reporting_does_not_import_matplotlib() -> None:
    code = ("import sys, daskflow.reporting; "
            "print(sorted({'matplotlib', 'xarray'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"

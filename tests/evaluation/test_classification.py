"""Classification and targeting metrics: against scikit-learn, by hand, and on Dask inputs."""

from __future__ import annotations

import json

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
    roc_curve,
)

from daskflow import DataError, ParameterError
from daskflow.evaluation import ClassifierReport, evaluate_classifier
from daskflow.evaluation._classification_kernels import merge_tables, score_table


def sample(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, probabilities rounded to 2 decimals (many ties, exact 0s and 1s), weights."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.15).astype(np.int64)
    score = np.round(np.clip(0.15 + 0.35 * (y - 0.15) + rng.normal(0, 0.2, n), 0, 1), 2)
    weight = rng.integers(0, 4, n) * rng.uniform(0.5, 1.5, n)  # some zero weights too
    return y, score, weight


@pytest.mark.parametrize("weighted", [False, True])
def test_every_number_matches_scikit_learn(weighted: bool) -> None:
    y, score, weight = sample()
    weight = weight if weighted else None
    assert np.isin([0.0, 1.0], score).all()  # the clipping of log loss is exercised
    report = evaluate_classifier(y, score, sample_weight=weight)
    assert report.roc_auc == pytest.approx(roc_auc_score(y, score, sample_weight=weight), abs=1e-12)
    assert report.pr_auc == pytest.approx(average_precision_score(y, score, sample_weight=weight), abs=1e-12)
    assert report.log_loss == pytest.approx(log_loss(y, y_proba=score, sample_weight=weight), rel=1e-12)
    assert report.brier == pytest.approx(brier_score_loss(y, y_proba=score, sample_weight=weight), rel=1e-12)
    assert report.base_rate == pytest.approx(np.average(y, weights=weight), rel=1e-12)
    assert (report.n, report.n_positive) == (len(y), int(y.sum()))


@pytest.mark.parametrize("n_bins", [5, 10])
def test_calibration_matches_calibration_curve_with_quantile_bins(n_bins: int) -> None:
    y, score, _ = sample(seed=1)
    observed, predicted = calibration_curve(y, score, n_bins=n_bins, strategy="quantile")
    table = evaluate_classifier(y, score, n_bins=n_bins).calibration
    np.testing.assert_allclose(table.observed_rate, observed, rtol=1e-12)
    np.testing.assert_allclose(table.mean_predicted, predicted, rtol=1e-12)
    edges = np.percentile(score, np.linspace(0, 100, n_bins + 1))
    np.testing.assert_array_equal(table.lower, edges[table.bin])
    np.testing.assert_array_equal(table.upper, edges[table.bin + 1])
    assert table.count.sum() == len(y)


def test_weighted_calibration_is_a_weighted_mean_per_bin_and_scale_free() -> None:
    y, score, weight = sample(seed=2)
    report = evaluate_classifier(y, score, sample_weight=weight)
    table = report.calibration
    # Empty bins hold no rows, so the filled bins' upper edges split the rows the same way.
    bins = np.searchsorted(table.upper[:-1], score, side="left")
    for i in range(len(table.bin)):
        rows = (bins == i) & (weight > 0)
        assert table.observed_rate[i] == pytest.approx(np.average(y[rows], weights=weight[rows]))
        assert table.mean_predicted[i] == pytest.approx(np.average(score[rows], weights=weight[rows]))
    gaps = np.abs(table.observed_rate - table.mean_predicted)
    expected_ece = np.sum(table.count * gaps) / table.count.sum()
    assert report.expected_calibration_error == pytest.approx(expected_ece)
    # Constant weights change nothing: the quantile edges are scale-free.
    unweighted = evaluate_classifier(y, score).calibration
    constant = evaluate_classifier(y, score, sample_weight=np.full(len(y), 2.5)).calibration
    np.testing.assert_allclose(constant.observed_rate, unweighted.observed_rate)
    np.testing.assert_array_equal(constant.upper, unweighted.upper)


def test_gains_and_lift_by_hand() -> None:
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    y = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0])  # 3 conversions, at ranks 1, 3 and 6
    gains = evaluate_classifier(y, score, depths=(0.1, 0.2, 0.3, 0.5, 0.6)).gains
    np.testing.assert_allclose(gains.share_kept, [1 / 3, 1 / 3, 2 / 3, 2 / 3, 1])
    np.testing.assert_allclose(gains.lift, [10 / 3, 5 / 3, 20 / 9, 4 / 3, 5 / 3])
    np.testing.assert_allclose(gains.conversions_kept, [1, 1, 2, 2, 3])
    np.testing.assert_allclose(gains.threshold, [0.9, 0.8, 0.7, 0.5, 0.4])
    assert gains.describe()[2] == "targeting 30% of users keeps 66.7% of conversions (lift 2.22)"


def test_gains_within_tied_scores_are_the_random_tie_break_expectation() -> None:
    # Two users tied at the top, one converted: targeting one of them keeps half a conversion.
    gains = evaluate_classifier([1, 0, 0, 0], [0.9, 0.9, 0.1, 0.1], depths=(0.25, 0.5)).gains
    np.testing.assert_allclose(gains.share_kept, [0.5, 1.0])
    np.testing.assert_allclose(gains.lift, [2.0, 2.0])


def test_perfect_and_random_classifiers() -> None:
    y = np.zeros(1000)
    y[::20] = 1  # base rate 5%
    depths = (0.05, 0.1, 0.2, 0.5, 1.0)
    perfect = evaluate_classifier(y, y, depths=depths)
    assert perfect.roc_auc == perfect.pr_auc == 1.0
    np.testing.assert_allclose(perfect.gains.share_kept, 1.0)
    np.testing.assert_allclose(perfect.gains.lift, 1 / np.array(depths))
    constant = evaluate_classifier(y, np.full(1000, 0.05), depths=depths)
    assert constant.roc_auc == 0.5
    assert constant.pr_auc == pytest.approx(0.05)
    np.testing.assert_allclose(constant.gains.lift, 1.0)
    np.testing.assert_allclose(constant.gains_curve.y, constant.gains_curve.x)  # the diagonal


def test_curves_are_thinned_to_points_of_the_exact_curve() -> None:
    rng = np.random.default_rng(3)
    y = rng.random(4000) < 0.3
    score = np.clip(0.3 * y + rng.random(4000) * 0.7, 0, 1)  # all distinct: 4000 thresholds
    report = evaluate_classifier(y, score)
    fpr, tpr, _ = roc_curve(y, score, drop_intermediate=False)
    curve = report.roc_curve
    assert 150 < len(curve.x) <= 201
    assert (curve.x[0], curve.y[0], curve.x[-1], curve.y[-1]) == (0, 0, 1, 1)
    exact = set(zip(fpr.round(12), tpr.round(12)))
    assert all((x, y) in exact for x, y in zip(curve.x.round(12), curve.y.round(12)))
    assert len(report.pr_curve.x) <= 201 and len(report.gains_curve.x) <= 201
    assert np.all(np.diff(report.gains_curve.x) >= 0) and report.gains_curve.y[-1] == 1


def test_merged_block_tables_equal_one_table() -> None:
    y, score, weight = sample(n=500, seed=4)
    whole = score_table(y, score, weight)
    parts = merge_tables(*(score_table(y[i:i + 70], score[i:i + 70], weight[i:i + 70])
                           for i in range(0, 500, 70)))
    np.testing.assert_array_equal(parts.scores, whole.scores)
    np.testing.assert_allclose(parts.positives, whole.positives, rtol=1e-12)
    np.testing.assert_allclose(parts.negatives, whole.negatives, rtol=1e-12)
    assert (parts.n_rows, parts.n_positive_rows) == (whole.n_rows, whole.n_positive_rows)


def assert_same_report(left: ClassifierReport, right: ClassifierReport) -> None:
    a, b = left.to_dict(), right.to_dict()
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            for column in a[key]:
                np.testing.assert_allclose(a[key][column], b[key][column], rtol=1e-12, err_msg=key)
        elif a[key] is None:
            assert b[key] is None, key
        else:
            assert a[key] == pytest.approx(b[key], rel=1e-12), key


def test_dask_arrays_and_series_give_the_numpy_report() -> None:
    y, score, weight = sample(n=2000, seed=5)
    expected = evaluate_classifier(y, score, sample_weight=weight)
    # Arrays chunked differently, and a NumPy weight: all rechunked like y_score.
    arrays = evaluate_classifier(da.from_array(y, chunks=700), da.from_array(score, chunks=300),
                                 sample_weight=weight)
    assert_same_report(arrays, expected)
    frame = dd.from_pandas(pd.DataFrame({"y": y, "score": score, "weight": weight}), npartitions=5)
    series = evaluate_classifier(frame["y"], frame["score"], sample_weight=frame["weight"])
    assert_same_report(series, expected)


def test_dask_partitions_of_different_lengths_are_named() -> None:
    y, score, _ = sample(n=100)
    labels = dd.from_pandas(pd.Series(y), npartitions=2)
    scores = dd.from_pandas(pd.Series(np.r_[score, 0.5]), npartitions=2)
    with pytest.raises(DataError, match=r"y_true has 50 rows but y_score has 51 \(evaluate_classifier, "
                                        r"block 0\)"):
        evaluate_classifier(labels, scores)


def test_report_to_json_and_back() -> None:
    y, score, _ = sample(n=500, seed=6)
    report = evaluate_classifier(y, score, depths=(0.1, 0.25))
    data = json.loads(json.dumps(report.to_dict()))
    assert list(data) == ["n", "n_positive", "base_rate", "roc_auc", "pr_auc", "log_loss", "brier",
                          "expected_calibration_error", "calibration", "gains", "roc_curve", "pr_curve",
                          "gains_curve", "deciles", "intervals"]
    assert list(data["calibration"]) == ["bin", "lower", "upper", "mean_predicted", "observed_rate", "count"]
    assert list(data["gains"]) == ["share_targeted", "share_kept", "lift", "conversions_kept", "threshold"]
    assert list(data["roc_curve"]) == ["fpr", "tpr"] and list(data["pr_curve"]) == ["recall", "precision"]
    assert_same_report(ClassifierReport.from_dict(data), report)
    summary = report.summary()
    assert summary["lift@25%"] == pytest.approx(report.gains.lift[1])
    assert summary["kept@10%"] == pytest.approx(report.gains.share_kept[0])
    assert "ROC AUC" in report.describe()


def test_decision_functions_get_rank_metrics_only() -> None:
    y, score, _ = sample(n=500, seed=7)
    margin = 4 * score - 2  # a linear SVM's decision function: outside [0, 1]
    with pytest.raises(DataError, match=r"y_score holds values outside \[0, 1\] .*probabilities=False"):
        evaluate_classifier(y, margin)
    report = evaluate_classifier(y, margin, probabilities=False)
    assert report.roc_auc == pytest.approx(roc_auc_score(y, margin))
    assert report.log_loss is report.brier is report.calibration is report.expected_calibration_error is None
    assert "log_loss" not in report.summary()
    assert ClassifierReport.from_dict(json.loads(json.dumps(report.to_dict()))).calibration is None


@pytest.mark.parametrize(("y_true", "y_score", "kwargs", "message"), [
    ([0, 1, 1], [0.1, 0.2], {}, r"y_true has 3 rows but y_score has 2 \(evaluate_classifier\): expected "
                                r"one score per label"),
    ([0, 1, 1], [0.1, np.nan, 0.3], {}, r"y_score holds 1 NaN or infinite values \(evaluate_classifier, "
                                        r"first at row 1\)"),
    ([0, 2, 1], [0.1, 0.2, 0.3], {}, r"y_true holds 1 values other than 0 and 1 .*e\.g\. 2\.0 at row 1"),
    (["no", "yes"], [0.1, 0.2], {}, r"y_true is not numeric"),
    ([0, 0, 0], [0.1, 0.2, 0.3], {}, r"y_true holds a single class .*all 0|every weighted label 0 .*larger "
                                     r"test set"),
    ([1, 1], [0.1, 0.2], {}, r"single class .*label 1 \(converted\).*stratified by label"),
    ([0, 1], [0.1, 0.2], {"sample_weight": [1.0, -1.0]}, r"sample_weight holds 1 negative"),
    ([0, 1], [0.1, 0.2], {"sample_weight": [0.0, 0.0]}, r"sample weights sum to zero"),
    ([], [], {}, r"y_true is empty \(evaluate_classifier\)"),
    ([0, 1], [[0.9, 0.1], [0.2, 0.8]], {}, r"y_score has shape \(2, 2\) .*predict_proba\(X\)\[:, 1\]"),
])
def test_errors_say_what_to_fix(y_true: list, y_score: list, kwargs: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        evaluate_classifier(np.asarray(y_true), np.asarray(y_score), **kwargs)


def test_pandas_nullable_labels_with_missing_values_are_rejected() -> None:
    labels = pd.Series([0, None, 1], dtype="Int64")
    with pytest.raises(DataError, match=r"y_true holds 1 values other than 0 and 1 .*nan at row 1"):
        evaluate_classifier(labels, pd.Series([0.1, 0.2, 0.3]))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"depths": (0.1, 0.0)}, r"depths is \[0\.1, 0\.0\] .*in \(0, 1\]"),
    ({"depths": ()}, r"depths is \[\]"),
    ({"n_bins": 0}, r"n_bins is 0 .*integer >= 1"),
])
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        evaluate_classifier([0, 1], [0.2, 0.8], **kwargs)


# -- deciles and bootstrap intervals (the run report's tables) -----------------------------------


def test_deciles_equal_ranking_rows_into_ten_groups_by_hand() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(2000) < 0.2).astype(int)
    score = (rng.random(2000) + 0.3 * y) / 1.3  # distinct scores: every group is exactly 200 rows
    report = evaluate_classifier(y, score)
    ranked = y[np.argsort(-score)]
    by_hand = ranked.reshape(10, 200).sum(axis=1)
    np.testing.assert_array_equal(report.deciles["decile"], np.arange(1, 11))
    np.testing.assert_allclose(report.deciles["count"], 200)
    np.testing.assert_allclose(report.deciles["positives"], by_hand)
    np.testing.assert_allclose(report.deciles["lift"], (by_hand / 200) / y.mean())
    # A constant score shares every decile alike (ties split evenly): lift 1 everywhere.
    flat = evaluate_classifier(y, np.full(2000, 0.5))
    np.testing.assert_allclose(flat.deciles["lift"], 1.0)
    saved = json.loads(json.dumps(report.to_dict()))["deciles"]
    np.testing.assert_allclose(saved["positives"], by_hand)


def test_bootstrap_intervals_agree_with_resampling_the_rows() -> None:
    rng = np.random.default_rng(4)
    n = 4000
    y = (rng.random(n) < 0.25).astype(int)
    score = np.round(rng.random(n) * 0.6 + 0.4 * y, 3)  # ties, as probabilities rounded have
    report = evaluate_classifier(y, score, depths=(0.1,), n_resamples=400, seed=1)
    low, high = report.intervals["roc_auc"]
    assert report.intervals["n_resamples"] == 400 and low < report.roc_auc < high
    # The same percentile bootstrap over the rows themselves, with scikit-learn's AUC.
    rows = [roc_auc_score(y[i], score[i]) for i in (rng.integers(0, n, n) for _ in range(400))]
    np.testing.assert_allclose([low, high], np.percentile(rows, [2.5, 97.5]), atol=0.006)
    kept_low, kept_high = report.intervals["kept@10%"]
    assert kept_low < report.gains.share_kept[0] < kept_high
    # Four times the rows, about half the width.
    bigger = evaluate_classifier(np.tile(y, 4), np.tile(score, 4), n_resamples=400, seed=1)
    ratio = np.diff(bigger.intervals["roc_auc"])[0] / (high - low)
    assert 0.4 < ratio < 0.6
    assert evaluate_classifier(y, score).intervals is None
    with pytest.raises(ParameterError, match="n_resamples is -1"):
        evaluate_classifier(y, score, n_resamples=-1)

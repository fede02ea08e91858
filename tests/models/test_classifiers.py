"""The alternative conversion classifiers: exactness, blocked fits, lazy prediction, errors."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.naive_bayes import GaussianNB
from sklearn.utils.estimator_checks import parametrize_with_checks

from daskflow._errors import DataError, ParameterError
from daskflow.models import (
    BoostedTreesClassifier,
    DecisionTreeClassifier,
    NaiveBayesClassifier,
    RandomForestClassifier,
    available_models,
    make_model,
)


def planted(n: int = 6_000, n_features: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows with a known logistic model; returns X, y and the true probabilities."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    logit = -1.0 + X @ np.linspace(1.5, -0.5, n_features)
    p = 1 / (1 + np.exp(-logit))
    return X, (rng.random(n) < p).astype(int), p


ALL = [NaiveBayesClassifier(), DecisionTreeClassifier(random_state=0),
       RandomForestClassifier(n_estimators=10, random_state=0),
       BoostedTreesClassifier(n_estimators=20, random_state=0)]


def expected_failures(estimator) -> dict[str, str]:
    return {**({f"check_sample_weight_equivalence_on_{kind}_data":
                "bootstrap draws differ with repeated rows, as in scikit-learn's own forest"
                for kind in ("dense", "sparse")} if isinstance(estimator, RandomForestClassifier) else {}),
            }


@parametrize_with_checks(ALL, expected_failed_checks=expected_failures)
def test_scikit_learn_estimator_checks(estimator, check) -> None:
    check(estimator)


def test_the_registry_names_every_classifier() -> None:
    assert available_models("classifier") == ["boosted_trees", "decision_tree", "linear_svm",
                                              "logistic_regression", "naive_bayes", "random_forest"]
    assert "als" not in available_models("classifier")
    assert make_model("random_forest", {"n_estimators": 7}).n_estimators == 7


@pytest.mark.parametrize("weighted", [False, True])
def test_naive_bayes_equals_scikit_learn_however_it_is_blocked(weighted: bool) -> None:
    X, y, _ = planted(3_001)
    w = np.random.default_rng(1).uniform(0.2, 3.0, len(y)) if weighted else None
    ours = NaiveBayesClassifier().fit(X, y, sample_weight=w)
    theirs = GaussianNB().fit(X, y, sample_weight=w)
    np.testing.assert_allclose(ours.theta_, theirs.theta_, rtol=1e-10)
    np.testing.assert_allclose(ours.var_, theirs.var_, rtol=1e-9)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-10)
    blocked = NaiveBayesClassifier().fit(da.from_array(X, chunks=700), da.from_array(y, chunks=700),
                                         sample_weight=w)
    np.testing.assert_allclose(blocked.var_, theirs.var_, rtol=1e-9)
    np.testing.assert_allclose(blocked.class_prior_, theirs.class_prior_, rtol=1e-12)


@pytest.mark.parametrize("estimator", ALL, ids=lambda e: type(e).__name__)
def test_blocked_fit_on_the_cluster_learns_and_predicts_lazily(estimator, client) -> None:
    X, y, p = planted()
    dX, dy = da.from_array(X, chunks=1_500), da.from_array(y, chunks=1_500)
    model = estimator.fit(dX[:4_500], dy[:4_500], client=client)
    proba = model.predict_proba(dX[4_500:])
    assert isinstance(proba, da.Array)
    scores = proba.compute()[:, 1]
    assert roc_auc_score(y[4_500:], scores) > roc_auc_score(y[4_500:], p[4_500:]) - 0.08
    labels = model.predict(dX[4_500:])
    assert isinstance(labels, da.Array) and set(np.unique(labels.compute())) <= {0, 1}


def test_forest_spreads_its_trees_over_the_blocks(client) -> None:
    X, y, _ = planted(4_000)
    model = RandomForestClassifier(n_estimators=9, random_state=0).fit(
        da.from_array(X, chunks=1_000), da.from_array(y, chunks=1_000), client=client)
    assert len(model.estimators_) == 9


def test_tree_trains_on_a_sample_of_the_stated_size() -> None:
    X, y, _ = planted(20_000)
    model = DecisionTreeClassifier(max_samples=4_000, random_state=3).fit(
        da.from_array(X, chunks=5_000), da.from_array(y, chunks=5_000))
    assert 3_500 < model.n_training_rows_ < 4_500


def test_dataframe_input_keeps_the_feature_names() -> None:
    X, y, _ = planted(500, 3)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    model = NaiveBayesClassifier().fit(frame, y)
    assert list(model.feature_names_in_) == ["a", "b", "c"]


def test_class_weight_balanced_weighs_the_rare_class_up() -> None:
    X, y, _ = planted(2_000)
    plain = NaiveBayesClassifier().fit(X, y)
    balanced = NaiveBayesClassifier().fit(X, y, sample_weight=None)
    assert plain.class_prior_[1] < 0.5
    tree = DecisionTreeClassifier(class_weight="balanced", random_state=0).fit(X, y)
    assert tree.predict(X).mean() > DecisionTreeClassifier(random_state=0).fit(X, y).predict(X).mean()
    np.testing.assert_allclose(balanced.class_prior_, plain.class_prior_)


def test_bad_input_is_named() -> None:
    X, y, _ = planted(200, 2)
    three = r"Only binary classification.*y has 3 classes \(0, 1, 2\) \(NaiveBayesClassifier\.fit"
    with pytest.raises(DataError, match=three):
        NaiveBayesClassifier().fit(X, np.arange(200) % 3)
    with pytest.raises(DataError, match=r"X has 200 rows but y has 199 \(NaiveBayesClassifier.fit\)"):
        NaiveBayesClassifier().fit(X, y[:-1])
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(DataError, match="contains NaN"):
        DecisionTreeClassifier().fit(bad, y)
    with pytest.raises(DataError, match="non-numeric column"):
        NaiveBayesClassifier().fit(pd.DataFrame({"a": ["x"] * 200}), y)
    with pytest.raises(ParameterError, match=r"n_estimators=0\) is invalid"):
        RandomForestClassifier(n_estimators=0).fit(X, y)
    with pytest.raises(ParameterError, match=r"class_weight has labels \[.*\] that are not classes of y"):
        DecisionTreeClassifier(class_weight={7: 2.0}).fit(X, y)
    with pytest.raises(DataError, match="X has 5 features, but NaiveBayesClassifier is expecting 2"):
        NaiveBayesClassifier().fit(X, y).predict_proba(np.ones((3, 5)))

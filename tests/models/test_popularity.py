"""The popularity baseline."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from daskflow import ConfigError, DataError, ParameterError
from daskflow.models import PopularityRecommender, available_models, make_model

X = sp.csr_matrix(np.array([
    [1, 0, 0, 2, 0],
    [1, 1, 0, 0, 0],
    [1, 0, 0, 1, 0],
    [0, 0, 0, 0, 7],
], dtype=np.float32))


def test_ranks_by_distinct_users_and_filters_seen() -> None:
    model = PopularityRecommender().fit(X)
    np.testing.assert_array_equal(model.item_popularity_, [3, 1, 0, 2, 1])
    items, scores = model.recommend(np.arange(4), X, n=2)
    # Popularity order: 0, 3, then ties 1 and 4 by index, then 2.
    np.testing.assert_array_equal(items, [[1, 4], [3, 4], [1, 4], [0, 3]])
    np.testing.assert_array_equal(scores[3], [3, 2])
    unfiltered, _ = model.recommend([0], X[:1], n=3, filter_seen=False)
    np.testing.assert_array_equal(unfiltered, [[0, 3, 1]])


def test_by_weight_and_padding() -> None:
    model = PopularityRecommender(by="weight").fit(X)
    np.testing.assert_array_equal(model.item_popularity_, [3, 1, 0, 3, 7])
    items, scores = model.recommend([0], sp.csr_matrix(np.ones((1, 5))), n=3)
    np.testing.assert_array_equal(items, [[-1, -1, -1]])  # the user has heard everything
    assert np.isneginf(scores).all()


def test_estimator_contract() -> None:
    model = PopularityRecommender(by="weight")
    assert clone(model).get_params() == {"by": "weight"}
    with pytest.raises(Exception, match="not fitted"):
        model.recommend([0], X[:1])
    with pytest.raises(ParameterError, match="expected 'users' or 'weight'"):
        PopularityRecommender(by="plays").fit(X)
    with pytest.raises(DataError, match="empty interaction matrix"):
        PopularityRecommender().fit(sp.csr_matrix((3, 4)))
    with pytest.raises(DataError, match="Negative values in data .* interactions must be >= 0"):
        PopularityRecommender().fit(sp.csr_matrix([[1.0, -1.0]]))
    assert PopularityRecommender().fit([[1, 0], [1, 1]]).n_features_in_ == 2  # array-likes work


def test_registry() -> None:
    assert "popularity" in available_models()
    assert make_model("popularity", {"by": "weight"}).by == "weight"
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) n_factors for model 'popularity' "
                                          r"\(model.params\): allowed: by"):
        make_model("popularity", {"n_factors": 3})
    with pytest.raises(ConfigError, match="unknown model 'bert'"):
        make_model("bert")


@parametrize_with_checks([PopularityRecommender(), PopularityRecommender(by="weight")])
def test_scikit_learn_estimator_checks(estimator: object, check: object) -> None:
    check(estimator)

"""Hyperparameter search: trials as futures, results as an xarray Dataset, errors."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from daskflow._errors import ParameterError
from daskflow.models import DecisionTreeClassifier, NaiveBayesClassifier
from daskflow.tuning import parameter_trials, search


def planted(n: int = 3_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    p = 1 / (1 + np.exp(-(X @ np.array([1.5, -1.0, 0.5, 0.0]) - 1.0)))
    return X, (rng.random(n) < p).astype(int)


SPACE = {"max_depth": [1, 3, 6], "min_samples_leaf": [5, 200]}


def test_grid_search_on_the_cluster_equals_the_serial_search(client) -> None:
    X, y = planted()
    tree = DecisionTreeClassifier(random_state=0)
    parallel = search(tree, SPACE, X, y, folds=3, client=client)
    serial = search(tree, SPACE, X, y, folds=3, refit=False)
    data = parallel.dataset
    assert data["roc_auc_mean"].dims == ("max_depth", "min_samples_leaf")
    assert data["roc_auc"].shape == (3, 2, 3)
    assert list(data["max_depth"].values) == [1, 3, 6]
    xr.testing.assert_allclose(data["roc_auc"], serial.dataset["roc_auc"])
    best = int(np.argmax(data["roc_auc_mean"].values))  # grid order: C order over the dimensions
    assert parallel.best_params == parameter_trials(SPACE)[best]
    assert parallel.best_params["max_depth"] > 1  # a stump cannot use three informative features
    assert parallel.best_estimator.max_depth == parallel.best_params["max_depth"]
    assert hasattr(parallel.best_estimator, "tree_model_")
    assert (data["fit_seconds_mean"] > 0).all()


def test_random_search_draws_trials_from_the_grid_and_saves_as_netcdf(tmp_path) -> None:
    X, y = planted(1_500)
    result = search(DecisionTreeClassifier(random_state=0), SPACE, X, y, method="random", n_trials=4,
                    holdout=0.3, metric="log_loss", seed=1)
    assert result.dataset.sizes["trial"] == 4 and result.dataset.sizes["fold"] == 1
    assert result.dataset.attrs["greater_is_better"] == 0
    assert result.best_score == pytest.approx(float(result.dataset["log_loss_mean"].min()))
    result.to_netcdf(str(tmp_path / "search.nc"))
    loaded = xr.open_dataset(tmp_path / "search.nc")
    np.testing.assert_allclose(loaded["log_loss_mean"], result.dataset["log_loss_mean"])
    loaded.close()


def test_a_table_over_the_memory_budget_is_searched_block_wise(client) -> None:
    X, y = planted(4_000)
    result = search(NaiveBayesClassifier(), {"var_smoothing": [1e-9, 1e-1, 10.0]},
                    da.from_array(X, chunks=500), da.from_array(y, chunks=500), folds=2,
                    memory_budget=0, client=client)
    means = result.dataset["roc_auc_mean"].values
    assert np.isfinite(means).all() and means[0] > 0.75
    assert result.best_estimator.var_smoothing == result.best_params["var_smoothing"]


def test_parameter_trials_and_errors() -> None:
    assert len(parameter_trials(SPACE)) == 6
    assert len(parameter_trials(SPACE, method="random", n_trials=10)) == 6
    X, y = planted(300)
    with pytest.raises(ParameterError, match="does not have: expected some of"):
        search(NaiveBayesClassifier(), {"depth": [1]}, X, y)
    with pytest.raises(ParameterError, match="unknown tuning metric 'ndcg'"):
        search(NaiveBayesClassifier(), {"var_smoothing": [1e-9]}, X, y, metric="ndcg")
    with pytest.raises(ParameterError, match=r"tune.params.var_smoothing must be a non-empty list"):
        parameter_trials({"var_smoothing": []})
    with pytest.raises(ParameterError, match="tune.n_trials"):
        parameter_trials(SPACE, method="random")
    with pytest.raises(ParameterError, match="tune.folds must be an integer >= 2"):
        search(NaiveBayesClassifier(), {"var_smoothing": [1e-9]}, X, y, folds=1)


@pytest.fixture(scope="module")
def matrix(tiny_lake, client):
    from daskflow.features import build_interactions
    from daskflow.io import read_table

    listens = read_table(str(tiny_lake / "listens"), columns=["user_id", "track_id", "ts"])
    return build_interactions(listens, block_size=100, client=client)


@pytest.mark.parametrize("budget", [1e9, 0], ids=["futures", "block-wise"])
def test_recommender_search_ranks_als_settings(matrix, client, budget: float) -> None:
    from daskflow.models import ImplicitALS
    from daskflow.tuning import search_recommender

    result = search_recommender(ImplicitALS(n_iter=3, random_state=0), {"n_factors": [2, 16]}, matrix,
                                folds=2, metric="ndcg@10", memory_budget=budget, client=client)
    data = result.dataset
    assert data["ndcg@10_mean"].dims == ("n_factors",) and data.sizes["fold"] == 2
    assert np.isfinite(data["ndcg@10"]).all() and (data["ndcg@10"] >= 0).all()
    assert result.best_estimator.n_factors == result.best_params["n_factors"]
    assert result.best_estimator.user_factors_.shape == (matrix.n_users, result.best_params["n_factors"])


def test_recommender_search_equals_between_paths(matrix, client) -> None:
    from daskflow.models import ImplicitALS
    from daskflow.tuning import search_recommender

    # float64: in float32, the paths' different Gram summation order can swap near-tied items.
    runs = [search_recommender(ImplicitALS(n_iter=2, random_state=1, dtype="float64"),
                               {"regularization": [0.01, 1.0]},
                               matrix, folds=1, metric="map@5", memory_budget=budget, refit=False,
                               client=client) for budget in (1e9, 0)]
    np.testing.assert_allclose(runs[0].dataset["map@5"], runs[1].dataset["map@5"], rtol=1e-4)
    with pytest.raises(ParameterError, match="unknown ranking metric 'ndcg'"):
        search_recommender(ImplicitALS(), {"n_factors": [2]}, matrix, metric="ndcg", client=client)


def test_scorers_are_the_evaluation_metrics_and_equal_scikit_learn() -> None:
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    from daskflow.tuning import SCORERS

    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.3).astype(int)
    p = np.round(np.clip(0.3 + 0.3 * (y - 0.3) + rng.normal(0, 0.2, 500), 0.01, 0.99), 2)  # ties
    expected = {"roc_auc": roc_auc_score(y, p), "pr_auc": average_precision_score(y, p),
                "log_loss": log_loss(y, p), "brier": brier_score_loss(y, p)}
    for name, (scorer, _) in SCORERS.items():
        assert scorer(y, p) == pytest.approx(expected[name], rel=1e-12), name

"""ImplicitALS: in-memory vs blocked equality, quality, recommendations, checkpoints, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.utils.estimator_checks import parametrize_with_checks

from daskflow import DataError, ParameterError
from daskflow.evaluation import evaluate_ranking
from daskflow.features import build_interactions, leave_k_out_split
from daskflow.io import read_table
from daskflow.models import ImplicitALS, PopularityRecommender


def planted(n_users: int = 300, n_items: int = 120, n_tastes: int = 4, seed: int = 0) -> sp.csr_matrix:
    """Play counts from a few planted tastes: users of a taste play that taste's items."""
    rng = np.random.default_rng(seed)
    taste = rng.integers(0, n_tastes, n_users)
    item_taste = rng.integers(0, n_tastes, n_items)
    rows, cols = [], []
    for user in range(n_users):
        liked = np.flatnonzero(item_taste == taste[user])
        picks = rng.choice(liked, size=min(len(liked), 12), replace=False)
        noise = rng.integers(0, n_items, 2)
        rows += [user] * (len(picks) + 2)
        cols += list(picks) + list(noise)
    counts = rng.integers(1, 6, len(rows)).astype(np.float64)
    return sp.csr_matrix((counts, (rows, cols)), shape=(n_users, n_items))


def as_frame(X: sp.csr_matrix) -> dd.DataFrame:
    """The matrix as an event table whose IDs sort like the indices (zero-padded)."""
    coo = X.tocoo()
    frame = pd.DataFrame({"user_id": [f"u{r:05d}" for r in coo.row],
                          "track_id": [f"t{c:05d}" for c in coo.col], "plays": coo.data})
    return dd.from_pandas(frame, npartitions=3)


def test_loss_decreases_and_solvers_agree() -> None:
    X = planted()
    # From all-positive starting factors CG trails the exact solves for a few iterations
    # (0.6% at 6, 0.13% at 15), then follows them.
    cg = ImplicitALS(n_factors=8, n_iter=15, regularization=0.1, cg_steps=4).fit(X)
    exact = ImplicitALS(n_factors=8, n_iter=15, regularization=0.1, solver="cholesky").fit(X)
    assert all(a >= b for a, b in zip(cg.loss_curve_, cg.loss_curve_[1:]))
    assert cg.loss_curve_[-1] == pytest.approx(exact.loss_curve_[-1], rel=2e-3)
    assert cg.n_iter_ == 15 and len(cg.iteration_seconds_) == 15
    assert cg.user_factors_.dtype == np.float32 and cg.user_factors_.shape == (300, 8)


def test_loss_matches_the_objective() -> None:
    X = planted(n_users=50, n_items=30)
    model = ImplicitALS(n_factors=4, n_iter=3, regularization=0.2, alpha=2.0, dtype="float64").fit(X)
    U, V = model.user_factors_, model.item_factors_
    C = 1 + 2.0 * X.toarray()
    P = (X.toarray() > 0).astype(float)
    objective = (C * (P - U @ V.T) ** 2).sum() + 0.2 * ((U ** 2).sum() + (V ** 2).sum())
    assert model.loss_curve_[-1] == pytest.approx(objective, rel=1e-6)


def test_log_confidence() -> None:
    X = planted()
    model = ImplicitALS(n_factors=8, n_iter=3, confidence="log", epsilon=0.5, alpha=4.0).fit(X)
    assert np.isfinite(model.user_factors_).all()


def test_in_memory_and_blocked_fits_agree(client: object) -> None:
    X = planted()
    matrix = build_interactions(as_frame(X), weight="plays", time_col=None, block_size=70, client=client)
    assert (matrix.to_scipy(client=client) != X).nnz == 0
    # In float64 both paths give the same factors to 1e-10: they compute the same thing, only
    # the Gram matrices are summed in another order. In float32 that reordering's rounding is
    # amplified by the few CG steps from all-positive starting factors (up to ~3e-3 here).
    for dtype, tolerance in (("float64", 1e-8), ("float32", 1e-2)):
        params = dict(n_factors=6, n_iter=4, regularization=0.05, random_state=3, dtype=dtype)
        local = ImplicitALS(**params).fit(X)
        blocked = ImplicitALS(**params).fit(matrix, client=client)
        np.testing.assert_allclose(blocked.user_factors_, local.user_factors_, rtol=tolerance, atol=tolerance)
        np.testing.assert_allclose(blocked.item_factors_, local.item_factors_, rtol=tolerance, atol=tolerance)
        np.testing.assert_allclose(blocked.loss_curve_, local.loss_curve_, rtol=tolerance / 100)
    assert blocked.user_ids_[0] == "u00000" and local.user_ids_ is None


def test_streamed_fit_equals_persisted_fit(tmp_path: Path, client: object) -> None:
    """A matrix left in its files is streamed (confidences made inside each solve task), same factors."""
    from dask.utils import key_split
    from distributed import get_task_stream

    from daskflow.features import load_interactions, save_interactions

    X = planted()
    built = build_interactions(as_frame(X), weight="plays", time_col=None, block_size=70, client=client)
    save_interactions(built, str(tmp_path / "matrix"), client=client)
    params = dict(n_factors=6, n_iter=3, regularization=0.05, confidence="log", alpha=3.0, random_state=3)
    persisted = ImplicitALS(**params).fit(load_interactions(str(tmp_path / "matrix"), client=client),
                                          client=client)
    stored = load_interactions(str(tmp_path / "matrix"), client=client, persist=False)
    with get_task_stream(client) as tasks:
        streamed = ImplicitALS(**params).fit(stored, client=client)
    ran = {key_split(task["key"]) for task in tasks.data}  # the dashboard's task prefixes
    assert {"als-solve-users-streamed", "als-solve-items-streamed"} <= ran
    persisted_only = {"als-confidence-users", "als-solve-users", "interactions-load",
                      "interactions-stored-block"}
    assert not persisted_only & ran
    np.testing.assert_array_equal(streamed.user_factors_, persisted.user_factors_)
    np.testing.assert_array_equal(streamed.item_factors_, persisted.item_factors_)
    assert streamed.loss_curve_ == persisted.loss_curve_
    assert list(streamed.item_ids_) == list(persisted.item_ids_)


def test_blocked_fit_without_a_client_uses_the_local_scheduler() -> None:
    X = planted(n_users=60, n_items=40)
    matrix = build_interactions(as_frame(X), weight="plays", time_col=None, block_size=25)
    model = ImplicitALS(n_factors=4, n_iter=2, solver="cholesky").fit(matrix)
    reference = ImplicitALS(n_factors=4, n_iter=2, solver="cholesky").fit(X)
    np.testing.assert_allclose(model.user_factors_, reference.user_factors_, rtol=1e-3, atol=1e-4)


def test_beats_popularity_on_the_sample_lake(tiny_lake: Path, client: object) -> None:
    df = read_table(str(tiny_lake / "listens"), columns=["user_id", "track_id", "ts"])
    matrix = build_interactions(df, block_size=100, client=client)
    train, test = leave_k_out_split(matrix, k=1, min_items=3, mode="random", seed=0, client=client)
    # The tiny lake plants 6 genres: 8 factors fit them (1.4-1.6x popularity over seeds 0-2).
    als = ImplicitALS(n_factors=8, n_iter=10, regularization=0.1, alpha=2.0).fit(train, client=client)
    popularity = PopularityRecommender().fit(train, client=client)
    ndcg_als = evaluate_ranking(als, train, test, k=(10,), client=client)["ndcg@10"]
    ndcg_pop = evaluate_ranking(popularity, train, test, k=(10,), client=client)["ndcg@10"]
    assert ndcg_als > 1.2 * ndcg_pop


def test_recommend_filters_seen_and_accepts_original_ids() -> None:
    X = planted()
    model = ImplicitALS(n_factors=8, n_iter=4).fit(as_matrix := build_interactions(
        as_frame(X), weight="plays", time_col=None))
    items, scores = model.recommend(["u00001", "u00002"], X[1:3], n=5)
    assert items.shape == (2, 5) and (np.diff(scores, axis=1) <= 0).all()
    for row, user in enumerate((1, 2)):
        assert not set(items[row]) & set(X[user].indices)
    same, _ = model.recommend([1, 2], X[1:3], n=5)
    np.testing.assert_array_equal(items, same)
    unfiltered, _ = model.recommend([1], X[1:2], n=3, filter_seen=False)
    expected = np.argsort(-(model.user_factors_[1] @ model.item_factors_.T), kind="stable")[:3]
    np.testing.assert_array_equal(unfiltered[0], expected)
    with pytest.raises(DataError, match=r"unknown user ID\(s\) \['nobody'\]"):
        model.recommend(["nobody"], X[:1])
    assert as_matrix.n_users == 300


def test_similar_items_exact_and_annoy() -> None:
    X = planted()
    model = ImplicitALS(n_factors=8, n_iter=5).fit(X)
    items, scores = model.similar_items([0, 5], n=5)
    normed = model.item_factors_ / np.linalg.norm(model.item_factors_, axis=1, keepdims=True)
    brute = normed[[0, 5]] @ normed.T
    for row, query in enumerate((0, 5)):
        assert query not in items[row]
        order = [i for i in np.argsort(-brute[row], kind="stable") if i != query][:5]
        np.testing.assert_array_equal(items[row], order)
        np.testing.assert_allclose(scores[row], brute[row, order], rtol=1e-5)
    pytest.importorskip("annoy")
    approximate, approx_scores = model.similar_items([0, 5], n=5, method="annoy")
    overlap = np.mean([len(set(a) & set(e)) / 5 for a, e in zip(approximate, items)])
    assert overlap >= 0.8
    assert (np.abs(approx_scores - np.take_along_axis(normed[[0, 5]] @ normed.T, approximate, 1))
            < 1e-3).all()


def test_fold_in_recovers_a_training_users_factors() -> None:
    X = planted()
    model = ImplicitALS(n_factors=8, n_iter=10, solver="cholesky").fit(X)
    folded = model.transform(X[:20])
    cosine = np.sum(folded * model.user_factors_[:20], axis=1) / (
        np.linalg.norm(folded, axis=1) * np.linalg.norm(model.user_factors_[:20], axis=1))
    assert cosine.min() > 0.99  # the exact solve given the final item factors


def test_save_and_load(tmp_path: Path) -> None:
    X = planted()
    matrix = build_interactions(as_frame(X), weight="plays", time_col=None)
    model = ImplicitALS(n_factors=4, n_iter=2).fit(matrix)
    model.save(str(tmp_path / "model.npz"))
    loaded = ImplicitALS.load(str(tmp_path / "model.npz"))
    np.testing.assert_array_equal(loaded.item_factors_, model.item_factors_)
    assert loaded.get_params() == model.get_params() and loaded.loss_curve_ == model.loss_curve_
    assert list(loaded.user_ids_) == list(model.user_ids_)
    np.testing.assert_array_equal(loaded.recommend(["u00003"], X[3:4])[0], model.recommend([3], X[3:4])[0])
    with pytest.raises(DataError, match="no saved model"):
        ImplicitALS.load(str(tmp_path / "missing.npz"))


def test_checkpoint_resume_equals_uninterrupted(tmp_path: Path, client: object) -> None:
    X = planted()
    params = dict(n_factors=6, n_iter=6, checkpoint_every=2)
    uninterrupted = ImplicitALS(**params).fit(X)
    # A fit that stopped after 4 iterations (checkpoints at 2 and 4)...
    ImplicitALS(**{**params, "n_iter": 4}, checkpoint_dir=str(tmp_path / "ckpt")).fit(X)
    assert json.loads((tmp_path / "ckpt" / "latest.json").read_text())["iteration"] == 4
    # ...resumed to 6, in memory and on the cluster.
    resumed = ImplicitALS(**params, checkpoint_dir=str(tmp_path / "ckpt")).fit(X, resume=True)
    np.testing.assert_allclose(resumed.user_factors_, uninterrupted.user_factors_, rtol=1e-5, atol=1e-6)
    assert len(resumed.loss_curve_) == 6
    np.testing.assert_allclose(resumed.loss_curve_, uninterrupted.loss_curve_, rtol=1e-6)
    matrix = build_interactions(as_frame(X), weight="plays", time_col=None, block_size=64, client=client)
    stopped = ImplicitALS(**{**params, "n_iter": 4}, checkpoint_dir=str(tmp_path / "blocked"))
    stopped.fit(matrix, client=client)
    blocked = ImplicitALS(**params, checkpoint_dir=str(tmp_path / "blocked"))
    blocked.fit(matrix, client=client, resume=True)
    np.testing.assert_allclose(blocked.item_factors_, uninterrupted.item_factors_, rtol=1e-3, atol=1e-4)


def test_a_commit_killed_mid_write_leaves_only_a_temporary_the_next_commit_removes(tmp_path: Path) -> None:
    X = planted()
    ImplicitALS(n_factors=4, n_iter=2, checkpoint_every=1, checkpoint_dir=str(tmp_path)).fit(X)
    # What a process killed inside replace_file leaves: latest.json intact, a temporary beside it.
    (tmp_path / ".latest.json.tmp-deadbeef").write_text('{"iteration": 3, "dire')
    resumed = ImplicitALS(n_factors=4, n_iter=3, checkpoint_every=1, checkpoint_dir=str(tmp_path))
    resumed.fit(X, resume=True)
    assert len(resumed.loss_curve_) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iteration-00002", "iteration-00003", "latest.json"]


def test_resume_refuses_a_foreign_checkpoint(tmp_path: Path) -> None:
    X = planted()
    ImplicitALS(n_factors=4, n_iter=2, checkpoint_dir=str(tmp_path)).fit(X)
    with pytest.raises(DataError, match="is for another fit"):
        ImplicitALS(n_factors=5, n_iter=3, checkpoint_dir=str(tmp_path)).fit(X, resume=True)
    with pytest.raises(DataError, match="needs checkpoint_dir"):
        ImplicitALS().fit(X, resume=True)


KILLED_FIT = """
import sys, numpy as np, scipy.sparse as sp
from daskflow.models import ImplicitALS
X = sp.load_npz(sys.argv[1])
ImplicitALS(n_factors=6, n_iter=400, checkpoint_every=3, checkpoint_dir=sys.argv[2]).fit(X)
"""


@pytest.mark.slow
def test_resume_after_the_process_was_killed(tmp_path: Path) -> None:
    X = planted()
    sp.save_npz(tmp_path / "X.npz", X)
    process = subprocess.Popen([sys.executable, "-c", KILLED_FIT, str(tmp_path / "X.npz"),
                                str(tmp_path / "ckpt")])
    latest = tmp_path / "ckpt" / "latest.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (latest.exists() and
                                               json.loads(latest.read_text())["iteration"] >= 6):
        time.sleep(0.05)
    process.kill()
    process.wait()
    done = json.loads(latest.read_text())["iteration"]
    assert 6 <= done < 400
    target = done + 3
    resumed = ImplicitALS(n_factors=6, n_iter=target, checkpoint_every=3,
                          checkpoint_dir=str(tmp_path / "ckpt")).fit(X, resume=True)
    uninterrupted = ImplicitALS(n_factors=6, n_iter=target).fit(X)
    np.testing.assert_allclose(resumed.user_factors_, uninterrupted.user_factors_, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("params, message", [
    ({"n_factors": 0}, r"ImplicitALS\(n_factors=0\) is invalid: expected an integer >= 1"),
    ({"regularization": -1.0}, r"regularization=-1.0\) is invalid: expected a number >= 0"),
    ({"alpha": 0}, r"alpha=0\) is invalid: expected a number > 0"),
    ({"solver": "lu"}, r"solver='lu'\) is invalid: expected one of 'cg', 'cholesky'"),
    ({"n_iter": 2.5}, r"n_iter=2.5\) is invalid: expected an integer >= 1"),
])
def test_bad_parameters(params: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        ImplicitALS(**params).fit(planted())


def test_bad_data() -> None:
    with pytest.raises(DataError, match="Negative values in data"):
        ImplicitALS().fit(sp.csr_matrix(np.array([[1.0, -1.0]])))
    with pytest.raises(DataError, match="empty interaction matrix"):
        ImplicitALS().fit(sp.csr_matrix((4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        ImplicitALS().fit(sp.csr_matrix(np.array([[1.0, np.nan]])))
    with pytest.raises(DataError, match=r"confidences overflow float32 .*: lower alpha, use "
                                        r"confidence='log', or dtype='float64'"):
        ImplicitALS(n_factors=4, alpha=1e38).fit(planted() * 1e6)
    with pytest.raises(DataError, match=r"non-finite user factors at iteration 1.*Increase regularization "
                                        r"or lower alpha"):
        ImplicitALS(n_factors=4, alpha=1e30, regularization=0.0, n_iter=2).fit(planted())
    with pytest.raises(DataError, match="non-finite user factors"):
        ImplicitALS(n_factors=4, alpha=1e20, regularization=0.0, n_iter=2).fit(planted())


def test_users_and_items_without_interactions_get_zero_factors() -> None:
    X = planted(n_users=40, n_items=30).tolil()
    X[5, :] = 0
    X[:, 7] = 0
    model = ImplicitALS(n_factors=4, n_iter=5, solver="cholesky").fit(X.tocsr())
    assert np.abs(model.user_factors_[5]).max() < 1e-6
    assert np.abs(model.item_factors_[7]).max() < 1e-6


@parametrize_with_checks([ImplicitALS(n_factors=3, n_iter=2)])
def test_scikit_learn_estimator_checks(estimator: object, check: object) -> None:
    check(estimator)


def test_recommend_all_writes_parquet_with_original_ids(tmp_path: Path, client: object) -> None:
    X = planted()
    matrix = build_interactions(as_frame(X), weight="plays", time_col=None, block_size=80, client=client)
    model = ImplicitALS(n_factors=6, n_iter=3).fit(matrix, client=client)
    uri = model.recommend_all(matrix, str(tmp_path / "top"), n=4)
    table = pd.read_parquet(uri).sort_values(["user_id", "rank"])
    assert len(table) == 300 * 4 and table.user_id.nunique() == 300
    first = table[table.user_id == "u00007"]
    items, _ = model.recommend([7], X[7], n=4)
    assert first.item_id.tolist() == [f"t{i:05d}" for i in items[0]]
    assert first["rank"].tolist() == [1, 2, 3, 4]

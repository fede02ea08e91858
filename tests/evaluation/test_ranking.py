"""Ranking metrics against hand-computed values, and blocked evaluation on a cluster."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from daskflow import DataError, ParameterError
from daskflow.evaluation import auc_sums, evaluate_ranking, ranking_sums
from daskflow.features import build_interactions, leave_k_out_split
from daskflow.io import read_table
from daskflow.models import PopularityRecommender

RECOMMENDED = np.array([[0, 1, 2, 3], [4, 5, 6, 7], [1, 2, 3, 4]])
# user 0 holds out {1, 3}; user 1 holds out {9} (never recommended); user 2 nothing.
RELEVANT = sp.csr_matrix((np.ones(3), ([0, 0, 1], [1, 3, 9])), shape=(3, 10))


def test_ranking_sums_by_hand() -> None:
    sums = ranking_sums(RECOMMENDED, RELEVANT, ks=(2, 4))
    assert sums["n_users"] == 2  # user 2 has nothing held out
    # User 0 hits at ranks 2 and 4; user 1 never hits.
    assert sums["precision@2"] == pytest.approx(1 / 2)
    assert sums["recall@2"] == pytest.approx(1 / 2)
    assert sums["map@2"] == pytest.approx((1 / 2) / 2)                 # P@2 * rel_2 / min(2, 2)
    assert sums["ndcg@2"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert sums["precision@4"] == pytest.approx(2 / 4)
    assert sums["recall@4"] == pytest.approx(1.0)
    assert sums["map@4"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert sums["ndcg@4"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3)))


def test_perfect_and_padded_recommendations() -> None:
    relevant = sp.csr_matrix((np.ones(2), ([0, 0], [5, 6])), shape=(1, 8))
    perfect = ranking_sums(np.array([[5, 6, 1]]), relevant, ks=(2, 3))
    assert perfect["precision@2"] == perfect["recall@2"] == perfect["map@2"] == perfect["ndcg@2"] == 1.0
    assert perfect["ndcg@3"] == 1.0 and perfect["precision@3"] == pytest.approx(2 / 3)
    # Fewer recommendations than k (pads with -1, which never hits).
    short = ranking_sums(np.array([[6]]), relevant, ks=(1, 5))
    assert short["precision@5"] == pytest.approx(1 / 5) and short["recall@5"] == pytest.approx(1 / 2)


def test_evaluation_is_blocking_invariant(tiny_lake: Path, client: object) -> None:
    df = read_table(str(tiny_lake / "listens"), columns=["user_id", "track_id", "ts"])
    results = []
    for block_size, run_on in ((1000, None), (37, client)):
        matrix = build_interactions(df, block_size=block_size, client=run_on)
        train, test = leave_k_out_split(matrix, k=1, min_items=3, mode="by_time", client=run_on)
        model = PopularityRecommender().fit(train, client=run_on)
        results.append(evaluate_ranking(model, train, test, k=(5, 10), client=run_on))
    assert results[0].keys() == results[1].keys()
    for key in results[0]:
        assert results[0][key] == pytest.approx(results[1][key])
    # Same metrics computed the slow, obvious way in memory.
    matrix = build_interactions(df)
    train, test = leave_k_out_split(matrix, k=1, min_items=3, mode="by_time")
    X_train, X_test = train.to_scipy(), test.to_scipy()
    model = PopularityRecommender().fit(X_train)
    ndcg = []
    for user in np.flatnonzero(np.diff(X_test.indptr)):
        seen = set(X_train[user].indices)
        ranked = [i for i in np.argsort(-model.item_popularity_, kind="stable") if i not in seen][:10]
        gains = [1 / math.log2(rank + 2) for rank, item in enumerate(ranked) if item in X_test[user].indices]
        ndcg.append(sum(gains))  # one held-out item: the ideal DCG is 1
    assert results[0]["ndcg@10"] == pytest.approx(np.mean(ndcg))
    assert results[0]["n_users"] == len(ndcg)


def test_bad_arguments(tiny_lake: Path) -> None:
    df = read_table(str(tiny_lake / "listens"), columns=["user_id", "track_id", "ts"])
    matrix = build_interactions(df)
    train, test = leave_k_out_split(matrix)
    model = PopularityRecommender().fit(train)
    with pytest.raises(ParameterError, match="ranking cut-offs k must be >= 1"):
        evaluate_ranking(model, train, test, k=(0,))
    with pytest.raises(DataError, match=r"unknown ranking metric\(s\) \['auc@k'\]"):
        evaluate_ranking(model, train, test, metrics=("auc@k",))


def test_auc_by_hand() -> None:
    scores = np.array([[0.9, 0.1, 0.5, 0.3, 0.5], [0.0, 0.0, 0.0, 0.0, 0.0]])
    seen = sp.csr_matrix((np.ones(1), ([0], [3])), shape=(2, 5))  # item 3 is in training
    relevant = sp.csr_matrix((np.ones(3), ([0, 0, 1], [0, 2, 1])), shape=(2, 5))
    total, users = auc_sums(scores, seen, relevant)
    # User 0: negatives {1: 0.1, 4: 0.5}; positive 0 (0.9) beats both -> 1; positive 2 (0.5)
    # beats item 1 and ties item 4 -> 0.75. User 1: all tied -> 0.5.
    assert users == 2 and total == pytest.approx((1 + 0.75) / 2 + 0.5)


def test_auc_through_evaluate_ranking(tiny_lake: Path) -> None:
    df = read_table(str(tiny_lake / "listens"), columns=["user_id", "track_id", "ts"])
    train, test = leave_k_out_split(build_interactions(df, block_size=90), k=1, min_items=3)
    model = PopularityRecommender().fit(train)
    result = evaluate_ranking(model, train, test, k=(10,), metrics=("ndcg", "auc"))
    assert set(result) == {"ndcg@10", "auc", "n_users"}
    assert 0.6 < result["auc"] < 1.0  # popularity ranks held-out items well above chance

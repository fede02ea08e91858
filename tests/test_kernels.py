"""Shared kernels: membership and top-n against NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from daskflow.models._top_n_kernels import rows_contain, top_n, top_n_inner_product


@pytest.mark.parametrize("parallel", [False, True])
def test_top_n_matches_a_stable_argsort(parallel: bool) -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 20, (50, 300)).astype(np.float32)  # many ties
    exclude = sp.random(50, 300, density=0.05, format="csr", random_state=1)
    items, values = top_n(scores.copy(), 7, exclude, parallel=parallel)
    masked = scores.copy()
    masked[exclude.nonzero()] = -np.inf
    expected = np.argsort(-masked, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(items, expected)
    np.testing.assert_array_equal(values, np.take_along_axis(masked, expected, axis=1))


def test_top_n_pads_rows_with_too_few_items() -> None:
    scores = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    items, values = top_n(scores, 5, sp.csr_matrix(np.array([[0, 1, 0]])))
    np.testing.assert_array_equal(items, [[2, 0, -1]])
    assert values[0, 0] == 3.0 and np.isneginf(values[0, 2])


def test_rows_contain() -> None:
    csr = sp.csr_matrix(np.array([[0, 1, 1], [1, 0, 0]]))
    found = rows_contain(csr, np.array([[1, 0, -1], [0, 2, 1]]))
    np.testing.assert_array_equal(found, [[True, False, False], [True, False, False]])
    np.testing.assert_array_equal(rows_contain(csr, np.array([2, 0])), [[True, False], [False, True]])


def _factors(rng: np.random.Generator, rows: int, f: int, dtype: type) -> np.ndarray:
    # Heavy-tailed norms, as popularity gives ALS item factors, so the pruning has work to
    # skip; small integers, so every score is exact whatever the GEMM's blocking (and ties
    # are plentiful).
    scale = np.minimum(rng.pareto(1.0, (rows, 1)) + 1, 50).astype(np.int64)
    return (rng.integers(-3, 4, (rows, f)) * scale).astype(dtype)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 10, 700])
def test_top_n_inner_product_equals_top_n_of_all_scores(parallel: bool, dtype: type, n: int) -> None:
    rng = np.random.default_rng(3)
    users, items = _factors(rng, 150, 12, dtype), _factors(rng, 1300, 12, dtype)
    users[:4] = 0  # every score 0: the whole row ties
    items[:6] = 0
    items[100:110] = items[200]  # equal scores among distinct items
    seen = sp.random(150, 1300, density=0.03, format="csr", random_state=2)
    for exclude in (None, seen):
        expected = top_n(users @ items.T, n, exclude)
        got = top_n_inner_product(users, items, n, exclude, parallel=parallel, tile=16)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])


def test_top_n_inner_product_pads_and_handles_empty_input() -> None:
    users = np.array([[1.0, 0.0]], dtype=np.float32)
    items = np.array([[1.0, 0.0], [2.0, 0.0], [-1.0, 0.0]], dtype=np.float32)
    got_items, got_values = top_n_inner_product(users, items, 5, sp.csr_matrix(np.array([[0, 1, 0]])))
    np.testing.assert_array_equal(got_items, [[0, 2, -1]])
    np.testing.assert_array_equal(got_values[0, :2], [1.0, -1.0])
    assert np.isneginf(got_values[0, 2])
    empty = top_n_inner_product(np.zeros((0, 2), dtype=np.float32), items, 3)
    assert empty[0].shape == (0, 3)

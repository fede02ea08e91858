"""Shared kernels: membership and top-n against NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from daskflow._kernels import rows_contain, top_n


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

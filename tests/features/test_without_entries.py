"""The training part several leave-k-out splits share: the matrix without any split's held-out entries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from daskflow import DataError
from daskflow.features import Block, build_interactions, leave_k_out_split, without_entries
from daskflow.features.interactions._interaction_kernels import drop_entries
from daskflow.io import read_table


def test_drop_entries_removes_exactly_the_stored_pairs() -> None:
    full = sp.csr_matrix(np.array([[1.0, 2.0, 0.0, 4.0], [0.0, 5.0, 6.0, 7.0]]))
    times = np.arange(full.nnz, dtype=np.int64) * 10
    first = sp.csr_matrix(([9.0], ([0], [3])), shape=full.shape)       # values need not match
    second = sp.csr_matrix(([1.0, 1.0], ([0, 1], [3, 2])), shape=full.shape)  # overlaps the first
    kept = drop_entries(Block(full, times, 40), Block(first, np.zeros(1, np.int64), 40),
                        Block(second, np.zeros(2, np.int64), 40))
    assert kept.row_offset == 40
    assert kept.csr.toarray().tolist() == [[1.0, 2.0, 0.0, 0.0], [0.0, 5.0, 0.0, 7.0]]
    assert kept.last_ts.tolist() == [0, 10, 30, 50]  # each kept entry keeps its own time
    assert drop_entries(Block(full, times, 40)).csr is full


def test_without_entries_of_two_splits(tiny_lake: Path) -> None:
    matrix = build_interactions(read_table(str(tiny_lake / "listens"), columns=["user_id", "track_id", "ts"]),
                                block_size=70)
    tests = [leave_k_out_split(matrix, k=1, min_items=3, mode=mode, seed=5)[1]
             for mode in ("random", "by_time")]
    training = without_entries(matrix, *tests)
    X, A, B = matrix.to_scipy(), tests[0].to_scipy(), tests[1].to_scipy()
    held = ((A + B) != 0).astype(np.float64)
    expected = X - X.multiply(held)
    expected.eliminate_zeros()
    T = training.to_scipy()
    assert (T != expected).nnz == 0 and training.nnz == expected.nnz
    assert 0 < X.nnz - T.nnz <= A.nnz + B.nnz and T.multiply(A).nnz == T.multiply(B).nnz == 0
    items = sp.vstack([b.compute().csr for b in training.item_blocks], format="csr")
    assert (items != T.T.tocsr()).nnz == 0  # item blocks are the new transpose


def test_without_entries_refuses_another_matrix(tiny_lake: Path) -> None:
    listens = read_table(str(tiny_lake / "listens"), columns=["user_id", "track_id", "ts"])
    matrix = build_interactions(listens, block_size=70)
    other = build_interactions(listens, block_size=150)
    with pytest.raises(DataError, match=r"cannot be removed from one of shape .* split the same matrix"):
        without_entries(matrix, other)

"""The blocked interaction matrix against a pandas/SciPy reference."""

from __future__ import annotations

import time
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from daskflow import DataError, SchemaError
from daskflow.features import (
    StoredInteractionMatrix,
    block_bounds,
    build_interactions,
    leave_k_out_split,
    load_interactions,
    save_interactions,
)
from daskflow.io import read_table


def reference(listens: pd.DataFrame, weight: str) -> tuple[sp.csr_matrix, sp.csr_matrix, list, list]:
    """Weights and latest times as CSR, with sorted-ID mappings, the obvious way."""
    users = sorted(listens.user_id.unique())
    items = sorted(listens.track_id.unique())
    rows = pd.Index(users).get_indexer(listens.user_id)
    cols = pd.Index(items).get_indexer(listens.track_id)
    values = np.ones(len(listens)) if weight == "count" else listens[weight].to_numpy(float)
    weights = sp.csr_matrix((values, (rows, cols)), shape=(len(users), len(items)))
    latest = listens.assign(r=rows, c=cols).groupby(["r", "c"]).ts.max()
    times = sp.csr_matrix((latest.to_numpy().astype("datetime64[ms]").astype(np.int64),
                           (latest.index.get_level_values(0), latest.index.get_level_values(1))),
                          shape=weights.shape)
    return weights, times, users, items


def as_times(blocks: list) -> sp.csr_matrix:
    return sp.vstack([sp.csr_matrix((b.last_ts, b.csr.indices, b.csr.indptr), shape=b.csr.shape)
                      for b in blocks], format="csr")


@pytest.mark.parametrize("weight", ["count", "ms_played"])
def test_matrix_equals_reference_in_memory(tiny_lake: Path, weight: str) -> None:
    df = read_table(str(tiny_lake / "listens"), columns=["user_id", "track_id", "ms_played", "ts"])
    matrix = build_interactions(df, weight=weight, block_size=64)
    expected, expected_times, users, items = reference(df.compute(), weight)
    assert matrix.shape == expected.shape and matrix.nnz == expected.nnz
    assert list(matrix.user_ids) == users and list(matrix.item_ids) == items
    np.testing.assert_allclose(matrix.to_scipy().toarray(), expected.toarray(), rtol=1e-6)
    assert len(matrix.user_blocks) == int(np.ceil(len(users) / 64))
    blocks = [b.compute() for b in matrix.user_blocks]
    assert (as_times(blocks) != expected_times).nnz == 0


def test_cluster_build_equals_local_build_and_transpose(tiny_lake: Path, client: object) -> None:
    df = read_table(str(tiny_lake / "listens"), columns=["user_id", "track_id", "ts"])
    local = build_interactions(df, block_size=50)
    distributed = build_interactions(df, block_size=50, client=client)
    X = distributed.to_scipy(client=client)
    assert (X != local.to_scipy()).nnz == 0
    item_blocks = client.gather(client.compute(list(distributed.item_blocks)))
    XT = sp.vstack([b.csr for b in item_blocks], format="csr")
    assert XT.shape == X.T.shape and (XT != X.T.tocsr()).nnz == 0
    assert [b.row_offset for b in item_blocks] == list(distributed.item_bounds[:-1])


def test_mapping_frames_join_back(tiny_lake: Path) -> None:
    df = read_table(str(tiny_lake / "listens"), columns=["user_id", "track_id", "ts"])
    matrix = build_interactions(df)
    users, items = matrix.mapping_frames()
    assert users.user_idx.tolist() == list(range(matrix.n_users))
    assert users.user_id.is_unique and items.item_id.is_unique
    X = matrix.to_scipy()
    first = df.compute().query("user_id == @users.user_id[0]")
    assert X[0].nnz == first.track_id.nunique()


def frame(**columns: list) -> dd.DataFrame:
    data = {"user_id": ["a", "b", "a"], "track_id": ["x", "x", "y"],
            "ts": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"])} | columns
    return dd.from_pandas(pd.DataFrame(data), npartitions=1)


@pytest.mark.parametrize("bad", [[1.0, -2.0, 3.0], [1.0, float("nan"), 3.0], [np.inf, 1.0, 1.0]])
def test_negative_or_nan_weights(bad: list) -> None:
    with pytest.raises(DataError, match=r"column 'plays' has 1 negative, NaN or infinite values .*"
                                        r"expected finite weights >= 0"):
        build_interactions(frame(plays=bad), weight="plays")


def test_null_ids() -> None:
    with pytest.raises(DataError, match="column 'user_id' has 1 null IDs"):
        build_interactions(frame(user_id=["a", None, "b"]))


def test_missing_column_and_empty_table() -> None:
    with pytest.raises(SchemaError, match=r"listens table lacks column\(s\) 'plays'"):
        build_interactions(frame(), weight="plays")
    empty = frame()
    with pytest.raises(DataError, match="the listens table has no rows"):
        build_interactions(empty[empty.user_id == "nobody"])


def test_block_bounds() -> None:
    assert block_bounds(10, 4).tolist() == [0, 4, 8, 10]
    assert block_bounds(8, 4).tolist() == [0, 4, 8]
    assert block_bounds(3, 100).tolist() == [0, 3]


@pytest.mark.parametrize("mode", ["random", "by_time"])
def test_leave_k_out_split(tiny_lake: Path, mode: str) -> None:
    df = read_table(str(tiny_lake / "listens"), columns=["user_id", "track_id", "ts"])
    matrix = build_interactions(df, block_size=70)
    train, test = leave_k_out_split(matrix, k=2, min_items=5, mode=mode, seed=3)
    X, A, B = matrix.to_scipy(), train.to_scipy(), test.to_scipy()
    assert (A + B != X).nnz == 0 and A.multiply(B).nnz == 0  # a partition of the entries
    counts = np.diff(X.indptr)
    held = np.diff(B.indptr)
    assert (held[counts >= 5] == 2).all() and (held[counts < 5] == 0).all()
    again = leave_k_out_split(matrix, k=2, min_items=5, mode=mode, seed=3)[1].to_scipy()
    assert (again != B).nnz == 0  # reproducible
    train_items = sp.vstack([b.compute().csr for b in train.item_blocks], format="csr")
    assert (train_items != A.T.tocsr()).nnz == 0  # item blocks are the new transpose
    if mode == "by_time":
        times = as_times([b.compute() for b in matrix.user_blocks])
        for user in np.flatnonzero(held)[:20]:
            row = times[user]
            newest = row.indices[np.argsort(-row.data, kind="stable")][:2]
            assert set(B[user].indices) == set(newest) or \
                np.sort(row.data)[-2] == np.sort(row.data)[-3]  # a tie at the cut


def test_split_rejects_bad_parameters(tiny_lake: Path) -> None:
    df = read_table(str(tiny_lake / "listens"), columns=["user_id", "track_id", "ts"])
    matrix = build_interactions(df)
    with pytest.raises(DataError, match="min_items > k"):
        leave_k_out_split(matrix, k=3, min_items=3)
    with pytest.raises(DataError, match="unknown split mode 'latest'"):
        leave_k_out_split(matrix, mode="latest")


def test_save_and_load_round_trip(tiny_lake: Path, tmp_path: Path, client: object) -> None:
    df = read_table(str(tiny_lake / "listens"), columns=["user_id", "track_id", "ts"])
    matrix = build_interactions(df, block_size=64, client=client)
    save_interactions(matrix, str(tmp_path / "matrix"), client=client)
    loaded = load_interactions(str(tmp_path / "matrix"), client=client)
    assert loaded.shape == matrix.shape and loaded.nnz == matrix.nnz
    assert list(loaded.user_ids) == list(matrix.user_ids)
    np.testing.assert_array_equal(loaded.item_bounds, matrix.item_bounds)
    assert (loaded.to_scipy(client=client) != matrix.to_scipy(client=client)).nnz == 0
    items = client.gather(client.compute(list(loaded.item_blocks)))
    assert (sp.vstack([b.csr for b in items]) != matrix.to_scipy(client=client).T).nnz == 0
    with pytest.raises(DataError, match="no saved interaction matrix"):
        load_interactions(str(tmp_path / "nothing"))


def test_load_without_persisting_reads_the_files_on_use(tiny_lake: Path, tmp_path: Path,
                                                         client: object) -> None:
    df = read_table(str(tiny_lake / "listens"), columns=["user_id", "track_id", "ts"])
    matrix = build_interactions(df, block_size=64, client=client)
    uri = str(tmp_path / "matrix")
    save_interactions(matrix, uri, client=client)
    stored = load_interactions(uri, client=client, persist=False)
    assert isinstance(stored, StoredInteractionMatrix) and stored.uri == uri
    assert (stored.to_scipy(client=client) != matrix.to_scipy(client=client)).nnz == 0
    # Read, used, dropped: the workers forget the blocks once the result is in. The client's
    # release reaches the scheduler asynchronously, so the check allows it a few seconds.
    def stored_blocks_held() -> set[str]:
        return {str(key) for keys in client.has_what().values() for key in keys
                if str(key).startswith("interactions-stored-block")}

    deadline = time.monotonic() + 10
    while (held := stored_blocks_held()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not held
    assert as_times(client.gather(client.compute(list(stored.user_blocks)))).nnz == matrix.nnz
    files = stored.block_files("items")
    assert files == [f"{uri}/items/block-{i:05d}.npz" for i in range(len(matrix.item_blocks))]
    assert all(Path(f).exists() for f in files)
    # A matrix derived from it has other blocks: it must not point readers at the files.
    train, _ = leave_k_out_split(stored, k=1, min_items=3, client=client)
    assert isinstance(train, StoredInteractionMatrix) and train.nnz < stored.nnz
    assert train.block_files("users") is None and train.block_files("items") is None


def test_a_block_size_making_too_many_pieces_is_refused_with_the_arithmetic() -> None:
    from daskflow.features.interactions._matrix import MAX_PIECES, check_block_count

    check_block_count(300, 400, 3)  # 100 x 134 + 100 pieces: fits
    with pytest.raises(DataError, match=r"block_size 2 makes 150 user blocks x 200 item blocks \(300 users, "
                                        r"400 items; 30150 pieces to move: 1 read part\(s\) x 150 \+ 150 x "
                                        r"200\).* Set features.interactions.block_size to 3 or more"):
        check_block_count(300, 400, 2)
    with pytest.raises(DataError, match="at most 10000 blocks a side"):
        check_block_count(20_001, 1, 2)  # one side only
    # The suggestion is the smallest size that fits.
    with pytest.raises(DataError, match=r"to (\d+) or more") as error:
        check_block_count(10**6, 10**6, 100, n_parts=50)
    size = int(error.value.args[0].rsplit(" to ", 1)[1].split()[0])
    check_block_count(10**6, 10**6, size, n_parts=50)
    with pytest.raises(DataError):
        check_block_count(10**6, 10**6, size - 1, n_parts=50)
    assert MAX_PIECES == 20_000

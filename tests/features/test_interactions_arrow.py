"""build_interactions reading a read_table frame with Arrow equals the pandas path exactly.

The pandas path is the one any other frame takes (here: the same files through
``dd.read_parquet``); both must give the same IDs, blocks, dtypes, weights and times,
bit for bit, whatever the files look like.
"""

from __future__ import annotations

from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dask.base import tokenize

from daskflow import DataError
from daskflow.features import build_interactions
from daskflow.features.interactions._interaction_kernels import factorize_table
from daskflow.io import read_table
from daskflow.io._parts import parquet_parts

COLUMNS = ["user_id", "track_id", "ms_played", "ts"]


def blocks(matrix: object, client: object = None) -> list:
    found = []
    for side in (matrix.user_blocks, matrix.item_blocks):
        found += client.gather(client.compute(list(side))) if client else [b.compute() for b in side]
    return found


def assert_same(arrow: object, pandas: object, client: object = None) -> None:
    assert arrow.shape == pandas.shape and arrow.nnz == pandas.nnz
    assert list(arrow.user_ids) == list(pandas.user_ids)
    assert list(arrow.item_ids) == list(pandas.item_ids)
    assert arrow.user_ids.dtype == pandas.user_ids.dtype
    assert np.array_equal(arrow.user_bounds, pandas.user_bounds)
    for a, b in zip(blocks(arrow, client), blocks(pandas, client), strict=True):
        assert a.row_offset == b.row_offset and a.csr.shape == b.csr.shape
        for name in ("indptr", "indices", "data"):
            x, y = getattr(a.csr, name), getattr(b.csr, name)
            assert x.dtype == y.dtype and np.array_equal(x, y), name
        assert a.last_ts.dtype == b.last_ts.dtype and np.array_equal(a.last_ts, b.last_ts)


def both_ways(uri: str, columns: list[str] = COLUMNS, filters: list | None = None,
              string_ids: bool = True, **options: object) -> tuple[object, object]:
    """The matrix through read_table (Arrow path) and through dd.read_parquet (pandas path)."""
    arrow_frame = read_table(uri, columns=columns, filters=filters)
    parts = parquet_parts(arrow_frame, tokenize(arrow_frame), columns,
                          dictionary_columns=["user_id", "track_id"])
    assert parts is not None
    if string_ids:  # read as dictionaries: the path that skips hashing
        tables = [parts.reader(group) for group in parts.groups]
        assert all(pa.types.is_dictionary(t.schema.field("user_id").type) for t in tables)
    pandas_frame = dd.read_parquet(uri, columns=columns, filters=filters)
    return build_interactions(arrow_frame, **options), build_interactions(pandas_frame, **options)


@pytest.mark.parametrize("weight", ["count", "ms_played"])
@pytest.mark.parametrize("block_size", [37, 1000])
def test_arrow_path_equals_pandas_path_on_the_lake(tiny_lake: Path, weight: str,
                                                   block_size: int) -> None:
    arrow, pandas = both_ways(str(tiny_lake / "listens"), weight=weight, block_size=block_size)
    assert_same(arrow, pandas)


@pytest.mark.parametrize("filters", [
    [("date", ">=", "2026-01-03")],                                  # hive keys: prunes files
    [("user_id", "in", ["u0a1b2c3d"]), ("ms_played", ">", 0)],       # no row matches the IDs
    [[("ms_played", "<", 60_000)], [("date", "==", "2026-01-02")]],  # rows of every file
])
def test_arrow_path_applies_filters_like_dask(tiny_lake: Path, filters: list) -> None:
    uri = str(tiny_lake / "listens")
    if filters[0][0] == "user_id":
        # A real user ID, so that the filter keeps a few rows and drops most dictionary values.
        user = pd.read_parquet(uri, columns=["user_id"]).user_id.iloc[0]
        filters = [("user_id", "in", [user]), ("ms_played", ">", 0)]
    arrow, pandas = both_ways(uri, filters=filters, weight="ms_played", block_size=29)
    assert_same(arrow, pandas)
    if filters[0][0] == "user_id":
        assert arrow.n_users == 1


def test_arrow_path_on_a_cluster_with_small_parts(tiny_lake: Path, client: object,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from daskflow.features.interactions import _matrix as _interactions

    # Parts of a few hundred rows: many groups of files, each with its own dictionaries.
    monkeypatch.setattr(_interactions, "_ROWS_PER_PART", 500)
    arrow, pandas = both_ways(str(tiny_lake / "listens"), weight="ms_played", block_size=41,
                              client=client)
    assert_same(arrow, pandas, client)


def write_listens(directory: Path, frames: list[pd.DataFrame], **options: object) -> str:
    directory.mkdir(parents=True)
    for i, frame in enumerate(frames):
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), directory / f"part-{i}.parquet",
                       **options)
    return str(directory)


def listens(seed: int, n: int = 400, ids: str = "string") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 60, n)
    items = rng.integers(0, 90, n)
    frame = pd.DataFrame({
        "user_id": [f"user-{u}" for u in users] if ids == "string" else users * 7 - 100,
        "track_id": [f"track-{i:03d}" for i in items] if ids == "string" else items,
        "ms_played": rng.integers(0, 300_000, n).astype(np.int64),
        "ts": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 10**9, n), unit="ms"),
    })
    if ids == "category":
        frame["user_id"] = pd.Categorical(frame.user_id.map(lambda u: f"user-{u}"))
    return frame


@pytest.mark.parametrize("options", [
    {"use_dictionary": False},                          # plain-encoded strings
    {"row_group_size": 50},                             # many row groups, one dictionary each
    {"dictionary_pagesize_limit": 64, "data_page_size": 64},  # dictionary falls back to plain
])
def test_arrow_path_equals_pandas_path_whatever_the_encoding(tmp_path: Path, options: dict) -> None:
    uri = write_listens(tmp_path / "listens", [listens(seed) for seed in range(3)], **options)
    arrow, pandas = both_ways(uri, weight="ms_played", block_size=17)
    assert_same(arrow, pandas)


@pytest.mark.parametrize("ids", ["integer", "category"])
def test_arrow_path_with_integer_and_categorical_ids(tmp_path: Path, ids: str) -> None:
    uri = write_listens(tmp_path / "listens", [listens(seed, ids=ids) for seed in range(2)])
    arrow, pandas = both_ways(uri, weight="count", block_size=13, string_ids=ids == "category")
    assert_same(arrow, pandas)


def test_arrow_path_errors_match_the_pandas_path(tmp_path: Path) -> None:
    frames = [listens(0), listens(1)]
    frames[1].loc[5, "user_id"] = None
    frames[1].loc[7, "user_id"] = None
    uri = write_listens(tmp_path / "nulls", frames)
    # The Arrow path reads whole files, so it also names the file holding the rows.
    with pytest.raises(DataError, match=r"^file \S+part-1.parquet: column 'user_id' has 2 null IDs in "
                                        "the listens table"):
        build_interactions(read_table(uri))
    with pytest.raises(DataError, match=r"^column 'user_id' has 2 null IDs in the listens table"):
        build_interactions(dd.read_parquet(uri))
    frames = [listens(0), listens(1)]
    frames[1].loc[3, "ms_played"] = -5
    uri = write_listens(tmp_path / "negative", frames)
    messages = set()
    for frame in (read_table(uri), dd.read_parquet(uri)):
        with pytest.raises(DataError, match="column 'ms_played' has 1 negative") as error:
            build_interactions(frame, weight="ms_played")
        messages.add(str(error.value).split(": ", 1)[1] if str(error.value).startswith("file ")
                     else str(error.value))
    assert len(messages) == 1 and f"user_id={frames[1].user_id[3]!r}" in messages.pop()


def test_only_untouched_read_table_frames_take_the_arrow_path(tiny_lake: Path,
                                                            tiny_orc_lake: Path) -> None:
    uri = str(tiny_lake / "listens")
    frame = read_table(uri, columns=COLUMNS)

    def parts(df: dd.DataFrame, columns: list[str] = COLUMNS) -> object:
        return parquet_parts(df, tokenize(df), columns)

    assert parts(frame) is not None
    assert parts(frame, ["user_id", "ts"]) is not None
    assert parquet_parts(frame, tokenize(frame), COLUMNS, rows_per_part=10) is None  # big files
    assert parts(frame[frame.ms_played > 1000]) is None       # changed after reading
    assert parts(dd.read_parquet(uri, columns=COLUMNS)) is None  # not read by read_table
    assert parts(read_table(uri), ["user_id", "date"]) is None  # a hive partition column
    # dask keeps null values for != and "not in" where Arrow drops them (dask/dask#9845).
    assert parts(read_table(uri, columns=COLUMNS, filters=[("ms_played", "!=", 5)])) is None
    assert parts(read_table(uri, columns=COLUMNS, filters=[("ms_played", ">", 5)])) is not None
    assert parts(read_table(str(tiny_orc_lake / "listens"), format="orc", columns=COLUMNS)) is None


def test_arrow_path_keeps_the_rows_in_file_order(tiny_lake: Path) -> None:
    uri = str(tiny_lake / "listens")
    frame = read_table(uri, columns=COLUMNS)
    groups = parquet_parts(frame, tokenize(frame), COLUMNS, rows_per_part=700)
    assert len(groups.groups) > 2
    tables = [groups.reader(group) for group in groups.groups]
    got = pa.concat_tables(tables).to_pandas()
    expected = frame.compute()
    assert got.user_id.astype(str).tolist() == expected.user_id.astype(str).tolist()
    assert got.ts.tolist() == expected.ts.tolist()


def test_dictionary_factorisation_drops_unused_values_and_sorts() -> None:
    dictionary = pa.array(["d", "b", "zz", "a"])
    chunks = [pa.DictionaryArray.from_arrays(pa.array([0, 1, 0], pa.int32()), dictionary),
              pa.DictionaryArray.from_arrays(pa.array([1, 0], pa.int32()),
                                             pa.array(["c", "d"]))]
    table = pa.table({"user_id": pa.chunked_array(chunks), "track_id": pa.array([1, 2, 3, 1, 2]),
                      "ts": pa.array(np.arange(5), pa.timestamp("ms"))})
    codes = factorize_table(table, "user_id", "track_id", "count", "ts")
    assert codes.users.to_pylist() == ["b", "c", "d"]  # "zz" and "a" are used by no row
    assert codes.user_code.tolist() == [2, 0, 2, 2, 1]
    assert codes.user_code.dtype == np.int32
    assert codes.items.to_pylist() == [1, 2, 3] and codes.item_code.tolist() == [0, 1, 2, 0, 1]

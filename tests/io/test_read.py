"""The Parquet/ORC reader on local disk, memory:// and a local S3 server."""

from __future__ import annotations

import shutil
from pathlib import Path

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.orc as orc
import pyarrow.parquet as pq
import pytest

from daskflow import DataError, SchemaError
from daskflow.io import read_table
from daskflow.sample import LAKE_SCHEMAS

SECOND_DAY = "2026-01-02"


def reference(lake: Path, table: str = "listens") -> pd.DataFrame:
    """The whole table read by plain pyarrow, hive partitions included."""
    import pyarrow.dataset as pads

    fmt = "orc" if any(lake.rglob("*.orc")) else "parquet"
    return pads.dataset(str(lake / table), format=fmt, partitioning="hive").to_table().to_pandas()


def sort(frame: pd.DataFrame) -> pd.DataFrame:
    columns = list(frame.columns)
    frame = frame.astype({c: str for c in columns if str(frame[c].dtype) in ("category", "string")})
    return frame.sort_values(columns).reset_index(drop=True)


@pytest.mark.parametrize("lake_fixture, fmt", [("tiny_lake", "parquet"), ("tiny_orc_lake", "orc")])
def test_filters_columns_and_hive_partitions(request: pytest.FixtureRequest, lake_fixture: str,
                                             fmt: str) -> None:
    lake = request.getfixturevalue(lake_fixture)
    df = read_table(str(lake / "listens"), format=fmt, columns=["user_id", "ms_played", "date"],
                    filters=[("date", ">=", SECOND_DAY), ("ms_played", ">", 100_000)],
                    schema=LAKE_SCHEMAS["listens"])
    got = df.compute()
    full = reference(lake)
    expected = full[(full.date >= SECOND_DAY) & (full.ms_played > 100_000)][["user_id", "ms_played", "date"]]
    assert list(got.columns) == ["user_id", "ms_played", "date"]
    assert len(got) == len(expected) > 0
    pd.testing.assert_frame_equal(sort(got), sort(expected), check_dtype=False)
    assert set(got["date"].astype(str)) == {f"2026-01-0{d}" for d in range(2, 6)}


def test_orc_and_parquet_read_the_same_rows(tiny_lake: Path, tiny_orc_lake: Path) -> None:
    filters = [[("date", "in", ["2026-01-01", "2026-01-03"])], [("platform", "==", "web")]]
    a = read_table(str(tiny_lake / "listens"), filters=filters).compute()
    b = read_table(str(tiny_orc_lake / "listens"), format="orc", filters=filters).compute()
    # ORC stores nanosecond timestamps, Parquet here milliseconds: same instants.
    b["ts"] = b["ts"].astype(a["ts"].dtype)
    assert a.dtypes.to_dict() == b.dtypes.to_dict()
    pd.testing.assert_frame_equal(sort(a), sort(b))


def test_orc_partition_pruning_reads_only_matching_files(tiny_orc_lake: Path) -> None:
    df = read_table(str(tiny_orc_lake / "listens"), format="orc", filters=[("date", "==", SECOND_DAY)])
    assert df.npartitions == 3  # three user chunks on that day, not 15 files


def test_file_url_and_memory_store(tiny_lake: Path) -> None:
    via_url = read_table(f"file://{tiny_lake}/users", columns=["user_id", "age"]).compute()
    memory = fsspec.filesystem("memory")
    for path in (tiny_lake / "users").glob("*.parquet"):
        memory.pipe(f"/lake/users/{path.name}", path.read_bytes())
    via_memory = read_table("memory://lake/users", columns=["user_id", "age"],
                            schema={"user_id": "string", "age": "integer"})
    # memory:// lives in one process: compute here, not on the session's worker processes.
    via_memory = via_memory.compute(scheduler="threads")
    pd.testing.assert_frame_equal(sort(via_url), sort(via_memory))
    assert len(via_memory) == 300


def test_s3_through_a_local_moto_server(tiny_lake: Path, tiny_orc_lake: Path,
                                        s3_server: dict[str, object]) -> None:
    s3 = fsspec.filesystem("s3", **s3_server)
    s3.mkdir("lake")
    s3.put(str(tiny_lake / "listens"), "lake/parquet/listens", recursive=True)
    s3.put(str(tiny_orc_lake / "listens"), "lake/orc/listens", recursive=True)
    for fmt in ("parquet", "orc"):
        df = read_table(f"s3://lake/{fmt}/listens", format=fmt, storage_options=s3_server,
                        columns=["user_id", "track_id", "date"], filters=[("date", "<", SECOND_DAY)],
                        schema=LAKE_SCHEMAS["listens"])
        got = df.compute()
        full = reference(tiny_lake)
        assert len(got) == int((full.date < SECOND_DAY).sum()) > 0
        assert set(got["date"].astype(str)) == {"2026-01-01"}


def test_missing_path_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no data at source 'listens' at .*/nope: the path does not "
                                        r"exist. Check the uri, or generate a sample lake"):
        read_table(str(tmp_path / "nope"), name="listens")


def test_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no parquet files in '.*empty': the directory is empty"):
        read_table(str(tmp_path / "empty"))


def test_corrupt_parquet_file_is_named(tmp_path: Path, tiny_lake: Path) -> None:
    shutil.copytree(tiny_lake / "users", tmp_path / "users")
    (tmp_path / "users" / "part-9.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match=r"file .*part-9.parquet of .* is not a readable parquet file"):
        read_table(str(tmp_path / "users"))


def test_missing_required_column(tiny_lake: Path) -> None:
    with pytest.raises(SchemaError, match=r"required column 'plays' is missing from source 'listens' "
                                          r"at .* expected a integer column; found columns user_id, "
                                          r"track_id, artist_id, ms_played, ts, platform, country, date"):
        read_table(str(tiny_lake / "listens"), name="listens", schema={"plays": "integer"})


def test_wrong_column_type(tiny_lake: Path) -> None:
    with pytest.raises(SchemaError, match=r"column 'user_id' of '.*listens' has type string, expected "
                                          r"integer \(first file .*\.parquet\)"):
        read_table(str(tiny_lake / "listens"), schema={"user_id": "integer"})


def test_requested_column_and_filter_column_must_exist(tiny_lake: Path) -> None:
    with pytest.raises(SchemaError, match=r"requested column\(s\) 'plays' not found"):
        read_table(str(tiny_lake / "listens"), columns=["user_id", "plays"])
    with pytest.raises(SchemaError, match=r"filter on unknown column\(s\) 'day'"):
        read_table(str(tiny_lake / "listens"), filters=[("day", "==", 1)])


def test_schema_drift_between_partitions_names_both_files(tmp_path: Path) -> None:
    for day, ms in (("2026-01-01", pa.array([1, 2])), ("2026-01-02", pa.array(["1", "2"]))):
        directory = tmp_path / "t" / f"date={day}"
        directory.mkdir(parents=True)
        pq.write_table(pa.table({"user_id": ["a", "b"], "ms": ms}), directory / "p.parquet")
    with pytest.raises(SchemaError, match=r"schema drift in '.*t': column 'ms' is string in "
                                          r".*date=2026-01-02/p.parquet but int64 in .*date=2026-01-01"):
        read_table(str(tmp_path / "t"))


def test_orc_with_wrong_schema(tmp_path: Path) -> None:
    (tmp_path / "listens").mkdir()
    orc.write_table(pa.table({"user_id": [1, 2], "track_id": ["x", "y"]}), tmp_path / "listens" / "p.orc")
    with pytest.raises(SchemaError, match="column 'user_id' of .* has type int64, expected string"):
        read_table(str(tmp_path / "listens"), format="orc", schema={"user_id": "string"})


def test_missing_optional_driver_gives_install_hint() -> None:
    pytest.importorskip("s3fs")
    with pytest.raises(DataError, match=r"pip install 'daskflow\[gcs\]'"):
        try:
            import gcsfs  # noqa: F401
        except ImportError:
            read_table("gcs://bucket/listens")
        else:
            raise DataError("pip install 'daskflow[gcs]' (gcsfs is installed; nothing to check)")


def _linked_copy(lake: Path, work: Path) -> Path:
    """The lake's listens plus a loop, a second name for a sibling day and a linked file."""
    import os

    listens = work / "listens"
    shutil.copytree(lake / "listens", listens)
    os.symlink(".", listens / "date=2026-01-02" / "loop")
    os.symlink("../date=2026-01-01", listens / "date=2026-01-03" / "again")
    first = sorted((listens / "date=2026-01-04").iterdir())[0]
    os.symlink(first.name, listens / "date=2026-01-04" / f"copy{first.suffix}")
    return listens


@pytest.mark.parametrize("lake_fixture, fmt", [("tiny_lake", "parquet"), ("tiny_orc_lake", "orc")])
def test_every_reader_reads_each_linked_file_once(request: pytest.FixtureRequest, lake_fixture: str,
                                                  fmt: str, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    from dask.base import tokenize

    from daskflow.io._parts import parquet_parts

    lake = request.getfixturevalue(lake_fixture)
    listens = _linked_copy(lake, tmp_path)
    frame = read_table(str(listens), format=fmt, columns=["user_id", "track_id", "ts", "date"])
    expected = reference(lake)
    assert len(frame.compute()) == len(expected)
    got = frame.compute().groupby(frame["date"].compute().astype(str)).size().to_dict()
    assert got == expected.groupby(expected["date"].astype(str)).size().to_dict()  # own hive keys kept
    assert "skipped 3 link(s)" in caplog.text and "loop" in caplog.text
    if fmt == "parquet":  # the Arrow ingest path is handed the same files
        columns = ["user_id", "track_id", "ts"]
        plain = read_table(str(listens), columns=columns)
        parts = parquet_parts(plain, tokenize(plain), columns)
        assert parts is not None
        assert sum(parts.reader(group).num_rows for group in parts.groups) == len(expected)


def test_a_dangling_link_is_named(tmp_path: Path, tiny_lake: Path) -> None:
    import os

    listens = tmp_path / "listens"
    shutil.copytree(tiny_lake / "listens", listens)
    os.symlink(tmp_path / "gone", listens / "date=2026-01-09")
    with pytest.raises(DataError, match=r"link .*/date=2026-01-09 of source 'listens' at .* points at "
                                        r"'.*/gone', which does not exist: restore its target or remove "
                                        "the link"):
        read_table(str(listens), name="listens")


def test_a_file_lacking_a_column_read_is_named(tmp_path: Path) -> None:
    for day, names in (("2026-01-01", ["user_id", "n"]), ("2026-01-02", ["uid", "n"])):
        (tmp_path / f"date={day}").mkdir()
        pq.write_table(pa.table({names[0]: ["a", "b"], names[1]: [1, 2]}),
                       tmp_path / f"date={day}" / "p.parquet")
    with pytest.raises(SchemaError, match=r"column 'user_id' is missing from file .*date=2026-01-02/p"
                                          r".parquet of .* \(its columns: n, uid\), though .*date="
                                          "2026-01-01/p.parquet has it"):
        read_table(str(tmp_path), columns=["user_id", "n"])
    assert len(read_table(str(tmp_path), columns=["n"]).compute()) == 4  # a column every file has


def test_date_partitions_and_their_filters_are_typed(tmp_path: Path) -> None:
    for day in ("2026-01-01", "2026-01-02", "2026-01-10"):
        (tmp_path / f"date={day}").mkdir()
        pq.write_table(pa.table({"n": [1]}), tmp_path / f"date={day}" / "p.parquet")
    assert len(read_table(str(tmp_path), filters=[("date", ">", "2026-01-02")]).compute()) == 1
    with pytest.raises(DataError, match=r"'2026-1-5' is not a date written YYYY-MM-DD"):
        read_table(str(tmp_path), filters=[("date", ">=", "2026-1-5")])
    with pytest.raises(DataError, match=r"'in' takes a list of values"):
        read_table(str(tmp_path), filters=[("date", "in", "2026-01-01")])
    (tmp_path / "date=2026-1-5").mkdir()
    pq.write_table(pa.table({"n": [1]}), tmp_path / "date=2026-1-5" / "p.parquet")
    with pytest.raises(DataError, match=r"hive partition date=2026-1-5 .* is not a date written YYYY-MM-DD"):
        read_table(str(tmp_path))
    assert len(read_table(str(tmp_path), schema={"date": "string"}).compute()) == 4  # declared text

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

"""Property-based tests of ``read_table`` on odd inputs: a DaskflowError or the data, nothing else.

Generated inputs: random bytes named .parquet/.orc, truncations and byte flips of a real
file, odd column names and hive partition values (spaces, ``=``, ``%``, emoji, empty),
nested columns and empty files. Whatever the input, reading and computing the table (as
the stages compute it, through ``naming_unreadable_file``) either succeeds with the rows
that are there or raises a :class:`DaskflowError`; it never raises anything else, and each
example stays within a deadline and Arrow's memory stays bounded. Derandomized, so CI
runs the same examples every time.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.orc as orc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daskflow import DaskflowError
from daskflow.io import read_table
from daskflow.io._read import naming_unreadable_file

SETTINGS = settings(derandomize=True, max_examples=25, deadline=5_000, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

#: Arrow memory a single small example may reach at its peak (the inputs are a few KB).
MEMORY_BOUND = 256 * 2**20


@contextmanager
def scratch() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="daskflow-prop-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def real_file(format: str, rows: int = 40) -> bytes:
    table = pa.table({"user_id": [f"u{i % 7}" for i in range(rows)], "n": list(range(rows)),
                      "ts": pa.array(range(rows), pa.timestamp("ms"))})
    sink = io.BytesIO()
    if format == "parquet":
        pq.write_table(table, sink, row_group_size=10, compression="snappy")
    else:
        orc.write_table(table, sink)
    return sink.getvalue()


REAL = {fmt: real_file(fmt) for fmt in ("parquet", "orc")}


def read_all(uri: str, format: str, **kwargs: object) -> int | None:
    """Rows read, or None for a DaskflowError; any other exception fails the test."""
    before = pa.default_memory_pool().bytes_allocated()
    try:
        frame = read_table(uri, format=format, **kwargs)
        with naming_unreadable_file(frame):
            rows = len(frame.compute(scheduler="sync"))
    except DaskflowError:
        rows = None
    assert pa.default_memory_pool().bytes_allocated() - before < MEMORY_BOUND
    return rows


formats = st.sampled_from(["parquet", "orc"])


@pytest.mark.slow
@SETTINGS
@given(format=formats, data=st.binary(min_size=0, max_size=2048))
def test_random_bytes_are_a_data_error(format: str, data: bytes) -> None:
    with scratch() as root:
        (root / f"part-0.{format}").write_bytes(data)
        assert read_all(str(root), format) is None


@pytest.mark.slow
@SETTINGS
@given(format=formats, cut=st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_truncated_files_are_a_data_error(format: str, cut: float) -> None:
    data = REAL[format]
    with scratch() as root:
        (root / f"part-0.{format}").write_bytes(data[:int(len(data) * cut)])
        assert read_all(str(root), format) is None


@pytest.mark.slow
@SETTINGS
@given(format=formats, flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True),
                                                st.integers(1, 255)), min_size=1, max_size=8))
def test_flipped_bytes_read_or_fail_cleanly(format: str, flips: list[tuple[float, int]]) -> None:
    data = bytearray(REAL[format])
    for where, mask in flips:
        data[int(where * len(data))] ^= mask
    with scratch() as root:
        (root / f"part-0.{format}").write_bytes(bytes(data))
        rows = read_all(str(root), format)
        assert rows is None or rows >= 0  # a flip may land in a value: the rows are what is there


odd_text = st.text(st.sampled_from([" ", "=", "%", "😀", "a", "Z", "é", "_", ".", "-", "/", "1", "\t"]),
                   min_size=0, max_size=6)


@pytest.mark.slow
@SETTINGS
@given(format=formats, names=st.lists(odd_text, min_size=1, max_size=3, unique=True))
def test_odd_column_names(format: str, names: list[str]) -> None:
    table = pa.table({name: [1, 2, 3] for name in names})
    with scratch() as root:
        try:
            (pq.write_table if format == "parquet" else orc.write_table)(table, str(root / f"p.{format}"))
        except (pa.ArrowException, OSError):
            return  # the writer refuses the name: nothing to read
        rows = read_all(str(root), format)
        assert rows in (None, 3)
        if rows is not None:
            assert read_all(str(root), format, columns=names) == 3


@pytest.mark.slow
@SETTINGS
@given(format=formats, key=odd_text, values=st.lists(odd_text, min_size=1, max_size=3, unique=True))
def test_odd_partition_keys_and_values(format: str, key: str, values: list[str]) -> None:
    table = pa.table({"user_id": ["a", "b"], "n": [1, 2]})
    with scratch() as root:
        written = 0
        for value in values:
            directory = root / f"{key}={value}"
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError:
                continue
            target = directory / f"p{written}.{format}"
            (pq.write_table if format == "parquet" else orc.write_table)(table, str(target))
            written += 1
        rows = read_all(str(root), format)
        # Names starting with "_" or "." are not data, at any depth; the rest is read whole.
        assert rows is None or rows % 2 == 0
        plain = "/" not in key + "".join(values) and not key.startswith(("_", "."))
        if rows is not None and plain:
            assert rows == 2 * written


@pytest.mark.slow
@SETTINGS
@given(format=formats, nested=st.sampled_from(["struct", "list", "map", "list of structs"]),
       rows=st.integers(0, 5))
def test_nested_columns_and_empty_tables(format: str, nested: str, rows: int) -> None:
    values = {"struct": pa.array([{"a": i, "b": str(i)} for i in range(rows)],
                                 pa.struct([("a", pa.int64()), ("b", pa.string())])),
              "list": pa.array([[i, i + 1] for i in range(rows)], pa.list_(pa.int64())),
              "map": pa.array([[("k", i)] for i in range(rows)], pa.map_(pa.string(), pa.int64())),
              "list of structs": pa.array([[{"a": i}] for i in range(rows)],
                                          pa.list_(pa.struct([("a", pa.int64())])))}[nested]
    table = pa.table({"user_id": [f"u{i}" for i in range(rows)], "nested": values})
    with scratch() as root:
        try:
            (pq.write_table if format == "parquet" else orc.write_table)(table, str(root / f"p.{format}"))
        except (pa.ArrowException, OSError):
            return
        assert read_all(str(root), format) in (None, rows)
        assert read_all(str(root), format, columns=["user_id"], schema={"user_id": "string"}) in (None, rows)


@pytest.mark.parametrize("format", ["parquet", "orc"])
def test_an_empty_file_is_a_data_error(tmp_path: Path, format: str) -> None:
    (tmp_path / f"empty.{format}").write_bytes(b"")
    with pytest.raises(DaskflowError, match="empty.* is not a readable"):
        read_table(str(tmp_path), format=format)

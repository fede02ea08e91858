"""Atomic publication: nothing appears at the destination until the write succeeded."""

from __future__ import annotations

import contextlib
from pathlib import Path

import fsspec
import pandas as pd
import pytest

from daskflow import OutputError
from daskflow.io import SUCCESS_MARKER, atomic_output, read_table, write_parquet


def test_write_parquet_publishes_complete_directory(tmp_path: Path) -> None:
    frame = pd.DataFrame({"user_id": ["a", "b", "c"], "score": [0.1, 0.2, 0.3]})
    write_parquet(frame, str(tmp_path / "out"))
    assert (tmp_path / "out" / SUCCESS_MARKER).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary left behind
    pd.testing.assert_frame_equal(read_table(str(tmp_path / "out")).compute().reset_index(drop=True),
                                  frame, check_dtype=False)


def test_publication_can_wait_for_the_callers_stack(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1, 2]})
    with contextlib.ExitStack() as publish:
        write_parquet(frame, str(tmp_path / "out"), publish=publish)
        assert not (tmp_path / "out").exists()  # written, not yet published
    assert (tmp_path / "out" / SUCCESS_MARKER).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]

    with pytest.raises(RuntimeError, match="a later step failed"):
        with contextlib.ExitStack() as publish:
            write_parquet(frame, str(tmp_path / "other"), publish=publish)
            raise RuntimeError("a later step failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing, not even a temporary


def test_failed_write_publishes_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_output(str(tmp_path / "out")) as tmp:
            Path(tmp, "part-0.parquet").write_bytes(b"half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_refused_unless_overwrite(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1]})
    write_parquet(frame, str(tmp_path / "out"))
    with pytest.raises(OutputError, match=r"output '.*out' already exists: choose another location"):
        write_parquet(frame, str(tmp_path / "out"))
    write_parquet(pd.DataFrame({"x": [2, 3]}), str(tmp_path / "out"), overwrite=True)
    assert len(read_table(str(tmp_path / "out")).compute()) == 2


def test_failed_overwrite_keeps_the_old_result(tmp_path: Path) -> None:
    write_parquet(pd.DataFrame({"x": [1]}), str(tmp_path / "out"))
    with pytest.raises(RuntimeError):
        with atomic_output(str(tmp_path / "out"), overwrite=True):
            raise RuntimeError("failed half way")
    assert read_table(str(tmp_path / "out")).compute()["x"].tolist() == [1]


def test_memory_store_publish() -> None:
    fs = fsspec.filesystem("memory")
    write_parquet(pd.DataFrame({"x": [1, 2]}), "memory://published/out")
    assert fs.exists(f"/published/out/{SUCCESS_MARKER}")
    assert [p for p in fs.ls("/published", detail=False) if ".tmp-" in p] == []


def test_s3_publish(s3_server: dict[str, object]) -> None:
    s3 = fsspec.filesystem("s3", **s3_server)
    s3.mkdir("results")
    write_parquet(pd.DataFrame({"x": [1, 2]}), "s3://results/scores", storage_options=s3_server)
    assert s3.exists(f"results/scores/{SUCCESS_MARKER}")
    assert [p for p in s3.ls("results", detail=False) if ".tmp-" in p] == []
    got = read_table("s3://results/scores", storage_options=s3_server).compute()
    assert got["x"].tolist() == [1, 2]


def test_unwritable_location(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(OutputError, match=r"cannot write under '.*a-file/out' .*choose a writable location"):
        write_parquet(pd.DataFrame({"x": [1]}), str(tmp_path / "a-file" / "out"))

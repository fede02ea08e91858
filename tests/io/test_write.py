"""Atomic publication: nothing appears at the destination until the write succeeded, and nothing
there is replaced: destinations are claimed, and published with no-replace semantics.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import fsspec
import pandas as pd
import pytest

from daskflow import OutputError
from daskflow.io import (
    SUCCESS_MARKER,
    OutputClaimed,
    PendingOutput,
    Publication,
    _fs,
    atomic_output,
    read_table,
    write_parquet,
)


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


# -- claims and no-replace publish ----------------------------------------------------------------

def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("renameat2", [True, False], ids=["renameat2", "fallback"])
def test_a_directory_appearing_meanwhile_is_never_replaced(tmp_path: Path, renameat2: bool,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    if not renameat2:  # as on a system or filesystem without renameat2
        monkeypatch.setattr(_fs, "_renameat2", lambda *args: False)
    with pytest.raises(OutputError, match=r"output '.*empty' appeared while this run was writing it "
                                          r".*nothing was published; move it away, or choose another"):
        with atomic_output(str(tmp_path / "empty")) as tmp:
            Path(tmp, "part.0.parquet").write_bytes(b"new")
            (tmp_path / "empty").mkdir()  # os.rename would silently replace this one
    with pytest.raises(OutputError, match="appeared while this run was writing it"):
        with atomic_output(str(tmp_path / "full")) as tmp:
            Path(tmp, "part.0.parquet").write_bytes(b"new")
            (tmp_path / "full").mkdir()
            (tmp_path / "full" / "theirs").write_bytes(b"theirs")
    assert list((tmp_path / "empty").iterdir()) == []
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["theirs"]
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("renameat2", [True, False], ids=["exchange", "fallback"])
def test_overwrite_swaps_in_the_complete_result(tmp_path: Path, renameat2: bool,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    if not renameat2:
        monkeypatch.setattr(_fs, "_renameat2", lambda *args: False)
    write_parquet(pd.DataFrame({"x": [1]}), str(tmp_path / "out"))
    with atomic_output(str(tmp_path / "out"), overwrite=True) as tmp:
        Path(tmp, "new").write_text("new")
        assert read_table(str(tmp_path / "out")).compute()["x"].tolist() == [1]  # still the old one
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [SUCCESS_MARKER, "new"]
    assert leftovers(tmp_path) == []


def test_a_second_writer_fails_naming_the_first(tmp_path: Path) -> None:
    first = PendingOutput(str(tmp_path / "out"), owner="run-a")
    with pytest.raises(OutputClaimed, match=rf"output '.*out' is being written by run run-a \(pid "
                                            rf"{os.getpid()} on {socket.gethostname()}, since .*\): wait for "
                                            r"it to finish, or choose another location") as refused:
        PendingOutput(str(tmp_path / "out"), owner="run-b")
    assert refused.value.claim["owner"] == "run-a" and not refused.value.stale
    Path(first.tmp_uri, "data").write_text("a")
    first.publish()
    first.release()  # the loser did not remove the winner's claim, nor its result
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [SUCCESS_MARKER, "data"]
    assert leftovers(tmp_path) == []


def test_a_stale_claim_is_reported_not_stolen(tmp_path: Path) -> None:
    claim = tmp_path / ".out.claim"
    claim.write_text(json.dumps({"owner": "gone", "pid": dead_pid(), "host": socket.gethostname(),
                                 "since": "2026-01-01T00:00:00Z", "work": ".out.tmp-abc"}))
    stale = r"claimed by run gone .*which is no longer running: remove the stale claim \(rm .*/\.out\.claim\)"
    with pytest.raises(OutputClaimed, match=stale) as refused:
        PendingOutput(str(tmp_path / "out"))
    assert refused.value.stale
    (tmp_path / ".out.tmp-abc").mkdir()  # its working directory too: both named
    with pytest.raises(OutputClaimed, match=r"unfinished working directory .*\.out\.tmp-abc is kept: remove "
                                            r"both \(rm -r .*\.out\.tmp-abc .*\.out\.claim\)"):
        PendingOutput(str(tmp_path / "out"))
    # Continuing that very attempt takes the claim over.
    resumed = PendingOutput(str(tmp_path / "out"), reuse=str(tmp_path / ".out.tmp-abc"), owner="again")
    assert json.loads(claim.read_text())["owner"] == "again"
    resumed.publish()
    resumed.release()
    assert leftovers(tmp_path) == []


def test_a_resumed_owner_takes_its_stale_claims_back(tmp_path: Path) -> None:
    (tmp_path / ".out.tmp-dead").mkdir()
    (tmp_path / ".out.tmp-dead" / "part.0.parquet").write_bytes(b"half")
    (tmp_path / ".out.claim").write_text(json.dumps({"owner": "r1", "pid": dead_pid(),
                                                      "host": socket.gethostname(), "work": ".out.tmp-dead"}))
    with pytest.raises(OutputClaimed, match="is claimed by run r1"):
        PendingOutput(str(tmp_path / "out"), owner="r2", take_over="r2")  # someone else's
    pending = PendingOutput(str(tmp_path / "out"), owner="r1", take_over="r1")
    assert sorted(leftovers(tmp_path)) == sorted([".out.claim", Path(pending.tmp_uri).name])
    pending.publish()
    pending.release()
    assert leftovers(tmp_path) == []


def test_an_unreadable_claim_is_not_stolen(tmp_path: Path) -> None:
    (tmp_path / ".out.claim").write_bytes(b"\xff half-written")
    with pytest.raises(OutputClaimed, match=r"is claimed by another writer \(.*\.out\.claim exists but "
                                            r"cannot be read\): if no run is writing it, remove"):
        PendingOutput(str(tmp_path / "out"))


def test_a_publication_is_all_or_nothing(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1, 2]})
    with pytest.raises(OutputError, match="'.*second' appeared while this run was writing it"):
        with Publication() as publication:
            write_parquet(frame, str(tmp_path / "first"), publish=publication)
            write_parquet(frame, str(tmp_path / "second"), publish=publication)
            (tmp_path / "second").mkdir()  # the second cannot be published: the first is removed again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["second"]

    with Publication() as publication:
        publication.claim(str(tmp_path / "claimed-first"))
        with pytest.raises(OutputClaimed, match="is being written by another daskflow process"):
            write_parquet(frame, str(tmp_path / "claimed-first"))  # someone else than the claimant
        write_parquet(frame, str(tmp_path / "claimed-first"), publish=publication)
        assert not (tmp_path / "claimed-first").exists()
    assert (tmp_path / "claimed-first" / SUCCESS_MARKER).exists()
    assert leftovers(tmp_path) == []


def test_s3_claims_are_conditional_writes(s3_server: dict[str, object]) -> None:
    s3 = fsspec.filesystem("s3", **s3_server)
    s3.mkdir("claims")
    first = PendingOutput("s3://claims/out", s3_server, owner="run-a")
    assert json.loads(s3.cat("claims/.out.claim"))["owner"] == "run-a"
    with pytest.raises(OutputClaimed, match=r"output 's3://claims/out' is being written by run run-a"):
        PendingOutput("s3://claims/out", s3_server, owner="run-b")
    s3.pipe(f"{first.tmp_uri.removeprefix('s3://')}/part.0", b"a")
    s3.pipe("claims/out/theirs", b"theirs")  # a writer that ignores claims got there first
    with pytest.raises(OutputError, match="'s3://claims/out' appeared while this run was writing it"):
        first.publish()
    s3.invalidate_cache()
    assert s3.find("claims") == ["claims/out/theirs"]  # no marker, no temporary, no claim


def test_replace_file_never_shows_a_reader_a_partial_file(tmp_path: Path) -> None:
    """A commit point (an ALS checkpoint's latest.json) read while it is rewritten is the old or
    the new file whole: a reader, or a run resumed after a kill, never meets an empty one."""
    import threading

    from daskflow.io._fs import replace_file

    fs, path = fsspec.core.url_to_fs(str(tmp_path / "latest.json"))
    replace_file(fs, path, json.dumps({"iteration": 0}).encode())
    stop, seen = threading.Event(), []

    def rewrite() -> None:
        for iteration in range(1, 400):
            replace_file(fs, path, json.dumps({"iteration": iteration, "pad": "x" * 4096}).encode())
        stop.set()

    writer = threading.Thread(target=rewrite)
    writer.start()
    while not stop.is_set():
        seen.append(json.loads(Path(path).read_text())["iteration"])  # JSONDecodeError if partial
    writer.join()
    assert seen == sorted(seen) and json.loads(Path(path).read_text())["iteration"] == 399
    assert os.listdir(tmp_path) == ["latest.json"]  # no temporary left beside it


def test_replace_file_that_fails_keeps_the_old_file(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from daskflow.io._fs import replace_file

    target = tmp_path / "latest.json"
    target.write_text('{"iteration": 3}')
    fs, path = fsspec.core.url_to_fs(str(target))

    def full_disk(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space"):
        replace_file(fs, path, b'{"iteration": 4}')
    assert target.read_text() == '{"iteration": 3}' and os.listdir(tmp_path) == ["latest.json"]


def test_replace_file_on_an_object_store(s3_server: dict[str, object]) -> None:
    from daskflow.io._fs import replace_file

    s3 = fsspec.filesystem("s3", **s3_server)
    s3.mkdir("checkpoints")
    replace_file(s3, "checkpoints/latest.json", b'{"iteration": 1}')
    replace_file(s3, "checkpoints/latest.json", b'{"iteration": 2}')
    assert s3.cat_file("checkpoints/latest.json") == b'{"iteration": 2}'


def test_replace_file_creates_the_mode_asked_for_whatever_the_umask(tmp_path: Path) -> None:
    from daskflow.io._fs import replace_file

    fs, path = fsspec.core.url_to_fs(str(tmp_path / "config.yaml"))
    Path(path).write_text("old")
    os.chmod(path, 0o644)
    previous = os.umask(0)
    try:
        replace_file(fs, path, b"new", mode=0o600)
    finally:
        os.umask(previous)
    assert Path(path).read_text() == "new" and os.stat(path).st_mode & 0o777 == 0o600

"""Filesystem plumbing shared by the readers and writers: fsspec URLs and atomic publish."""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from daskflow._errors import DataError, OutputError

__all__ = ["open_filesystem", "atomic_output", "with_retries", "SUCCESS_MARKER"]

log = logging.getLogger("daskflow")

#: Written last into every published directory; readers may look for it.
SUCCESS_MARKER = "_SUCCESS"

# Protocols whose fsspec implementation lives in an optional package, with the extra
# that installs it (STYLE.md rule 11: lazy optional imports with an install hint).
_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "abfs": "azure", "az": "azure",
           "abfss": "azure"}


def open_filesystem(uri: str, storage_options: Mapping[str, Any] | None = None
                    ) -> tuple[fsspec.AbstractFileSystem, str]:
    """Resolve ``uri`` to an fsspec filesystem and a path inside it.

    Raises
    ------
    DataError
        The protocol is unknown or its optional package is not installed.
    """
    try:
        return fsspec.core.url_to_fs(uri, **dict(storage_options or {}))
    except ImportError as exc:
        protocol = uri.split("://", 1)[0]
        extra = _EXTRAS.get(protocol)
        hint = f"install it with: pip install 'daskflow[{extra}]'" if extra else str(exc)
        raise DataError(f"reading {uri!r} needs the fsspec driver for {protocol}://, which is not "
                        f"installed: {hint}") from exc
    except ValueError as exc:
        raise DataError(f"cannot open {uri!r}: {exc}. Use a local path or an fsspec URL such as "
                        "file://, memory://, s3://, gcs://, abfs://") from exc


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def with_retries(action: Callable[[], Any], *, what: str, attempts: int = 3, delay: float = 0.5) -> Any:
    """Run ``action``; on a network-looking failure retry with doubling waits, then re-raise.

    Object stores and network filesystems fail transiently (a throttled request, a
    restarting endpoint); a few spaced attempts ride that out, and a store that stays
    unreachable still fails within seconds. Missing files and bad permissions are not
    retried: those answers do not change.
    """
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - stores raise their own exception types
            if attempt == attempts:
                raise
            log.warning("%s failed (%s: %s), attempt %d/%d; retrying in %.1fs", what, type(exc).__name__,
                        exc, attempt, attempts, delay)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


@contextlib.contextmanager
def atomic_output(uri: str, storage_options: Mapping[str, Any] | None = None, *,
                  overwrite: bool = False, reuse: str | None = None) -> Iterator[str]:
    """Write a directory result somewhere temporary, then publish it at ``uri``.

    Yields a URL of a fresh temporary directory beside ``uri``. When the block exits
    normally the directory is moved to ``uri`` (an atomic rename on local disks; copy then
    delete on object stores, which have no directory rename, with the success marker
    written last) and ``_SUCCESS`` marks it complete. When the block raises, the
    temporary directory is removed and nothing appears at ``uri``.

    ``reuse`` names the temporary directory of an earlier attempt (one a killed process
    left behind) to continue in instead of a fresh one.

    Examples
    --------
    >>> with atomic_output("memory://doc/result") as tmp:   # doctest: +SKIP
    ...     df.to_parquet(tmp)
    """
    fs, path = open_filesystem(uri, storage_options)
    path = path.rstrip("/")
    if fs.exists(path):
        if not overwrite:
            raise OutputError(f"output {uri!r} already exists: choose another location, or delete it "
                              "if it is a result you no longer need")
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    name = path.rsplit("/", 1)[-1]
    tmp_name = f".{name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp_path = f"{parent}/{tmp_name}" if parent else tmp_name
    if reuse is not None:
        reuse_path = open_filesystem(reuse, storage_options)[1].rstrip("/")
        if reuse_path.rsplit("/", 1)[0] != parent or \
                not reuse_path.rsplit("/", 1)[-1].startswith(f".{name}.tmp-") or not fs.isdir(reuse_path):
            raise OutputError(f"{reuse!r} is not an unfinished attempt at {uri!r}: expected a directory "
                              f"named .{name}.tmp-* beside it")
        tmp_path = reuse_path
    try:
        fs.makedirs(tmp_path, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write under {uri!r} ({exc.strerror or exc}): choose a writable "
                          "location or fix its permissions") from exc
    tmp_uri = tmp_path if _is_local(fs) else fs.unstrip_protocol(tmp_path)
    try:
        yield tmp_uri
        with fs.open(f"{tmp_path}/{SUCCESS_MARKER}", "wb"):
            pass
        if fs.exists(path):  # overwrite=True: replace the old result only now
            fs.rm(path, recursive=True)
        if _is_local(fs):
            os.replace(tmp_path, path)
        else:
            _move_objects(fs, tmp_path, path)
    except BaseException:
        with contextlib.suppress(Exception):
            fs.rm(tmp_path, recursive=True)
        raise


def _move_objects(fs: fsspec.AbstractFileSystem, source: str, destination: str) -> None:
    """Copy every object under ``source`` to ``destination``, success marker last, then delete.

    Object stores have no directory rename; readers that require ``_SUCCESS`` never see a
    half-copied result.
    """
    files = sorted(fs.find(source), key=lambda p: p.endswith(SUCCESS_MARKER))
    for file in files:
        fs.copy(file, destination + file[len(source):])
    fs.rm(source, recursive=True)

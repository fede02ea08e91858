"""The one listing of a table's data files that every reader uses.

Dask's ``read_parquet``, Arrow's dataset discovery and ``fsspec``'s ``find`` each walk a
directory their own way, and they disagree about symbolic links: Arrow followed a link
to ``.`` forty levels deep (123 files read instead of 3) where dask read each file once.
So no reader lists a directory itself: :func:`list_data_files` lists it once, and the
readers are handed the files.

The rule for links (docs/data.md, "Reading your own data"): links are followed, but every
real directory and every real file is read at most once. Files and directories reached
without a link come first; a link whose target is already read (a loop back to an
ancestor, a second name for a sibling directory or file) is skipped with a warning; a
link whose target does not exist is an error naming the link. Cycles are detected by
the targets' ``(st_dev, st_ino)``, which are the same whatever path reaches them.
Names starting with ``_`` or ``.`` (``_SUCCESS``, ``_metadata``, ``.tmp-*``, Spark's
``.crc`` files) are not data, at any depth, as Arrow and dask skip them. No Dask import:
the config checks and tasks may list too.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from daskflow._errors import DataError

__all__ = ["list_data_files", "open_dataset", "is_hidden", "natural_key", "READ_ERRORS"]

#: What reading a damaged file raises: Arrow's errors, I/O errors, and a UnicodeDecodeError
#: for names (of columns, of dictionary values) that are not UTF-8.
READ_ERRORS: tuple[type[BaseException], ...] = (pa.ArrowException, OSError, UnicodeDecodeError)

log = logging.getLogger("daskflow")

#: Skipped links reported one by one before the rest are only counted.
_REPORTED_LINKS = 5


def is_hidden(name: str) -> bool:
    """Whether a file or directory name is not data (``_SUCCESS``, ``.tmp-...``)."""
    return name.startswith(("_", "."))


def natural_key(path: str) -> list[Any]:
    """Sort key putting ``part-2`` before ``part-10``, the order dask reads files in."""
    return [int(piece) if piece.isdigit() else piece for piece in re.split(r"(\d+)", path)]


def list_data_files(fs: Any, path: str, *, label: str | None = None, warn: bool = True) -> list[str]:
    """Every data file under ``path`` (or ``[path]`` for a file), each real file once.

    Paths are in the filesystem's own form (as ``fs`` takes them) and in dask's order
    (natural sort). ``label`` names the table in messages; ``warn=False`` does not log the
    links skipped (for a second listing of the same table).

    Raises
    ------
    DataError
        A link under ``path`` points at nothing.
    """
    from daskflow.io._fs import _is_local

    label = label or repr(path)
    if _is_local(fs):
        return sorted(_walk_local(path, label, warn), key=natural_key)
    if fs.isfile(path):
        return [path]
    root = path.rstrip("/")
    files = []
    for file in fs.find(root):
        relative = file[len(root):].lstrip("/") if file.startswith(root) else file
        if not any(is_hidden(part) for part in relative.split("/")):
            files.append(file)
    return sorted(files, key=natural_key)


def open_dataset(fs: Any, files: Sequence[str], base_dir: str, format: str, **options: Any) -> Any:
    """An Arrow dataset of exactly ``files``, hive keys read from the directories under ``base_dir``.

    ``options`` go to the file format (e.g. Parquet ``read_options``).
    """
    import pyarrow.dataset as pads

    file_format = pads.ParquetFileFormat(**options) if format == "parquet" else format
    return pads.dataset(list(files), format=file_format, partitioning="hive",
                        partition_base_dir=base_dir, filesystem=fs)


def _walk_local(root: str, label: str, warn: bool) -> list[str]:
    """Files under a local ``root``: the real tree first, then what links add to it."""
    try:
        top = os.stat(root)
    except OSError as exc:
        raise DataError(f"cannot list {label}: {exc.strerror or exc}") from exc
    if not stat.S_ISDIR(top.st_mode):
        return [root]
    seen_dirs = {(top.st_dev, top.st_ino)}
    seen_files: set[tuple[int, int]] = set()
    files: list[str] = []
    skipped: list[str] = []
    # Directories to list; links to directories wait until the real tree is listed, so
    # that a directory reached both ways is read under its own name.
    pending = [root]
    links: list[str] = []
    file_links: list[tuple[str, tuple[int, int]]] = []
    while pending or links:
        directory = pending.pop() if pending else links.pop(0)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            raise DataError(f"cannot list {directory} of {label}: {exc.strerror or exc}. Fix its "
                            "permissions or remove it") from exc
        subdirectories = []
        for entry in entries:
            if is_hidden(entry.name):
                continue
            link = entry.is_symlink()
            try:
                info = entry.stat(follow_symlinks=True)
            except FileNotFoundError as exc:
                raise DataError(f"link {entry.path} of {label} points at {os.readlink(entry.path)!r}, "
                                "which does not exist: restore its target or remove the link") from exc
            except OSError as exc:  # ELOOP: a link to itself
                raise DataError(f"link {entry.path} of {label} cannot be followed ({exc.strerror or exc}): "
                                "remove the link or point it at data") from exc
            identity = (info.st_dev, info.st_ino)
            if stat.S_ISDIR(info.st_mode):
                if identity in seen_dirs:
                    skipped.append(entry.path)
                    continue
                seen_dirs.add(identity)
                (links.append if link else subdirectories.append)(entry.path)
            elif link:  # after every file reached without a link
                file_links.append((entry.path, identity))
            elif identity not in seen_files:  # (seen: under a linked directory listed earlier)
                seen_files.add(identity)
                files.append(entry.path)
            else:
                skipped.append(entry.path)
        pending.extend(reversed(subdirectories))
    for path, identity in file_links:
        if identity in seen_files:
            skipped.append(path)
            continue
        seen_files.add(identity)
        files.append(path)
    if skipped and warn:
        shown = ", ".join(skipped[:_REPORTED_LINKS])
        more = f" and {len(skipped) - _REPORTED_LINKS} more" if len(skipped) > _REPORTED_LINKS else ""
        log.warning("%s: skipped %d link(s) to data already read (a loop or a second name): %s%s",
                    label, len(skipped), shown, more)
    return files

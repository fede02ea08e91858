"""ALS checkpoints on any fsspec store: one .npy per factor block, committed by ``latest.json``.

Layout::

    <dir>/iteration-00005/meta.json       iteration, loss curve, shapes, block bounds, params
    <dir>/iteration-00005/users-00000.npy one file per block of user factors (written by workers)
    <dir>/iteration-00005/items-00000.npy
    <dir>/latest.json                     written last: names the newest complete checkpoint

A run killed while writing leaves ``latest.json`` pointing at the previous complete one.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from daskflow._errors import DataError
from daskflow.io._fs import open_filesystem, replace_file, replace_file_prefix

__all__ = ["iteration_dir", "save_block", "commit", "read_latest", "load_rows"]

_KEEP = 2  # complete checkpoints kept; older ones are deleted after a commit


def iteration_dir(root: str, iteration: int) -> str:
    return f"{root.rstrip('/')}/iteration-{iteration:05d}"


def save_block(directory: str, side: str, index: int, factors: np.ndarray,
               storage_options: Mapping[str, Any] | None = None) -> str:
    """Write one block of factors (runs on a worker, next to the block)."""
    fs, path = open_filesystem(directory, storage_options)
    fs.makedirs(path, exist_ok=True)
    buffer = io.BytesIO()
    np.save(buffer, factors, allow_pickle=False)
    name = f"{path}/{side}-{index:05d}.npy"
    with fs.open(name, "wb") as handle:
        handle.write(buffer.getvalue())
    return name


def commit(root: str, iteration: int, meta: Mapping[str, Any],
           storage_options: Mapping[str, Any] | None = None) -> None:
    """Write the iteration's meta.json, then point latest.json at it; prune old checkpoints."""
    fs, path = open_filesystem(root, storage_options)
    directory = iteration_dir(path, iteration)
    with fs.open(f"{directory}/meta.json", "w") as handle:
        json.dump({**meta, "iteration": iteration}, handle)
    # The commit point: a reader or a resumed run sees the previous latest.json or this one.
    latest = {"iteration": iteration, "directory": directory.rsplit("/", 1)[-1]}
    replace_file(fs, f"{path}/latest.json", json.dumps(latest).encode())
    entries = fs.ls(path, detail=False)
    complete = sorted(p for p in entries if p.rsplit("/", 1)[-1].startswith("iteration-"))
    # A commit killed mid-write (see replace_file) left its temporary: this is the only writer.
    leftovers = [p for p in entries if p.rsplit("/", 1)[-1].startswith(replace_file_prefix("latest.json"))]
    for old in [*complete[:-_KEEP], *leftovers]:
        fs.rm(old, recursive=True)


def read_latest(root: str, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The meta of the newest complete checkpoint under ``root``, or None if there is none."""
    fs, path = open_filesystem(root, storage_options)
    if not fs.exists(f"{path}/latest.json"):
        return None
    try:
        with fs.open(f"{path}/latest.json") as handle:
            latest = json.load(handle)
        with fs.open(f"{path}/{latest['directory']}/meta.json") as handle:
            meta = json.load(handle)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"checkpoint at {root!r} is unreadable ({exc}): delete the directory to "
                        "start afresh") from exc
    meta["directory"] = f"{root.rstrip('/')}/{latest['directory']}"
    return meta


def load_rows(directory: str, side: str, bounds: Sequence[int], lo: int, hi: int,
              storage_options: Mapping[str, Any] | None = None, dtype: Any = None) -> np.ndarray:
    """Rows ``lo:hi`` of one side's factors (as ``dtype``), read from the saved blocks that
    overlap them."""
    fs, path = open_filesystem(directory, storage_options)
    parts = []
    for index, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
        if stop <= lo or start >= hi:
            continue
        with fs.open(f"{path}/{side}-{index:05d}.npy", "rb") as handle:
            block = np.load(io.BytesIO(handle.read()), allow_pickle=False)
        parts.append(block[max(lo, start) - start:min(hi, stop) - start])
    rows = np.concatenate(parts) if parts else np.zeros((0, 0))
    return rows.astype(dtype) if dtype is not None else rows

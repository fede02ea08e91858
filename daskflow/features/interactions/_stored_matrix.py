"""Saving a built interaction matrix and loading it back, block by block.

Layout under ``uri`` (published atomically)::

    meta.json                    shape, nnz, block bounds
    user_index.parquet           user_idx -> user_id
    item_index.parquet           item_idx -> item_id
    users/block-00000.npz        CSR arrays and latest times of each user block (written by workers)
    items/block-00000.npz        the same for the item blocks (the transpose)

Loading makes one task per block that reads its file on a worker, so a matrix larger than
the cluster's memory can be persisted and spilled rather than shipped from the client. Or it
is not persisted at all (``persist=False``): every use of a block reads its file again, and
``ImplicitALS`` streams such a matrix from the files (docs/als.md). The block files are written
and read by ``_block_files``, a module light enough for small workers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
import pandas as pd
from dask.base import tokenize

from daskflow._dask import compute, named
from daskflow._dask import persist as _persist
from daskflow._errors import DataError
from daskflow.features.interactions._block_files import read_block, write_block
from daskflow.features.interactions._matrix import InteractionMatrix
from daskflow.io._fs import atomic_output, open_filesystem

__all__ = ["save_interactions", "load_interactions", "StoredInteractionMatrix"]

_SIDES = ("users", "items")


@dataclass(frozen=True)
class StoredInteractionMatrix(InteractionMatrix):
    """An :class:`InteractionMatrix` whose blocks are read from their files on every use.

    Returned by ``load_interactions(uri, persist=False)``. Its blocks are lazy tasks, so no
    block stays in worker memory: a task that needs a block reads the file (and ``to_scipy``
    or ``compute`` read them all, every time).

    Attributes
    ----------
    uri, storage_options
        Where the matrix was saved by :func:`save_interactions`.
    """

    uri: str
    storage_options: Mapping[str, Any] | None

    def block_files(self, side: str) -> list[str] | None:
        """Paths of the ``"users"`` or ``"items"`` block files, in block order.

        ``None`` when the blocks are no longer the stored ones: a matrix derived with
        ``dataclasses.replace`` (``leave_k_out_split`` does) keeps ``uri`` but not the files'
        contents, so callers that would read the files directly must use the blocks instead.
        """
        blocks = self.user_blocks if side == "users" else self.item_blocks
        paths = _block_paths(self.uri, side, len(blocks))
        keys = [_block_key(self.uri, self.storage_options, path) for path in paths]
        if [getattr(block, "key", None) for block in blocks] != keys:
            return None
        return paths


def save_interactions(matrix: InteractionMatrix, uri: str, *, client: Any = None,
                      storage_options: Mapping[str, Any] | None = None, overwrite: bool = False) -> str:
    """Write ``matrix`` under ``uri`` (local path or fsspec URL); returns ``uri``."""
    with atomic_output(uri, storage_options, overwrite=overwrite) as tmp:
        writes = [named(write_block, "interactions-save")(f"{tmp}/{side}/block-{index:05d}.npz", block,
                                                          storage_options)
                  for side, blocks in (("users", matrix.user_blocks), ("items", matrix.item_blocks))
                  for index, block in enumerate(blocks)]
        compute(writes, client)
        fs, path = open_filesystem(tmp, storage_options)
        users, items = matrix.mapping_frames()
        for name, frame in (("user_index", users), ("item_index", items)):
            with fs.open(f"{path}/{name}.parquet", "wb") as handle:
                frame.to_parquet(handle, index=False)
        meta = {"shape": list(matrix.shape), "nnz": matrix.nnz,
                "user_bounds": matrix.user_bounds.tolist(), "item_bounds": matrix.item_bounds.tolist()}
        with fs.open(f"{path}/meta.json", "w") as handle:
            json.dump(meta, handle)
    return uri


def load_interactions(uri: str, *, client: Any = None, storage_options: Mapping[str, Any] | None = None,
                      persist: bool = True) -> InteractionMatrix:
    """Load a matrix written by :func:`save_interactions`; blocks are read by the workers.

    Parameters
    ----------
    uri
        Where the matrix was saved (local path or fsspec URL).
    persist : bool, default True
        Read every block into worker memory now (spilled to disk by Dask when it does not
        fit). With ``False`` nothing is read yet: the result is a
        :class:`StoredInteractionMatrix` whose blocks are read from their files whenever a
        task needs them, and ``ImplicitALS.fit`` streams it (reads each block's counts inside
        the task that solves it, every half-step) instead of keeping the matrix and its
        confidences on the workers. For data several times the workers' memory.
    """
    fs, path = open_filesystem(uri, storage_options)
    try:
        with fs.open(f"{path}/meta.json") as handle:
            meta = json.load(handle)
        with fs.open(f"{path}/user_index.parquet", "rb") as handle:
            user_ids = pd.read_parquet(handle)["user_id"]
        with fs.open(f"{path}/item_index.parquet", "rb") as handle:
            item_ids = pd.read_parquet(handle)["item_id"]
    except FileNotFoundError as exc:
        raise DataError(f"no saved interaction matrix at {uri!r} ({exc.filename or exc}): write one "
                        "with save_interactions") from None
    counts = {"users": len(meta["user_bounds"]) - 1, "items": len(meta["item_bounds"]) - 1}
    fields = (tuple(meta["shape"]), int(meta["nnz"]), pd.Index(user_ids.to_numpy(object)),
              pd.Index(item_ids.to_numpy(object)), np.asarray(meta["user_bounds"]),
              np.asarray(meta["item_bounds"]))
    if not persist:
        # Named after their file, so StoredInteractionMatrix.block_files can tell them from
        # blocks swapped in later. Nothing holds them, so a rewritten file is read afresh.
        lazy = {side: tuple(dask.delayed(read_block, pure=True)(
                    file, storage_options, dask_key_name=_block_key(uri, storage_options, file))
                    for file in _block_paths(uri, side, counts[side])) for side in _SIDES}
        return StoredInteractionMatrix(*fields, lazy["users"], lazy["items"], uri, storage_options)
    reads = [named(read_block, "interactions-load")(file, storage_options)
             for side in _SIDES for file in _block_paths(uri, side, counts[side])]
    loaded = _persist(reads, client)
    return InteractionMatrix(*fields, tuple(loaded[:counts["users"]]), tuple(loaded[counts["users"]:]))


def _block_paths(uri: str, side: str, n_blocks: int) -> list[str]:
    return [f"{uri}/{side}/block-{index:05d}.npz" for index in range(n_blocks)]


def _block_key(uri: str, storage_options: Mapping[str, Any] | None, path: str) -> str:
    return f"interactions-stored-block-{tokenize(uri, storage_options, path)}"

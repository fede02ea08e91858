"""Saving a built interaction matrix and loading it back, block by block.

Layout under ``uri`` (published atomically)::

    meta.json                    shape, nnz, block bounds
    user_index.parquet           user_idx -> user_id
    item_index.parquet           item_idx -> item_id
    users/block-00000.npz        CSR arrays and latest times of each user block (written by workers)
    items/block-00000.npz        the same for the item blocks (the transpose)

Loading makes one task per block that reads its file on a worker, so a matrix larger than
the cluster's memory can be persisted and spilled rather than shipped from the client.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import dask
import numpy as np
import pandas as pd
import scipy.sparse as sp

from daskflow._dask import compute, persist
from daskflow._errors import DataError
from daskflow.features._blocks import Block
from daskflow.features._interactions import InteractionMatrix
from daskflow.io._fs import atomic_output, open_filesystem

__all__ = ["save_interactions", "load_interactions"]


def save_interactions(matrix: InteractionMatrix, uri: str, *, client: Any = None,
                      storage_options: Mapping[str, Any] | None = None, overwrite: bool = False) -> str:
    """Write ``matrix`` under ``uri`` (local path or fsspec URL); returns ``uri``."""
    with atomic_output(uri, storage_options, overwrite=overwrite) as tmp:
        writes = [dask.delayed(_save_block)(f"{tmp}/{side}/block-{index:05d}.npz", block, storage_options)
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


def load_interactions(uri: str, *, client: Any = None,
                      storage_options: Mapping[str, Any] | None = None) -> InteractionMatrix:
    """Load a matrix written by :func:`save_interactions`; blocks are read by the workers."""
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
    user_blocks = [dask.delayed(_load_block)(f"{uri}/users/block-{i:05d}.npz", storage_options)
                   for i in range(len(meta["user_bounds"]) - 1)]
    item_blocks = [dask.delayed(_load_block)(f"{uri}/items/block-{i:05d}.npz", storage_options)
                   for i in range(len(meta["item_bounds"]) - 1)]
    blocks = persist(user_blocks + item_blocks, client)
    return InteractionMatrix(tuple(meta["shape"]), int(meta["nnz"]), pd.Index(user_ids.to_numpy(object)),
                             pd.Index(item_ids.to_numpy(object)), np.asarray(meta["user_bounds"]),
                             np.asarray(meta["item_bounds"]), tuple(blocks[:len(user_blocks)]),
                             tuple(blocks[len(user_blocks):]))


def _save_block(path: str, block: Block, storage_options: Mapping[str, Any] | None) -> None:
    fs, target = open_filesystem(path, storage_options)
    fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
    buffer = io.BytesIO()
    csr = block.csr
    np.savez(buffer, data=csr.data, indices=csr.indices, indptr=csr.indptr, shape=np.array(csr.shape),
             last_ts=block.last_ts, row_offset=np.array(block.row_offset))
    with fs.open(target, "wb") as handle:
        handle.write(buffer.getvalue())


def _load_block(path: str, storage_options: Mapping[str, Any] | None) -> Block:
    fs, target = open_filesystem(path, storage_options)
    with fs.open(target, "rb") as handle:  # seekable: np.load reads members in place
        arrays = np.load(handle, allow_pickle=False)
        csr = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]),
                            shape=tuple(arrays["shape"]))
        return Block(csr, arrays["last_ts"], int(arrays["row_offset"]))

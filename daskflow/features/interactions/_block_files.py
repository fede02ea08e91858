"""The file of one saved interaction block: written and read by tasks on the workers.

One uncompressed ``.npz`` per block: the CSR arrays (``data``, ``indices``, ``indptr``,
``shape``), ``last_ts`` aligned with ``data``, and ``row_offset``.

This module imports only NumPy, SciPy and fsspec, because every task that reads a block
runs on a worker: reading through ``_stored_matrix`` (pandas, pyarrow, dask.dataframe)
raised an idle worker's RSS from 136 MB to 261 MB, most of a small ``memory_limit``
(docs/als.md, section 6). ``Block``'s own module (``_block``) imports NumPy and SciPy only,
so unpickling a block is light too; ``read_counts`` never needs it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from daskflow.io._fs import open_filesystem

if TYPE_CHECKING:
    from daskflow.features.interactions._block import Block

__all__ = ["write_block", "read_block", "read_counts"]


def write_block(path: str, block: Block, storage_options: Mapping[str, Any] | None) -> None:
    """Write ``block`` as one ``.npz`` file at ``path`` (creating its directory)."""
    fs, target = open_filesystem(path, storage_options)
    fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
    buffer = io.BytesIO()
    csr = block.csr
    np.savez(buffer, data=csr.data, indices=csr.indices, indptr=csr.indptr, shape=np.array(csr.shape),
             last_ts=block.last_ts, row_offset=np.array(block.row_offset))
    with fs.open(target, "wb") as handle:
        handle.write(buffer.getvalue())


def read_block(path: str, storage_options: Mapping[str, Any] | None) -> Block:
    """The whole block written by :func:`write_block`."""
    from daskflow.features.interactions._block import Block

    fs, target = open_filesystem(path, storage_options)
    with fs.open(target, "rb") as handle:  # seekable: np.load reads members in place
        arrays = np.load(handle, allow_pickle=False)
        return Block(_csr(arrays), arrays["last_ts"], int(arrays["row_offset"]))


def read_counts(path: str, storage_options: Mapping[str, Any] | None) -> tuple[sp.csr_matrix, int]:
    """Only the counts of a block, as ``(csr, row_offset)``: ``last_ts`` is left unread.

    What a streamed ALS fit reads every half-step (half the bytes of the file).
    """
    fs, target = open_filesystem(path, storage_options)
    with fs.open(target, "rb") as handle:
        arrays = np.load(handle, allow_pickle=False)
        return _csr(arrays), int(arrays["row_offset"])


def _csr(arrays: Any) -> sp.csr_matrix:
    return sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=tuple(arrays["shape"]))

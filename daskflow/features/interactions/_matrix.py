"""The users x items interaction matrix, built out of core from a listens table.

One pass over the log: every partition is factorised locally and kept in compact form
(int32 codes, int64 times, float32 weights unless counting); the sorted unions of the
local IDs give the global mapping (sorted order, so it does not depend on partitioning);
then every partition is remapped and cut by user block, and each user block is assembled
from its pieces. Item blocks are the transpose, cut from the user blocks: after the
duplicates are summed there are fewer entries to move, and each is already final. The
result is two lists of CSR row-blocks (users, and the transpose for items) persisted on
the cluster, the layout ALS consumes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
import scipy.sparse as sp
from dask.base import tokenize

from daskflow._dask import compute, named, persist
from daskflow._errors import DataError, SchemaError
from daskflow.features.interactions._interaction_kernels import (
    Block,
    assemble_block,
    drop_entries,
    factorize_partition,
    factorize_table,
    ids_to_index,
    leave_k_out,
    merge_uniques,
    remap_and_cut,
    stack_transposed,
    transpose_block,
)
from daskflow.io._parts import parquet_parts
from daskflow.io._read import naming_unreadable_file

__all__ = ["InteractionMatrix", "build_interactions", "leave_k_out_split", "without_entries", "block_bounds",
           "check_block_count", "MAX_BLOCKS", "MAX_PIECES"]

log = logging.getLogger("daskflow")

_TREE_WIDTH = 8  # fan-in of the tree reduction that merges partition-local IDs
#: Rows per read task when the log is read with Arrow: large enough that the parts' IDs
#: overlap little and their tasks' overhead is small, small enough to keep a part in
#: ~100 MB of worker memory (int32 codes, int64 times, the Arrow table while factorising).
_ROWS_PER_PART = 2_000_000


@dataclass(frozen=True)
class InteractionMatrix:
    """A users x items sparse matrix held as persisted CSR row-blocks.

    Attributes
    ----------
    shape, nnz
        Of the whole matrix.
    user_ids, item_ids
        Original string IDs; position ``i`` is matrix index ``i``.
    user_bounds, item_bounds
        Block boundaries: user block ``b`` holds rows ``user_bounds[b]:user_bounds[b+1]``.
    user_blocks, item_blocks
        Dask ``Delayed`` objects (backed by futures on a distributed cluster) yielding
        :class:`~daskflow.features.Block`; item blocks hold the transpose.
    """

    shape: tuple[int, int]
    nnz: int
    user_ids: pd.Index
    item_ids: pd.Index
    user_bounds: np.ndarray
    item_bounds: np.ndarray
    user_blocks: tuple[Any, ...]
    item_blocks: tuple[Any, ...]

    @property
    def n_users(self) -> int:
        return self.shape[0]

    @property
    def n_items(self) -> int:
        return self.shape[1]

    def to_scipy(self, *, client: Any = None) -> sp.csr_matrix:
        """Gather the whole matrix into memory as CSR (for small data and tests)."""
        blocks = compute(self.user_blocks, client)
        if not blocks:
            return sp.csr_matrix(self.shape, dtype=np.float32)
        return sp.vstack([b.csr for b in blocks], format="csr")

    def mapping_frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(user index table, item index table) to save beside results and join back."""
        users = pd.DataFrame({"user_idx": np.arange(self.n_users, dtype=np.int64),
                              "user_id": pd.array(self.user_ids, dtype="string")})
        items = pd.DataFrame({"item_idx": np.arange(self.n_items, dtype=np.int64),
                              "item_id": pd.array(self.item_ids, dtype="string")})
        return users, items


def block_bounds(n: int, block_size: int) -> np.ndarray:
    """Boundaries of row-blocks of at most ``block_size`` rows (at least one block)."""
    return np.unique(np.r_[np.arange(0, n, block_size), n]) if n else np.array([0, 0])


def build_interactions(listens: dd.DataFrame, *, user_col: str = "user_id",
                       item_col: str = "track_id", weight: str = "count",
                       time_col: str | None = "ts", block_size: int = 50_000,
                       allow_empty_ids: bool = False, client: Any = None) -> InteractionMatrix:
    """Build the blocked users x items matrix from a (lazy) listens table.

    Parameters
    ----------
    listens
        One row per event.
    user_col, item_col
        ID columns (any hashable, usually strings).
    weight
        ``"count"`` to count rows, or a numeric column to sum (e.g. ``ms_played``).
    time_col
        Timestamp column; the latest time per (user, item) is kept for by-time splits.
        ``None`` if there is none.
    block_size
        Rows per block, for users and for items. One that makes more than
        :data:`MAX_BLOCKS` blocks on a side, or more than :data:`MAX_PIECES` pieces to
        move between blocks, is refused once the IDs are counted (before any block is
        built), with the smallest block size that fits.
    allow_empty_ids
        Keep empty and whitespace-only string IDs as IDs; by default they are an error.
    client
        ``distributed.Client`` to persist the blocks on; default: dask's local scheduler.

    Raises
    ------
    SchemaError
        A named column is missing.
    DataError
        Null or empty IDs, negative/NaN weights, no rows at all, a file whose data cannot
        be read, or a ``block_size`` making too many blocks.
    """
    if block_size < 1:
        raise DataError(f"block_size must be >= 1, got {block_size}")
    needed = check_interaction_columns(listens, user_col, item_col, weight, time_col)
    token = tokenize(listens)
    local = _factorized_parts(listens, token, needed, user_col, item_col, weight, time_col,
                              allow_empty_ids)
    with naming_unreadable_file(listens, token, client):
        local = persist(local, client)
        # Kept on the cluster for the remapping, and gathered once for the matrix's mappings.
        ids = persist([_id_tree(local)], client)[0]
        user_ids, item_ids = compute([ids], client)[0]
    if len(user_ids) == 0:
        raise DataError("the listens table has no rows (after filters): nothing to build "
                        "interactions from. Check data.sources filters and the uri")
    check_block_count(len(user_ids), len(item_ids), block_size, len(local))
    user_index = ids_to_index(user_ids)
    item_index = ids_to_index(item_ids)
    user_bounds = block_bounds(len(user_index), block_size)
    item_bounds = block_bounds(len(item_index), block_size)
    n_user_blocks = len(user_bounds) - 1
    # One output per block, so that each block's task fetches only its own pieces.
    pieces = [named(_remap_and_cut, "interactions-cut", nout=n_user_blocks)(part, ids, user_bounds)
              for part in local]
    assemble = named(assemble_block, "interactions-block-users")
    user_blocks = [assemble([p[b] for p in pieces], int(lo), int(hi), len(item_index))
                   for b, (lo, hi) in enumerate(zip(user_bounds[:-1], user_bounds[1:]))]
    user_blocks = _persist_spread(user_blocks, client)
    # Drop our references, so the cluster frees the local codes once the blocks hold them.
    del local, ids, pieces
    item_blocks = _transpose(user_blocks, item_bounds, len(user_index), client)
    nnz = int(sum(compute([named(_nnz, "interactions-nnz")(b) for b in user_blocks], client)))
    log.info("interactions: %d users x %d items, %d non-zeros in %d + %d blocks", len(user_index),
             len(item_index), nnz, len(user_blocks), len(item_blocks))
    return InteractionMatrix((len(user_index), len(item_index)), nnz, user_index, item_index,
                             user_bounds, item_bounds, tuple(user_blocks), tuple(item_blocks))


def leave_k_out_split(matrix: InteractionMatrix, *, k: int = 1, min_items: int = 3,
                      mode: str = "random", seed: int = 0, client: Any = None
                      ) -> tuple[InteractionMatrix, InteractionMatrix]:
    """Split into train and test matrices by holding out ``k`` items per eligible user.

    ``mode="random"`` holds out random items, ``mode="by_time"`` the ``k`` most recently
    played. Users with fewer than ``min_items`` distinct items are kept whole in train.
    Both matrices keep the full ID mappings and shapes, so indices line up.
    """
    if mode not in ("random", "by_time"):
        raise DataError(f"unknown split mode {mode!r}: expected 'random' or 'by_time'")
    if k < 1 or min_items <= k:
        raise DataError(f"leave-k-out needs k >= 1 and min_items > k, got k={k}, "
                        f"min_items={min_items}: each evaluated user must keep a training item")
    halves = [named(leave_k_out, "split-leave-out", nout=2)(block, k, min_items, mode, seed)
              for block in matrix.user_blocks]
    train_users = [h[0] for h in halves]
    test_users = [h[1] for h in halves]
    persisted = persist(train_users + test_users, client)
    train_users, test_users = persisted[: len(halves)], persisted[len(halves):]
    train = _with_user_blocks(matrix, train_users, client)
    test = _with_user_blocks(matrix, test_users, client)
    return train, test


def without_entries(matrix: InteractionMatrix, *removed: InteractionMatrix, client: Any = None
                    ) -> InteractionMatrix:
    """``matrix`` without the interactions stored in any of ``removed`` (same users and items).

    With the test halves of several :func:`leave_k_out_split` calls this is the training
    part they all share: what tuning may look at when every split's held-out items are
    kept for the final test.
    """
    for other in removed:
        if other.shape != matrix.shape or len(other.user_blocks) != len(matrix.user_blocks):
            raise DataError(f"without_entries: a matrix of shape {other.shape} in "
                            f"{len(other.user_blocks)} user blocks cannot be removed from one of shape "
                            f"{matrix.shape} in {len(matrix.user_blocks)}: split the same matrix")
    drop = named(drop_entries, "split-drop-held-out")
    user_blocks = persist([drop(block, *(other.user_blocks[b] for other in removed))
                           for b, block in enumerate(matrix.user_blocks)], client)
    return _with_user_blocks(matrix, user_blocks, client)


def _with_user_blocks(matrix: InteractionMatrix, user_blocks: Sequence[Any],
                      client: Any) -> InteractionMatrix:
    """A matrix with new user blocks and item blocks rebuilt as their transpose."""
    item_blocks = _transpose(user_blocks, matrix.item_bounds, matrix.n_users, client)
    nnz = int(sum(compute([named(_nnz, "split-nnz")(b) for b in user_blocks], client)))
    return replace(matrix, nnz=nnz, user_blocks=tuple(user_blocks), item_blocks=tuple(item_blocks))


def _transpose(user_blocks: Sequence[Any], item_bounds: np.ndarray, n_users: int,
               client: Any) -> list[Any]:
    """Persisted item blocks holding the transpose of ``user_blocks``."""
    n_item_blocks = len(item_bounds) - 1
    pieces = [named(transpose_block, "interactions-transpose", nout=n_item_blocks)(b, item_bounds)
              for b in user_blocks]
    stack = named(stack_transposed, "interactions-block-items")
    item_blocks = [stack([p[b] for p in pieces], int(lo), int(hi), n_users)
                   for b, (lo, hi) in enumerate(zip(item_bounds[:-1], item_bounds[1:]))]
    return _persist_spread(item_blocks, client)


def _persist_spread(blocks: list[Any], client: Any) -> list[Any]:
    """Persist block tasks, placed round robin over the workers when there is a client.

    Every block gathers pieces from all partitions, so the scheduler, which goes by where
    most of a task's input bytes are, often put most blocks on one worker and left the
    other idle. The placement is a preference: another worker takes a block if
    its worker is gone.
    """
    if client is None or len(blocks) < 2:
        return persist(blocks, client)
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    if len(workers) < 2:
        return persist(blocks, client)
    return [client.persist(block, workers=[workers[i % len(workers)]], allow_other_workers=True)
            for i, block in enumerate(blocks)]


#: Most blocks on one side of the matrix, and most pieces moved between blocks (read
#: parts x user blocks, plus user blocks x item blocks for the transpose). Every piece is
#: a key the scheduler tracks, at a few hundred microseconds to a millisecond of scheduler
#: time each: 20,000 pieces are already seconds to tens of seconds of overhead, more than
#: the work of a matrix small enough to need them (``block_size: 1`` on the 300 users and
#: 400 items of the test lake makes 120,300). The default 50,000 rows per block stays
#: below both up to millions of users and items.
MAX_BLOCKS = 10_000
MAX_PIECES = 20_000


def _pieces(n_users: int, n_items: int, block_size: int, n_parts: int) -> tuple[int, int, int]:
    user_blocks = max(1, -(-n_users // block_size))
    item_blocks = max(1, -(-n_items // block_size))
    return user_blocks, item_blocks, n_parts * user_blocks + user_blocks * item_blocks


def check_block_count(n_users: int, n_items: int, block_size: int, n_parts: int = 1) -> None:
    """Refuse a ``block_size`` that makes more blocks than a scheduler can track in time.

    Raises
    ------
    DataError
        With the arithmetic and the smallest block size that fits.
    """
    user_blocks, item_blocks, pieces = _pieces(n_users, n_items, block_size, n_parts)
    if max(user_blocks, item_blocks) <= MAX_BLOCKS and pieces <= MAX_PIECES:
        return
    low, high = block_size, max(n_users, n_items, block_size)  # the smallest size that fits
    while low < high:
        middle = (low + high) // 2
        u, i, p = _pieces(n_users, n_items, middle, n_parts)
        low, high = (low, middle) if max(u, i) <= MAX_BLOCKS and p <= MAX_PIECES else (middle + 1, high)
    raise DataError(f"block_size {block_size} makes {user_blocks} user blocks x {item_blocks} item "
                    f"blocks ({n_users} users, {n_items} items; {pieces} pieces to move: {n_parts} read "
                    f"part(s) x {user_blocks} + {user_blocks} x {item_blocks}): expected at most "
                    f"{MAX_BLOCKS} blocks a side and {MAX_PIECES} pieces, which a Dask scheduler tracks "
                    f"in reasonable time. Set features.interactions.block_size to {low} or more")


def check_interaction_columns(listens: dd.DataFrame, user_col: str, item_col: str, weight: str,
                              time_col: str | None) -> list[str]:
    """The columns :func:`build_interactions` reads, checked on the frame's schema; returns them.

    Only the frame's types are looked at (the files' footers), so ``daskflow validate``
    makes the same check before any data is read.
    """
    needed = [user_col, item_col] + ([weight] if weight != "count" else []) + \
        ([time_col] if time_col else [])
    missing = [c for c in needed if c not in listens.columns]
    if missing:
        raise SchemaError(f"listens table lacks column(s) {', '.join(map(repr, missing))}: expected "
                          f"{', '.join(needed)}; found {', '.join(map(str, listens.columns))}. Set "
                          "features.interactions.user_col/item_col/weight/time_col to existing columns")
    _check_column_types(listens, weight, time_col)
    return needed


def _check_column_types(listens: dd.DataFrame, weight: str, time_col: str | None) -> None:
    """Weights must be numbers and times timestamps, checked on the frame's types before any read."""
    dtypes = listens.dtypes
    if weight != "count":
        dtype = dtypes[weight]
        if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            raise SchemaError(f"weight column {weight!r} is a {dtype} column, expected numeric: store it "
                              "as numbers, or set features.interactions.weight to a numeric column or "
                              "'count'")
    if time_col is not None:
        dtype = dtypes[time_col]
        if not (pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_integer_dtype(dtype)):
            raise SchemaError(f"time column {time_col!r} is a {dtype} column, expected timestamps: "
                              "store it as a timestamp (declare data.sources.<name>.schema: "
                              f"{{{time_col}: timestamp}} to have it checked before any work), or set "
                              "features.interactions.time_col to a timestamp column")


def _factorized_parts(listens: dd.DataFrame, token: str, needed: list[str], user_col: str,
                      item_col: str, weight: str, time_col: str | None,
                      allow_empty_ids: bool) -> list[Any]:
    """One task per part of the log, each yielding its :class:`LocalCodes`."""
    parts = parquet_parts(listens, token, needed, dictionary_columns=[user_col, item_col],
                          rows_per_part=_ROWS_PER_PART)
    if parts is not None:
        # A Parquet table as read_table returned it: read it with Arrow, ID columns as
        # dictionaries (no hashing of the rows' strings), in fewer, larger parts than
        # dask's one per file, which means fewer distinct IDs to merge and remap.
        read = named(_read_and_factorize, "interactions-read-factorize", pure=True)
        return [read(parts.reader, group, user_col, item_col, weight, time_col, allow_empty_ids)
                for group in parts.groups]
    # map_partitions, not delayed calls on to_delayed(): dask fuses it with the read, so a
    # partition never waits in memory as a frame and there is one task per partition.
    # Partitions become LocalCodes, not frames, so the meta is only a placeholder.
    local = listens[needed].map_partitions(factorize_partition, user_col, item_col, weight,
                                           time_col, allow_empty_ids, meta=pd.Series([], dtype=object),
                                           enforce_metadata=False, align_dataframes=False,
                                           token="interactions-factorize")
    return local.to_delayed()


def _read_and_factorize(reader: Any, group: Any, user_col: str, item_col: str, weight: str,
                        time_col: str | None, allow_empty_ids: bool = False) -> Any:
    try:
        return factorize_table(reader(group), user_col, item_col, weight, time_col, allow_empty_ids)
    except DataError as exc:
        # Which file of the group: factorise them one by one (on this error path only).
        file = group[0][0] if len(group) == 1 else next(
            (item[0] for item in group if _fails(reader, item, user_col, item_col, weight, time_col,
                                                 allow_empty_ids)), None)
        if file is None or file in str(exc):
            raise
        raise type(exc)(f"file {file}: {exc}") from exc


def _fails(reader: Any, item: Any, user_col: str, item_col: str, weight: str, time_col: str | None,
           allow_empty_ids: bool) -> bool:
    try:
        factorize_table(reader([item]), user_col, item_col, weight, time_col, allow_empty_ids)
    except DataError:
        return True
    return False


def _nnz(block: Block) -> int:
    return block.nnz


def _remap_and_cut(local: Any, ids: tuple[Any, Any], user_bounds: np.ndarray) -> list[Any]:
    return remap_and_cut(local, ids[0], ids[1], user_bounds)


def _local_ids(local: Any) -> tuple[Any, Any]:
    return local.users, local.items


def _merge_ids(*pairs: tuple[Any, Any], sort: bool) -> tuple[Any, Any]:
    return (merge_uniques(*[p[0] for p in pairs], sort=sort),
            merge_uniques(*[p[1] for p in pairs], sort=sort))


def _id_tree(local: list[Any]) -> Any:
    """Tree-reduce the partition-local (user IDs, item IDs) into their sorted unions.

    Users and items share the tree: half the tasks, whose overhead is not small next to
    the merges of a partition's few thousand IDs.
    """
    level = [named(_local_ids, "interactions-ids")(part) for part in local]
    # At least one merge, even for one partition; only the last one sorts.
    while True:
        last = len(level) <= _TREE_WIDTH
        level = [named(_merge_ids, "interactions-ids-merge")(*level[i:i + _TREE_WIDTH], sort=last)
                 for i in range(0, len(level), _TREE_WIDTH)]
        if last:
            return level[0]

"""Per-block kernels for interaction matrices (pure NumPy/SciPy, no Dask import).

A block is a row-range of a sparse matrix (users x items, or its transpose) as CSR,
with the time of the last interaction of every stored entry aligned to ``csr.data``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from daskflow._errors import DataError

__all__ = ["Block", "LocalCodes", "factorize_partition", "merge_uniques", "remap_and_split",
           "assemble_block", "block_to_pieces", "leave_k_out", "Pieces"]


@dataclass(frozen=True)
class Block:
    """Rows ``row_offset .. row_offset + csr.shape[0] - 1`` of a sparse interaction matrix."""

    csr: sp.csr_matrix          # summed weights (float32), columns are global indices
    last_ts: np.ndarray         # int64 ms of the latest interaction, aligned with csr.data
    row_offset: int

    @property
    def nnz(self) -> int:
        return int(self.csr.nnz)


@dataclass(frozen=True)
class LocalCodes:
    """One partition of the log, factorised locally (before the global ID mapping is known)."""

    users: np.ndarray    # sorted unique user IDs of this partition (object)
    items: np.ndarray    # sorted unique item IDs of this partition (object)
    user_code: np.ndarray  # int32 index into ``users`` per row
    item_code: np.ndarray  # int32 index into ``items`` per row
    weight: np.ndarray     # float32
    ts: np.ndarray         # int64 ms


#: (rows, cols, weights, ts) of entries destined for one block, rows/cols global.
Pieces = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def factorize_partition(frame: pd.DataFrame, user_col: str, item_col: str, weight: str,
                        time_col: str | None) -> LocalCodes:
    """Factorise the IDs of one partition and validate its weights.

    Raises :class:`DataError` naming the column and an offending row for null IDs and
    for negative or non-finite weights.
    """
    for column in (user_col, item_col):
        nulls = frame[column].isna()
        if nulls.any():
            raise DataError(f"column {column!r} has {int(nulls.sum())} null IDs in the listens table: "
                            "drop or fill those rows (e.g. with a filter) before building interactions")
    users, user_code = _sorted_factorize(frame[user_col])
    items, item_code = _sorted_factorize(frame[item_col])
    if weight == "count":
        weights = np.ones(len(frame), dtype=np.float32)
    else:
        values = pd.to_numeric(frame[weight], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"column {weight!r} has {int(bad.sum())} negative, NaN or infinite "
                            f"values (e.g. {frame[weight].iloc[row]!r} for {user_col}="
                            f"{frame[user_col].iloc[row]!r}): expected finite weights >= 0. "
                            "Clean the data or filter those rows out")
        weights = values.astype(np.float32)
    if time_col is None:
        ts = np.zeros(len(frame), dtype=np.int64)
    else:
        ts = frame[time_col].to_numpy(dtype="datetime64[ms]").astype(np.int64)
    return LocalCodes(users, items, user_code, item_code, weights, ts)


def _sorted_factorize(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(values, sort=True)
    return np.asarray(uniques, dtype=object), codes.astype(np.int32)


def merge_uniques(*arrays: np.ndarray) -> np.ndarray:
    """Sorted union of sorted unique ID arrays (a step of a tree reduction)."""
    if len(arrays) == 1:
        return arrays[0]
    return np.asarray(pd.Index(np.concatenate(arrays)).unique().sort_values(), dtype=object)


def remap_and_split(local: LocalCodes, user_ids: pd.Index, item_ids: pd.Index,
                    user_bounds: np.ndarray, item_bounds: np.ndarray
                    ) -> tuple[list[Pieces], list[Pieces]]:
    """Map local codes to global indices; cut the entries by user block and by item block.

    Returns pieces for every user block (rows = users) and every item block (rows = items,
    i.e. the transpose).
    """
    user_map = user_ids.get_indexer(local.users).astype(np.int64)
    item_map = item_ids.get_indexer(local.items).astype(np.int64)
    rows = user_map[local.user_code]
    cols = item_map[local.item_code]
    by_user = _cut(rows, cols, local.weight, local.ts, user_bounds)
    by_item = _cut(cols, rows, local.weight, local.ts, item_bounds)
    return by_user, by_item


def _cut(rows: np.ndarray, cols: np.ndarray, weight: np.ndarray, ts: np.ndarray,
         bounds: np.ndarray) -> list[Pieces]:
    order = np.argsort(rows, kind="stable")
    rows, cols, weight, ts = rows[order], cols[order], weight[order], ts[order]
    edges = np.searchsorted(rows, bounds)
    return [(rows[a:b], cols[a:b], weight[a:b], ts[a:b]) for a, b in zip(edges[:-1], edges[1:])]


def assemble_block(pieces: list[Pieces], row_start: int, row_stop: int, n_cols: int) -> Block:
    """Sum duplicate (row, col) entries of all pieces into one CSR block, keeping the latest time."""
    if pieces:
        rows = np.concatenate([p[0] for p in pieces]) - row_start
        cols = np.concatenate([p[1] for p in pieces])
        weight = np.concatenate([p[2] for p in pieces])
        ts = np.concatenate([p[3] for p in pieces])
    else:
        rows = cols = ts = np.zeros(0, dtype=np.int64)
        weight = np.zeros(0, dtype=np.float32)
    n_rows = row_stop - row_start
    key = rows.astype(np.int64) * n_cols + cols
    order = np.argsort(key, kind="stable")
    key = key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.int64)
    summed = np.add.reduceat(weight[order].astype(np.float64), starts).astype(np.float32) \
        if len(key) else np.zeros(0, np.float32)
    latest = np.maximum.reduceat(ts[order], starts) if len(key) else np.zeros(0, np.int64)
    unique_rows = key[starts] // n_cols
    indices = (key[starts] % n_cols).astype(np.int32)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(unique_rows, minlength=n_rows), out=indptr[1:])
    csr = sp.csr_matrix((summed, indices, indptr), shape=(n_rows, n_cols))
    return Block(csr, latest, row_start)


def block_to_pieces(block: Block, bounds: np.ndarray) -> list[Pieces]:
    """Cut a block's entries by column ranges, as transposed pieces (rows = columns)."""
    coo = block.csr.tocoo()
    rows = coo.row.astype(np.int64) + block.row_offset
    # tocoo keeps CSR order, so last_ts stays aligned with the entries.
    return _cut(coo.col.astype(np.int64), rows, coo.data, block.last_ts, bounds)


def leave_k_out(block: Block, k: int, min_items: int, mode: str, seed: int
                ) -> tuple[Block, Block]:
    """Hold out ``k`` items of every user with at least ``min_items`` distinct items.

    ``mode="random"`` holds out ``k`` items at random (reproducible for a seed and a block);
    ``mode="by_time"`` holds out the ``k`` most recently played items (ties broken by item
    index). Users with fewer items stay whole in the training block.
    """
    if mode not in ("random", "by_time"):
        raise ValueError(f"unknown split mode {mode!r}: expected 'random' or 'by_time'")
    csr = block.csr
    counts = np.diff(csr.indptr)
    row_of_entry = np.repeat(np.arange(csr.shape[0]), counts)
    if mode == "random":
        rng = np.random.default_rng([seed, block.row_offset])
        score = rng.random(csr.nnz)
    else:
        # Most recent first: rank by -time, then by column for a deterministic tie-break.
        score = -(block.last_ts.astype(np.float64)) + csr.indices * 1e-12
    order = np.lexsort((score, row_of_entry))
    rank = np.empty(csr.nnz, dtype=np.int64)
    rank[order] = np.arange(csr.nnz) - np.repeat(csr.indptr[:-1], counts)
    eligible = (counts >= min_items)[row_of_entry]
    test_mask = eligible & (rank < k)
    return _subset(block, ~test_mask), _subset(block, test_mask)


def _subset(block: Block, mask: np.ndarray) -> Block:
    csr = block.csr
    row_of_entry = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    counts = np.bincount(row_of_entry[mask], minlength=csr.shape[0])
    indptr = np.zeros(csr.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    kept = sp.csr_matrix((csr.data[mask], csr.indices[mask], indptr), shape=csr.shape)
    return Block(kept, block.last_ts[mask], block.row_offset)

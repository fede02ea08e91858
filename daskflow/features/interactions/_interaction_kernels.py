"""Per-block kernels for interaction matrices (pure NumPy/SciPy/Arrow, no Dask import).

A block is a row-range of a sparse matrix (users x items, or its transpose) as CSR,
with the time of the last interaction of every stored entry aligned to ``csr.data``.

The kernels are written for throughput on large logs (see benchmarks/ingest.py): IDs
stay in Arrow memory rather than becoming Python strings, entries travel as int32
indices, the one sort per block is an in-place ``np.sort`` of packed keys instead of a
stable ``argsort``, and the item side is a linear-time transpose of the summed user
blocks. Each shortcut gives exactly the result of the plain computation (the comments
beside them say why), so the matrix does not depend on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from daskflow._errors import DataError, SchemaError
from daskflow.features.interactions._block import Block

__all__ = ["Block", "LocalCodes", "IdArray", "factorize_partition", "factorize_table", "merge_uniques",
           "ids_to_index", "remap_and_cut", "assemble_block", "transpose_block", "stack_transposed",
           "leave_k_out", "drop_entries", "Pieces"]

_INT32_MAX = np.iinfo(np.int32).max


#: Unique IDs: an Arrow array for strings and integers (cheap to hash, sort and ship
#: between workers), an object ndarray for anything else.
IdArray = pa.Array | np.ndarray


@dataclass(frozen=True)
class LocalCodes:
    """One partition of the log, factorised locally (before the global ID mapping is known)."""

    users: IdArray       # unique user IDs of this partition, sorted
    items: IdArray       # unique item IDs of this partition, sorted
    user_code: np.ndarray  # int32 index into ``users`` per row
    item_code: np.ndarray  # int32 index into ``items`` per row
    weight: np.ndarray | None  # float32; None when every row weighs 1 (``weight="count"``)
    ts: np.ndarray         # int64 ms


#: (rows, cols, weights, ts) of entries destined for one block, rows/cols global
#: (integer arrays, int32 where they fit); weights ``None`` means 1 per entry.
Pieces = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]


def factorize_partition(frame: pd.DataFrame, user_col: str, item_col: str, weight: str,
                        time_col: str | None, allow_empty_ids: bool = False) -> LocalCodes:
    """Factorise the IDs of one partition and validate its weights.

    Raises :class:`DataError` naming the column and an offending row for null IDs, for
    empty or whitespace-only string IDs (unless ``allow_empty_ids``) and for negative or
    non-finite weights.
    """
    for column in (user_col, item_col):
        _check_no_null_ids(frame[column], column)
    users, user_code = _factorize(frame[user_col])
    items, item_code = _factorize(frame[item_col])
    if not allow_empty_ids:
        _check_no_empty_ids(users, user_code, user_col, item_col, lambda row: frame[item_col].iloc[row])
        _check_no_empty_ids(items, item_code, item_col, user_col, lambda row: frame[user_col].iloc[row])
    weights, ts = _weights_and_times(frame, user_col, weight, time_col,
                                     lambda row: frame[user_col].iloc[row])
    return LocalCodes(users, items, user_code, item_code, weights, ts)


def factorize_table(table: pa.Table, user_col: str, item_col: str, weight: str,
                    time_col: str | None, allow_empty_ids: bool = False) -> LocalCodes:
    """:func:`factorize_partition` of an Arrow table, with the same result and errors.

    String ID columns read as Arrow dictionaries (Parquet stores them so) are factorised
    from their dictionaries: only the dictionary's few distinct values are sorted, and
    the rows' codes are renumbered by an integer gather, where hashing every row's string
    was a third of the ingest's CPU. Other columns go through pandas as
    ``dd.read_parquet`` would convert them.
    """
    ids = []
    for column in (user_col, item_col):
        values = table.column(column)
        factorized = _factorize_dictionary(values) if pa.types.is_dictionary(values.type) else None
        if factorized is None:
            series = values.to_pandas(types_mapper=_types_mapper)
            _check_no_null_ids(series, column)
            factorized = _factorize(series)
        ids.append(factorized)
    (users, user_code), (items, item_code) = ids
    if not allow_empty_ids:
        _check_no_empty_ids(users, user_code, user_col, item_col, lambda row: _value_at(table, item_col, row))
        _check_no_empty_ids(items, item_code, item_col, user_col, lambda row: _value_at(table, user_col, row))
    others = [c for c in (weight, time_col) if c not in (None, "count")]
    frame = table.select(others).to_pandas(types_mapper=_types_mapper)
    weights, ts = _weights_and_times(frame, user_col, weight, time_col,
                                     lambda row: _value_at(table, user_col, row))
    return LocalCodes(users, items, user_code, item_code, weights, ts)


def _value_at(table: pa.Table, column: str, row: int) -> object:
    """A row's value as the pandas path shows it (for error messages)."""
    return table.column(column).to_pandas(types_mapper=_types_mapper).iloc[row]


def _types_mapper(arrow_type: pa.DataType) -> object:
    # As dd.read_parquet converts: Arrow strings become pandas' string dtype.
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype("pyarrow")
    return None


def _check_no_null_ids(ids: pd.Series, column: str) -> None:
    nulls = ids.isna()
    if nulls.any():
        raise DataError(f"column {column!r} has {int(nulls.sum())} null IDs in the listens table: "
                        "drop or fill those rows (e.g. with a filter) before building interactions")


def _check_no_empty_ids(ids: IdArray, code: np.ndarray, column: str, other: str,
                        other_at: Callable[[int], object]) -> None:
    """Refuse IDs that are empty or only whitespace: each would become a real user or item.

    Checked on the distinct IDs (a partition's few thousand, not its rows); the rows are
    counted only when there is something to report.
    """
    if isinstance(ids, pa.Array):
        if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)) or len(ids) == 0:
            return
        blank = np.asarray(pc.equal(pc.utf8_trim_whitespace(ids), "").fill_null(False), dtype=bool)
    else:
        blank = np.array([isinstance(v, str) and not v.strip() for v in ids], dtype=bool)
    if not blank.any():
        return
    rows = np.isin(code, np.flatnonzero(blank))
    row = int(np.flatnonzero(rows)[0])
    example = ids[int(code[row])]
    example = example.as_py() if isinstance(example, pa.Scalar) else example
    raise DataError(f"column {column!r} has {int(rows.sum())} empty or whitespace-only IDs in the "
                    f"listens table (e.g. {example!r} in the row with {other}={other_at(row)!r}): expected "
                    "a non-blank ID per row. Drop or fill those rows (e.g. with a filter), or set "
                    "features.interactions.allow_empty_ids: true to count them as an ID")


def _factorize_dictionary(values: pa.ChunkedArray) -> tuple[IdArray, np.ndarray] | None:
    """Sorted distinct IDs and int32 codes of a dictionary-encoded string column.

    ``None`` when the column holds nulls or a dictionary repeats a value (Arrow allows
    it, Parquet writers do not): the pandas path then handles it, errors included.
    """
    value_type = values.type.value_type
    if values.null_count or not (pa.types.is_string(value_type) or pa.types.is_large_string(value_type)):
        return None
    if values.num_chunks == 0:
        return pa.array([], value_type), np.zeros(0, np.int32)
    dictionary, codes = _unified_codes(values.chunks)
    if dictionary.null_count:
        return None
    # Row filters (and unification) leave dictionary values that no row uses.
    used = np.flatnonzero(np.bincount(codes, minlength=len(dictionary)))
    distinct = dictionary.take(pa.array(used))
    order = np.asarray(pc.array_sort_indices(distinct))
    distinct = distinct.take(pa.array(order))
    if len(distinct) > 1 and not pc.all(pc.greater(distinct[1:], distinct[:-1])).as_py():
        return None
    position = np.empty(len(dictionary), dtype=np.int32)
    position[used[order]] = np.arange(len(used), dtype=np.int32)
    return distinct, position[codes]


def _unified_codes(chunks: list[pa.DictionaryArray]) -> tuple[pa.Array, np.ndarray]:
    """One dictionary for all chunks, and every row's code in it.

    Every file (and row group) has its own dictionary, shared by the chunks read from
    it. Encoding the distinct dictionaries end to end hashes each of their values once
    (about twice as fast as ``unify_dictionaries``); the rows' codes then follow by an
    integer gather.
    """
    first_chunk: dict[tuple[int, int], int] = {}  # (address of the values, length) -> chunk
    keys = [(c.dictionary.buffers()[-1].address, len(c.dictionary)) for c in chunks]
    for i, key in enumerate(keys):
        first_chunk.setdefault(key, i)
    dictionaries = [chunks[i].dictionary for i in first_chunk.values()]
    if sum(d.buffers()[-1].size for d in dictionaries) >= 2**31:  # beyond 32-bit string offsets
        dictionaries = [d.cast(pa.large_string()) for d in dictionaries]
    encoded = pc.dictionary_encode(pa.concat_arrays(dictionaries))
    unified_code = np.asarray(encoded.indices)  # of every value of every distinct dictionary
    offsets = dict(zip(first_chunk, np.cumsum([0] + [len(d) for d in dictionaries[:-1]])))
    codes = np.concatenate([unified_code[offsets[key] + np.asarray(c.indices)]
                            for key, c in zip(keys, chunks)])
    return encoded.dictionary, codes


def _weights_and_times(frame: pd.DataFrame, user_col: str, weight: str, time_col: str | None,
                       user_at: Callable[[int], object]) -> tuple[np.ndarray | None, np.ndarray]:
    """float32 weights (``None`` for counts) and int64 ms times of a partition's rows."""
    if weight == "count":
        # Every row counts 1: carrying a column of ones through the pipeline would only
        # cost memory, transfers and a gather per block.
        weights = None
    else:
        column = frame[weight]
        if not pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
            example = f" (e.g. {column.iloc[0]!r} for {user_col}={user_at(0)!r})" if len(column) else ""
            raise SchemaError(f"weight column {weight!r} is a {column.dtype} column{example}, expected "
                              "numeric: store it as numbers, or set features.interactions.weight to a "
                              "numeric column or 'count'")
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"column {weight!r} has {int(bad.sum())} negative, NaN or infinite "
                            f"values (e.g. {frame[weight].iloc[row]!r} for {user_col}="
                            f"{user_at(row)!r}): expected finite weights >= 0. "
                            "Clean the data or filter those rows out")
        weights = values.astype(np.float32)
    if time_col is None:
        ts = np.zeros(len(frame), dtype=np.int64)
    else:
        ts = frame[time_col].to_numpy(dtype="datetime64[ms]").astype(np.int64)
    return weights, ts


def _factorize(values: pd.Series) -> tuple[IdArray, np.ndarray]:
    # Sorted local IDs make remap_and_cut's binary searches cache-friendly: that saves
    # more than the sort of a partition's few thousand IDs costs.
    codes, uniques = pd.factorize(values, sort=True)
    return _id_array(uniques), codes.astype(np.int32)


def _id_array(uniques: pd.Index) -> IdArray:
    """Arrow for strings and integers (zero-copy from Arrow-backed pandas data), else objects."""
    try:
        arrow = pa.array(uniques)
    except (pa.ArrowException, TypeError, ValueError):  # e.g. mixed Python objects
        return np.asarray(uniques, dtype=object)
    if pa.types.is_dictionary(arrow.type):  # categorical IDs: their values are the IDs
        arrow = arrow.dictionary_decode()
    # Only types whose Arrow order is Python's order: UTF-8 bytes sort like code points.
    if pa.types.is_string(arrow.type) or pa.types.is_large_string(arrow.type) \
            or pa.types.is_integer(arrow.type):
        return arrow
    return np.asarray(uniques, dtype=object)


def _as_objects(ids: IdArray) -> np.ndarray:
    if isinstance(ids, pa.Array):
        return np.asarray(ids.to_numpy(zero_copy_only=False), dtype=object)
    return np.asarray(ids, dtype=object)


def merge_uniques(*arrays: IdArray, sort: bool = True) -> IdArray:
    """Union of unique ID arrays, sorted unless ``sort=False`` (a step of a tree reduction).

    Only the last step of a tree needs to sort: sorting is the dearer half for strings.
    """
    if all(isinstance(a, pa.Array) for a in arrays) and len({a.type for a in arrays}) == 1:
        union = pc.unique(pa.chunked_array(arrays))
        return union.take(pc.array_sort_indices(union)) if sort else union
    union = pd.Index(np.concatenate([_as_objects(a) for a in arrays])).unique()
    return np.asarray(union.sort_values() if sort else union, dtype=object)


def ids_to_index(ids: IdArray) -> pd.Index:
    """The merged IDs as the pandas Index an :class:`InteractionMatrix` holds."""
    return pd.Index(_as_objects(ids))


def remap_and_cut(local: LocalCodes, user_ids: IdArray, item_ids: IdArray,
                  user_bounds: np.ndarray) -> list[Pieces]:
    """Map local codes to global indices and cut the entries by user block.

    ``user_ids`` and ``item_ids`` are the sorted global IDs from :func:`merge_uniques`.
    Returns the pieces for every user block, in block order.
    """
    user_map = _global_positions(local.users, user_ids)
    item_map = _global_positions(local.items, item_ids)
    rows = user_map[local.user_code]
    cols = item_map[local.item_code]
    n_blocks = len(user_bounds) - 1
    if n_blocks == 1:
        return [(rows, cols, local.weight, local.ts)]
    # The block of each local user, then of each row: a search among users, not rows.
    user_block = np.searchsorted(user_bounds[1:-1], user_map, side="right")
    # As int16, numpy's stable argsort (in _cut) is a radix sort, i.e. linear time.
    user_block = user_block.astype(np.int16 if n_blocks <= np.iinfo(np.int16).max else np.int32)
    return _cut(rows, cols, local.weight, local.ts, user_block[local.user_code], n_blocks)


def _global_positions(local_ids: IdArray, sorted_ids: IdArray) -> np.ndarray:
    """Position of every local ID in the sorted global IDs (all are present), int32 if it fits."""
    dtype = np.int32 if len(sorted_ids) <= _INT32_MAX else np.int64
    if isinstance(local_ids, pa.Array) and isinstance(sorted_ids, pa.Array) \
            and local_ids.type == sorted_ids.type:
        # Binary search in Arrow: no Python string is created and, unlike a hash lookup
        # (index_in, which hashes all the global IDs again on every call), nothing is
        # built per call. search_sorted is recent (apache/arrow#49679).
        if hasattr(pc, "search_sorted"):
            positions = pc.search_sorted(sorted_ids, local_ids)
        else:  # older pyarrow
            positions = pc.index_in(local_ids, value_set=sorted_ids)
        return positions.to_numpy().astype(dtype)
    positions = pd.Index(_as_objects(sorted_ids)).get_indexer(_as_objects(local_ids))
    return positions.astype(dtype)


def _cut(rows: np.ndarray, cols: np.ndarray, weight: np.ndarray | None, ts: np.ndarray,
         block: np.ndarray, n_blocks: int) -> list[Pieces]:
    """Split entries by their block number ``block``, keeping their order within a block.

    Only the split matters: :func:`assemble_block` sorts each block's entries stably, so
    the order inside a piece needs no more than to be the original one.
    """
    order = np.argsort(block, kind="stable")
    edges = np.zeros(n_blocks + 1, dtype=np.int64)
    np.cumsum(np.bincount(block, minlength=n_blocks), out=edges[1:])
    rows, cols, ts = rows[order], cols[order], ts[order]
    weight = weight[order] if weight is not None else None
    return [(rows[a:b], cols[a:b], weight[a:b] if weight is not None else None, ts[a:b])
            for a, b in zip(edges[:-1], edges[1:])]


def assemble_block(pieces: list[Pieces], row_start: int, row_stop: int, n_cols: int) -> Block:
    """Sum duplicate (row, col) entries of all pieces into one CSR block, keeping the latest time.

    Duplicates are summed in float64 in the order of ``pieces`` (then of each piece), and
    the sum is stored as float32.
    """
    n_rows = row_stop - row_start
    if pieces:
        key = np.concatenate([p[0] for p in pieces]).astype(np.int64, copy=False)
        key -= row_start
        key *= n_cols
        key += np.concatenate([p[1] for p in pieces])
        if all(p[2] is None for p in pieces):
            weight = None
        else:
            weight = np.concatenate([p[2] if p[2] is not None else np.ones(len(p[0]), np.float32)
                                     for p in pieces])
        ts = np.concatenate([p[3] for p in pieces])
    else:
        key = ts = np.zeros(0, dtype=np.int64)
        weight = np.zeros(0, dtype=np.float32)
    order, key = _stable_sort(key, n_rows * n_cols)
    n = len(key)
    first = np.empty(n, dtype=bool)  # first entry of each distinct (row, col)
    first[:1] = True
    np.not_equal(key[1:], key[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    del first
    if len(starts) == n:
        # No duplicates: a float64 sum of one float32 is that float32.
        summed = weight[order] if weight is not None else np.ones(n, np.float32)
        latest = ts[order]
    else:
        if weight is None:  # counts: a float64 sum of k ones is exactly k
            summed = np.diff(starts, append=n).astype(np.float32)
        else:
            summed = np.add.reduceat(weight[order].astype(np.float64), starts).astype(np.float32)
        latest = np.maximum.reduceat(ts[order], starts)
        key = key[starts]
    del order, ts, weight
    unique_rows = key // n_cols
    indices = (key - unique_rows * n_cols).astype(np.int32)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(unique_rows, minlength=n_rows), out=indptr[1:])
    csr = sp.csr_matrix((summed, indices, indptr), shape=(n_rows, n_cols))
    return Block(csr, latest, row_start)


def _stable_sort(key: np.ndarray, key_range: int) -> tuple[np.ndarray, np.ndarray]:
    """``(order, key[order])`` with ``order = np.argsort(key, kind="stable")``; may reuse ``key``.

    With each entry's position packed into the low bits the keys are all distinct, so
    any sort gives the stable order; numpy's default sort of int64 is vectorised and
    in place, several times faster than a stable argsort and without its index array.
    """
    n = len(key)
    position_bits = max(int(n - 1).bit_length(), 1)
    if n == 0 or int(max(key_range - 1, 0)).bit_length() + position_bits > 63:
        order = np.argsort(key, kind="stable")  # too wide to pack (not seen in practice)
        return order, key[order]
    packed = key
    packed <<= position_bits
    packed |= np.arange(n, dtype=np.int64)
    packed.sort()
    order = packed & ((1 << position_bits) - 1)
    packed >>= position_bits
    return order, packed


def transpose_block(block: Block, bounds: np.ndarray) -> list[Block]:
    """The transpose of a block, cut into row-blocks at ``bounds`` (the other side's blocks).

    Piece ``b`` holds rows ``bounds[b]:bounds[b+1]`` of the transpose, with one column per
    row of ``block`` (global column = ``block.row_offset`` + local column), ready for
    :func:`stack_transposed`.
    """
    csr = block.csr
    # SciPy's CSC -> CSR conversion is a linear-time transpose that leaves every row's
    # columns sorted; the entries' positions ride along to carry weights and times.
    positions = sp.csr_matrix((np.arange(csr.nnz, dtype=np.int64), csr.indices, csr.indptr),
                              shape=csr.shape).T.tocsr()
    pieces = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        start, stop = positions.indptr[lo], positions.indptr[hi]
        taken = positions.data[start:stop]
        piece = sp.csr_matrix((csr.data[taken], positions.indices[start:stop],
                               positions.indptr[lo:hi + 1] - start), shape=(hi - lo, csr.shape[0]))
        pieces.append(Block(piece, block.last_ts[taken], int(lo)))
    return pieces


def stack_transposed(pieces: list[Block], row_start: int, row_stop: int, n_cols: int) -> Block:
    """Join the pieces of one transposed block side by side, one per source block, in order.

    The result equals :func:`assemble_block` on the same entries: no (row, col) occurs
    twice in a transpose, so nothing is summed, and every row's columns come out sorted
    because the pieces cover increasing column ranges.
    """
    n_rows = row_stop - row_start
    if not pieces:
        return Block(sp.csr_matrix((n_rows, n_cols), dtype=np.float32), np.zeros(0, np.int64), row_start)
    widths = [p.csr.shape[1] for p in pieces]
    if sum(widths) != n_cols or any(p.csr.shape[0] != n_rows for p in pieces):
        raise ValueError(f"transposed pieces of shapes {[p.csr.shape for p in pieces]} do not "
                         f"make a ({n_rows}, {n_cols}) block")
    lengths = [np.diff(p.csr.indptr) for p in pieces]
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.sum(lengths, axis=0), out=indptr[1:])
    data = np.empty(indptr[-1], dtype=pieces[0].csr.dtype)
    indices = np.empty(indptr[-1], dtype=np.int32)
    last_ts = np.empty(indptr[-1], dtype=np.int64)
    next_free = indptr[:-1].copy()  # where the next piece's part of each row goes
    column_offset = 0
    for piece, length, width in zip(pieces, lengths, widths):
        # Entry j of the piece, in row r, lands at next_free[r] + (j - piece's indptr[r]).
        target = np.repeat(next_free - piece.csr.indptr[:-1], length) + np.arange(piece.csr.nnz)
        data[target] = piece.csr.data
        indices[target] = piece.csr.indices + column_offset
        last_ts[target] = piece.last_ts
        next_free += length
        column_offset += width
    csr = sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_cols))
    return Block(csr, last_ts, row_start)


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


def drop_entries(block: Block, *removed: Block) -> Block:
    """``block`` without the entries (row, column) stored in any of the ``removed`` blocks.

    The removed blocks cover the same rows (the test halves of :func:`leave_k_out` on this
    block, say), so what is left is the training part shared by several splits.
    """
    csr = block.csr
    n_cols = np.int64(csr.shape[1])

    def keys(matrix: sp.csr_matrix) -> np.ndarray:
        rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
        return rows * n_cols + matrix.indices.astype(np.int64)

    gone = [keys(other.csr) for other in removed if other.csr.nnz]
    if not gone:
        return block
    return _subset(block, ~np.isin(keys(csr), np.concatenate(gone)))


def _subset(block: Block, mask: np.ndarray) -> Block:
    csr = block.csr
    row_of_entry = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    counts = np.bincount(row_of_entry[mask], minlength=csr.shape[0])
    indptr = np.zeros(csr.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    kept = sp.csr_matrix((csr.data[mask], csr.indices[mask], indptr), shape=csr.shape)
    return Block(kept, block.last_ts[mask], block.row_offset)

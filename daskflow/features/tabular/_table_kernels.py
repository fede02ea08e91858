"""Per-partition code of the entity table: pure pandas and NumPy, no Dask import.

The Dask layer (``_table``) maps these over the partitions of the source table; each
takes one partition and returns a new frame, never mutating its argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["LABEL", "PART", "TRAIN", "TEST", "entity_rows", "hash_fraction", "in_values", "label_codes"]

#: Columns the entity table adds: the 0/1 label (-1: no label) and the side of the split.
LABEL = "__label__"
PART = "__part__"
#: Values of ``PART``: a training row, a test row; other rows are scored only.
TRAIN, TEST, NEITHER = 1, 2, 0


def hash_fraction(ids: pd.Series, seed: int) -> np.ndarray:
    """A stable number in [0, 1) per ID: SipHash under a key made from ``seed``.

    The same on every process, platform and partitioning (Python's ``hash`` is salted per
    process), so a hash split never moves a row between runs.
    """
    key = f"dfsplit-{seed & 0xFFFFFFFF:08x}"  # hash keys have 16 characters
    series = pd.Series(np.asarray(ids.astype(str), dtype=object))
    hashes = pd.util.hash_pandas_object(series, index=False, hash_key=key).to_numpy()
    return (hashes >> np.uint64(11)).astype(np.float64) / float(2**53)


def in_values(values: pd.Series, wanted: Sequence[Any]) -> np.ndarray:
    """Whether each value is one of ``wanted``, comparing as written in YAML (``1`` matches ``"1"``)."""
    text = values.astype(str).where(values.notna(), None)
    return (values.isin(list(wanted)) | text.isin([str(v) for v in wanted])).to_numpy(dtype=bool)


def label_codes(values: pd.Series, positive: Any) -> np.ndarray:
    """1 for the positive value, 0 for any other value, -1 for a missing label (int8)."""
    codes = np.where(in_values(values, [positive]), 1, 0).astype(np.int8)
    codes[values.isna().to_numpy()] = -1
    return codes


def entity_rows(frame: pd.DataFrame, *, id_column: str, label_column: str, positive: Any,
                features: Sequence[str], split_kind: str, split_column: str,
                train_values: Sequence[Any] = (), test_values: Sequence[Any] = (),
                test_size: float = 0.0, cutoff: Any = None, seed: int = 0) -> pd.DataFrame:
    """One partition of the entity table: the id, the feature columns, ``LABEL`` and ``PART``.

    ``split_kind`` is ``"column"`` (rows whose ``split_column`` holds a train or a test
    value), ``"hash"`` (a stable hash of ``split_column`` below ``test_size``: test) or
    ``"time"`` (``split_column`` before ``cutoff``: train; at or after it: test).
    """
    labels = label_codes(frame[label_column], positive)
    if split_kind == "column":
        part = np.where(in_values(frame[split_column], train_values), TRAIN,
                        np.where(in_values(frame[split_column], test_values), TEST, NEITHER))
    elif split_kind == "hash":
        part = np.where(hash_fraction(frame[split_column], seed) < test_size, TEST, TRAIN)
    elif split_kind == "time":
        times = pd.to_datetime(frame[split_column], utc=True)
        part = np.where(times.isna(), NEITHER, np.where(times < cutoff, TRAIN, TEST))
    else:
        raise ValueError(f"unknown split kind {split_kind!r}")
    part = np.where(labels < 0, NEITHER, part)  # unlabelled rows are scored, never fitted or tested
    out = frame[[id_column, *features]].copy()
    out[LABEL] = labels
    out[PART] = np.asarray(part, dtype=np.int8)
    return out

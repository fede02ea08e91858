"""Top-N recommendations for every user, block by block, with the original IDs."""

from __future__ import annotations

from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd

from daskflow._dask import named
from daskflow.features import InteractionMatrix

__all__ = ["recommend_all"]


def recommend_all(model: Any, matrix: InteractionMatrix, *, n: int = 10,
                  filter_seen: bool = True) -> dd.DataFrame:
    """A lazy table of the top-``n`` items of every user: ``user_id, rank, item_id, score``.

    One partition per user block; the model is shipped to the workers once and only each
    block's top-``n`` ever exists, never a full users x items score matrix.
    """
    model_task = dask.delayed(model, pure=True)
    # A model with cold items (ImplicitALS item_content) knows more items than the matrix.
    known = getattr(model, "item_ids_", None)
    ids = known if known is not None and len(known) > matrix.n_items else matrix.item_ids
    item_ids = dask.delayed(np.asarray(ids, dtype=object), pure=True)
    recommend_block = named(_block_frame, "recommend-block")
    parts = [recommend_block(model_task, block, np.asarray(matrix.user_ids[lo:hi], dtype=object), item_ids,
                             n, filter_seen)
             for block, lo, hi in zip(matrix.user_blocks, matrix.user_bounds[:-1], matrix.user_bounds[1:])]
    return dd.from_delayed(parts, meta=_META, verify_meta=False, prefix="recommend-frame")


_META = pd.DataFrame({"user_id": pd.Series([], dtype="string"), "rank": pd.Series([], dtype="int32"),
                      "item_id": pd.Series([], dtype="string"), "score": pd.Series([], dtype="float64")})


def _block_frame(model: Any, block: Any, user_ids: np.ndarray, item_ids: np.ndarray, n: int,
                 filter_seen: bool) -> pd.DataFrame:
    rows = np.arange(block.row_offset, block.row_offset + block.csr.shape[0])
    items, scores = model.recommend_block(block.csr, n, filter_seen=filter_seen, user_index=rows)
    width = items.shape[1]
    valid = items >= 0
    users = np.repeat(np.arange(items.shape[0]), width).reshape(items.shape)
    ranks = np.broadcast_to(np.arange(1, width + 1, dtype=np.int32), items.shape)
    return pd.DataFrame({
        "user_id": pd.array(user_ids[users[valid]], dtype="string"),
        "rank": ranks[valid],
        "item_id": pd.array(item_ids[items[valid]], dtype="string"),
        "score": scores[valid].astype(np.float64),
    })

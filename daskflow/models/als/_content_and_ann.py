"""What ImplicitALS does with item content and ANN indexes (kept out of ``_implicit_als`` for size).

Cold items: a :class:`~daskflow.models.ContentToFactors` trained on the warm items' factors
predicts the factors of the items of the content table that the interaction matrix lacks;
they are appended after the warm items, so every path that scores ``item_factors_``
(recommend, recommend_all, similar_items, the ANN indexes) covers them.

Voyager (Spotify's HNSW library) searches by distance, and inner product is not one: the
recommend index stores each item as ``[y, sqrt(R² - ‖y‖²)]`` and queries ``[u·R/‖u‖, 0]``, so
the Euclidean nearest items are exactly the largest ``u·y`` (Bachrach et al., RecSys 2014),
in buckets of similar norm (:func:`build_inner_product_index`).
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from daskflow._errors import DataError
from daskflow.models._top_n_kernels import rows_contain

__all__ = ["attach_content", "add_items", "item_positions", "build_inner_product_index", "voyager_top_n",
           "similar_voyager", "VoyagerBytes", "saved_arrays", "load_arrays"]

log = logging.getLogger("daskflow")

#: HNSW graph degree and construction depth of the indexes (benchmarks/ann.py measures them).
VOYAGER_M = 16
VOYAGER_EF_CONSTRUCTION = 200
#: Radius headroom of the inner-product lift, so items added later (add_items) with somewhat
#: longer factors still lift exactly.
_LIFT_HEADROOM = 1.25


def _voyager() -> Any:
    try:
        import voyager
    except ImportError as exc:
        raise DataError("the Voyager index needs the voyager package: pip install 'daskflow[ann]'") from exc
    return voyager


# -- cold items -------------------------------------------------------------------------


def attach_content(model: Any, item_content: Any, client: Any) -> None:
    """Train the content model on the warm items and append the cold items' factors."""
    warm_ids = model.item_ids_ if model.item_ids_ is not None else pd.RangeIndex(model.item_factors_.shape[0])
    encoder = item_content.fit_encoder(client=client)
    frame = item_content.frame(client=client)
    ids = pd.Index(frame[item_content.id_col])
    if not isinstance(warm_ids, pd.RangeIndex) and ids.dtype != warm_ids.dtype:
        ids = ids.astype(warm_ids.dtype)
    position = warm_ids.get_indexer(ids)
    warm_rows = np.flatnonzero(position >= 0)
    if len(warm_rows) == 0:
        raise DataError(f"no warm items with content: none of the {len(ids)} IDs of the item table's "
                        f"column {item_content.id_col!r} (e.g. {_examples(ids)}) is an item of the "
                        f"interaction matrix (e.g. {_examples(warm_ids)}): the content id column must hold "
                        "the same IDs as the interactions' item column")
    X = encoder.transform(frame)
    regressor = item_content.make_regressor().fit(X[warm_rows], model.item_factors_[position[warm_rows]])
    cold_rows = np.flatnonzero(position < 0)
    cold = regressor.predict(X[cold_rows]).astype(model.item_factors_.dtype)
    model.item_factors_ = np.vstack([model.item_factors_, cold])
    model.item_ids_ = warm_ids.append(ids[cold_rows]) if len(cold_rows) else warm_ids
    if isinstance(model.item_ids_, pd.RangeIndex):
        model.item_ids_ = pd.Index(np.asarray(model.item_ids_))
    model.content_encoder_, model.content_regressor_ = encoder, regressor
    model.content_id_col_ = item_content.id_col
    log.info("content model (%s): trained on %d warm items with content, %d cold items added",
             regressor.model, len(warm_rows), len(cold_rows))


def _examples(ids: Any) -> str:
    return ", ".join(repr(str(i)) for i in ids[:3])


def add_items(model: Any, table: pd.DataFrame) -> np.ndarray:
    """Append items by their content (``ImplicitALS.add_items``); returns their indices."""
    if getattr(model, "content_regressor_", None) is None:
        raise DataError("add_items needs a content model: fit with item_content=ItemContent(...) first")
    id_col = model.content_id_col_
    if id_col not in table.columns:
        raise DataError(f"the new items have no ID column {id_col!r} (found "
                        f"{', '.join(map(str, table.columns))})")
    ids = pd.Index(table[id_col])
    if not ids.is_unique:
        raise DataError(f"the new items repeat IDs in column {id_col!r}: give each item one row")
    if ids.dtype != model.item_ids_.dtype:
        ids = ids.astype(model.item_ids_.dtype)
    known = ids[model.item_ids_.get_indexer(ids) >= 0]
    if len(known):
        raise DataError(f"item(s) {', '.join(map(repr, map(str, known[:3])))} are already in the model: "
                        "add_items takes new items only")
    factors = model.content_regressor_.predict(model.content_encoder_.transform(table.reset_index(drop=True)))
    factors = factors.astype(model.item_factors_.dtype)
    first = model.item_factors_.shape[0]
    model.item_factors_ = np.vstack([model.item_factors_, factors])
    model.item_ids_ = model.item_ids_.append(ids)
    for cache in ("_annoy", "_annoy_trees", "_voyager_cosine"):  # rebuilt on next use
        model.__dict__.pop(cache, None)
    if getattr(model, "_voyager", None) is not None:
        model._voyager.add_items(factors, ids=np.arange(first, first + len(factors)), num_threads=1)
    return np.arange(first, first + len(factors))


def item_positions(model: Any, items: Any) -> np.ndarray:
    """Rows of ``item_factors_`` for item indices (integers) or original item IDs (strings)."""
    items = np.atleast_1d(np.asarray(items))
    if items.dtype.kind in "iu" or items.size == 0:
        return items.astype(np.int64)
    if model.item_ids_ is None:
        raise DataError("items must be indices: this model knows no original item IDs")
    index = model.item_ids_.get_indexer(items)
    if (index < 0).any():
        raise DataError(f"unknown item ID(s) {[str(i) for i in items[index < 0][:5]]}: not in the model "
                        "(add new items with add_items)")
    return index


# -- Voyager ------------------------------------------------------------------------------


def _lift_items(factors: np.ndarray, radius: float) -> np.ndarray:
    squared = np.einsum("ij,ij->i", factors, factors, dtype=np.float64)
    extra = np.sqrt(np.maximum(radius * radius - squared, 0.0))
    return np.hstack([factors, extra[:, None]]).astype(np.float32)


def _bucket_bounds(n_items: int) -> np.ndarray:
    """Norm-ranked bucket boundaries: sizes doubling, the smallest holding the longest factors."""
    n_buckets = int(np.clip(np.floor(np.log2(max(n_items, 1) / 1000)), 1, 10))
    weights = 2.0 ** np.arange(n_buckets)
    return np.unique(np.r_[0, np.round(np.cumsum(weights) / weights.sum() * n_items).astype(np.int64)])


def build_inner_product_index(item_factors: np.ndarray, seed: int) -> NormRangedIndex:
    """Voyager indexes over norm-ranked buckets of items, searched for the largest ``u·y``.

    One index of all items lifted to ``[y, sqrt(R² - ‖y‖²)]`` ranks them exactly, but with
    norms falling off like popularity most lifted items crowd at the pole and HNSW finds
    few of the long ones (recall@10 0.16-0.39, benchmarks/ann.py). Within a bucket of
    similar norms the lift barely bends the space (norm-ranging, Yan et al., NeurIPS 2018),
    and buckets are visited in decreasing norm with the bound of the exact search: a user
    stops once its n-th score beats ``‖u‖·R`` of the next bucket.
    """
    voyager = _voyager()
    norms = np.linalg.norm(item_factors, axis=1)
    order = np.argsort(-norms, kind="stable")
    buckets = []
    bounds = _bucket_bounds(len(order))
    for b, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        ids = order[lo:hi]
        # The longest bucket leaves headroom, so items added later still lift exactly.
        radius = float(norms[ids].max(initial=0.0)) * (_LIFT_HEADROOM if b == 0 else 1.0) or 1e-12
        index = voyager.Index(voyager.Space.Euclidean, num_dimensions=item_factors.shape[1] + 1, M=VOYAGER_M,
                              ef_construction=VOYAGER_EF_CONSTRUCTION, random_seed=seed + 1 + b,
                              max_elements=max(1, len(ids)))
        index.add_items(_lift_items(item_factors[ids], radius), ids=ids, num_threads=-1)
        buckets.append((index, radius))
    return NormRangedIndex(buckets)


class NormRangedIndex:
    """Voyager indexes of items bucketed by factor norm, each with its lift radius."""

    def __init__(self, buckets: list[tuple[Any, float]]) -> None:
        self.buckets = buckets

    def as_bytes(self) -> bytes:
        parts = [index.as_bytes() for index, _ in self.buckets]
        header = {"radii": [radius for _, radius in self.buckets], "sizes": [len(p) for p in parts]}
        return json.dumps(header).encode() + b"\n" + b"".join(parts)

    def add_items(self, vectors: np.ndarray, ids: np.ndarray, num_threads: int = 1) -> None:
        """Each item into the shortest bucket whose radius covers its norm (else the longest)."""
        radii = np.array([radius for _, radius in self.buckets])
        norms = np.linalg.norm(vectors, axis=1)
        # radii decrease along the buckets: the last one with radius >= norm.
        target = np.maximum(np.searchsorted(-radii, -norms, side="right") - 1, 0)
        for b in np.unique(target):
            index, radius = self.buckets[b]
            rows = np.flatnonzero(target == b)
            if index.num_elements + len(rows) > index.max_elements:
                index.resize(index.num_elements + len(rows))
            index.add_items(_lift_items(vectors[rows], radius), ids=ids[rows], num_threads=num_threads)


@dataclass(frozen=True)
class VoyagerBytes:
    """A serialised :class:`NormRangedIndex` (what pickling and ``save`` carry)."""

    data: bytes

    def load(self) -> NormRangedIndex:
        header, _, body = self.data.partition(b"\n")
        meta = json.loads(header)
        buckets, offset = [], 0
        for radius, size in zip(meta["radii"], meta["sizes"]):
            buckets.append((_voyager().Index.load(io.BytesIO(body[offset:offset + size])), radius))
            offset += size
        return NormRangedIndex(buckets)


def voyager_top_n(indexed: NormRangedIndex, users: np.ndarray, item_factors: np.ndarray, n: int,
                  exclude: sp.csr_matrix | None, ef: int) -> tuple[np.ndarray, np.ndarray]:
    """Approximate top-``n`` by ``u·y`` through the index, seen items filtered, exact scores."""
    n_users, n_items = users.shape[0], item_factors.shape[0]
    n = max(0, min(n, n_items))
    items = np.full((n_users, n), -1, dtype=np.int64)
    values = np.full((n_users, n), -np.inf, dtype=np.result_type(users.dtype, item_factors.dtype))
    if n == 0 or n_users == 0:
        return items, values
    most_seen = int(np.diff(exclude.indptr).max(initial=0)) if exclude is not None else 0
    user_norms = np.linalg.norm(users, axis=1)
    for index, radius in indexed.buckets:
        # The exact search's bound: no item of this bucket (or a later one) can beat the n-th best.
        active = np.flatnonzero(user_norms * radius * (1 + 1e-5) > values[:, -1])
        if len(active) == 0 or index.num_elements == 0:
            break
        k = min(index.num_elements, n + most_seen)
        lifted = users[active] * (radius / np.maximum(user_norms[active], 1e-30))[:, None]
        queries = np.hstack([lifted, np.zeros((len(active), 1))]).astype(np.float32)
        found, _ = index.query(queries, k=k, num_threads=1, query_ef=max(ef, k))
        candidates = found.astype(np.int64)
        scores = np.einsum("uf,ukf->uk", users[active], item_factors[candidates]).astype(values.dtype)
        if exclude is not None:
            scores[rows_contain(exclude[active], candidates)] = -np.inf
        merged_items = np.hstack([items[active], candidates])
        merged_scores = np.hstack([values[active], scores])
        best = np.argsort(-merged_scores, axis=1, kind="stable")[:, :n]
        values[active] = np.take_along_axis(merged_scores, best, axis=1)
        found_items = np.take_along_axis(merged_items, best, axis=1)
        items[active] = np.where(np.isfinite(values[active]), found_items, -1)
    return items, values


def similar_voyager(model: Any, query: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``similar_items(method="voyager")``: a cosine index over the items, built on first use."""
    voyager = _voyager()
    factors = model.item_factors_
    normed = (factors / np.maximum(np.linalg.norm(factors, axis=1), 1e-12)[:, None]).astype(np.float32)
    index = model.__dict__.get("_voyager_cosine")
    if index is None:
        index = voyager.Index(voyager.Space.Cosine, num_dimensions=factors.shape[1], M=VOYAGER_M,
                              ef_construction=VOYAGER_EF_CONSTRUCTION, random_seed=model.random_state + 1,
                              max_elements=max(1, len(factors)))
        index.add_items(normed, ids=np.arange(len(factors)), num_threads=-1)
        model._voyager_cosine = index
    items = np.full((len(query), n), -1, dtype=np.int64)
    scores = np.full((len(query), n), -np.inf)
    if len(query) == 0 or n == 0:
        return items, scores
    k = min(len(factors), n + 1)
    found, distances = index.query(normed[query], k=k, num_threads=1, query_ef=max(model.index_ef, k))
    found = found.astype(np.int64)
    for row, item in enumerate(query):
        keep = found[row] != item
        picked, picked_distances = found[row][keep][:n], distances[row][keep][:n]
        items[row, : len(picked)] = picked
        scores[row, : len(picked)] = 1.0 - picked_distances  # cosine distance -> cosine
    return items, scores


# -- persistence ----------------------------------------------------------------------------


def saved_arrays(model: Any) -> dict[str, np.ndarray]:
    """What ``ImplicitALS.save`` adds for cold items, the content model and the recommend index."""
    arrays: dict[str, np.ndarray] = {"n_warm_items": np.array([getattr(model, "n_warm_items_",
                                                                       model.item_factors_.shape[0])])}
    if model.item_ids_ is not None and getattr(model, "user_ids_", None) is None:
        arrays["content_item_ids"] = np.asarray(model.item_ids_)
    if getattr(model, "content_regressor_", None) is not None:
        from daskflow.models.content._content_models import encoder_to_json

        arrays["content_encoder"] = np.array(encoder_to_json(model.content_encoder_))
        arrays["content_id_col"] = np.array(model.content_id_col_)
        arrays.update({f"content_regressor_{k}": v for k, v in model.content_regressor_.to_arrays().items()})
    if getattr(model, "_voyager", None) is not None:
        arrays["recommend_index"] = np.frombuffer(model._voyager.as_bytes(), dtype=np.uint8)
    return arrays


def load_arrays(model: Any, data: Any) -> None:
    """Restore what :func:`saved_arrays` wrote (older files have none of it)."""
    files = set(data.files)
    model.n_warm_items_ = int(data["n_warm_items"][0]) if "n_warm_items" in files else \
        model.item_factors_.shape[0]
    if "content_item_ids" in files:
        model.item_ids_ = pd.Index(data["content_item_ids"])
    model._voyager = None
    if "content_encoder" in files:
        from daskflow.models.content._content_models import ContentToFactors, encoder_from_json

        model.content_encoder_ = encoder_from_json(str(data["content_encoder"]))
        model.content_id_col_ = str(data["content_id_col"])
        prefix = "content_regressor_"
        model.content_regressor_ = ContentToFactors.from_arrays(
            {name[len(prefix):]: data[name] for name in files if name.startswith(prefix)})
    if "recommend_index" in files:
        model._voyager = VoyagerBytes(data["recommend_index"].tobytes()).load()

"""Per-partition math of the content model (pandas, NumPy and SciPy; no Dask import).

A content encoder is fitted in one pass over an item table's partitions: every partition
gives the statistics of its columns (:func:`column_stats`), the statistics are merged
pairwise (:func:`merge_stats`), and :func:`encoder_state` turns the merged statistics into
the JSON-able state that :func:`encode` applies to any partition. Encoded rows are sparse:
one block of columns per content column, each block scaled so that a row's block has norm
about 1 (one-hot 1, multi-valued 1/sqrt(count), numerics standardised, vectors standardised
and divided by sqrt(dim)), so no column outweighs the others by its width or units.

The regressors from content to factors (ridge and a one-hidden-layer MLP) are here too.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from daskflow._errors import DataError, SchemaError

__all__ = ["column_kind", "column_stats", "merge_stats", "encoder_state", "encode", "encoded_width",
           "ridge_fit", "mlp_fit", "mlp_predict", "KINDS"]

#: What a content column can be.
KINDS = ("categorical", "multi", "numeric", "vector")


def _first_value(values: pd.Series) -> Any:
    present = values.dropna()
    return present.iloc[0] if len(present) else None


def column_kind(values: pd.Series, separator: str | None) -> str | None:
    """The kind of one content column (``None`` when it holds only nulls here).

    Raises
    ------
    SchemaError
        The column is of a type no kind covers (dates, durations, bytes, structs...).
    """
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype) or (pd.api.types.is_numeric_dtype(dtype)
                                             and not pd.api.types.is_complex_dtype(dtype)):
        return "numeric"
    if pd.api.types.is_string_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        first = _first_value(values)
        if first is None:
            return None
        if isinstance(first, str):
            return "multi" if separator is not None else "categorical"
        if isinstance(first, (list, tuple, np.ndarray)):
            return "vector"
    if dtype.kind == "O" and _first_value(values) is None:
        return None
    raise SchemaError(f"content column {values.name!r} has unsupported type {dtype} (e.g. "
                      f"{_first_value(values)!r}): content columns must hold strings (categorical, "
                      "or multi-valued with a separator), numbers, or fixed-length lists of numbers; "
                      "leave it out of the content columns")


def column_stats(frame: pd.DataFrame, columns: list[str], separators: dict[str, str],
                 id_col: str) -> dict[str, Any]:
    """Statistics of one partition's content columns, for :func:`merge_stats`."""
    stats: dict[str, Any] = {"n_rows": len(frame), "ids": frame[id_col].to_numpy(dtype=object)}
    for name in columns:
        values = frame[name]
        kind = column_kind(values, separators.get(name))
        entry: dict[str, Any] = {"kind": kind}
        if kind == "categorical":
            entry["counts"] = Counter(values.dropna().astype(str).tolist())
        elif kind == "multi":
            tokens = values.dropna().astype(str).str.split(separators[name], regex=False)
            entry["counts"] = Counter(t for row in tokens for t in row if t)
        elif kind == "numeric":
            numbers = values.astype("float64").to_numpy(na_value=np.nan)
            finite = numbers[np.isfinite(numbers)]
            entry.update(n=len(finite), sum=float(finite.sum()), sumsq=float((finite ** 2).sum()))
        elif kind == "vector":
            entry.update(_vector_stats(values, frame[id_col]))
        stats[name] = entry
    return stats


def _vector_stats(values: pd.Series, ids: pd.Series) -> dict[str, Any]:
    present = values.notna().to_numpy()
    rows = [np.asarray(v, dtype=np.float64) for v in values[present]]
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    if len(rows) == 0:
        return {"dim": None, "n": 0, "sum": None, "sumsq": None, "example": None}
    dim = int(lengths[0])
    odd = np.flatnonzero(lengths != dim)
    if len(odd):
        example = ids[present].iloc[odd[0]]
        raise DataError(f"content column {values.name!r} holds vectors of differing lengths ({dim} and "
                        f"{int(lengths[odd[0]])}, e.g. item {example!r}): a vector column needs the same "
                        "length in every row; fix the item table or leave the column out")
    matrix = np.vstack(rows)
    return {"dim": dim, "n": len(rows), "sum": matrix.sum(axis=0), "sumsq": (matrix ** 2).sum(axis=0),
            "example": ids[present].iloc[0]}


def merge_stats(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    """Statistics of two partitions together (associative, so any tree of merges agrees)."""
    out: dict[str, Any] = {"n_rows": left["n_rows"] + right["n_rows"],
                           "ids": np.concatenate([left["ids"], right["ids"]])}
    for name in left:
        if name in ("n_rows", "ids"):
            continue
        a, b = left[name], right[name]
        if a["kind"] is None or b["kind"] is None:
            out[name] = b if a["kind"] is None else a
            continue
        if a["kind"] != b["kind"]:
            raise SchemaError(f"content column {name!r} is {a['kind']} in some partitions and {b['kind']} "
                              "in others: give it one type in every file of the item table")
        if a["kind"] in ("categorical", "multi"):
            out[name] = {"kind": a["kind"], "counts": a["counts"] + b["counts"]}
        elif a["kind"] == "numeric":
            out[name] = {"kind": "numeric", **{k: a[k] + b[k] for k in ("n", "sum", "sumsq")}}
        else:
            if a["n"] and b["n"] and a["dim"] != b["dim"]:
                raise DataError(f"content column {name!r} holds vectors of differing lengths ({a['dim']} "
                                f"and {b['dim']}, e.g. items {a['example']!r} and {b['example']!r}): a "
                                "vector column needs the same length in every row; fix the item table "
                                "or leave the column out")
            if not a["n"] or not b["n"]:
                out[name] = a if a["n"] else b
            else:
                out[name] = {"kind": "vector", "dim": a["dim"], "n": a["n"] + b["n"],
                             "sum": a["sum"] + b["sum"], "sumsq": a["sumsq"] + b["sumsq"],
                             "example": a["example"]}
    return out


def encoder_state(stats: dict[str, Any], columns: list[str], separators: dict[str, str],
                  max_categories: int) -> list[dict[str, Any]]:
    """The encoder's state (a JSON-able list, one entry per column) from merged statistics."""
    state = []
    for name in columns:
        entry = stats[name]
        kind = entry["kind"]
        if kind is None:
            raise DataError(f"content column {name!r} holds only nulls: nothing to encode; leave it out "
                            "of the content columns")
        column: dict[str, Any] = {"name": name, "kind": kind}
        if kind in ("categorical", "multi"):
            # The most frequent values, ties by value, so the state is the same however the
            # table is partitioned; rarer values encode as no value.
            ranked = sorted(entry["counts"].items(), key=lambda kv: (-kv[1], kv[0]))[:max_categories]
            column["categories"] = sorted(value for value, _ in ranked)
            if kind == "multi":
                column["separator"] = separators[name]
        elif kind == "numeric":
            n = max(entry["n"], 1)
            mean = entry["sum"] / n
            column["mean"] = mean
            column["scale"] = float(np.sqrt(max(entry["sumsq"] / n - mean ** 2, 0.0))) or 1.0
        else:
            n = max(entry["n"], 1)
            mean = entry["sum"] / n
            std = np.sqrt(np.maximum(entry["sumsq"] / n - mean ** 2, 0.0))
            column["dim"] = entry["dim"]
            column["mean"] = mean.tolist()
            column["scale"] = np.where(std > 0, std, 1.0).tolist()
        state.append(column)
    return state


def encoded_width(state: list[dict[str, Any]]) -> int:
    """Number of encoded columns."""
    return sum(_width(column) for column in state)


def _width(column: dict[str, Any]) -> int:
    if column["kind"] in ("categorical", "multi"):
        return len(column["categories"])
    return 1 if column["kind"] == "numeric" else int(column["dim"])


def encode(frame: pd.DataFrame, state: list[dict[str, Any]], id_col: str) -> sp.csr_matrix:
    """Encode one partition: a ``(len(frame), encoded_width(state))`` float32 CSR matrix."""
    blocks = []
    n = len(frame)
    for column in state:
        values = frame[column["name"]]
        kind = column["kind"]
        if kind == "categorical":
            codes = pd.Index(column["categories"]).get_indexer(values.astype(object).where(values.notna()))
            rows = np.flatnonzero(codes >= 0)
            blocks.append(sp.csr_matrix((np.ones(len(rows), np.float32), (rows, codes[rows])),
                                        shape=(n, len(column["categories"]))))
        elif kind == "multi":
            blocks.append(_encode_multi(values, column, n))
        elif kind == "numeric":
            numbers = values.astype("float64").to_numpy(na_value=np.nan)
            scaled = np.where(np.isfinite(numbers), (numbers - column["mean"]) / column["scale"], 0.0)
            blocks.append(sp.csr_matrix(scaled.astype(np.float32)[:, None]))
        else:
            blocks.append(sp.csr_matrix(_encode_vectors(values, column, frame[id_col])))
    if not blocks:
        return sp.csr_matrix((n, 0), dtype=np.float32)
    return sp.hstack(blocks, format="csr", dtype=np.float32)


def _encode_multi(values: pd.Series, column: dict[str, Any], n: int) -> sp.csr_matrix:
    index = pd.Index(column["categories"])
    tokens = values.astype(object).where(values.notna(), "").astype(str).str.split(column["separator"],
                                                                                   regex=False)
    lengths = tokens.str.len().to_numpy()
    flat = np.concatenate([np.asarray(t, dtype=object) for t in tokens]) if n else np.array([], object)
    rows = np.repeat(np.arange(n), lengths)
    codes = index.get_indexer(flat) if len(flat) else np.array([], dtype=np.int64)
    keep = codes >= 0
    matrix = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (rows[keep], codes[keep])),
                           shape=(n, len(index)))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    counts = np.diff(matrix.indptr)
    return sp.diags((1.0 / np.sqrt(np.maximum(counts, 1))).astype(np.float32)) @ matrix


def _encode_vectors(values: pd.Series, column: dict[str, Any], ids: pd.Series) -> np.ndarray:
    dim = int(column["dim"])
    out = np.zeros((len(values), dim), dtype=np.float32)
    present = np.flatnonzero(values.notna().to_numpy())
    if len(present):
        rows = [np.asarray(v, dtype=np.float64) for v in values.iloc[present]]
        odd = [i for i, r in enumerate(rows) if len(r) != dim]
        if odd:
            raise DataError(f"content column {column['name']!r} holds vectors of differing lengths ({dim} "
                            f"and {len(rows[odd[0]])}, e.g. item {ids.iloc[present[odd[0]]]!r}): a vector "
                            "column needs the same length in every row; fix the item table or leave the "
                            "column out")
        matrix = (np.vstack(rows) - np.asarray(column["mean"])) / np.asarray(column["scale"])
        out[present] = matrix / np.sqrt(dim)
    return out


# -- regressors ---------------------------------------------------------------------------


def ridge_fit(X: Any, Y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression with an unpenalised intercept: ``(coef (d, t), intercept (t,))``.

    Solves the d x d normal equations of the centred problem, so a sparse ``X`` is never
    densified: XᵀX - n·x̄x̄ᵀ is the Gram of the centred columns.
    """
    n = X.shape[0]
    mean_x = np.asarray(X.mean(axis=0)).ravel()
    mean_y = Y.mean(axis=0)
    xtx = X.T @ X
    xtx = xtx.toarray() if sp.issparse(xtx) else np.asarray(xtx)
    gram = xtx - n * np.outer(mean_x, mean_x) + alpha * np.eye(X.shape[1])
    xty = np.asarray(X.T @ Y) - n * np.outer(mean_x, mean_y)
    coef = np.linalg.solve(gram, xty) if X.shape[1] else np.zeros((0, Y.shape[1]))
    return coef, mean_y - mean_x @ coef


def mlp_fit(X: Any, Y: np.ndarray, *, hidden: int, alpha: float, epochs: int, learning_rate: float,
            batch_size: int, seed: int) -> list[np.ndarray]:
    """One hidden ReLU layer trained by Adam on squared error (plus ``alpha`` weight decay).

    Returns ``[W1, b1, W2, b2]``. ``X`` may be sparse: the first layer is a sparse-dense
    product, its gradient the transpose product, so no dense copy of ``X`` is made.
    """
    rng = np.random.default_rng(seed)
    d, t = X.shape[1], Y.shape[1]
    # He initialisation for the ReLU layer, Glorot for the linear output.
    params = [rng.normal(0, np.sqrt(2.0 / max(d, 1)), (d, hidden)), np.zeros(hidden),
              rng.normal(0, np.sqrt(1.0 / hidden), (hidden, t)), np.zeros(t)]
    params[3] = Y.mean(axis=0).copy()
    moments = [np.zeros_like(p) for p in params]
    velocities = [np.zeros_like(p) for p in params]
    beta1, beta2, step = 0.9, 0.999, 0
    n = X.shape[0]
    for _ in range(epochs):
        order = rng.permutation(n)
        for lo in range(0, n, batch_size):
            rows = order[lo:lo + batch_size]
            xb, yb = X[rows], Y[rows]
            pre = np.asarray(xb @ params[0]) + params[1]
            act = np.maximum(pre, 0.0)
            out = act @ params[2] + params[3]
            grad_out = 2.0 * (out - yb) / len(rows)
            grad_act = grad_out @ params[2].T
            grad_pre = grad_act * (pre > 0)
            grads = [np.asarray(xb.T @ grad_pre) + alpha * params[0], grad_pre.sum(axis=0),
                     act.T @ grad_out + alpha * params[2], grad_out.sum(axis=0)]
            step += 1
            for p, g, m, v in zip(params, grads, moments, velocities):
                m *= beta1
                m += (1 - beta1) * g
                v *= beta2
                v += (1 - beta2) * g * g
                p -= learning_rate * (m / (1 - beta1 ** step)) / (np.sqrt(v / (1 - beta2 ** step)) + 1e-8)
    return params


def mlp_predict(X: Any, params: list[np.ndarray]) -> np.ndarray:
    """Outputs of the network of :func:`mlp_fit`."""
    act = np.maximum(np.asarray(X @ params[0]) + params[1], 0.0)
    return act @ params[2] + params[3]

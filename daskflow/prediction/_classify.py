"""Scoring every entity with a fitted classifier: its probability and its decile, out of core.

:func:`score_entities` is what the ``score`` stage runs on the entity table; it takes plain
arguments (a Dask DataFrame, a fitted encoder and classifier, the id column) so any caller
can score a table the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd

from daskflow._dask import compute, persist
from daskflow._errors import DataError, SchemaError

__all__ = ["EntityScores", "score_entities"]

log = logging.getLogger("daskflow")


@dataclass
class EntityScores:
    """The scores of every entity (``frame``: id, probability, decile; persisted) and their summary."""

    frame: dd.DataFrame
    rows: int
    mean_probability: float
    #: The probabilities that bound the deciles (9 values, ascending).
    decile_cutoffs: list[float]


def _score_rows(frame: pd.DataFrame, encoder: Any, model: Any, id_column: str) -> pd.DataFrame:
    """P(positive) for one partition of the table (runs on a worker)."""
    if len(frame) == 0:
        return pd.DataFrame({id_column: frame[id_column], "probability": np.zeros(0)})
    scores = np.asarray(model.predict_proba(np.asarray(encoder.transform(frame))))[:, 1]
    return pd.DataFrame({id_column: frame[id_column].to_numpy(), "probability": scores}, index=frame.index)


def _with_decile(frame: pd.DataFrame, cutoffs: np.ndarray) -> pd.DataFrame:
    # decile 1 = the 10% of entities most likely positive, 10 = the least likely.
    return frame.assign(decile=(10 - np.searchsorted(cutoffs, frame["probability"].to_numpy(), side="right")
                                ).astype("int8"))


def score_entities(frame: dd.DataFrame | pd.DataFrame, encoder: Any, model: Any, *, id_column: str,
                   client: Any = None) -> EntityScores:
    """Every row's ``id_column``, P(positive) by ``model`` on ``encoder``'s design matrix, and decile.

    Parameters
    ----------
    frame
        The table to score (every row, labelled or not), with the columns ``encoder`` was fitted on.
    encoder
        A fitted transformer whose ``transform`` of a pandas partition is the design matrix.
    model
        A fitted classifier with ``predict_proba``.
    id_column
        The column that names each row in the output.
    client
        A ``distributed.Client``; default: dask's current scheduler.

    Returns
    -------
    EntityScores
        ``frame`` has ``id_column``, ``probability`` (float64) and ``decile`` (int8; 1 = the tenth
        most likely positive), persisted.

    Raises
    ------
    SchemaError
        ``id_column`` is not a column of ``frame``.
    DataError
        ``frame`` has no rows.
    """
    if isinstance(frame, pd.DataFrame):
        frame = dd.from_pandas(frame, npartitions=1)
    if id_column not in frame.columns:
        raise SchemaError(f"score_entities: id column {id_column!r} is not a column of the table (found "
                          f"{', '.join(map(str, frame.columns))}): pass the table's id column")
    meta = pd.DataFrame({id_column: pd.Series([], dtype=frame[id_column].dtype),
                         "probability": pd.Series([], dtype="float64")})
    scores = frame.map_partitions(_score_rows, encoder, model, id_column, meta=meta, token="score-rows")
    (scores,) = persist([scores], client)
    (p_all,) = compute([scores["probability"]], client)
    p_all = np.asarray(p_all)
    if not len(p_all):
        raise DataError("score_entities: the table to score has no rows: expected one row per entity")
    cutoffs = np.quantile(p_all, np.linspace(0.1, 0.9, 9))
    rows = scores.map_partitions(_with_decile, cutoffs, meta=meta.assign(decile=pd.Series([], dtype="int8")),
                                 token="score-decile")
    (rows,) = persist([rows], client)
    return EntityScores(rows, int(len(p_all)), float(np.mean(p_all)), [float(c) for c in cutoffs])

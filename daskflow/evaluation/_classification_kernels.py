"""Binary classification metrics from a table of distinct scores (pure NumPy, no Dask import).

Every metric is computed from a :class:`ScoreTable`: the distinct scores in descending
order with the (weighted) positives and negatives at each. A table is built per block
(:func:`score_table`) and tables merge exactly (:func:`merge_tables`), so the result does
not depend on how the rows were blocked, and rows never have to be gathered in one place:
only one row per *distinct* score survives the merge.

Definitions follow scikit-learn so the numbers can be checked against it:

- ROC AUC: trapezoid under (FPR, TPR) over the distinct thresholds, so tied scores count
  half (``roc_auc_score``);
- PR AUC: average precision, the step-wise sum ``sum_n (R_n - R_{n-1}) P_n`` over distinct
  thresholds, no interpolation (``average_precision_score``);
- log loss: scores clipped to ``[eps, 1 - eps]``, ``eps`` the float64 machine epsilon
  (``log_loss``), natural logarithm;
- Brier score: weighted mean of ``(y - p)**2`` (``brier_score_loss``);
- calibration: ``n_bins`` quantile bins with edges as ``numpy.percentile`` (linear
  interpolation) would place them (``calibration_curve(strategy="quantile")``); with sample
  weights the edges are weighted quantiles, weights rescaled to a mean of 1;
- gains: the share of positive weight among the top share ``d`` of weight, ranked by score.
  Within a group of tied scores the curve is linear, which is the expectation over random
  tie-breaking (a constant score gives exactly the diagonal, lift 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from daskflow._errors import DataError

__all__ = [
    "EPS",
    "ScoreTable",
    "average_precision",
    "bootstrap_intervals",
    "brier_score",
    "calibration_bins",
    "decile_table",
    "downsample_curve",
    "gains_at",
    "gains_points",
    "log_loss",
    "merge_tables",
    "pr_points",
    "roc_auc",
    "roc_points",
    "score_table",
]

#: Probabilities are clipped to ``[EPS, 1 - EPS]`` before the logarithm (as scikit-learn does).
EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True, eq=False)
class ScoreTable:
    """Weighted label counts per distinct score, scores strictly descending.

    Attributes
    ----------
    scores
        Distinct scores, highest first.
    positives, negatives
        Total sample weight of label-1 and label-0 rows at each score (row counts without
        weights). Rows of zero weight are left out, as scikit-learn does.
    n_rows, n_positive_rows
        Rows and label-1 rows seen, zero-weight rows included.
    """

    scores: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray
    n_rows: int
    n_positive_rows: int

    @property
    def positive_weight(self) -> float:
        return float(self.positives.sum())

    @property
    def negative_weight(self) -> float:
        return float(self.negatives.sum())

    @property
    def nbytes(self) -> int:
        """Memory the table holds: 24 bytes per distinct score."""
        return self.scores.nbytes + self.positives.nbytes + self.negatives.nbytes


def score_table(y_true: np.ndarray, y_score: np.ndarray, sample_weight: np.ndarray | None = None, *,
                where: str = "evaluate_classifier") -> ScoreTable:
    """Check one block of labels, scores and weights, and aggregate it by distinct score.

    Parameters
    ----------
    y_true
        Labels, 0/1 (any numeric or boolean dtype).
    y_score
        Scores; higher means more likely positive. Must be finite.
    sample_weight
        Finite, non-negative weights, or None for 1 per row.
    where
        The caller (and block), named in error messages; rows are counted from the
        block's start.

    Raises
    ------
    DataError
        Lengths differ, labels other than 0/1, NaN or infinite scores, bad weights.
    """
    labels = _numeric(y_true, "y_true", where)
    scores = _numeric(y_score, "y_score", where)
    if len(labels) != len(scores):
        raise DataError(f"y_true has {len(labels)} rows but y_score has {len(scores)} ({where}): "
                        "expected one score per label. Score the same rows the labels come from")
    bad = np.flatnonzero((labels != 0) & (labels != 1))  # NaN labels are caught here too
    if len(bad):
        raise DataError(f"y_true holds {len(bad)} values other than 0 and 1 ({where}, e.g. "
                        f"{labels[bad[0]].item()!r} at row {bad[0]}): expected binary labels "
                        "0/1 or booleans. Encode the positive class (converted) as 1")
    bad = np.flatnonzero(~np.isfinite(scores))
    if len(bad):
        raise DataError(f"y_score holds {len(bad)} NaN or infinite values ({where}, first at row "
                        f"{bad[0]}): expected finite scores. Check the model's inputs for "
                        "missing features, or drop those rows before evaluating")
    n_rows, n_positive_rows = len(labels), int(np.count_nonzero(labels))
    if sample_weight is None:
        weights = None
    else:
        weights = _numeric(sample_weight, "sample_weight", where)
        if len(weights) != len(labels):
            raise DataError(f"sample_weight has {len(weights)} rows but y_true has {len(labels)} "
                            f"({where}): expected one weight per label")
        bad = np.flatnonzero(~np.isfinite(weights) | (weights < 0))
        if len(bad):
            raise DataError(f"sample_weight holds {len(bad)} negative, NaN or infinite values ({where}, "
                            f"e.g. {weights[bad[0]].item()!r} at row {bad[0]}): expected finite "
                            "weights >= 0")
        keep = weights > 0
        if not keep.all():  # zero-weight rows change nothing but would add empty thresholds
            labels, scores, weights = labels[keep], scores[keep], weights[keep]
    order = np.argsort(-scores, kind="stable")
    positives = labels[order] if weights is None else labels[order] * weights[order]
    negatives = (1.0 - labels[order]) if weights is None else (1.0 - labels[order]) * weights[order]
    return _aggregate(scores[order], positives, negatives, n_rows, n_positive_rows)


def merge_tables(*tables: ScoreTable) -> ScoreTable:
    """One table from several (exact: the same as one table built from all their rows)."""
    if len(tables) == 1:
        return tables[0]
    scores = np.concatenate([t.scores for t in tables])
    # Each input is already sorted: the stable sort (timsort) merges the runs in O(n log k).
    order = np.argsort(-scores, kind="stable")
    return _aggregate(scores[order],
                      np.concatenate([t.positives for t in tables])[order],
                      np.concatenate([t.negatives for t in tables])[order],
                      sum(t.n_rows for t in tables), sum(t.n_positive_rows for t in tables))


def roc_points(table: ScoreTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` at every distinct threshold, starting at (0, 0) and ``inf``."""
    tps, fps = np.cumsum(table.positives), np.cumsum(table.negatives)
    fpr = np.concatenate([[0.0], fps / fps[-1]])
    tpr = np.concatenate([[0.0], tps / tps[-1]])
    return fpr, tpr, np.concatenate([[np.inf], table.scores])


def roc_auc(table: ScoreTable) -> float:
    """Area under the ROC curve; ties counted half (trapezoid over distinct thresholds)."""
    fpr, tpr, _ = roc_points(table)
    return float(np.trapezoid(tpr, fpr))


def pr_points(table: ScoreTable) -> tuple[np.ndarray, np.ndarray]:
    """``(recall, precision)`` by increasing recall, starting at (0, 1) like scikit-learn."""
    tps, fps = np.cumsum(table.positives), np.cumsum(table.negatives)
    predicted = tps + fps
    precision = np.divide(tps, predicted, out=np.zeros_like(tps), where=predicted != 0)
    return np.concatenate([[0.0], tps / tps[-1]]), np.concatenate([[1.0], precision])


def average_precision(table: ScoreTable) -> float:
    """Average precision: ``sum_n (R_n - R_{n-1}) P_n`` (no interpolation)."""
    recall, precision = pr_points(table)
    # Clipped like scikit-learn: rounding can leave -0.0.
    return max(0.0, float(np.sum(np.diff(recall) * precision[1:])))


def log_loss(table: ScoreTable) -> float:
    """Weighted mean cross-entropy, scores clipped to ``[EPS, 1 - EPS]``."""
    # Both columns clipped separately, as scikit-learn clips the (1 - p, p) matrix.
    p = np.clip(table.scores, EPS, 1 - EPS)
    q = np.clip(1.0 - table.scores, EPS, 1 - EPS)
    total = -(table.positives @ np.log(p) + table.negatives @ np.log(q))
    return float(total / (table.positive_weight + table.negative_weight))


def brier_score(table: ScoreTable) -> float:
    """Weighted mean of ``(y - p)**2``."""
    total = table.positives @ (1.0 - table.scores) ** 2 + table.negatives @ table.scores ** 2
    return float(total / (table.positive_weight + table.negative_weight))


def calibration_bins(table: ScoreTable, n_bins: int) -> dict[str, np.ndarray]:
    """Quantile-binned calibration, empty bins left out (as ``calibration_curve`` does).

    Returns
    -------
    dict
        Columns ``bin`` (0-based index), ``lower``, ``upper`` (the bin's edges),
        ``mean_predicted``, ``observed_rate`` and ``count`` (total weight; rows without
        weights). A score equal to an inner edge falls in the lower bin.
    """
    weights = table.positives + table.negatives
    edges = _quantile_edges(table.scores[::-1], weights[::-1], n_bins, table.n_rows)
    bins = np.searchsorted(edges[1:-1], table.scores, side="left")
    count = np.bincount(bins, weights=weights, minlength=n_bins)
    predicted = np.bincount(bins, weights=weights * table.scores, minlength=n_bins)
    observed = np.bincount(bins, weights=table.positives, minlength=n_bins)
    filled = np.flatnonzero(count > 0)
    return {"bin": filled, "lower": edges[filled], "upper": edges[filled + 1],
            "mean_predicted": predicted[filled] / count[filled],
            "observed_rate": observed[filled] / count[filled], "count": count[filled]}


def gains_points(table: ScoreTable) -> tuple[np.ndarray, np.ndarray]:
    """``(share_targeted, share_kept)`` at every distinct threshold, from (0, 0) to (1, 1)."""
    targeted = np.cumsum(table.positives + table.negatives)
    kept = np.cumsum(table.positives)
    return np.concatenate([[0.0], targeted / targeted[-1]]), np.concatenate([[0.0], kept / kept[-1]])


def gains_at(table: ScoreTable, depths: Sequence[float]) -> dict[str, np.ndarray]:
    """Cumulative gains at chosen depths (shares of users targeted, best scores first).

    Returns
    -------
    dict
        Columns ``share_targeted`` (the depths), ``share_kept`` (of positive weight),
        ``lift`` (``share_kept / share_targeted``), ``conversions_kept`` (positive weight
        in the targeted share) and ``threshold`` (the lowest score targeted; users tied
        at it are targeted in part).
    """
    share_targeted, share_kept = gains_points(table)
    depths = np.asarray(depths, dtype=np.float64)
    kept = np.interp(depths, share_targeted, share_kept)
    # share_targeted[i + 1] is the share with score >= scores[i].
    threshold_index = np.minimum(np.searchsorted(share_targeted[1:], depths, side="left"),
                                 len(table.scores) - 1)
    return {"share_targeted": depths, "share_kept": kept, "lift": kept / depths,
            "conversions_kept": kept * table.positive_weight,
            "threshold": table.scores[threshold_index]}


def decile_table(table: ScoreTable, n_groups: int = 10) -> dict[str, np.ndarray]:
    """Rows, positives, rate and lift of each tenth of the rows ranked by score, best first.

    Group ``g`` (1-based) holds the share ``((g - 1) / n, g / n]`` of the weight; a run of
    tied scores that straddles a boundary is shared out in proportion (the expectation over
    random tie-breaking, as in :func:`gains_at`), so counts may be fractional.

    Returns
    -------
    dict
        Columns ``decile`` (1 = highest scores), ``count`` (weight), ``positives``,
        ``rate`` (positives / count) and ``lift`` (rate / the overall rate).
    """
    share_targeted, share_kept = gains_points(table)
    bounds = np.linspace(0.0, 1.0, n_groups + 1)
    kept = np.interp(bounds, share_targeted, share_kept)
    total, positive = table.positive_weight + table.negative_weight, table.positive_weight
    count = np.diff(bounds) * total
    positives = np.diff(kept) * positive
    rate = np.divide(positives, count, out=np.zeros_like(count), where=count > 0)
    return {"decile": np.arange(1, n_groups + 1), "count": count, "positives": positives, "rate": rate,
            "lift": rate / (positive / total)}


def bootstrap_intervals(table: ScoreTable, depths: Sequence[float], *, n_resamples: int = 200,
                        level: float = 0.95, seed: int = 0) -> dict[str, list[float]]:
    """Percentile bootstrap intervals of ROC AUC and of the share kept at each depth.

    A Poisson bootstrap on the table itself: each row is drawn Poisson(1) times, so the
    positives (negatives) at a distinct score, being counts, are redrawn as one
    Poisson(count) variate each — the same resampling without the rows, which the table no
    longer holds (Hanley & MacGibbon 2006; Chamandy et al. 2012, "Estimating uncertainty for
    massive data streams"). With sample weights the weight at a score stands in for its
    count, an approximation. Replicates left with a single class are skipped.

    Returns
    -------
    dict
        ``roc_auc`` and ``kept@<depth>`` (as ``gains_at`` names depths: 0.1 -> ``kept@10%``)
        each mapped to ``[low, high]``, plus ``level`` and ``n_resamples`` (replicates used).
    """
    rng = np.random.default_rng(seed)
    aucs, kept = [], []
    for _ in range(n_resamples):
        positives = rng.poisson(table.positives).astype(np.float64)
        negatives = rng.poisson(table.negatives).astype(np.float64)
        if positives.sum() == 0 or negatives.sum() == 0:
            continue
        present = (positives + negatives) > 0
        replicate = ScoreTable(table.scores[present], positives[present], negatives[present],
                               table.n_rows, table.n_positive_rows)
        aucs.append(roc_auc(replicate))
        kept.append(gains_at(replicate, depths)["share_kept"])
    tail = (1.0 - level) / 2 * 100
    out: dict[str, list[float]] = {"level": level, "n_resamples": len(aucs)}  # type: ignore[dict-item]
    if not aucs:
        return out
    out["roc_auc"] = np.percentile(aucs, [tail, 100 - tail]).tolist()
    for index, depth in enumerate(depths):
        label = f"kept@{depth * 100:g}%"
        out[label] = np.percentile(np.asarray(kept)[:, index], [tail, 100 - tail]).tolist()
    return out


def downsample_curve(x: np.ndarray, y: np.ndarray, max_points: int = 201) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points of a curve, spread evenly along its length.

    The points kept are points of the curve (not interpolated), both ends included, so a
    plot of them follows the curve wherever it bends; points are spaced by L1 arc length,
    not by index, so a curve with most thresholds in one corner is still drawn whole.
    """
    if len(x) <= max_points:
        return x, y
    arc = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(x)) + np.abs(np.diff(y)))])
    targets = np.linspace(0.0, arc[-1], max_points)[1:-1]
    keep = np.unique(np.concatenate([[0], np.searchsorted(arc, targets, side="left"), [len(x) - 1]]))
    return x[keep], y[keep]


def _aggregate(scores: np.ndarray, positives: np.ndarray, negatives: np.ndarray, n_rows: int,
               n_positive_rows: int) -> ScoreTable:
    if len(scores) == 0:
        empty = np.zeros(0)
        return ScoreTable(empty, empty, empty, n_rows, n_positive_rows)
    starts = np.flatnonzero(np.concatenate([[True], scores[1:] != scores[:-1]]))
    return ScoreTable(scores[starts], np.add.reduceat(positives, starts),
                      np.add.reduceat(negatives, starts), n_rows, n_positive_rows)


def _numeric(values: np.ndarray, name: str, where: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise DataError(f"{name} has shape {array.shape} ({where}): expected one value per row (1-D)")
    try:
        return array.astype(np.float64, copy=False)
    except (TypeError, ValueError) as exc:
        example = array[0] if len(array) else None
        example = example.item() if isinstance(example, np.generic) else example
        raise DataError(f"{name} is not numeric ({where}, e.g. {example!r}): expected numbers"
                        + (" 0/1 or booleans" if name == "y_true" else "")) from exc


def _quantile_edges(ascending: np.ndarray, weights: np.ndarray, n_bins: int, n_rows: int) -> np.ndarray:
    """Bin edges exactly as ``numpy.percentile(rows, linspace(0, 100, n_bins + 1))`` places them.

    The rows are given as distinct ``ascending`` values with their ``weights`` (row counts
    when unweighted). Weights are rescaled to sum to the row count, so unit weights give
    numpy's edges bit for bit and any weights give a scale-free weighted quantile.
    """
    total = weights.sum()
    cumulative = np.cumsum(weights * (n_rows / total)) if total != n_rows else np.cumsum(weights)
    n = cumulative[-1]
    # The same arithmetic as numpy's "linear" method (including q = (100 q) / 100).
    q = np.true_divide(np.linspace(0, 1, n_bins + 1) * 100, 100)
    virtual = (n - 1) * q
    previous = np.floor(virtual)
    gamma = virtual - previous
    last = len(ascending) - 1

    def value_at(position: np.ndarray) -> np.ndarray:
        # Row ``position`` (0-based) of the sorted rows is the value whose run covers it.
        return ascending[np.minimum(np.searchsorted(cumulative, position, side="right"), last)]

    above = virtual >= n - 1
    lower = np.where(above, ascending[last], value_at(previous))
    upper = np.where(above, ascending[last], value_at(previous + 1))
    diff = upper - lower
    edges = lower + diff * gamma
    return np.where(gamma >= 0.5, upper - diff * (1 - gamma), edges)

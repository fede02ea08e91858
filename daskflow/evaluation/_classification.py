"""Evaluation of a binary classifier (the conversion model): AUCs, losses, calibration, gains.

Rows never travel to the driver. Each block of labels and scores is aggregated on the
cluster into a table of distinct scores (see :mod:`._classification_kernels`); the tables
merge exactly in a tree, the metrics are computed on the worker holding the last table, and
only the report (a few kilobytes) comes back.

Memory: a table holds 24 bytes per distinct score. Tied scores share a row, so a tree model
with a few thousand leaves needs almost nothing; a model whose 60M scores are all distinct
needs about 1.4 GB on the worker that does the last merge (about twice that while merging),
against 16 bytes per row (~1 GB for 60M rows) to gather labels and scores on the driver.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np

from daskflow._dask import compute, named
from daskflow._errors import DataError, ParameterError
from daskflow.evaluation._classification_kernels import (
    ScoreTable,
    average_precision,
    bootstrap_intervals,
    brier_score,
    calibration_bins,
    decile_table,
    downsample_curve,
    gains_at,
    gains_points,
    log_loss,
    merge_tables,
    pr_points,
    roc_auc,
    roc_points,
    score_table,
)

__all__ = ["CalibrationTable", "ClassifierReport", "Curve", "GainsTable", "evaluate_classifier",
           "DEFAULT_DEPTHS"]

#: Shares of users targeted at which gains and lift are reported.
DEFAULT_DEPTHS = (0.05, 0.1, 0.2, 0.3, 0.5)
#: Curves are thinned to this many points for plotting and metrics.json.
MAX_CURVE_POINTS = 201
#: How many block tables one merge task takes.
_MERGE_FAN_IN = 8


@dataclass(frozen=True, eq=False)
class Curve:
    """A curve ready to plot: ``x`` against ``y``, named ``x_name`` and ``y_name``."""

    x_name: str
    x: np.ndarray
    y_name: str
    y: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        """``{x_name: [...], y_name: [...]}``."""
        return {self.x_name: self.x.tolist(), self.y_name: self.y.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[float]], x_name: str, y_name: str) -> Curve:
        return cls(x_name, np.asarray(data[x_name], dtype=np.float64), y_name,
                   np.asarray(data[y_name], dtype=np.float64))


@dataclass(frozen=True, eq=False)
class CalibrationTable:
    """Observed positive rate per quantile bin of predicted probability (empty bins left out).

    ``count`` is the total sample weight in the bin (the row count without weights).
    """

    bin: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    mean_predicted: np.ndarray
    observed_rate: np.ndarray
    count: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        """One list per column."""
        return {name: getattr(self, name).tolist() for name in _CALIBRATION_COLUMNS}


@dataclass(frozen=True, eq=False)
class GainsTable:
    """Targeting at chosen depths: target the top ``share_targeted`` of users by score.

    Columns: ``share_targeted`` (the depth), ``share_kept`` (share of conversions among
    them), ``lift`` (``share_kept / share_targeted``; 1 is random), ``conversions_kept``
    (weighted count) and ``threshold`` (the lowest score targeted).
    """

    share_targeted: np.ndarray
    share_kept: np.ndarray
    lift: np.ndarray
    conversions_kept: np.ndarray
    threshold: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        """One list per column."""
        return {name: getattr(self, name).tolist() for name in _GAINS_COLUMNS}

    def describe(self) -> list[str]:
        """One sentence per depth, e.g. "targeting 10% of users keeps 43.2% of conversions (lift 4.32)"."""
        return [f"targeting {_percent(d)} of users keeps {kept:.1%} of conversions (lift {lift:.2f})"
                for d, kept, lift in zip(self.share_targeted, self.share_kept, self.lift)]


_CALIBRATION_COLUMNS = ("bin", "lower", "upper", "mean_predicted", "observed_rate", "count")
_GAINS_COLUMNS = ("share_targeted", "share_kept", "lift", "conversions_kept", "threshold")


@dataclass(frozen=True, eq=False)
class ClassifierReport:
    """Everything :func:`evaluate_classifier` measures; ``to_dict()`` is JSON-serialisable.

    Attributes
    ----------
    n, n_positive
        Rows evaluated and rows labelled 1.
    base_rate
        Weighted share of positives.
    roc_auc, pr_auc
        Area under the ROC curve; average precision.
    log_loss, brier, expected_calibration_error
        None when the scores are not probabilities (``probabilities=False``).
    calibration
        Quantile-bin table, or None when the scores are not probabilities.
    gains
        Share of conversions kept and lift at each depth.
    roc_curve, pr_curve, gains_curve
        At most 201 points each: (fpr, tpr), (recall, precision),
        (share_targeted, share_kept).
    """

    n: int
    n_positive: int
    base_rate: float
    roc_auc: float
    pr_auc: float
    log_loss: float | None
    brier: float | None
    expected_calibration_error: float | None
    calibration: CalibrationTable | None
    gains: GainsTable
    roc_curve: Curve
    pr_curve: Curve
    gains_curve: Curve
    #: Each tenth of the rows by score, best first: count, positives, rate, lift.
    deciles: dict[str, np.ndarray] | None = None
    #: Bootstrap intervals (``n_resamples > 0``): ``roc_auc`` and ``kept@<depth>`` -> [low, high].
    intervals: dict[str, Any] | None = None

    def summary(self) -> dict[str, float]:
        """The scalar metrics, flat: ``roc_auc``, ..., ``kept@10%``, ``lift@10%``."""
        out: dict[str, float] = {"n": self.n, "n_positive": self.n_positive, "base_rate": self.base_rate,
                                 "roc_auc": self.roc_auc, "pr_auc": self.pr_auc}
        for name in ("log_loss", "brier", "expected_calibration_error"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        for depth, kept, lift in zip(self.gains.share_targeted, self.gains.share_kept, self.gains.lift):
            out[f"kept@{_percent(depth)}"] = float(kept)
            out[f"lift@{_percent(depth)}"] = float(lift)
        return out

    def describe(self) -> str:
        """A few lines of plain text for logs and the run report."""
        line = (f"ROC AUC {self.roc_auc:.4f}, PR AUC {self.pr_auc:.4f} (base rate {self.base_rate:.2%}, "
                f"{self.n} users, {self.n_positive} converted)")
        if self.log_loss is not None:
            line += f"; log loss {self.log_loss:.4f}, Brier {self.brier:.4f}, " \
                    f"ECE {self.expected_calibration_error:.4f}"
        return "\n".join([line, *self.gains.describe()])

    def to_dict(self) -> dict[str, Any]:
        """Plain floats, ints, lists and None (for ``metrics.json``)."""
        return {"n": self.n, "n_positive": self.n_positive, "base_rate": self.base_rate,
                "roc_auc": self.roc_auc, "pr_auc": self.pr_auc, "log_loss": self.log_loss,
                "brier": self.brier, "expected_calibration_error": self.expected_calibration_error,
                "calibration": None if self.calibration is None else self.calibration.to_dict(),
                "gains": self.gains.to_dict(), "roc_curve": self.roc_curve.to_dict(),
                "pr_curve": self.pr_curve.to_dict(), "gains_curve": self.gains_curve.to_dict(),
                "deciles": None if self.deciles is None else {k: v.tolist() for k, v in self.deciles.items()},
                "intervals": self.intervals}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClassifierReport:
        """The report back from :meth:`to_dict` output (e.g. read from ``metrics.json``)."""
        calibration = data.get("calibration")
        return cls(
            n=int(data["n"]), n_positive=int(data["n_positive"]), base_rate=float(data["base_rate"]),
            roc_auc=float(data["roc_auc"]), pr_auc=float(data["pr_auc"]), log_loss=data.get("log_loss"),
            brier=data.get("brier"), expected_calibration_error=data.get("expected_calibration_error"),
            calibration=None if calibration is None else CalibrationTable(
                **{name: np.asarray(calibration[name]) for name in _CALIBRATION_COLUMNS}),
            gains=GainsTable(**{name: np.asarray(data["gains"][name], dtype=np.float64)
                                for name in _GAINS_COLUMNS}),
            roc_curve=Curve.from_dict(data["roc_curve"], "fpr", "tpr"),
            pr_curve=Curve.from_dict(data["pr_curve"], "recall", "precision"),
            gains_curve=Curve.from_dict(data["gains_curve"], "share_targeted", "share_kept"),
            deciles=None if data.get("deciles") is None else {
                name: np.asarray(values) for name, values in data["deciles"].items()},
            intervals=data.get("intervals"))


def evaluate_classifier(y_true: Any, y_score: Any, *, sample_weight: Any = None,
                        probabilities: bool = True, depths: Sequence[float] = DEFAULT_DEPTHS,
                        n_bins: int = 10, n_resamples: int = 0, seed: int = 0,
                        client: Any = None) -> ClassifierReport:
    """Rank, probability and targeting metrics of a binary classifier's scores.

    Parameters
    ----------
    y_true
        Labels 0/1 (or booleans): NumPy array, pandas Series, Dask array or Dask Series.
    y_score
        The positive-class score of each row, in the same order (e.g.
        ``predict_proba(X)[:, 1]``), of any of the same kinds.
    sample_weight
        Optional non-negative weights, honoured by every metric.
    probabilities
        True when ``y_score`` are probabilities in [0, 1]. Pass False for a decision function
        (e.g. a linear SVM's margins): only the rank metrics (ROC AUC, PR AUC, gains, curves)
        are computed, and ``log_loss``, ``brier``, ``expected_calibration_error`` and
        ``calibration`` are None.
    depths
        Shares of users targeted, in (0, 1], at which gains and lift are reported.
    n_bins
        Quantile (equal-count) bins of the calibration table.
    n_resamples, seed
        With ``n_resamples > 0``, 95% percentile-bootstrap intervals of ROC AUC and of the
        share kept at each depth, from that many Poisson resamples drawn with ``seed``
        (``intervals``; the distinct-score table is resampled, not the rows).
    client
        Dask client to run on when inputs are Dask collections; the default scheduler without.

    Returns
    -------
    ClassifierReport
        ``to_dict()`` gives ``n, n_positive, base_rate, roc_auc, pr_auc, log_loss, brier,
        expected_calibration_error, calibration, gains, roc_curve, pr_curve, gains_curve,
        deciles, intervals``.

    Raises
    ------
    DataError
        Lengths differ; labels other than 0/1; NaN or infinite scores; negative weights; a
        single class (AUC undefined); scores outside [0, 1] with ``probabilities=True``.
    ParameterError
        ``depths`` outside (0, 1] or ``n_bins < 1``.

    Notes
    -----
    Definitions follow scikit-learn (``roc_auc_score``, ``average_precision_score``,
    ``log_loss`` with scores clipped to ``[eps, 1 - eps]``, ``eps`` = 2.2e-16,
    ``brier_score_loss``, ``calibration_curve(strategy="quantile")``); tied scores count half
    in ROC AUC. With Dask inputs each block is aggregated by distinct score on the cluster and
    only the report returns: no rows are gathered on the driver (see the module docstring for
    the memory of the last merge).

    Examples
    --------
    >>> report = evaluate_classifier([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], depths=(0.5,))
    >>> round(report.roc_auc, 2), report.gains.describe()
    (0.75, ['targeting 50% of users keeps 50.0% of conversions (lift 1.00)'])
    """
    depths = _check_depths(depths)
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ParameterError(f"n_bins is {n_bins!r} (evaluate_classifier): expected an integer >= 1")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int | np.integer) or n_resamples < 0:
        raise ParameterError(f"n_resamples is {n_resamples!r} (evaluate_classifier): expected an integer "
                             ">= 0 (0: no bootstrap intervals)")
    resampling = (int(n_resamples), int(seed))
    inputs = {"y_true": y_true, "y_score": y_score, "sample_weight": sample_weight}
    if any(dask.is_dask_collection(value) for value in inputs.values()):
        table = _dask_table(inputs)
        report = named(_report, "evaluate-classifier-report", pure=True)(table, depths, n_bins, probabilities,
                                                                          resampling)
        return compute([report], client)[0]
    arrays = {name: None if value is None else _to_numpy(value, name) for name, value in inputs.items()}
    return _report(score_table(arrays["y_true"], arrays["y_score"], arrays["sample_weight"]),
                   depths, n_bins, probabilities, resampling)


def _report(table: ScoreTable, depths: tuple[float, ...], n_bins: int, probabilities: bool,
            resampling: tuple[int, int] = (0, 0)) -> ClassifierReport:
    where = "evaluate_classifier"
    if table.n_rows == 0:
        raise DataError(f"y_true is empty ({where}): expected at least one labelled row. "
                        "Check the test split")
    positive, negative = table.positive_weight, table.negative_weight
    if positive + negative == 0:
        raise DataError(f"sample weights sum to zero ({where}): expected some rows of positive weight")
    if positive == 0 or negative == 0:
        present = "1 (converted)" if negative == 0 else "0 (not converted)"
        raise DataError(f"y_true holds a single class ({where}: {table.n_rows} rows, every weighted "
                        f"label {present}): expected both 0 and 1, since ROC AUC, PR AUC and gains are "
                        "undefined otherwise. Evaluate on a larger test set, or a split that keeps both "
                        "classes (e.g. split users stratified by label)")
    calibration = ece = logistic = brier = None
    if probabilities:
        low, high = float(table.scores[-1]), float(table.scores[0])
        if low < 0 or high > 1:
            raise DataError(f"y_score holds values outside [0, 1] ({where}: min {low:.6g}, max "
                            f"{high:.6g}): expected probabilities for log loss, Brier score and "
                            "calibration. Pass predict_proba(X)[:, 1], or probabilities=False to "
                            "compute only the rank metrics of a decision function")
        bins = calibration_bins(table, n_bins)
        calibration = CalibrationTable(**bins)
        ece = float(bins["count"] @ np.abs(bins["observed_rate"] - bins["mean_predicted"])
                    / bins["count"].sum())
        logistic, brier = log_loss(table), brier_score(table)
    fpr, tpr, _ = roc_points(table)
    recall, precision = pr_points(table)
    targeted, kept = gains_points(table)
    return ClassifierReport(
        n=table.n_rows, n_positive=table.n_positive_rows, base_rate=positive / (positive + negative),
        roc_auc=roc_auc(table), pr_auc=average_precision(table), log_loss=logistic, brier=brier,
        expected_calibration_error=ece, calibration=calibration,
        gains=GainsTable(**gains_at(table, depths)),
        roc_curve=Curve("fpr", *_thin(fpr, tpr, "tpr")),
        pr_curve=Curve("recall", *_thin(recall, precision, "precision")),
        gains_curve=Curve("share_targeted", *_thin(targeted, kept, "share_kept")),
        deciles=decile_table(table),
        intervals=bootstrap_intervals(table, depths, n_resamples=resampling[0], seed=resampling[1])
        if resampling[0] else None)


def _thin(x: np.ndarray, y: np.ndarray, y_name: str) -> tuple[np.ndarray, str, np.ndarray]:
    x, y = downsample_curve(x, y, MAX_CURVE_POINTS)
    return x, y_name, y


def _check_depths(depths: Sequence[float]) -> tuple[float, ...]:
    try:
        values = tuple(float(d) for d in depths)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"depths is {depths!r} (evaluate_classifier): expected shares of users "
                             "targeted, e.g. (0.05, 0.1, 0.2)") from exc
    if not values or any(not 0 < d <= 1 for d in values):
        raise ParameterError(f"depths is {list(depths)!r} (evaluate_classifier): expected shares of "
                             "users targeted in (0, 1], e.g. (0.05, 0.1, 0.2)")
    return tuple(sorted(set(values)))


def _to_numpy(values: Any, name: str) -> np.ndarray:
    """A 1-D NumPy array from a list, array or pandas Series (nullable dtypes -> NaN)."""
    if _is_table(values):
        raise DataError(f"{name} is a table with columns {list(values.columns)} (evaluate_classifier): "
                        "expected one column, e.g. frame['converted']")
    if hasattr(values, "to_numpy"):  # pandas: pd.NA in nullable dtypes becomes NaN, then fails the checks
        try:
            values = values.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            values = values.to_numpy()
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise DataError(f"{name} has shape {array.shape} (evaluate_classifier): expected one value per "
                        "row" + (". Pass the positive-class column, predict_proba(X)[:, 1]"
                                 if name == "y_score" and array.ndim == 2 else ""))
    return array


def _block_table(y_true: Any, y_score: Any, sample_weight: Any, block: int) -> ScoreTable:
    arrays = [None if v is None else _to_numpy(v, name)
              for v, name in ((y_true, "y_true"), (y_score, "y_score"), (sample_weight, "sample_weight"))]
    return score_table(*arrays, where=f"evaluate_classifier, block {block}")


def _dask_table(inputs: dict[str, Any]) -> Any:
    """A delayed :class:`ScoreTable` of all rows: one table per block, merged in a tree."""
    present = {name: value for name, value in inputs.items() if value is not None}
    for name, value in present.items():
        if _is_table(value):
            raise DataError(f"{name} is a table with columns {list(value.columns)} (evaluate_classifier): "
                            "expected one column, e.g. frame['converted']")
    frames = [v for v in present.values() if dask.is_dask_collection(v) and not isinstance(v, da.Array)]
    if len(frames) == len(present) and len({v.npartitions for v in frames}) == 1:
        # Series from one frame line up partition by partition: no need to compute their
        # lengths first (which would run the graph twice); lengths are checked per block.
        blocks = {name: value.to_delayed() for name, value in present.items()}
    else:
        blocks = _aligned_blocks(present)
    n_blocks = len(blocks["y_score"])
    block_table = named(_block_table, "evaluate-classifier-block", pure=True)
    tables = [block_table(blocks["y_true"][i], blocks["y_score"][i],
                          blocks["sample_weight"][i] if "sample_weight" in blocks else None, i)
              for i in range(n_blocks)]
    while len(tables) > 1:
        tables = [named(merge_tables, "evaluate-classifier-merge", pure=True)(*tables[i:i + _MERGE_FAN_IN])
                  for i in range(0, len(tables), _MERGE_FAN_IN)]
    return tables[0]


def _aligned_blocks(present: dict[str, Any]) -> dict[str, list[Any]]:
    """Delayed blocks of every input, rechunked like the first Dask array among them."""
    arrays: dict[str, Any] = {}
    for name, value in present.items():
        if isinstance(value, da.Array):
            array = value
        elif dask.is_dask_collection(value):
            array = value.to_dask_array(lengths=True)
        else:
            arrays[name] = _to_numpy(value, name)
            continue
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise DataError(f"{name} has shape {array.shape} (evaluate_classifier): expected one value "
                            "per row" + (". Pass the positive-class column, predict_proba(X)[:, 1]"
                                         if name == "y_score" else ""))
        if any(np.isnan(c) for c in array.chunks[0]):
            array = array.compute_chunk_sizes()
        arrays[name] = array
    reference = next(a for a in arrays.values() if isinstance(a, da.Array))
    for name, array in arrays.items():
        if array.shape[0] != reference.shape[0]:
            raise DataError(f"{name} has {array.shape[0]} rows but another input has {reference.shape[0]} "
                            "(evaluate_classifier): expected one label, score and weight per row. "
                            "Score the same rows the labels come from")
    chunks = (reference.chunks[0],)
    return {name: list((da.from_array(a, chunks=chunks) if isinstance(a, np.ndarray)
                        else a.rechunk(chunks)).to_delayed().ravel())
            for name, a in arrays.items()}


def _is_table(values: Any) -> bool:
    """A pandas or Dask DataFrame (a Dask Series also answers to ``.columns``)."""
    return getattr(values, "ndim", 1) == 2 and hasattr(values, "columns")


def _percent(share: float) -> str:
    return f"{share * 100:g}%"

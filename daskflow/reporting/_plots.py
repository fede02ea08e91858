"""The run report's plots: plain data in, one PNG out (see the package docstring).

Classifier inputs may be a :class:`~daskflow.evaluation.ClassifierReport`, its ``to_dict()``
(e.g. read back from ``metrics.json``), one of its parts (``report.roc_curve``,
``report.calibration``...) or a plain ``(x, y)`` pair; this module only reads them by key,
so it does not import the evaluation package (nor Dask).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from daskflow._errors import DataError, OutputError

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

__all__ = ["plot_calibration", "plot_convergence", "plot_gains", "plot_precision_recall",
           "plot_ranking_metrics", "plot_roc",
           "plot_tuning", "plot_tuning_heatmap", "plot_forest", "plot_active_users", "plot_retention",
           "plot_funnels"]

PathLike = str | os.PathLike[str]
_DPI = 100
#: Metric names containing one of these are minimised when "best" is picked (unless told).
_LOWER_IS_BETTER = ("loss", "error", "brier", "mse", "rmse", "mae", "ece", "time", "seconds")
#: Positive hyperparameter values spanning at least this ratio get a log x-axis.
_LOG_SPAN = 20.0
_RANKING_TITLES = {"precision": "Precision@k", "recall": "Recall@k", "map": "MAP@k", "ndcg": "NDCG@k"}

_Plot = TypeVar("_Plot", bound=Callable[..., Path])


def _plot(function: _Plot) -> _Plot:
    """Run a plot function under matplotlib's default style, importing matplotlib on first use."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Path:
        try:
            import matplotlib.style
        except ImportError as exc:  # a core dependency, but keep the hint (docs/development.md)
            raise ImportError("daskflow.reporting needs matplotlib: pip install 'matplotlib>=3.8'") from exc
        # The user's matplotlibrc must not change the output: same data, same bytes.
        with matplotlib.style.context("default"):
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@_plot
def plot_roc(curves: Mapping[str, Any], path: PathLike, *, title: str = "ROC curve") -> Path:
    """ROC curves of several models on one axes, AUC in the legend.

    Parameters
    ----------
    curves
        Model label -> a ``ClassifierReport`` (or its ``to_dict()``; the legend shows its
        ``roc_auc``), ``report.roc_curve`` / a mapping with ``fpr`` and ``tpr``, or an
        ``(fpr, tpr)`` pair (the legend's AUC is then the trapezoid under those points).
    path
        Where to write the PNG (parent directories are created).

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> plot_roc({"logistic": ([0, 0.2, 1], [0, 0.7, 1])}, tmp_path / "roc.png")  # doctest: +SKIP
    """
    series = _series(curves, "plot_roc", "a classifier report or (fpr, tpr)")
    figure, ax = _axes()
    for label, value in series.items():
        fpr, tpr, report = _points(value, "plot_roc", label, "roc_curve", "fpr", "tpr")
        auc = float(report["roc_auc"]) if "roc_auc" in report else float(np.trapezoid(tpr, fpr))
        ax.plot(fpr, tpr, lw=2, label=f"{label} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", lw=1, color="0.6", label="random (AUC 0.500)")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), aspect="equal", title=title, xlabel="false positive rate",
           ylabel="true positive rate (share of conversions found)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _save(figure, path, "plot_roc")


@_plot
def plot_precision_recall(curves: Mapping[str, Any], path: PathLike, *,
                          title: str = "Precision-recall curve") -> Path:
    """Precision-recall curves of several models on one axes, average precision in the legend.

    Parameters
    ----------
    curves
        Model label -> a ``ClassifierReport`` (or its ``to_dict()``; the legend shows its
        ``pr_auc`` and the dotted line its ``base_rate``, the precision of targeting at random),
        ``report.pr_curve`` / a mapping with ``recall`` and ``precision``, or a
        ``(recall, precision)`` pair.
    path
        Where to write the PNG (parent directories are created).
    """
    series = _series(curves, "plot_precision_recall", "a classifier report or (recall, precision)")
    figure, ax = _axes()
    base_rate = None
    for label, value in series.items():
        recall, precision, report = _points(value, "plot_precision_recall", label, "pr_curve", "recall",
                                            "precision")
        legend = f"{label} (AP {float(report['pr_auc']):.3f})" if "pr_auc" in report else label
        ax.step(recall, precision, where="post", lw=2, label=legend)
        base_rate = report.get("base_rate", base_rate)
    if base_rate is not None:
        ax.axhline(float(base_rate), ls="--", lw=1, color="0.6", label=f"random ({float(base_rate):.3f})")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), title=title, xlabel="recall (share of conversions found)",
           ylabel="precision (share of targeted who convert)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    return _save(figure, path, "plot_precision_recall")


@_plot
def plot_gains(curves: Mapping[str, Any], path: PathLike, *,
               title: str = "Target fewer people, keep the conversions") -> Path:
    """Cumulative gains: share of conversions kept against share of users targeted.

    Users are targeted by descending score. The diagonal is random targeting (lift 1); when
    every report has the same base rate, the perfect model is drawn too. Reports add a
    marker at each evaluated depth; the first model's markers are annotated with the share
    kept and the lift (the labels of several close curves would collide).

    Parameters
    ----------
    curves
        Model label -> a ``ClassifierReport`` (or its ``to_dict()``),
        ``report.gains_curve`` / a mapping with ``share_targeted`` and ``share_kept``, or a
        ``(share_targeted, share_kept)`` pair (no depth markers then).
    path
        Where to write the PNG.
    """
    from matplotlib.ticker import PercentFormatter

    series = _series(curves, "plot_gains", "a classifier report or (share_targeted, share_kept)")
    figure, ax = _axes()
    base_rates = []
    first = next(iter(series))
    for label, value in series.items():
        targeted, kept, report = _points(value, "plot_gains", label, "gains_curve", "share_targeted",
                                         "share_kept")
        (line,) = ax.plot(targeted, kept, lw=2, label=label)
        base_rates.append(report.get("base_rate"))
        gains = report.get("gains")
        if gains:
            ax.plot(gains["share_targeted"], gains["share_kept"], "o", color=line.get_color())
            if label != first:  # close curves' labels collide; the run report tabulates them all
                continue
            for depth, share, lift in zip(gains["share_targeted"], gains["share_kept"], gains["lift"]):
                ax.annotate(f"{share:.0%} kept, lift {lift:.1f}", (depth, share), xytext=(6, -11),
                            textcoords="offset points", fontsize=7, color=line.get_color())
    if base_rates[0] is not None and all(b is not None and math.isclose(b, base_rates[0])
                                         for b in base_rates):
        rate = float(base_rates[0])
        ax.plot([0, rate, 1], [0, 1, 1], ls=":", lw=1, color="0.3", label=f"perfect (base rate {rate:.1%})")
    ax.plot([0, 1], [0, 1], ls="--", lw=1, color="0.6", label="random (lift 1)")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), title=title, xlabel="share of users targeted (highest scores first)",
           ylabel="share of conversions kept")
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _save(figure, path, "plot_gains")


@_plot
def plot_calibration(tables: Mapping[str, Any], path: PathLike, *, title: str = "Calibration") -> Path:
    """Observed conversion rate against mean predicted probability per bin, with the diagonal.

    The axes stop a little above the largest value, so rare conversions (a 2% base rate)
    are not squeezed into a corner.

    Parameters
    ----------
    tables
        Model label -> a ``ClassifierReport`` (or its ``to_dict()``), ``report.calibration``
        / a mapping with ``mean_predicted`` and ``observed_rate``, or a
        ``(mean_predicted, observed_rate)`` pair.
    path
        Where to write the PNG.
    """
    series = _series(tables, "plot_calibration", "a classifier report or (mean_predicted, observed_rate)")
    figure, ax = _axes()
    top = 0.0
    for label, value in series.items():
        predicted, observed, _ = _points(value, "plot_calibration", label, "calibration", "mean_predicted",
                                         "observed_rate")
        ax.plot(predicted, observed, "o-", lw=1.5, ms=4, label=label)
        values = np.concatenate([predicted, observed])
        top = max([top, *values[np.isfinite(values)].tolist()])
    top = 1.0 if top > 0.5 else max(top * 1.1, 0.01)
    ax.plot([0, top], [0, top], ls="--", lw=1, color="0.6", label="perfectly calibrated")
    ax.set(xlim=(0, top), ylim=(0, top), aspect="equal", title=title,
           xlabel="mean predicted probability (quantile bins)", ylabel="observed conversion rate")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    return _save(figure, path, "plot_calibration")


@_plot
def plot_convergence(curves: Mapping[str, Sequence[float]], path: PathLike, *,
                     title: str = "Objective per iteration", log_y: bool | None = None,
                     xlabel: str = "iteration", ylabel: str = "objective") -> Path:
    """Objective value per iteration for several runs (e.g. SGD step sizes, ALS training loss).

    Parameters
    ----------
    curves
        Run label (e.g. ``"step_size=1"``) -> objective values, iterations numbered from 1.
        NaN or infinite values (a diverging run) are left as gaps and the label says
        "(diverged)".
    path
        Where to write the PNG.
    log_y
        Logarithmic y-axis; by default when every finite value is positive and they span a
        factor of 100 or more.
    """
    series = _series(curves, "plot_convergence", "a sequence of objective values")
    values = {label: _vector(value, "plot_convergence", label) for label, value in series.items()}
    finite = np.concatenate([v[np.isfinite(v)] for v in values.values()])
    if len(finite) == 0:
        raise DataError("every objective value is NaN or infinite (plot_convergence): expected at least "
                        "one finite value. Every run diverged: try smaller step sizes")
    if log_y is None:
        log_y = bool(finite.min() > 0 and finite.max() / finite.min() >= 100)
    figure, ax = _axes()
    for label, y in values.items():
        diverged = not np.isfinite(y).all()
        ax.plot(np.arange(1, len(y) + 1), np.where(np.isfinite(y), y, np.nan), lw=1.5,
                marker="o" if len(y) <= 30 else None, ms=3,
                label=f"{label} (diverged)" if diverged else label)
    if log_y:
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3, which="both" if log_y else "major")
    ax.legend(loc="best")
    return _save(figure, path, "plot_convergence")


@_plot
def plot_tuning(result: Any, path: PathLike, *, param: str, metric: str, hue: str | None = None,
                higher_is_better: bool | None = None, log_x: bool | None = None,
                title: str | None = None) -> Path:
    """A validation metric (mean, with a ±std band) against one hyperparameter.

    Parameters
    ----------
    result
        The tuning result: an ``xarray.Dataset`` with the hyperparameters as dimensions and
        variables ``<metric>_mean`` and, optionally, ``<metric>_std`` (a plain ``<metric>``
        variable is read as the mean). Also accepted: a pandas DataFrame, either
        ``Dataset.to_dataframe()`` output or one row per trial, in which columns ending in
        ``_mean`` / ``_std`` (and ``metric`` itself) are metrics and the others hyperparameters.
    path
        Where to write the PNG.
    param
        The hyperparameter on the x-axis.
    metric
        E.g. ``"roc_auc"`` or ``"log_loss"``.
    hue
        Another hyperparameter drawn as one line per value instead of being reduced.
    higher_is_better
        Which way "best" goes. By default False for names containing loss, error, brier, mse,
        rmse, mae, ece, time or seconds, True otherwise.
    log_x
        Logarithmic x-axis; by default when the values are positive and span a factor of 20.
    title
        Default ``"<metric> vs <param>"``.

    Notes
    -----
    Every other dimension is reduced by taking, for each plotted point, the best mean over
    it (its std goes with it), as a tuner would pick them; the legend names those dims.
    """
    if hue == param:
        raise DataError(f"hue and param are both {param!r} (plot_tuning): expected another "
                        "hyperparameter for hue, or none")
    keep = (param,) if hue is None else (param, hue)
    mean, std, coords, others = _tuning_grid(result, "plot_tuning", metric, keep, higher_is_better)
    higher = _higher_is_better(metric, higher_is_better)
    x = np.asarray(coords[0])
    numeric = np.issubdtype(x.dtype, np.number)
    positions = x.astype(np.float64) if numeric else np.arange(len(x), dtype=np.float64)
    order = np.argsort(positions, kind="stable")
    if hue is None:
        mean, std, hue_values = mean[:, None], None if std is None else std[:, None], [None]
    else:
        hue_values = list(coords[1])
    figure, ax = _axes()
    reduced = f" (best over {', '.join(others)})" if others else ""
    for j, hue_value in enumerate(hue_values):
        label = f"{metric}{reduced}" if hue is None else f"{hue}={_format(hue_value)}"
        (line,) = ax.plot(positions[order], mean[order, j], "o-", lw=1.5, ms=4, label=label)
        if std is not None:
            low, high = (mean[:, j] - std[:, j])[order], (mean[:, j] + std[:, j])[order]
            ax.fill_between(positions[order], low, high, color=line.get_color(), alpha=0.2, lw=0)
            ax.errorbar(positions[order], mean[order, j], yerr=std[order, j], fmt="none",
                        ecolor=line.get_color(), capsize=3, lw=1)
    best = np.unravel_index(np.nanargmax(mean if higher else -mean), mean.shape)
    where = f"{param}={_format(x[best[0]])}"
    if hue is not None:
        where += f", {hue}={_format(hue_values[best[1]])}"
    ax.plot(positions[best[0]], mean[best], marker="*", ms=14, color="black", ls="none",
            label=f"best: {where} ({metric} {mean[best]:.4g})")
    if log_x is None:
        log_x = bool(numeric and positions.min() > 0 and positions.max() / positions.min() >= _LOG_SPAN)
    if log_x:
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(positions, [_format(v) for v in x])
    ax.set(title=title or f"{metric} vs {param}" + ("" if hue is None else reduced), xlabel=param,
           ylabel=f"validation {metric}" + (" (mean ± std)" if std is not None else ""))
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _save(figure, path, "plot_tuning")


@_plot
def plot_tuning_heatmap(result: Any, path: PathLike, *, params: Sequence[str], metric: str,
                        higher_is_better: bool | None = None, title: str | None = None) -> Path:
    """A validation metric over a grid of two hyperparameters, best cell outlined.

    Parameters
    ----------
    result
        The tuning result, as for :func:`plot_tuning`; other dimensions are reduced by
        taking the best mean over them.
    path
        Where to write the PNG.
    params
        Two hyperparameters: ``(x, y)``, on the columns and the rows (values in ascending
        order, one cell each).
    metric
        E.g. ``"roc_auc"``; cells show the mean (and ``±std`` when known).
    higher_is_better
        As for :func:`plot_tuning`; the colour map runs so that brighter is better.
    """
    import matplotlib
    from matplotlib.patches import Rectangle

    if isinstance(params, str) or len(params) != 2 or params[0] == params[1]:
        raise DataError(f"params is {params!r} (plot_tuning_heatmap): expected two different "
                        "hyperparameters, e.g. ('step_size', 'regularization'). Use plot_tuning for one")
    x, y = params
    mean, std, coords, others = _tuning_grid(result, "plot_tuning_heatmap", metric, (y, x), higher_is_better)
    higher = _higher_is_better(metric, higher_is_better)
    rows, columns = _sorted_order(coords[0]), _sorted_order(coords[1])
    mean = mean[np.ix_(rows, columns)]
    std = None if std is None else std[np.ix_(rows, columns)]
    row_values, column_values = np.asarray(coords[0])[rows], np.asarray(coords[1])[columns]
    cmap = matplotlib.colormaps["viridis" if higher else "viridis_r"].with_extremes(bad="0.85")
    figure, ax = _axes(figsize=(max(4.8, 1.0 + 0.9 * len(columns)), max(3.6, 1.2 + 0.6 * len(rows))))
    image = ax.imshow(np.ma.masked_invalid(mean), cmap=cmap, aspect="auto", origin="lower")
    low, high = np.nanmin(mean), np.nanmax(mean)
    for (i, j), value in np.ndenumerate(mean):
        if np.isnan(value):
            ax.text(j, i, "n/a", ha="center", va="center", fontsize=8, color="0.3")
            continue
        text = f"{value:.3g}" + ("" if std is None or np.isnan(std[i, j]) else f"\n±{std[i, j]:.2g}")
        shade = (value - low) / (high - low) if high > low else 0.5
        bright = shade > 0.5 if higher else shade < 0.5  # viridis is light at its top end
        ax.text(j, i, text, ha="center", va="center", fontsize=8, color="black" if bright else "white")
    best = np.unravel_index(np.nanargmax(mean if higher else -mean), mean.shape)
    ax.add_patch(Rectangle((best[1] - 0.5, best[0] - 0.5), 1, 1, fill=False, lw=2.5, ec="red"))
    ax.set_xticks(np.arange(len(columns)), [_format(v) for v in column_values])
    ax.set_yticks(np.arange(len(rows)), [_format(v) for v in row_values])
    reduced = f" (best over {', '.join(others)})" if others else ""
    ax.set(xlabel=x, ylabel=y, title=title or f"validation {metric}{reduced}")
    figure.colorbar(image, ax=ax, label=metric)
    return _save(figure, path, "plot_tuning_heatmap")


@_plot
def plot_ranking_metrics(metrics: Mapping[str, Mapping[str, float]], path: PathLike, *,
                         title: str = "Ranking metrics") -> Path:
    """Ranking metrics against the cut-off k, one panel per metric, one line per model.

    Parameters
    ----------
    metrics
        Model label -> ``{"precision@5": ..., "ndcg@10": ...}`` (what ``evaluate_ranking``
        returns). Keys without ``@k`` are not plotted, except ``auc``, shown in the legend.
    path
        Where to write the PNG.
    """
    series = _series(metrics, "plot_ranking_metrics", "a dict like {'ndcg@10': 0.31}")
    parsed: dict[str, dict[str, dict[int, float]]] = {}
    for label, values in series.items():
        if not isinstance(values, Mapping):
            raise DataError(f"the metrics of {label!r} are a {type(values).__name__} (plot_ranking_metrics): "
                            "expected a dict like {'ndcg@10': 0.31}")
        for key, value in values.items():
            name, at, cutoff = str(key).partition("@")
            if at and cutoff.isdigit():
                parsed.setdefault(name, {}).setdefault(label, {})[int(cutoff)] = float(value)
    if not parsed:
        raise DataError("no metric@k values to plot (plot_ranking_metrics): expected keys like "
                        "'precision@10' or 'ndcg@10', as evaluate_ranking returns")
    families = [f for f in _RANKING_TITLES if f in parsed] + sorted(set(parsed) - set(_RANKING_TITLES))
    n_columns = len(families) if len(families) <= 3 else 2
    n_rows = math.ceil(len(families) / n_columns)
    figure, grid = _grid(n_rows, n_columns, figsize=(max(6.4, 3.4 * n_columns + 0.4), 3.0 * n_rows + 0.8))
    colors = {label: f"C{i}" for i, label in enumerate(series)}
    for ax, family in zip(grid.flat, families):
        cutoffs: set[int] = set()
        top = 0.0
        for label, by_cutoff in parsed[family].items():
            ks = sorted(by_cutoff)
            cutoffs.update(ks)
            top = max([top, *(v for v in by_cutoff.values() if math.isfinite(v))])
            ax.plot(ks, [by_cutoff[k] for k in ks], "o-", lw=1.5, ms=4, color=colors[label])
        ax.set(title=_RANKING_TITLES.get(family, f"{family}@k"), xlabel="k (list length)",
               xticks=sorted(cutoffs))
        ax.set_ylim(0, top * 1.1 if top > 0 else 1)  # from 0, so models compare by height
        ax.grid(alpha=0.3)
    for ax in grid.flat[len(families):]:
        ax.set_visible(False)
    handles = [grid.flat[0].plot([], [], "o-", color=colors[label])[0] for label in series]
    labels = [f"{label} (AUC {series[label]['auc']:.3f})" if "auc" in series[label] else str(label)
              for label in series]
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4))
    figure.suptitle(title)
    return _save(figure, path, "plot_ranking_metrics")


# -- helpers -------------------------------------------------------------------------------


def _axes(figsize: tuple[float, float] = (6.4, 4.8)) -> tuple[Figure, Any]:
    """A figure on the Agg canvas (no pyplot) and its one Axes."""
    figure, grid = _grid(1, 1, figsize)
    return figure, grid[0, 0]


def _grid(n_rows: int, n_columns: int, figsize: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    """A figure on the Agg canvas (no pyplot) and a 2-D array of Axes."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, dpi=_DPI, layout="constrained")
    return figure, figure.subplots(n_rows, n_columns, squeeze=False)


def _save(figure: Figure, path: PathLike, caller: str) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # No "Software" entry, so the bytes do not depend on the matplotlib version string.
        figure.savefig(path, format="png", dpi=_DPI, metadata={"Software": None})
    except OSError as exc:
        raise OutputError(f"could not write the plot ({caller}: {path}): {exc}. Check that the "
                          "directory exists and is writable") from exc
    return path


def _series(data: Any, caller: str, expected: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise DataError(f"got a {type(data).__name__} ({caller}): expected a mapping of label -> {expected}, "
                        "e.g. {'logistic_regression': ...}")
    if not data:
        raise DataError(f"nothing to plot ({caller}): expected at least one label -> {expected}")
    return dict(data)


def _points(value: Any, caller: str, label: str, report_key: str, x_name: str,
            y_name: str) -> tuple[np.ndarray, np.ndarray, Mapping[str, Any]]:
    """``(x, y, report)`` of one series; ``report`` is ``{}`` unless a whole report was given."""
    value = _plain(value)
    report: Mapping[str, Any] = {}
    if isinstance(value, Mapping) and report_key in value:
        report, value = value, _plain(value[report_key])
        if value is None:
            raise DataError(f"the report of {label!r} has no {report_key} ({caller}): expected scores that "
                            "are probabilities; it was evaluated with probabilities=False")
    if isinstance(value, Mapping):
        if x_name not in value or y_name not in value:
            raise DataError(f"the data of {label!r} has keys {sorted(map(str, value))} ({caller}): expected "
                            f"{x_name!r} and {y_name!r}, or a whole classifier report")
        x, y = value[x_name], value[y_name]
    elif isinstance(value, tuple | list) and len(value) == 2:
        x, y = value
    else:
        raise DataError(f"the data of {label!r} is a {type(value).__name__} ({caller}): expected a "
                        f"classifier report, a mapping with {x_name!r} and {y_name!r}, or "
                        f"({x_name}, {y_name})")
    x, y = _vector(x, caller, label), _vector(y, caller, label)
    if x.shape != y.shape:
        raise DataError(f"{label!r} has {len(x)} {x_name} values but {len(y)} {y_name} values ({caller}): "
                        "expected one y per x")
    return x, y, report


def _plain(value: Any) -> Any:
    """Reports and their tables as dicts (``to_dict()``); DataFrames as dicts of columns."""
    if hasattr(value, "columns") and hasattr(value, "to_dict"):
        return {str(c): np.asarray(value[c]) for c in value.columns}
    if not isinstance(value, Mapping | tuple | list) and callable(getattr(value, "to_dict", None)):
        return value.to_dict()
    return value


def _vector(values: Any, caller: str, label: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{label!r} holds non-numeric values ({caller}): expected numbers") from exc
    if array.ndim != 1 or len(array) == 0:
        raise DataError(f"{label!r} has no points ({caller}, shape {array.shape}): expected a non-empty "
                        "1-D sequence of numbers")
    return array


def _higher_is_better(metric: str, given: bool | None) -> bool:
    if given is not None:
        return bool(given)
    return not any(token in metric.lower() for token in _LOWER_IS_BETTER)


def _tuning_grid(result: Any, caller: str, metric: str, keep: tuple[str, ...], higher_is_better: bool | None,
                 ) -> tuple[np.ndarray, np.ndarray | None, list[np.ndarray], list[str]]:
    """Mean and std over the ``keep`` dims, the best over every other dim; their coordinates."""
    dataset = _as_dataset(result, caller, metric)
    name = f"{metric}_mean" if f"{metric}_mean" in dataset.data_vars else metric
    if name not in dataset.data_vars:
        raise DataError(f"no metric {metric!r} in the tuning result ({caller}): expected a variable "
                        f"'{metric}_mean' (or '{metric}'); found {sorted(map(str, dataset.data_vars))}")
    mean = dataset[name]
    for dim in keep:
        if dim not in mean.dims:
            raise DataError(f"no hyperparameter {dim!r} in the tuning result ({caller}): expected one of "
                            f"{[str(d) for d in mean.dims]}")
    others = [str(d) for d in mean.dims if d not in keep]
    shape = tuple(mean.sizes[d] for d in keep)
    values = mean.transpose(*keep, *others).values.astype(np.float64).reshape(*shape, -1)
    if np.isnan(values).all():
        raise DataError(f"every value of {name!r} is NaN ({caller}): expected at least one finished trial")
    spread = None
    if f"{metric}_std" in dataset.data_vars:
        std = dataset[f"{metric}_std"].broadcast_like(mean)
        spread = std.transpose(*keep, *others).values.astype(np.float64).reshape(*shape, -1)
    # The best over the reduced dims, NaN (failed trials) never chosen; an all-NaN row stays NaN.
    sign = 1.0 if _higher_is_better(metric, higher_is_better) else -1.0
    signed = np.where(np.isnan(values), -np.inf, sign * values)
    best = signed.argmax(axis=-1)[..., None]
    reduced_mean = np.take_along_axis(values, best, axis=-1)[..., 0]
    reduced_std = None if spread is None else np.take_along_axis(spread, best, axis=-1)[..., 0]
    return reduced_mean, reduced_std, [np.asarray(mean[d].values) for d in keep], others


def _as_dataset(result: Any, caller: str, metric: str) -> xr.Dataset:
    import xarray as xr

    if isinstance(result, xr.Dataset):
        return result
    if isinstance(result, xr.DataArray):
        return result.to_dataset(name=str(result.name) if result.name is not None else metric)
    if hasattr(result, "columns") and hasattr(result, "set_index"):  # a pandas DataFrame
        import pandas as pd

        frame = result
        if not (isinstance(frame.index, pd.RangeIndex) and frame.index.name is None):
            frame = frame.reset_index()
        metrics = [c for c in frame.columns if str(c).endswith(("_mean", "_std")) or c == metric]
        params = [c for c in frame.columns if c not in metrics]
        if not params or not metrics:
            raise DataError(f"the tuning table has columns {list(map(str, frame.columns))} ({caller}): "
                            f"expected hyperparameter columns and '{metric}_mean' (and '{metric}_std')")
        if frame.duplicated(params).any():
            raise DataError(f"the tuning table repeats hyperparameter combinations ({caller}): expected one "
                            f"row per combination of {params}. Aggregate repeats into '{metric}_mean' and "
                            f"'{metric}_std' first")
        return xr.Dataset.from_dataframe(frame.set_index(params)[metrics])
    raise DataError(f"the tuning result is a {type(result).__name__} ({caller}): expected an xarray.Dataset "
                    "with hyperparameters as dimensions, or a pandas DataFrame")


def _sorted_order(values: Any) -> np.ndarray:
    array = np.asarray(values)
    if np.issubdtype(array.dtype, np.number):
        return np.argsort(array, kind="stable")
    return np.arange(len(array))


def _format(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return f"{value:g}"
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


# -- product analytics ---------------------------------------------------------------------


@_plot
def plot_forest(rows: Sequence[Mapping[str, Any]], path: PathLike, *,
                title: str = "A/B test: relative difference vs control") -> Path:
    """Forest plot of an A/B test: each (metric, variant)'s relative difference and 95% interval.

    Parameters
    ----------
    rows : ``metrics.json["abtest"]["results"]`` rows (``metric``, ``variant``,
        ``relative_difference``, ``relative_ci_low``, ``relative_ci_high``, ``significant``)
    """
    if not rows:
        raise DataError("nothing to plot (plot_forest): expected at least one result row")
    figure, axes = _axes((6.4, 1.2 + 0.55 * len(rows)))
    for i, row in enumerate(reversed(list(rows))):
        middle = 100 * float(row["relative_difference"])
        low, high = 100 * float(row["relative_ci_low"]), 100 * float(row["relative_ci_high"])
        color = "tab:green" if row.get("significant") else "tab:gray"
        axes.errorbar([middle], [i], xerr=[[middle - low], [high - middle]], fmt="o", color=color, capsize=4)
    axes.axvline(0, color="black", linewidth=0.8)
    axes.set_yticks(range(len(rows)), [f"{r['metric']} ({r['variant']})" for r in reversed(list(rows))])
    axes.set_xlabel("relative difference, % (green: significant after correction)")
    axes.set_title(title, fontsize=10)
    return _save(figure, path, "plot_forest")


def _has(rows: Any, name: str) -> bool:
    try:
        return name in rows
    except TypeError:
        return False


def _column(rows: Any, name: str, caller: str) -> np.ndarray:
    try:
        return np.asarray(rows[name])
    except (KeyError, TypeError, IndexError) as exc:
        raise DataError(f"the table has no column {name!r} ({caller})") from exc


@_plot
def plot_active_users(table: Any, path: PathLike, *, title: str = "Active users per day") -> Path:
    """DAU, WAU and MAU per day as lines, stickiness (DAU/MAU) on a second axis.

    Parameters
    ----------
    table : ``artifacts/kpis/active_users.parquet`` as a DataFrame (or a mapping of columns):
        ``date``, ``dau``, ``wau``, ``mau``, ``stickiness``, ``wau_complete``, ``mau_complete``.
        Days whose trailing window starts before the data are drawn dashed. Only ``date``
        and ``dau`` are required (the data KPIs of every run have no more): the other lines
        are drawn when their columns are there.
    """
    dates = _column(table, "date", "plot_active_users").astype("datetime64[ms]")
    if len(dates) == 0:
        raise DataError("nothing to plot (plot_active_users): expected at least one day")
    figure, axes = _axes((7.2, 4.2))
    for name, complete, color in (("dau", None, "tab:blue"), ("wau", "wau_complete", "tab:orange"),
                                  ("mau", "mau_complete", "tab:green")):
        if name != "dau" and not _has(table, name):
            continue
        values = _column(table, name, "plot_active_users").astype(float)
        done = np.ones(len(values), bool) if complete is None else \
            _column(table, complete, "plot_active_users").astype(bool)
        axes.plot(dates, np.where(done, values, np.nan), color=color, marker="o", markersize=3,
                  label=name.upper() if done.any() else None)
        axes.plot(dates, np.where(~done, values, np.nan), color=color, linestyle="--", alpha=0.6,
                  label=f"{name.upper()} (window starts before the data)" if (~done).any() else None)
    axes.set_ylabel("users")
    axes.set_ylim(bottom=0)
    handles, labels = axes.get_legend_handles_labels()
    if _has(table, "stickiness"):
        ratio = axes.twinx()
        ratio.plot(dates, _column(table, "stickiness", "plot_active_users").astype(float), color="tab:gray",
                   linewidth=1, label="stickiness DAU/MAU")
        ratio.set_ylim(0, 1.05)
        ratio.set_ylabel("DAU / MAU")
        extra = ratio.get_legend_handles_labels()
        handles, labels = handles + extra[0], labels + extra[1]
    axes.legend(handles, labels, fontsize=7, loc="lower left")
    figure.autofmt_xdate()
    axes.set_title(title, fontsize=10)
    return _save(figure, path, "plot_active_users")


@_plot
def plot_retention(matrix: Any, path: PathLike, *, title: str = "Retention by cohort",
                   value: str = "rate") -> Path:
    """Cohort heatmap: one row per cohort, one column per offset, the share retained.

    Parameters
    ----------
    matrix : ``artifacts/kpis/retention.parquet`` as a DataFrame: ``cohort``, ``offset``,
        ``cohort_users``, ``complete`` and ``value`` (``rate`` or ``rate_on_or_after``).
        Incomplete cells (not wholly observed) are left blank and marked ``*``.
    """
    import pandas as pd

    frame = pd.DataFrame({c: _column(matrix, c, "plot_retention")
                          for c in ("cohort", "offset", "cohort_users", "complete", value)})
    if frame.empty:
        raise DataError("nothing to plot (plot_retention): expected at least one cohort")
    cohorts = sorted(frame["cohort"].unique())[-30:]  # the latest 30 cohorts stay legible
    frame = frame[frame["cohort"].isin(cohorts)]
    offsets = np.arange(int(frame["offset"].max()) + 1)[:31]
    frame = frame[frame["offset"].isin(offsets)]
    grid = np.full((len(cohorts), len(offsets)), np.nan)
    incomplete = np.zeros_like(grid, dtype=bool)
    row_of = {c: i for i, c in enumerate(cohorts)}
    for cohort, offset, done, rate in zip(frame["cohort"], frame["offset"], frame["complete"], frame[value]):
        grid[row_of[cohort], int(offset)] = rate if done else np.nan
        incomplete[row_of[cohort], int(offset)] = not done
    figure, axes = _axes((1.6 + 0.5 * len(offsets), 1.4 + 0.32 * len(cohorts)))
    image = axes.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=1)
    for i in range(len(cohorts)):
        for j in range(len(offsets)):
            if incomplete[i, j]:
                axes.text(j, i, "*", ha="center", va="center", fontsize=7, color="gray")
            elif not np.isnan(grid[i, j]):
                axes.text(j, i, f"{100 * grid[i, j]:.0f}", ha="center", va="center", fontsize=6,
                          color="white" if grid[i, j] < 0.6 else "black")
    sizes = frame.groupby("cohort")["cohort_users"].first()
    axes.set_yticks(range(len(cohorts)), [f"{str(c)[:10]} ({int(sizes[c])})" for c in cohorts], fontsize=7)
    axes.set_xticks(range(len(offsets)), [str(o) for o in offsets], fontsize=7)
    axes.set_xlabel("periods after the cohort's (* not wholly observed)")
    figure.colorbar(image, ax=axes, label="share of the cohort retained")
    axes.set_title(title, fontsize=10)
    return _save(figure, path, "plot_retention")


@_plot
def plot_funnels(funnels: Mapping[str, Any], path: PathLike, *, title: str = "Funnels",
                 max_groups: int = 6) -> Path:
    """Funnel bars: per funnel, the share of entering users reaching each step.

    Parameters
    ----------
    funnels : funnel name -> ``artifacts/kpis/funnel_<name>.parquet`` as a DataFrame
        (``step``, ``step_index``, ``users``, ``conversion_overall``; with a breakdown its
        column, whose ``(all)`` group is drawn first and at most ``max_groups`` groups)
    """
    import pandas as pd

    if not funnels:
        raise DataError("nothing to plot (plot_funnels): expected at least one funnel")
    figure, grid = _grid(1, len(funnels), (5.2 * len(funnels), 4.0))
    for axes, (name, table) in zip(grid.ravel(), funnels.items()):
        frame = pd.DataFrame(table)
        known = {"step", "step_index", "users", "conversion_from_previous", "conversion_overall",
                 "median_seconds_from_previous", "median_seconds_from_start"}
        extra = [c for c in frame.columns if c not in known]
        group_column = extra[0] if extra else None
        groups = list(dict.fromkeys(frame[group_column]))[:max_groups] if group_column else [None]
        steps = list(dict.fromkeys(frame.sort_values("step_index")["step"]))
        width = 0.8 / len(groups)
        for g, group in enumerate(groups):
            part = frame if group is None else frame[frame[group_column] == group]
            part = part.set_index("step").reindex(steps)
            x = np.arange(len(steps)) + (g - (len(groups) - 1) / 2) * width
            bars = axes.bar(x, 100 * part["conversion_overall"].to_numpy(float), width,
                            label=None if group is None else str(group))
            if group is None or group == "(all)":
                for bar, users in zip(bars, part["users"].to_numpy()):
                    axes.annotate(f"{int(users):,}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                                  ha="center", va="bottom", fontsize=7)
        axes.set_xticks(range(len(steps)), steps, fontsize=8)
        axes.set_ylim(0, 110)
        axes.set_ylabel("% of users entering")
        axes.set_title(name, fontsize=9)
        if group_column:
            axes.legend(fontsize=7, title=group_column, title_fontsize=7)
    figure.suptitle(title, fontsize=10)
    return _save(figure, path, "plot_funnels")

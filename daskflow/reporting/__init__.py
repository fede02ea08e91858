"""The run report and its plots: each plot function writes one PNG from plain data and returns
its path; :func:`write_report` assembles ``report.html`` from the metrics and the PNGs.

Importing this package is cheap: matplotlib (and xarray) are imported on the first plot,
so the CLI and the workers do not pay for them. Figures are drawn on matplotlib's Agg
canvas without pyplot (no global state, no window, nothing to close, safe in threads) under
matplotlib's default style, so the same data gives the same bytes whatever the user's
``matplotlibrc``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from daskflow._lazy import attach

if TYPE_CHECKING:
    from daskflow.reporting._plots import (
        plot_active_users,
        plot_calibration,
        plot_convergence,
        plot_forest,
        plot_funnels,
        plot_gains,
        plot_precision_recall,
        plot_ranking_metrics,
        plot_retention,
        plot_roc,
        plot_tuning,
        plot_tuning_heatmap,
    )
    from daskflow.reporting._report import write_report

__getattr__, __dir__, __all__ = attach(__name__, {
    "_plots": ["plot_active_users", "plot_calibration", "plot_convergence", "plot_forest", "plot_funnels",
               "plot_gains", "plot_precision_recall", "plot_ranking_metrics", "plot_retention", "plot_roc",
               "plot_tuning", "plot_tuning_heatmap"],
    "_report": ["write_report"],
})

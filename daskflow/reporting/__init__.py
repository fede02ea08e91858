"""Plots for the run report: each function writes one PNG from plain data and returns its path.

Importing this package is cheap: matplotlib (and xarray) are imported on the first plot,
so the CLI and the workers do not pay for them. Figures are drawn on matplotlib's Agg
canvas without pyplot (no global state, no window, nothing to close, safe in threads) under
matplotlib's default style, so the same data gives the same bytes whatever the user's
``matplotlibrc``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daskflow.reporting._plots import (
        plot_calibration,
        plot_convergence,
        plot_gains,
        plot_ranking_metrics,
        plot_roc,
        plot_tuning,
        plot_tuning_heatmap,
    )

__all__ = ["plot_calibration", "plot_convergence", "plot_gains", "plot_ranking_metrics", "plot_roc",
           "plot_tuning", "plot_tuning_heatmap"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("daskflow.reporting._plots"), name)
    raise AttributeError(f"module 'daskflow.reporting' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

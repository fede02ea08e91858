"""What the tune stage writes, whichever pipeline it tunes (recommender or classifier).

``tune.target`` picks the search: daskflow.experiment._recommend (the recommender, on the
training part of the evaluation's holdout) or daskflow.experiment._conversion (the
classifiers, on their training rows). Both save and summarise the search here alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from daskflow.config import TuneConfig
from daskflow.experiment._rundir import plots_dir
from daskflow.experiment._state import RunState

if TYPE_CHECKING:
    from daskflow.tuning import SearchResult

__all__ = ["tuning_outputs"]


def tuning_outputs(spec: TuneConfig, result: SearchResult, state: RunState, metric: str) -> dict[str, Any]:
    """Save the search's Dataset, draw the tuning plots, and summarise the search for metrics.json."""
    from daskflow.reporting import plot_tuning, plot_tuning_heatmap

    result.to_netcdf(str(state.work_dir / "artifacts" / "tuning.nc"))
    plots = plots_dir(state.work_dir)
    if spec.method == "grid":
        numeric = [p for p in spec.params if np.asarray(result.dataset[p]).dtype.kind in "if"]
        for param in spec.params:
            plot_tuning(result.dataset, plots / f"tuning_{param}.png", param=param, metric=metric)
        if len(numeric) == 2 and len(spec.params) == 2:
            plot_tuning_heatmap(result.dataset, plots / "tuning_heatmap.png", params=tuple(numeric),
                                metric=metric)
        trials = int(np.prod([result.dataset.sizes[p] for p in spec.params]))
    else:
        trials = int(result.dataset.sizes["trial"])
    return {"target": spec.target, "method": spec.method, "metric": metric,
            "folds": int(result.dataset.sizes["fold"]), "trials": trials,
            "best_params": result.best_params, "best_cv_score": round(result.best_score, 6),
            "dataset": "artifacts/tuning.nc"}

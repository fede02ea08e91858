"""The recommender's test holdout, shared by the evaluate and tune stages.

The evaluation's leave-k-out splits are drawn once per run (``experiment.seed``,
``evaluate.splits``) and kept on the run's state. Tuning sees only their common training
part, the matrix without any split's held-out interactions, and draws its own folds from
it; the held-out interactions are touched once, to report the default-parameter model and
the tuned one side by side. Whether ``evaluate`` runs, and where the user writes it in
``experiment.stages``, does not change what tuning sees or reports.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from daskflow._errors import DataError
from daskflow.config import Config
from daskflow.experiment._state import RunState

if TYPE_CHECKING:
    from daskflow.features import InteractionMatrix

__all__ = ["evaluation_split", "holdout_scores", "tuning_matrix"]


def evaluation_split(config: Config, state: RunState,
                     split: str) -> tuple[InteractionMatrix, InteractionMatrix]:
    """The (train, test) matrices of the evaluation's ``split``, drawn once per run."""
    from daskflow.features import leave_k_out_split

    spec = config.evaluate
    assert state.matrix is not None
    if split not in state.splits:
        train, test = leave_k_out_split(state.matrix, k=spec.holdout, min_items=spec.min_user_items,
                                        mode=split, seed=config.experiment.seed, client=state.client)
        if test.nnz == 0:
            raise DataError(f"the {split} split held out nothing: no user has "
                            f"{spec.min_user_items}+ distinct items. Lower evaluate.min_user_items")
        state.splits[split] = (train, test)
    return state.splits[split]


def holdout_scores(config: Config, state: RunState, name: str, params: dict[str, Any], split: str, *,
                   k: tuple[int, ...], metrics: tuple[str, ...]) -> dict[str, Any]:
    """Ranking metrics on ``split``'s test holdout of model ``name`` fitted on its training part.

    Computed once per (model, parameters, split, cut-offs, metrics) in a run: evaluate and
    tune report the default-parameter model from the same fit.
    """
    from daskflow.evaluation import evaluate_ranking
    from daskflow.models import make_model

    key = (name, json.dumps(params, sort_keys=True, default=str), split, k, metrics)
    if key not in state.holdout_scores:
        train, test = evaluation_split(config, state, split)
        model = make_model(name, params).fit(train, client=state.client)
        scores = evaluate_ranking(model, train, test, k=k, metrics=metrics, client=state.client)
        state.holdout_scores[key] = {"holdout": config.evaluate.holdout, "test_nnz": test.nnz, **scores}
    return state.holdout_scores[key]


def tuning_matrix(config: Config, state: RunState) -> InteractionMatrix:
    """The interactions tuning may see: the matrix without any evaluation split's held-out items."""
    from daskflow.features import without_entries

    assert state.matrix is not None
    halves = [evaluation_split(config, state, split) for split in config.evaluate.splits]
    if len(halves) == 1:
        return halves[0][0]
    return without_entries(state.matrix, *(test for _, test in halves), client=state.client)

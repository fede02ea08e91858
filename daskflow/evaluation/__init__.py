"""Evaluation: ranking metrics over blocks (classification metrics come with the conversion model)."""

from daskflow.evaluation._kernels import METRICS, ranking_sums
from daskflow.evaluation._ranking import evaluate_ranking

__all__ = ["METRICS", "evaluate_ranking", "ranking_sums"]

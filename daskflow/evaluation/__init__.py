"""Evaluation: ranking metrics over blocks (classification metrics come with the conversion model)."""

from daskflow.evaluation._kernels import CUTOFF_METRICS, METRICS, auc_sums, ranking_sums
from daskflow.evaluation._ranking import evaluate_ranking

__all__ = ["CUTOFF_METRICS", "METRICS", "auc_sums", "evaluate_ranking", "ranking_sums"]

"""Evaluation: ranking metrics of recommenders; classification and targeting metrics of classifiers."""

from daskflow.evaluation._classification import (
    DEFAULT_DEPTHS,
    CalibrationTable,
    ClassifierReport,
    Curve,
    GainsTable,
    evaluate_classifier,
)
from daskflow.evaluation._cold_start import COLD_SCORERS, evaluate_cold_items
from daskflow.evaluation._ranking import evaluate_ranking
from daskflow.evaluation._ranking_kernels import CUTOFF_METRICS, METRICS, auc_sums, ranking_sums

__all__ = ["COLD_SCORERS", "CUTOFF_METRICS", "DEFAULT_DEPTHS", "METRICS", "CalibrationTable",
           "ClassifierReport", "Curve", "GainsTable", "auc_sums", "evaluate_classifier",
           "evaluate_cold_items", "evaluate_ranking", "ranking_sums"]

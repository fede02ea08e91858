"""Product analytics from the event logs: A/B tests, KPIs, retention and funnels.

The Dask passes (one pass over the logs per metric source) compute small sufficient
statistics on the cluster; the statistics themselves are Dask-free kernels
(``_abtest_kernels``) that the in-memory analysis and the tests share. Definitions and
references: docs/analytics.md.
"""

from daskflow.analytics._abtest import (
    BROADCAST_MAX_UNITS,
    AssignmentSummary,
    MetricSpec,
    abtest_sufficient_stats,
    assignment_units,
)
from daskflow.analytics._abtest_analysis import STATISTICS, SrmResult, analyze_abtest, results_table
from daskflow.analytics._abtest_kernels import (
    CORRECTIONS,
    KINDS,
    Comparison,
    SufficientStats,
    adjust_p_values,
    compare,
    confidence_sequence_halfwidth,
    cuped_theta,
    minimum_detectable_effect,
    srm_check,
    stats_from_values,
    variant_estimate,
)
from daskflow.analytics._kpis import FunnelStep, KpiTables, activity_kpis, funnel, user_days
from daskflow.analytics._kpis_kernels import (
    PERIODS,
    active_user_counts,
    active_users_table,
    funnel_table,
    lifecycle_counts,
    lifecycle_table,
    retention_counts,
    retention_table,
)
from daskflow.analytics._log_kpis import check_kpi_columns, log_kpis

__all__ = [
    "AssignmentSummary", "BROADCAST_MAX_UNITS", "CORRECTIONS", "Comparison", "KINDS", "MetricSpec",
    "STATISTICS", "SrmResult",
    "SufficientStats", "abtest_sufficient_stats", "adjust_p_values", "analyze_abtest", "assignment_units",
    "compare", "confidence_sequence_halfwidth", "cuped_theta", "minimum_detectable_effect",
    "results_table", "srm_check", "stats_from_values", "variant_estimate",
    "FunnelStep", "KpiTables", "PERIODS", "active_user_counts", "active_users_table", "activity_kpis",
    "funnel", "funnel_table", "lifecycle_counts", "lifecycle_table", "retention_counts", "retention_table",
    "user_days", "check_kpi_columns", "log_kpis",
]

"""From per-variant sufficient statistics to the A/B test's results (in memory, no Dask).

:func:`analyze_abtest` runs the sample-ratio-mismatch check first, then compares every
treatment variant with the control on every metric, corrects the p-values for the number
of comparisons, adds the anytime-valid confidence sequence and the minimum detectable
effect, and returns an ``xarray.Dataset`` with dimensions metric x variant x statistic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from daskflow.analytics._abtest_kernels import (
    SufficientStats,
    adjust_p_values,
    compare,
    confidence_sequence_halfwidth,
    cuped_theta,
    minimum_detectable_effect,
    srm_check,
    variant_estimate,
)

__all__ = ["STATISTICS", "SrmResult", "analyze_abtest", "results_table"]

#: The statistic coordinate of the results, in order. Differences are variant - control;
#: the control's row holds its own n, mean and interval and NaN for the rest.
STATISTICS = ("n", "mean", "mean_ci_low", "mean_ci_high", "difference", "standard_error", "ci_low",
              "ci_high", "p_value", "p_value_adjusted", "significant", "relative_difference",
              "relative_ci_low", "relative_ci_high", "cs_low", "cs_high", "sequential_significant",
              "mde", "mde_relative", "unadjusted_difference", "unadjusted_standard_error",
              "variance_reduction", "cuped_theta")


@dataclass(frozen=True)
class SrmResult:
    """The sample-ratio-mismatch check: chi-square of units per variant against the design."""

    statistic: float
    p_value: float
    threshold: float
    counts: dict[str, int]
    expected_shares: dict[str, float]

    @property
    def passed(self) -> bool:
        return self.p_value >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "chi_square": self.statistic, "p_value": self.p_value,
                "threshold": self.threshold, "units": self.counts, "expected_shares": self.expected_shares}


def analyze_abtest(stats: Mapping[str, Mapping[str, SufficientStats]], kinds: Mapping[str, str], *,
                   control: str, counts: Mapping[str, int],
                   expected_shares: Mapping[str, float] | None = None,
                   cuped: Mapping[str, bool] | None = None, alpha: float = 0.05, correction: str = "holm",
                   srm_threshold: float = 0.001, power: float = 0.8, planned_units: int | None = None
                   ) -> tuple[xr.Dataset, SrmResult]:
    """The A/B test's results from ``{metric: {variant: SufficientStats}}``.

    Parameters
    ----------
    kinds : ``{metric: "proportion" | "mean" | "ratio"}``
    counts : units per variant (what the SRM check tests)
    expected_shares : the design's share of each variant; default equal shares
    cuped : ``{metric: True}`` for the metrics adjusted by their pre-period covariate
    correction : ``none``, ``bonferroni``, ``holm`` or ``bh``, over every (metric, treatment)
    planned_units : total units the test is planned for: sets the MDE and the point where
        the confidence sequence is tightest; default the units so far

    Returns
    -------
    results : Dataset with variable ``value`` (metric x variant x statistic) and the SRM
        check, alpha and correction in its attributes
    srm : the sample-ratio-mismatch check
    """
    variants = [control] + sorted(v for v in counts if v != control)
    shares = dict(expected_shares or {v: 1.0 / len(variants) for v in variants})
    statistic, p_srm = srm_check({v: counts[v] for v in variants}, shares)
    srm = SrmResult(statistic, p_srm, srm_threshold, {v: int(counts[v]) for v in variants},
                    {v: shares[v] / sum(shares.values()) for v in variants})
    total = sum(counts.values())
    planned = planned_units or total
    metrics = list(stats)
    values = np.full((len(metrics), len(variants), len(STATISTICS)), np.nan)
    at = {name: i for i, name in enumerate(STATISTICS)}
    tested: list[tuple[int, int]] = []
    for m, metric in enumerate(metrics):
        kind = kinds[metric]
        per_variant = stats[metric]
        theta = covariate_mean = 0.0
        if cuped and cuped.get(metric):
            pooled = _pool(per_variant.values())
            theta, covariate_mean = cuped_theta(pooled), pooled.sum_c / pooled.n
        base = variant_estimate(per_variant[control], kind)
        for v, variant in enumerate(variants):
            s = per_variant[variant]
            values[m, v, at["n"]] = s.n
            if variant == control:
                result = compare(s, per_variant[variants[1]], kind, alpha=alpha, theta=theta,
                                 covariate_mean=covariate_mean)
                values[m, v, at["mean"]] = result.control_mean
                values[m, v, [at["mean_ci_low"], at["mean_ci_high"]]] = result.control_ci
                continue
            result = compare(per_variant[control], s, kind, alpha=alpha, theta=theta,
                             covariate_mean=covariate_mean)
            row = values[m, v]
            row[at["mean"]] = result.treatment_mean
            row[[at["mean_ci_low"], at["mean_ci_high"]]] = result.treatment_ci
            row[at["difference"]], row[at["standard_error"]] = result.difference, result.standard_error
            row[[at["ci_low"], at["ci_high"]]] = result.ci
            row[at["p_value"]] = result.p_value
            row[at["relative_difference"]] = result.relative_difference
            row[[at["relative_ci_low"], at["relative_ci_high"]]] = result.relative_ci
            n_pair = per_variant[control].n + s.n
            half = confidence_sequence_halfwidth(result.standard_error, n_pair,
                                                 planned * (shares[control] + shares[variant])
                                                 / sum(shares.values()), alpha)
            row[at["cs_low"]], row[at["cs_high"]] = result.difference - half, result.difference + half
            row[at["sequential_significant"]] = float(not row[at["cs_low"]] <= 0 <= row[at["cs_high"]])
            planned_pair = [planned * shares[x] / sum(shares.values()) for x in (control, variant)]
            mde = minimum_detectable_effect(base.variance, planned_pair, alpha=alpha, power=power)
            row[at["mde"]] = mde
            row[at["mde_relative"]] = mde / abs(base.mean) if base.mean else math.nan
            if theta:
                plain = compare(per_variant[control], s, kind, alpha=alpha)
                row[at["unadjusted_difference"]] = plain.difference
                row[at["unadjusted_standard_error"]] = plain.standard_error
                row[at["variance_reduction"]] = 1 - result.standard_error ** 2 / plain.standard_error ** 2
                row[at["cuped_theta"]] = theta
            tested.append((m, v))
    adjusted = adjust_p_values([values[m, v, at["p_value"]] for m, v in tested], correction)
    for (m, v), p in zip(tested, adjusted):
        values[m, v, at["p_value_adjusted"]] = p
        values[m, v, at["significant"]] = float(p < alpha)
    dataset = xr.Dataset(
        {"value": (("metric", "variant", "statistic"), values)},
        coords={"metric": metrics, "variant": variants, "statistic": list(STATISTICS),
                "kind": ("metric", [kinds[m] for m in metrics])},
        attrs={"control": control, "alpha": alpha, "correction": correction, "srm_passed": int(srm.passed),
               "srm_p_value": srm.p_value, "srm_chi_square": srm.statistic, "srm_threshold": srm_threshold,
               "power": power, "planned_units": planned,
               "sequential": "normal-mixture confidence sequence (Howard et al. 2021)"})
    return dataset, srm


def _pool(stats: Any) -> SufficientStats:
    total = None
    for s in stats:
        total = s if total is None else total + s
    assert total is not None
    return total


def results_table(results: xr.Dataset) -> list[dict[str, Any]]:
    """One row per (metric, treatment variant) for metrics.json and the report."""
    rows = []
    control = results.attrs["control"]
    for metric in results.metric.values:
        for variant in results.variant.values:
            if variant == control:
                continue
            cell = results["value"].sel(metric=metric, variant=variant)
            row: dict[str, Any] = {"metric": str(metric), "variant": str(variant),
                                   "kind": str(results.kind.sel(metric=metric).item())}
            base = results["value"].sel(metric=metric, variant=control)
            row["control_mean"] = float(base.sel(statistic="mean"))
            for name in STATISTICS:
                value = float(cell.sel(statistic=name))
                if name in ("significant", "sequential_significant"):
                    row[name] = bool(value) if not math.isnan(value) else None
                elif not math.isnan(value):
                    row[name] = int(value) if name == "n" else value
            rows.append(row)
    return rows

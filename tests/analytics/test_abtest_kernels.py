"""A/B test statistics: equal to statsmodels/scipy, and calibrated over simulated experiments.

spotify-confidence (the issue's peer) requires pandas < 3, which this project's
environment cannot take; its equality is checked by benchmarks/confidence_peer.py in a
separate environment (docs/analytics.md). Here the same numbers are compared with
statsmodels and scipy, which spotify-confidence itself calls.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st
from statsmodels.stats import proportion
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from daskflow.analytics import (
    adjust_p_values,
    compare,
    confidence_sequence_halfwidth,
    cuped_theta,
    minimum_detectable_effect,
    srm_check,
    stats_from_values,
)

TOL = 1e-9


def close(a: float, b: float) -> None:
    assert abs(a - b) <= TOL * max(1.0, abs(b)), (a, b)


@pytest.mark.parametrize("seed", range(5))
def test_proportions_equal_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = rng.integers(300, 5000, 2)
    control, treatment = rng.random(n[0]) < 0.08, rng.random(n[1]) < 0.1
    result = compare(stats_from_values(control), stats_from_values(treatment), "proportion")
    counts = (treatment.sum(), n[1], control.sum(), n[0])
    low, high = proportion.confint_proportions_2indep(*counts, method="wald", compare="diff")
    test = proportion.test_proportions_2indep(*counts, method="wald", compare="diff", correction=False)
    close(result.difference, treatment.mean() - control.mean())
    close(result.ci[0], low)
    close(result.ci[1], high)
    close(result.p_value, test.pvalue)
    for values, interval in ((control, result.control_ci), (treatment, result.treatment_ci)):
        expected = proportion.proportion_confint(values.sum(), len(values), method="normal")
        close(interval[0], expected[0])
        close(interval[1], expected[1])


@pytest.mark.parametrize("seed", range(5))
def test_means_equal_welch(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = rng.integers(50, 3000, 2)
    control, treatment = rng.lognormal(1, 1, n[0]), rng.lognormal(1.1, 1.3, n[1])
    result = compare(stats_from_values(control), stats_from_values(treatment), "mean")
    means = CompareMeans(DescrStatsW(treatment), DescrStatsW(control))
    low, high = means.tconfint_diff(usevar="unequal")
    welch = st.ttest_ind(treatment, control, equal_var=False)
    close(result.ci[0], low)
    close(result.ci[1], high)
    close(result.p_value, welch.pvalue)
    close(result.degrees_of_freedom, welch.df)
    for values, interval in ((control, result.control_ci), (treatment, result.treatment_ci)):
        expected = DescrStatsW(values).tconfint_mean()
        close(interval[0], expected[0])
        close(interval[1], expected[1])


def test_ratio_and_relative_difference_by_the_delta_method() -> None:
    """Against the delta method written out on the raw per-unit values (Deng et al. 2018)."""
    rng = np.random.default_rng(11)
    groups = []
    for n, rate in ((2_000, 3.0), (2_200, 3.3)):
        sessions = rng.poisson(4, n) + 1.0
        groups.append((rng.gamma(rate * sessions, 1.0), sessions))
    (xc, yc), (xt, yt) = groups
    result = compare(stats_from_values(xc, y=yc), stats_from_values(xt, y=yt), "ratio")

    def ratio_and_variance(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        ratio = x.sum() / y.sum()
        covariance = np.cov(x, y)  # ddof=1
        variance = (covariance[0, 0] - 2 * ratio * covariance[0, 1] + ratio ** 2 * covariance[1, 1]) \
            / (y.mean() ** 2 * len(x))
        return ratio, variance

    (rc, vc), (rt, vt) = ratio_and_variance(xc, yc), ratio_and_variance(xt, yt)
    close(result.control_mean, rc)
    close(result.difference, rt - rc)
    close(result.standard_error, math.sqrt(vc + vt))
    close(result.p_value, 2 * st.norm.sf(abs(rt - rc) / math.sqrt(vc + vt)))
    relative_se = math.sqrt(vt / rc ** 2 + rt ** 2 * vc / rc ** 4)
    close(result.relative_difference, rt / rc - 1)
    close(result.relative_ci[1], rt / rc - 1 + st.norm.ppf(0.975) * relative_se)


@pytest.mark.parametrize("method, name", [("bonferroni", "bonferroni"), ("holm", "holm"),
                                          ("bh", "fdr_bh")])
def test_corrections_equal_statsmodels(method: str, name: str) -> None:
    rng = np.random.default_rng(3)
    for size in (1, 2, 7, 40):
        p = np.concatenate([rng.random(size) ** 3, [0.01, 0.01]])  # ties included
        np.testing.assert_allclose(adjust_p_values(p, method), multipletests(p, method=name)[1],
                                   rtol=0, atol=1e-12)
    np.testing.assert_array_equal(adjust_p_values([0.2, 0.01], "none"), [0.2, 0.01])


def test_srm_check_equals_scipy_chisquare() -> None:
    counts = {"control": 5_120, "treatment": 4_880, "b": 5_050}
    shares = {"control": 0.4, "treatment": 0.3, "b": 0.3}
    statistic, p_value = srm_check(counts, shares)
    expected = st.chisquare([5_120, 4_880, 5_050], np.array([0.4, 0.3, 0.3]) * 15_050)
    close(statistic, expected.statistic)
    close(p_value, expected.pvalue)


def test_cuped_matches_the_regression_adjustment_and_the_planted_correlation() -> None:
    """CUPED's variance reduction is rho**2 for a covariate with correlation rho (Deng et al. 2013)."""
    rng = np.random.default_rng(5)
    rho, n = 0.6, 40_000
    arms = []
    for shift in (0.0, 0.05):
        c = rng.normal(size=n)
        x = shift + rho * c + math.sqrt(1 - rho ** 2) * rng.normal(size=n)
        arms.append((x, c))
    pooled_x = np.concatenate([arms[0][0], arms[1][0]])
    pooled_c = np.concatenate([arms[0][1], arms[1][1]])
    control, treatment = (stats_from_values(x, c=c) for x, c in arms)
    theta = cuped_theta(control + treatment)
    close(theta, np.cov(pooled_x, pooled_c, ddof=0)[0, 1] / pooled_c.var())
    mean_c = pooled_c.mean()
    adjusted = compare(control, treatment, "mean", theta=theta, covariate_mean=mean_c)
    plain = compare(control, treatment, "mean")
    by_hand = [x - theta * (c - mean_c) for x, c in arms]
    close(adjusted.difference, by_hand[1].mean() - by_hand[0].mean())
    close(adjusted.standard_error, math.sqrt(sum(v.var(ddof=1) / len(v) for v in by_hand)))
    reduction = 1 - adjusted.standard_error ** 2 / plain.standard_error ** 2
    assert abs(reduction - rho ** 2) < 0.015, reduction


# -- calibration over simulated experiments (in memory, from the kernels) -------------------

N_SIMULATIONS = 1_000


def _simulate(rng: np.random.Generator, kind: str, effect: float, n: int = 800
              ) -> tuple[object, object]:
    if kind == "proportion":
        return (stats_from_values(rng.random(n) < 0.1), stats_from_values(rng.random(n) < 0.1 + effect))
    return (stats_from_values(rng.lognormal(0, 0.8, n)),
            stats_from_values(rng.lognormal(0, 0.8, n) + effect))


@pytest.mark.parametrize("kind", ["proportion", "mean"])
def test_intervals_cover_the_true_effect(kind: str) -> None:
    rng = np.random.default_rng(2026)
    effect = 0.02 if kind == "proportion" else 0.1
    covered = 0
    for _ in range(N_SIMULATIONS):
        control, treatment = _simulate(rng, kind, effect)
        low, high = compare(control, treatment, kind).ci
        covered += low <= effect <= high
    assert abs(covered / N_SIMULATIONS - 0.95) <= 0.02, covered


@pytest.mark.parametrize("kind", ["proportion", "mean"])
def test_a_a_false_positive_rate_at_a_fixed_horizon(kind: str) -> None:
    rng = np.random.default_rng(7)
    positives = sum(compare(*_simulate(rng, kind, 0.0), kind).p_value < 0.05 for _ in range(N_SIMULATIONS))
    assert abs(positives / N_SIMULATIONS - 0.05) <= 0.02, positives


def test_daily_peeking_with_the_confidence_sequence_stays_below_alpha() -> None:
    """A/A tests looked at every day for 14 days: the fixed-horizon test inflates, the sequence does not."""
    rng = np.random.default_rng(99)
    days, per_day, n_simulations = 14, 150, 600
    naive = sequential = 0
    for _ in range(n_simulations):
        control, treatment = rng.lognormal(0, 0.8, (2, days * per_day))
        rejected_naive = rejected_sequential = False
        for day in range(1, days + 1):
            seen = day * per_day
            result = compare(stats_from_values(control[:seen]), stats_from_values(treatment[:seen]), "mean")
            half = confidence_sequence_halfwidth(result.standard_error, 2 * seen, 2 * days * per_day)
            rejected_naive |= result.p_value < 0.05
            rejected_sequential |= abs(result.difference) > half
        naive += rejected_naive
        sequential += rejected_sequential
    assert sequential / n_simulations <= 0.05, sequential
    assert naive / n_simulations > 0.1, naive  # peeking at a fixed-horizon test inflates errors


def test_minimum_detectable_effect_has_its_power() -> None:
    """A shift of the MDE is detected with the planned power (the MDE takes the treatment's
    variance equal to the control's, as a shift of the mean leaves it)."""
    rng = np.random.default_rng(1)
    n = 1_000
    mde = minimum_detectable_effect(0.8 ** 2, [n, n], alpha=0.05, power=0.8)
    detected = sum(compare(stats_from_values(rng.normal(0, 0.8, n)),
                           stats_from_values(rng.normal(mde, 0.8, n)), "mean").p_value < 0.05
                   for _ in range(N_SIMULATIONS))
    assert abs(detected / N_SIMULATIONS - 0.8) <= 0.03, (mde, detected)

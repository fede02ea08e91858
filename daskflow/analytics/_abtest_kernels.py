"""A/B test statistics from per-variant sufficient statistics (NumPy and SciPy, no Dask).

Everything here starts from :class:`SufficientStats` — unit counts, sums, sums of squares
and cross products — which one pass over the logs computes on the cluster. The formulas
and the conventions they follow (population variance for a proportion, sample variance
and Welch's degrees of freedom for a mean, as spotify-confidence computes them) are
written out in docs/analytics.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

__all__ = ["SufficientStats", "Comparison", "stats_from_values", "variant_estimate", "compare",
           "cuped_theta", "srm_check", "adjust_p_values", "confidence_sequence_halfwidth",
           "mixture_ratio", "minimum_detectable_effect", "KINDS", "CORRECTIONS"]

#: Metric kinds: a share of units (z-test), a mean per unit (Welch t-test), a ratio of two
#: per-unit sums (delta method, z-test).
KINDS = ("proportion", "mean", "ratio")
#: Multiple-testing corrections of :func:`adjust_p_values`.
CORRECTIONS = ("none", "bonferroni", "holm", "bh")


@dataclass(frozen=True)
class SufficientStats:
    """Sums over the units of one variant, for one metric.

    ``x`` is the unit's metric value (the numerator of a ratio), ``y`` the ratio's
    denominator and ``c`` the pre-period covariate of CUPED; sums that a metric does not
    use are 0.
    """

    n: float
    sum_x: float
    sum_x2: float
    sum_y: float = 0.0
    sum_y2: float = 0.0
    sum_xy: float = 0.0
    sum_c: float = 0.0
    sum_c2: float = 0.0
    sum_xc: float = 0.0

    def __add__(self, other: SufficientStats) -> SufficientStats:
        return SufficientStats(*(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__))


def stats_from_values(x: np.ndarray, *, y: np.ndarray | None = None,
                      c: np.ndarray | None = None) -> SufficientStats:
    """The sufficient statistics of per-unit values held in memory (tests, simulations)."""
    x = np.asarray(x, dtype=float)
    y = np.zeros_like(x) if y is None else np.asarray(y, dtype=float)
    c = np.zeros_like(x) if c is None else np.asarray(c, dtype=float)
    return SufficientStats(float(len(x)), x.sum(), (x * x).sum(), y.sum(), (y * y).sum(), (x * y).sum(),
                           c.sum(), (c * c).sum(), (x * c).sum())


@dataclass(frozen=True)
class _Estimate:
    mean: float
    variance: float          # of one unit's value (or linearised value, for a ratio)
    n: float

    @property
    def variance_of_mean(self) -> float:
        return self.variance / self.n


def _moments(s: SufficientStats) -> tuple[float, float, float, float, float, float]:
    """Means of x, y, c and sample (n - 1) variances/covariances of x, y and (x, c), (c)."""
    n = s.n
    mean_x, mean_y, mean_c = s.sum_x / n, s.sum_y / n, s.sum_c / n
    var_x = (s.sum_x2 - s.sum_x ** 2 / n) / (n - 1)
    var_y = (s.sum_y2 - s.sum_y ** 2 / n) / (n - 1)
    cov_xy = (s.sum_xy - s.sum_x * s.sum_y / n) / (n - 1)
    return mean_x, mean_y, mean_c, var_x, var_y, cov_xy


def variant_estimate(s: SufficientStats, kind: str, *, theta: float = 0.0,
                     covariate_mean: float = 0.0) -> _Estimate:
    """Point estimate and per-unit variance of one variant's metric.

    ``proportion``: the share p and p(1 - p). ``mean``: the mean and the sample variance.
    ``ratio``: sum x / sum y and the delta-method variance of the linearised unit value
    (x - R y) / mean(y) (Deng, Knoblich & Lu 2018). With ``theta`` (CUPED, Deng et al.
    2013) the value is x - theta (c - covariate_mean).
    """
    if s.n < 2:
        raise ValueError(f"a variant needs at least 2 units, got {s.n:g}")
    mean_x, mean_y, mean_c, var_x, var_y, cov_xy = _moments(s)
    n = s.n
    if kind == "ratio":
        if s.sum_y == 0:
            raise ValueError("the ratio's denominator sums to 0")
        ratio = s.sum_x / s.sum_y
        variance = (var_x - 2 * ratio * cov_xy + ratio ** 2 * var_y) / mean_y ** 2
        return _Estimate(ratio, max(variance, 0.0), n)
    if theta:
        var_c = (s.sum_c2 - s.sum_c ** 2 / n) / (n - 1)
        cov_xc = (s.sum_xc - s.sum_x * s.sum_c / n) / (n - 1)
        variance = var_x - 2 * theta * cov_xc + theta ** 2 * var_c
        return _Estimate(mean_x - theta * (mean_c - covariate_mean), max(variance, 0.0), n)
    if kind == "proportion":
        # Population variance p(1 - p), as a z-test of two proportions takes it.
        return _Estimate(mean_x, max(s.sum_x2 / n - mean_x ** 2, 0.0), n)
    if kind == "mean":
        return _Estimate(mean_x, max(var_x, 0.0), n)
    raise ValueError(f"unknown metric kind {kind!r}: expected one of {', '.join(KINDS)}")


def cuped_theta(pooled: SufficientStats) -> float:
    """CUPED's theta = cov(x, c) / var(c) over all units of all variants (Deng et al. 2013)."""
    n = pooled.n
    var_c = pooled.sum_c2 - pooled.sum_c ** 2 / n
    if var_c <= 0:
        return 0.0
    return (pooled.sum_xc - pooled.sum_x * pooled.sum_c / n) / var_c


@dataclass(frozen=True)
class Comparison:
    """Treatment against control for one metric (differences are treatment - control)."""

    control_mean: float
    treatment_mean: float
    control_ci: tuple[float, float]
    treatment_ci: tuple[float, float]
    difference: float
    standard_error: float
    ci: tuple[float, float]
    p_value: float
    relative_difference: float
    relative_standard_error: float
    relative_ci: tuple[float, float]
    degrees_of_freedom: float
    test: str
    extra: dict[str, float] = field(default_factory=dict)


def _welch_df(a: _Estimate, b: _Estimate) -> float:
    va, vb = a.variance_of_mean, b.variance_of_mean
    denominator = va ** 2 / (a.n - 1) + vb ** 2 / (b.n - 1)
    return (va + vb) ** 2 / denominator if denominator > 0 else math.inf


def compare(control: SufficientStats, treatment: SufficientStats, kind: str, *, alpha: float = 0.05,
            theta: float = 0.0, covariate_mean: float = 0.0) -> Comparison:
    """Difference, relative difference, confidence intervals and two-sided p-value.

    A proportion, a ratio and any CUPED-adjusted metric use the normal distribution (a
    z-test); an unadjusted mean uses Welch's t with Welch-Satterthwaite degrees of
    freedom. The relative difference's interval is the delta method's (Deng, Knoblich
    & Lu 2018): var(t / c - 1) ~ var(t) / c**2 + t**2 var(c) / c**4.
    """
    a = variant_estimate(control, kind, theta=theta, covariate_mean=covariate_mean)
    b = variant_estimate(treatment, kind, theta=theta, covariate_mean=covariate_mean)
    welch = kind == "mean" and not theta
    df = _welch_df(a, b) if welch else math.inf
    quantile = stats.t.ppf(1 - alpha / 2, df) if welch else stats.norm.ppf(1 - alpha / 2)
    difference = b.mean - a.mean
    se = math.sqrt(a.variance_of_mean + b.variance_of_mean)
    if se > 0:
        statistic = difference / se
        p_value = float(2 * (stats.t.sf(abs(statistic), df) if welch else stats.norm.sf(abs(statistic))))
    else:
        p_value = 1.0 if difference == 0 else 0.0

    def interval(mean: float, variance: float, dof: float) -> tuple[float, float]:
        q = stats.t.ppf(1 - alpha / 2, dof) if welch else stats.norm.ppf(1 - alpha / 2)
        half = q * math.sqrt(variance)
        return mean - half, mean + half

    if a.mean != 0:
        relative = b.mean / a.mean - 1
        relative_se = math.sqrt(b.variance_of_mean / a.mean ** 2
                                + b.mean ** 2 * a.variance_of_mean / a.mean ** 4)
    else:
        relative, relative_se = math.nan, math.nan
    z = stats.norm.ppf(1 - alpha / 2)
    return Comparison(
        control_mean=a.mean, treatment_mean=b.mean,
        control_ci=interval(a.mean, a.variance_of_mean, a.n - 1),
        treatment_ci=interval(b.mean, b.variance_of_mean, b.n - 1),
        difference=difference, standard_error=se,
        ci=(difference - quantile * se, difference + quantile * se), p_value=p_value,
        relative_difference=relative, relative_standard_error=relative_se,
        relative_ci=(relative - z * relative_se, relative + z * relative_se),
        degrees_of_freedom=df, test="welch_t" if welch else "z",
        extra={"control_variance": a.variance, "treatment_variance": b.variance})


def srm_check(counts: Mapping[str, float], expected_shares: Mapping[str, float]) -> tuple[float, float]:
    """Pearson's chi-square goodness of fit of the units per variant: (statistic, p-value)."""
    names = list(counts)
    observed = np.array([counts[name] for name in names], dtype=float)
    shares = np.array([expected_shares[name] for name in names], dtype=float)
    expected = observed.sum() * shares / shares.sum()
    statistic = float(((observed - expected) ** 2 / expected).sum())
    return statistic, float(stats.chi2.sf(statistic, len(names) - 1))


def adjust_p_values(p_values: Sequence[float], method: str) -> np.ndarray:
    """Family-wise (Bonferroni, Holm) or false-discovery-rate (Benjamini-Hochberg) adjusted p-values."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if method == "none" or m == 0:
        return p.copy()
    if method == "bonferroni":
        return np.minimum(p * m, 1.0)
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        # Step-down: the k-th smallest is multiplied by (m - k + 1), then made monotone.
        adjusted = np.maximum.accumulate(np.minimum((m - np.arange(m)) * ranked, 1.0))
    elif method == "bh":
        # Step-up: the k-th smallest is multiplied by m / k, then made monotone from the top.
        adjusted = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
        adjusted = np.minimum(adjusted, 1.0)
    else:
        raise ValueError(f"unknown correction {method!r}: expected one of {', '.join(CORRECTIONS)}")
    out = np.empty(m)
    out[order] = adjusted
    return out


def mixture_ratio(alpha: float) -> float:
    """The mixture's variance, in units of the planned sample, that makes the sequence tightest there.

    The width at the planned sample N is proportional to sqrt((1 + r) log((1 + r) / (r alpha**2)))
    with r = eta / N; it depends on alpha only, so it is minimised once.
    """
    result = optimize.minimize_scalar(lambda log_r: (1 + math.exp(log_r))
                                      * math.log((1 + math.exp(log_r)) / (math.exp(log_r) * alpha ** 2)),
                                      bounds=(-12.0, 6.0), method="bounded", options={"xatol": 1e-10})
    return math.exp(result.x)


def confidence_sequence_halfwidth(standard_error: float | np.ndarray, n: float | np.ndarray,
                                  planned_n: float, alpha: float = 0.05) -> float | np.ndarray:
    """Half-width of an anytime-valid confidence sequence for a difference in means.

    The two-sided normal-mixture boundary of Howard, Ramdas, McAuliffe & Sekhon (2021,
    "Time-uniform, nonparametric, nonasymptotic confidence sequences"): with a N(0, 1/rho)
    mixture over the drift, |S_n| < sqrt((V_n + rho) log((V_n + rho) / (rho alpha**2)))
    for every n at once with probability 1 - alpha. With V_n = n sigma**2 and rho =
    eta sigma**2 it becomes se * sqrt((1 + eta / n) log((n + eta) / (eta alpha**2))), with
    eta tuned to be tightest at ``planned_n`` units. Looking at it after every day (or
    every unit) keeps the false-positive rate at most alpha.
    """
    eta = mixture_ratio(alpha) * planned_n
    n = np.asarray(n, dtype=float)
    width = np.asarray(standard_error) * np.sqrt((1 + eta / n) * np.log((n + eta) / (eta * alpha ** 2)))
    return float(width) if width.ndim == 0 else width


def minimum_detectable_effect(unit_variance: float, n_per_variant: Sequence[float], *,
                              alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest absolute difference a two-sided test at ``alpha`` detects with ``power``.

    (z_{1 - alpha/2} + z_{power}) * sqrt(variance * (1/n_control + 1/n_treatment)).
    """
    n_control, n_treatment = n_per_variant
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return float(z * math.sqrt(unit_variance * (1 / n_control + 1 / n_treatment)))

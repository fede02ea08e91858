"""The solvers of the linear classifiers: Newton, L-BFGS and Spark-style mini-batch SGD.

They see the data only through a *pass* function (``_block_kernels.block_pass`` summed
over blocks, by threads in memory or by Dask tasks), so one implementation serves both.
Pure NumPy/SciPy: no Dask import.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from daskflow._errors import ParameterError
from daskflow.models.linear._block_kernels import EncodedBlock, block_pass

__all__ = ["SOLVERS", "Objective", "Result", "Settings", "lbfgs", "newton", "platt", "sgd"]


# -- solvers: NumPy/SciPy over a pass function (in memory or on Dask, they cannot tell) ------


@dataclass(frozen=True)
class Settings:
    """The hyperparameters a solver reads (validated by the estimator)."""

    C: float
    fit_intercept: bool
    tol: float
    max_iter: int
    step_size: float = 1.0
    mini_batch_fraction: float = 1.0
    l1_ratio: float = 0.0
    seed: int = 0


@dataclass
class Result:
    """A solver's coefficients (w, then b if fitted) and its per-iteration record."""

    coef: np.ndarray
    loss_curve: list[float]
    iteration_seconds: list[float]
    n_iter: int
    converged: bool


#: Armijo's sufficient-decrease constant and the smallest step the line search tries.
_ARMIJO, _MIN_STEP = 1e-4, 2.0**-30


class Objective:
    """f, ∇f and ∇²f from a pass: the loss sums times C, plus ½‖w‖² (b is not penalised)."""

    def __init__(self, run: Callable[..., np.ndarray], n_features: int, weight_sum: float,
                 settings: Settings) -> None:
        self.run, self.C, self.d = run, settings.C, n_features
        self.p = n_features + int(settings.fit_intercept)
        self.scale = settings.C * weight_sum   # f = scale · F, F the normalised objective

    def __call__(self, coef: np.ndarray, order: int) -> tuple[float, Any, Any]:
        result = self.run(coef, order)
        w = coef[:self.d]
        f = float(self.C * result[0] + 0.5 * (w @ w))
        gradient = hessian = None
        if order >= 1:
            gradient = self.C * result[2:2 + self.p]
            gradient[:self.d] += w
        if order >= 2:
            hessian = self.C * result[2 + self.p:].reshape(self.p, self.p)
            hessian[np.arange(self.d), np.arange(self.d)] += 1.0
        return f, gradient, hessian

    def small(self, gradient: np.ndarray, tol: float) -> bool:
        """max |∂F/∂θ| <= tol, F = f / (C·Σs): the stopping test of newton and lbfgs."""
        return float(np.abs(gradient).max(initial=0.0)) <= tol * self.scale


def newton(objective: Objective, settings: Settings) -> Result:
    """Newton's method with a backtracking (Armijo) line search, one pass per iteration.

    f, ∇f and ∇²f = C·XᵀDX + I come from one pass at the trial point θ - H⁻¹g. Only if f
    did not decrease enough is the step halved (loss-only passes) and the derivatives
    recomputed at the accepted point. Stops when max|∇F| <= tol, or when no step lowers f
    beyond rounding.
    """
    theta = np.zeros(objective.p)
    f, g, H = objective(theta, 2)
    curve, seconds, iteration = [], [], 0
    converged = objective.small(g, settings.tol)
    while not converged and iteration < settings.max_iter:
        started = time.perf_counter()
        step = _newton_step(H, g)
        slope = float(g @ step)
        trial = theta + step
        f_new, g_new, H_new = objective(trial, 2)
        alpha = 1.0
        # Near the optimum f moves by ~1e-16·|f| from rounding alone: a full step that keeps f
        # within that and shrinks the gradient is Newton's own progress, so it is taken.
        accepted = f_new <= f + _ARMIJO * slope or (
            f_new <= f + 64 * np.finfo(float).eps * abs(f) and np.abs(g_new).max() < np.abs(g).max())
        while not accepted and alpha > _MIN_STEP:
            alpha *= 0.5
            f_new = objective(theta + alpha * step, 0)[0]
            accepted = f_new <= f + _ARMIJO * alpha * slope
        iteration += 1
        if not accepted:  # θ is the optimum to machine precision
            curve.append(f)
            seconds.append(time.perf_counter() - started)
            converged = True
            break
        if alpha < 1.0:
            trial = theta + alpha * step
            f_new, g_new, H_new = objective(trial, 2)
        theta, f, g, H = trial, f_new, g_new, H_new
        curve.append(f)
        seconds.append(time.perf_counter() - started)
        converged = objective.small(g, settings.tol)
    return Result(theta, curve, seconds, iteration, converged)


def _newton_step(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """-H⁻¹g; a tiny ridge if H is singular (the squared hinge's intercept has no curvature
    once every row is beyond the margin), steepest descent if even that fails."""
    import scipy.linalg  # here, not at the top: workers running block tasks never need it

    ridge = 0.0
    for _ in range(3):
        try:
            factor = scipy.linalg.cho_factor(H + ridge * np.eye(len(g)), check_finite=False)
            step = -scipy.linalg.cho_solve(factor, g, check_finite=False)
            if np.isfinite(step).all():
                return step
        except np.linalg.LinAlgError:
            pass
        ridge = max(ridge * 1e3, 1e-10 * max(1.0, float(np.abs(np.diag(H)).max())))
    return -g


def lbfgs(objective: Objective, settings: Settings) -> Result:
    """SciPy's L-BFGS-B on F = f/(C·Σs), one fused loss+gradient pass per evaluation.

    Stops like scikit-learn's lbfgs: max|∇F| <= tol (``gtol``), or F improving by less than
    64 machine epsilons, relatively (``ftol``).
    """
    import scipy.optimize  # here, not at the top: ~30 MB that workers running block tasks never need

    curve: list[float] = []
    seconds: list[float] = []
    clock = [time.perf_counter()]

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        f, g, _ = objective(theta, 1)
        return f / objective.scale, g / objective.scale

    def callback(intermediate_result: Any) -> None:
        curve.append(float(intermediate_result.fun) * objective.scale)
        seconds.append(time.perf_counter() - clock[0])
        clock[0] = time.perf_counter()

    result = scipy.optimize.minimize(
        fun, np.zeros(objective.p), jac=True, method="L-BFGS-B", callback=callback,
        options={"maxiter": settings.max_iter, "maxls": 50, "gtol": settings.tol,
                 "ftol": 64 * np.finfo(float).eps})
    # status 1 is the iteration limit; 2 (no decrease found by the line search) means machine
    # precision, which ftol would have caught one iteration later.
    return Result(result.x, curve, seconds, int(result.nit), result.status != 1)


def sgd(objective: Objective, settings: Settings) -> Result:
    """Mini-batch (proximal) gradient descent with Spark MLlib's semantics.

    Step t on a fresh Bernoulli sample seeded by (seed, t), with η_t = step_size/√t, λ =
    1/(C·Σs), ρ = l1_ratio and ĝ the batch's mean loss gradient (Spark's SquaredL2Updater,
    and its L1Updater's soft threshold S): w ← S_{η_t·λ·ρ}((1 - η_t·λ·(1-ρ))·w - η_t·ĝ_w),
    b ← b - η_t·ĝ_b. Stops when ‖θ_t - θ_{t-1}‖ < tol·max(‖θ_t‖, 1) (Spark's convergenceTol).
    """
    d, p = objective.d, objective.p
    lam, rho = 1.0 / objective.scale, settings.l1_ratio
    theta = np.zeros(p)
    curve, seconds, converged, iteration = [], [], False, 0
    for iteration in range(1, settings.max_iter + 1):
        started = time.perf_counter()
        fraction = settings.mini_batch_fraction
        result = objective.run(theta, 1, (settings.seed, iteration, fraction) if fraction < 1 else None)
        if result[1] <= 0:  # an empty mini-batch: Spark skips the update as well
            seconds.append(time.perf_counter() - started)
            continue
        w = theta[:d]
        penalty = lam * ((1 - rho) / 2 * float(w @ w) + rho * float(np.abs(w).sum()))
        # f estimated on this batch at the step's starting point (Spark's loss history), in
        # the f = C·Σs·F scale the other solvers record.
        curve.append(float(objective.scale * (result[0] / result[1] + penalty)))
        eta = settings.step_size / np.sqrt(iteration)
        updated = theta - eta * result[2:2 + p] / result[1]
        updated[:d] -= eta * lam * (1 - rho) * w
        if rho > 0:
            updated[:d] = np.sign(updated[:d]) * np.maximum(np.abs(updated[:d]) - eta * lam * rho, 0.0)
        change = float(np.linalg.norm(updated - theta))
        theta = updated
        seconds.append(time.perf_counter() - started)
        if not np.isfinite(theta).all():
            raise ParameterError(f"solver='sgd' diverged at iteration {iteration} (step_size="
                            f"{settings.step_size}): expected finite weights. Lower step_size or "
                            "scale the features")
        if change < settings.tol * max(float(np.linalg.norm(theta)), 1.0):
            converged = True
            break
    return Result(theta, curve, seconds, iteration, converged)


SOLVERS: dict[str, Callable[[Objective, Settings], Result]] = {"newton": newton, "lbfgs": lbfgs,
                                                                "sgd": sgd}


def platt(histogram: np.ndarray) -> tuple[float, float]:
    """Platt's sigmoid P(y=1 | z) = σ(A·z + B) fitted to a :func:`margin_histogram`.

    Each non-empty (class, bin) is a point at its weighted mean margin with Platt's smoothed
    target, (N₊+1)/(N₊+2) for positives and 1/(N₋+2) for negatives (Platt 1999), written
    as a positive and a negative row weighted by t and 1 - t, and fitted by :func:`newton`
    (the penalty ½A² is made negligible by a huge C). A is kept >= 0, so probabilities rank
    rows exactly as the decision function does.
    """
    weights, sums = histogram.reshape(2, 2, -1)[:, 0], histogram.reshape(2, 2, -1)[:, 1]
    totals = weights.sum(axis=1)
    targets = (1.0 / (totals[0] + 2.0), (totals[1] + 1.0) / (totals[1] + 2.0))
    used = [weights[k] > 0 for k in (0, 1)]
    z = np.concatenate([sums[k][used[k]] / weights[k][used[k]] for k in (0, 1)])
    w = np.concatenate([weights[k][used[k]] for k in (0, 1)])
    t = np.concatenate([np.full(used[k].sum(), targets[k]) for k in (0, 1)])
    block = EncodedBlock(np.concatenate([z, z])[:, None], np.repeat([1.0, -1.0], len(z)),
                  np.concatenate([w * t, w * (1 - t)]), 0)
    settings = Settings(C=1e12, fit_intercept=True, tol=1e-10, max_iter=100)
    objective = Objective(lambda coef, order: block_pass(block, coef, True, "log", order), 1,
                          float(w.sum()), settings)
    slope, offset = newton(objective, settings).coef
    return max(float(slope), 0.0), float(offset)

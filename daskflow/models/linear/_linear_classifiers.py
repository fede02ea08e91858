"""Binary linear classifiers on blocked passes: ``LogisticRegression`` and ``LinearSVM``.

Both minimise, in scikit-learn's parameterisation (so coefficients compare directly),

    f(w, b) = C · Σ_i s_i · ℓ(y_i, x_iᵀw + b) + ½‖w‖²        (the intercept b is not penalised)

with ``s_i`` = sample weight x class weight and ℓ the log loss or the squared hinge.
Solvers (``_solver_kernels``) see the data only through *passes*: one read of every
block returning its (loss, gradient[, Hessian]) sums, added up by a tree reduction. In
memory the blocks are row ranges run by a thread pool; a Dask input is persisted once as
blocks (on ``client`` if given) and a pass is one small graph over them whose only new
input is the coefficient vector. See docs/logistic.md.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from daskflow._dask import compute, named, persist
from daskflow._errors import DataError, ParameterError
from daskflow._progress import QUIET_FOR, Progress
from daskflow.models._classifier_input import (
    class_weights,
    is_dask,
    memory_features,
    memory_labels,
    memory_sample_weight,
)
from daskflow.models._input_kernels import LENGTHS, check_two_classes
from daskflow.models._params import Rule, check_params
from daskflow.models.linear import _block_kernels as kernels
from daskflow.models.linear import _solver_kernels as solvers

__all__ = ["LogisticRegression", "LinearSVM"]


@dataclass
class _Problem:
    """The data as solvers and calibration see it: a runner mapping a kernel over blocks
    and summing the results (threads in memory, a Dask graph otherwise), and totals."""

    runner: Any            # .run(function, *args) -> summed array; .close()
    n_features: int
    weight_sum: float
    classes: np.ndarray
    class_weight: np.ndarray  # (negative, positive)


_COMMON_RULES = {
    "C": Rule(float, low=0, low_inclusive=False, high=1e12),
    "max_iter": Rule(int, low=1),
    "tol": Rule(float, low=0),
    "fit_intercept": Rule(options=(True, False)),
    "n_jobs": Rule(int, low=1, allow_none=True),
}


class _LinearBinaryClassifier(ClassifierMixin, BaseEstimator):
    """Fitting and prediction shared by :class:`LogisticRegression` and :class:`LinearSVM`."""

    _loss = "log"
    _rules: dict[str, Rule] = {}

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_class = False
        return tags

    # -- fitting --------------------------------------------------------------------------------

    def fit(self, X: Any, y: Any, sample_weight: Any = None, *, client: Any = None) -> Any:
        """Fit on a Dask DataFrame/Array or an in-memory table.

        Parameters
        ----------
        X : dask DataFrame, dask Array, ndarray, pandas DataFrame or SciPy sparse matrix
            Numeric features. A Dask input is persisted once as blocks (its partitions, or
            row chunks) and read once per pass; an in-memory one is split into row ranges
            run by ``n_jobs`` threads.
        y : array-like of shape (n_samples,)
            Two class labels; ``classes_[1]`` (the larger) is the positive class. With Dask
            ``X``: a Dask Series/Array partitioned like ``X``, or an in-memory array.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative row weights, given like ``y``.
        client : distributed.Client, optional
            Where a Dask input is persisted and processed (dask's default scheduler if None).

        Returns
        -------
        self
        """
        check_params(self, self._rules)
        self._check_more_params()
        name = type(self).__name__
        if y is None:
            raise DataError(f"{name} requires y to be passed, but the target y is None ({name}.fit): "
                            "expected binary labels, one per row of X")
        settings = self._settings()
        # One BLAS thread per pass: parallelism comes from the blocks (threads or workers);
        # a 2-thread OpenBLAS made the Hessian pass 1.5-7x slower on 2 cores (docs/logistic.md).
        with threadpool_limits(1, "blas"):
            problem = (self._dask_problem(X, y, sample_weight, client) if is_dask(X)
                       else self._memory_problem(X, y, sample_weight))
            # Passes over the data, not iterations: a line search makes several per
            # iteration, and how many iterations the tolerance needs is not known ahead.
            progress = Progress(name, 0, unit="passes over the data", quiet_for=QUIET_FOR)
            try:
                def run(coef: np.ndarray, order: int, sample: Any = None) -> np.ndarray:
                    result = problem.runner.run(kernels.block_pass, coef, self.fit_intercept,
                                                self._loss, order, sample)
                    progress.update(progress.done + 1)
                    return result

                objective = solvers.Objective(run, problem.n_features, problem.weight_sum, settings)
                with progress:
                    result = solvers.SOLVERS[self.solver](objective, settings)
                self._store(problem, result)
                self._calibrate(problem)
            finally:
                problem.runner.close()
        if not result.converged and self.solver != "sgd":
            warnings.warn(f"{name}(solver={self.solver!r}) did not reach tol={self.tol} in "
                          f"max_iter={self.max_iter} iterations: increase max_iter, or scale the "
                          "features (their ranges set the conditioning)", ConvergenceWarning,
                          stacklevel=2)
        return self

    def _settings(self) -> solvers.Settings:
        seed = getattr(self, "random_state", 0)
        if seed is None:  # one draw per fit, so that every block samples consistently
            seed = int(np.random.SeedSequence().entropy % 2**32)
        return solvers.Settings(C=float(self.C), fit_intercept=self.fit_intercept, tol=float(self.tol),
                                max_iter=self.max_iter, seed=seed,
                                step_size=float(getattr(self, "step_size", 1.0)),
                                mini_batch_fraction=float(getattr(self, "mini_batch_fraction", 1.0)),
                                l1_ratio=float(getattr(self, "l1_ratio", 0.0)))

    def _check_more_params(self) -> None:
        """class_weight, which a :class:`Rule` cannot describe."""
        name, weights = type(self).__name__, self.class_weight
        if not (weights is None or isinstance(weights, Mapping) or weights == "balanced"):
            raise ParameterError(f"{name}(class_weight={weights!r}) is invalid: expected None, "
                                 "'balanced' or a dict {label: weight}")
        if isinstance(weights, Mapping) and not all(
                isinstance(v, (int, float, np.number)) and np.isfinite(v) and v >= 0
                for v in weights.values()):
            raise ParameterError(f"{name}(class_weight={weights!r}) is invalid: expected finite "
                                 "weights >= 0")

    def _memory_problem(self, X: Any, y: Any, sample_weight: Any) -> _Problem:
        where = f"{type(self).__name__}.fit"
        X = memory_features(X, where, estimator=self)
        y, classes = memory_labels(y, X.shape[0], where)
        weight = memory_sample_weight(sample_weight, X.shape[0], where)
        positive = y == classes[1]
        totals = [weight[~positive].sum(), weight[positive].sum()]  # "balanced" sums the weights
        class_weight = class_weights(self.class_weight, classes, totals)
        row_weight = weight * np.where(positive, class_weight[1], class_weight[0])
        self._check_class_totals(classes, row_weight[~positive].sum(), row_weight[positive].sum())
        n_threads = self.n_jobs or len(os.sched_getaffinity(0))
        passes = kernels.ThreadedPasses(X, np.where(positive, 1.0, -1.0), row_weight, n_threads)
        return _Problem(passes, X.shape[1], float(row_weight.sum()), classes, class_weight)

    def _dask_problem(self, X: Any, y: Any, sample_weight: Any, client: Any) -> _Problem:
        name = type(self).__name__
        for attribute in ("feature_names_in_", "n_features_in_"):
            self.__dict__.pop(attribute, None)  # a refit must not keep the last input's names
        x_parts, names, n_features = _feature_parts(X, name)
        if names is not None:
            self.feature_names_in_ = names
        self.n_features_in_ = n_features
        sizes: list[int] = []  # block lengths, computed only if an in-memory y needs them
        y_parts = _label_parts(y, X, x_parts, sizes, client, "y", name)
        w_parts = _label_parts(sample_weight, X, x_parts, sizes, client, "sample_weight", name)
        prepare = named(kernels.prepare_block, "logistic-prepare", nout=2)
        tasks = [prepare(x, t, w, i, name)
                 for i, (x, t, w) in enumerate(zip(x_parts, y_parts, w_parts))]
        n = len(tasks)
        persisted = persist([t[0] for t in tasks] + [t[1] for t in tasks], client)
        raw, stats = persisted[:n], compute(persisted[n:], client)
        # Empty blocks carry no labels (and a float64 dtype that must not leak into classes_).
        classes = np.unique(np.concatenate([s["labels"] for s in stats if len(s["labels"])] or [[]]))
        label_weights: dict[Any, float] = {}
        for s in stats:
            for label, weight in zip(s["labels"], s["label_weights"]):
                label_weights[label] = label_weights.get(label, 0.0) + weight
        check_two_classes(classes, f"{name}.fit")
        totals = [label_weights.get(label, 0.0) for label in classes]
        class_weight = class_weights(self.class_weight, classes, totals)
        self._check_class_totals(classes, totals[0] * class_weight[0], totals[1] * class_weight[1])
        offsets = np.concatenate([[0], np.cumsum([s["n_rows"] for s in stats])])
        encode = named(kernels.encode_block, "logistic-encode")
        blocks = persist([encode(r, classes[1], class_weight, int(offset))
                          for r, offset in zip(raw, offsets)], client)
        del raw, persisted  # the raw blocks are released once encoded
        weight_sum = float(totals[0] * class_weight[0] + totals[1] * class_weight[1])
        return _Problem(_DaskPasses(blocks, client), n_features, weight_sum, classes, class_weight)

    def _check_class_totals(self, classes: np.ndarray, negative: float, positive: float) -> None:
        if min(negative, positive) <= 0:
            empty = classes.tolist()[0 if negative <= 0 else 1]
            raise DataError(f"class {empty!r} has zero total weight ({type(self).__name__}.fit, "
                            "sample_weight x class_weight): expected positive weight on both classes. "
                            "Check sample_weight and class_weight")

    def _store(self, problem: _Problem, result: solvers.Result) -> None:
        d = problem.n_features
        self.classes_ = problem.classes
        self.coef_ = result.coef[:d].reshape(1, d).copy()
        self.intercept_ = np.array([result.coef[d] if self.fit_intercept else 0.0])
        self.loss_curve_ = result.loss_curve
        self.iteration_seconds_ = result.iteration_seconds
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged

    def _calibrate(self, problem: _Problem) -> None:
        """After training: nothing for the log loss (its margins are log-odds already)."""

    # -- prediction -----------------------------------------------------------------------------

    def decision_function(self, X: Any) -> Any:
        """x·w + b per row: a NumPy array, or a lazy Dask array for Dask input."""
        check_is_fitted(self)
        return self._apply(X, kernels.decision_block, {"coef": self.coef_[0],
                                                        "intercept": float(self.intercept_[0])},
                           None, np.dtype(np.float64))

    def predict(self, X: Any) -> Any:
        """The class of each row: ``classes_[1]`` where the decision function is > 0."""
        check_is_fitted(self)
        return self._apply(X, kernels.predict_block, {"coef": self.coef_[0], "classes": self.classes_,
                                                       "intercept": float(self.intercept_[0])},
                           None, self.classes_.dtype)

    def predict_proba(self, X: Any) -> Any:
        """Probabilities of ``classes_[0]`` and ``classes_[1]``: shape (n_samples, 2)."""
        check_is_fitted(self)
        return self._apply(X, kernels.proba_block, self._proba_args(), 2, np.dtype(np.float64))

    def predict_log_proba(self, X: Any) -> Any:
        """Natural logarithm of :meth:`predict_proba`."""
        return np.log(self.predict_proba(X))

    def _proba_args(self) -> dict[str, Any]:
        return {"coef": self.coef_[0], "intercept": float(self.intercept_[0])}

    def _apply(self, X: Any, function: Callable[..., np.ndarray], kwargs: dict[str, Any],
               n_columns: int | None, dtype: np.dtype) -> Any:
        if not is_dask(X):
            try:
                X = validate_data(self, X, reset=False, accept_sparse="csr", dtype=np.float64)
            except ValueError as exc:
                raise DataError(f"{exc} (X passed to {type(self).__name__} for prediction)") from exc
            return function(X, **kwargs)
        features = _lazy_features(X, self, type(self).__name__)
        # Explicit meta and dtype: dask never calls the function on dummy data to guess them.
        if n_columns is None:
            return features.map_blocks(function, drop_axis=1, dtype=dtype,
                                       meta=np.empty((0,), dtype=dtype), **kwargs)
        return features.map_blocks(function, chunks=(features.chunks[0], (n_columns,)), dtype=dtype,
                                   meta=np.empty((0, 0), dtype=dtype), **kwargs)


# -- the Dask layer: blocks in, one small graph per pass -----------------------------------------


class _DaskPasses:
    """Encoded blocks persisted on the workers (or in the local scheduler's memory).

    A pass maps a kernel over the blocks with the coefficients as an argument (a few
    hundred bytes per task) and tree-sums the per-block arrays on the workers, so one
    array of p² + p + 2 floats comes back. A task holds its block, the kernel's sub-chunk
    buffers (~2 MiB) and its result. Persisted blocks spill to disk under memory pressure
    on a distributed cluster, so data larger than the workers' memory fits.
    """

    def __init__(self, blocks: list[Any], client: Any) -> None:
        self.blocks, self.client = blocks, client

    def run(self, function: Callable[..., np.ndarray], *args: Any) -> np.ndarray:
        # Dashboard prefix after the kernel: logistic-block-pass, logistic-margin-histogram.
        prefix = "logistic-" + function.__name__.strip("_").replace("_", "-")
        parts = [named(function, prefix)(block, *args) for block in self.blocks]
        while len(parts) > 1:  # a tree of fan-in 8: the driver receives one array
            parts = [named(kernels.add, f"{prefix}-sum")(*parts[i:i + 8]) for i in range(0, len(parts), 8)]
        return compute(parts, self.client)[0]

    def close(self) -> None:
        self.blocks = []  # dropping the last references releases the persisted blocks


def _feature_parts(X: Any, name: str) -> tuple[list[Any], np.ndarray | None, int]:
    """X's row blocks as delayed objects, its feature names (DataFrame) and width."""
    if hasattr(X, "columns"):
        columns = list(X.columns)
        names = (np.asarray(columns, dtype=object) if all(isinstance(c, str) for c in columns)
                 else None)
        return list(X.to_delayed()), names, len(columns)
    if X.ndim != 2:
        raise DataError(f"X has {X.ndim} dimension(s) ({name}.fit): expected a 2-D Dask array or a "
                        "Dask DataFrame")
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})  # a block must hold whole rows
    return list(X.to_delayed().ravel()), None, int(X.shape[1])


def _label_parts(values: Any, X: Any, x_parts: list[Any], sizes: list[int], client: Any,
                 what: str, name: str) -> list[Any]:
    """``y`` or ``sample_weight`` as one part per block of X."""
    if values is None:
        return [None] * len(x_parts)
    if is_dask(values):
        if hasattr(values, "chunks"):   # a Dask Array: align its chunks with X's when both known
            if values.ndim == 2:
                values = values.rechunk({1: -1})
            rows = getattr(X, "chunks", [None])[0]
            if rows is not None and values.chunks[0] != rows and not any(
                    np.isnan(rows + values.chunks[0])):
                values = values.rechunk({0: rows})
            parts = list(values.to_delayed().ravel())
        else:
            parts = list(values.to_delayed())
        if len(parts) != len(x_parts):
            raise DataError(f"{what} has {len(parts)} blocks but X has {len(x_parts)} ({name}.fit): "
                            f"expected {what} partitioned like X. Take both from one DataFrame, or "
                            "pass in-memory values")
        return parts
    # In-memory values beside a Dask X: cut at X's block boundaries (lengths computed once).
    if not sizes:
        sizes.extend(int(s) for s in compute([dask.delayed(len)(p) for p in x_parts], client))
    array = np.asarray(values)
    if len(array) != sum(sizes):
        raise DataError(LENGTHS.format(n_x=sum(sizes), n_y=len(array), what=what,
                                               where=f"{name}.fit"))
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return [array[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]


def _lazy_features(X: Any, model: Any, name: str) -> Any:
    """A Dask input to predict on, as a Dask array with whole rows per block."""
    expected = model.n_features_in_
    if hasattr(X, "columns"):
        columns = [str(c) for c in X.columns]
        names = getattr(model, "feature_names_in_", None)
        if names is not None and columns != list(names):
            raise DataError(f"X has columns {columns} ({name} prediction): expected the columns it was "
                            f"fitted on, in order: {list(names)}. Select them: X[{list(names)}]")
        if len(columns) != expected:
            raise DataError(f"X has {len(columns)} features, but {name} is expecting {expected} "
                            "features as input: pass the columns it was fitted on")
        return X.to_dask_array()
    if X.ndim != 2 or X.shape[1] != expected:
        raise DataError(f"X has shape {X.shape}, but {name} is expecting {expected} features as input: "
                        "pass a 2-D array of the features it was fitted on")
    return X.rechunk({1: -1}) if len(X.chunks[1]) > 1 else X


# -- the estimators -------------------------------------------------------------------------------


class LogisticRegression(_LinearBinaryClassifier):
    """Binary logistic regression by Newton, L-BFGS or Spark-style mini-batch SGD.

    Minimises ``C · Σ s_i log(1 + exp(-y_i (x_iᵀw + b))) + ½‖w‖²`` (plus, for ``sgd``, an
    optional L1 part: ``(1-ρ)/2‖w‖² + ρ‖w‖₁``, ρ = ``l1_ratio``), the objective of
    scikit-learn's ``LogisticRegression``: at the same ``C`` the coefficients agree. The
    intercept is not penalised; features are not standardised.

    Parameters
    ----------
    solver : {"newton", "lbfgs", "sgd"}, default "newton"
        ``newton``: gradient and Hessian XᵀDX in one pass per iteration, Cholesky step,
        Armijo line search (p x p Hessian: best for up to a few thousand features).
        ``lbfgs``: SciPy's L-BFGS-B, one loss+gradient pass per evaluation. ``sgd``:
        Spark MLlib's mini-batch gradient descent (see ``step_size``).
    C : float, default 1.0
        Inverse regularisation strength, as in scikit-learn, honoured by every solver.
        Spark's ``regParam`` is λ = 1/(C·Σs_i) (Σs_i = n without weights).
    l1_ratio : float in [0, 1], default 0.0
        Share of L1 in the penalty (elastic net); only ``solver="sgd"`` accepts > 0.
    step_size : float, default 1.0
        ``sgd`` only: the step at iteration t is ``step_size / sqrt(t)`` (Spark's ``stepSize``).
    mini_batch_fraction : float in (0, 1], default 1.0
        ``sgd`` only: each iteration uses a fresh Bernoulli sample of this share of the rows,
        seeded by ``random_state`` and the iteration (Spark's ``miniBatchFraction``).
    max_iter : int, default 100
        Iterations (Newton steps, L-BFGS iterations, SGD steps: Spark's ``numIterations``).
    tol : float, default 1e-4
        newton, lbfgs: stop when max|∇F| <= tol, F = f/(C·Σs) the objective per unit weight
        (lbfgs also stops when F improves by < 64 machine epsilons, relatively);
        sgd: stop when ‖θ_t − θ_{t−1}‖ < tol·max(‖θ_t‖, 1) (Spark's ``convergenceTol``).
    fit_intercept : bool, default True
    class_weight : None, "balanced" or dict, default None
        Multiplies each row's weight by its class's; "balanced" gives class k the weight
        Σs / (2·Σ_{y=k} s), as scikit-learn.
    random_state : int or None, default 0
        Seeds the ``sgd`` mini-batches (None: a fresh seed per fit).
    n_jobs : int or None, default None
        Threads of an in-memory fit (None: the cores this process may use).

    Attributes
    ----------
    coef_ : ndarray of shape (1, n_features)
    intercept_ : ndarray of shape (1,)
    classes_ : ndarray of shape (2,)
    loss_curve_ : list of float
        f after every iteration (``sgd``: f estimated on the iteration's mini-batch at the
        weights it started from, like Spark's loss history).
    iteration_seconds_ : list of float
        Wall time of every iteration.
    n_iter_ : int
    converged_ : bool
        Whether ``tol`` was reached within ``max_iter``.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        When fitted on a DataFrame (pandas or Dask) with string column names.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((200, 3))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> model = LogisticRegression(C=0.5).fit(X, y)
    >>> model.coef_.shape, model.predict_proba(X).shape
    ((1, 3), (200, 2))
    """

    _loss = "log"
    _rules = {**_COMMON_RULES,
              "solver": Rule(options=("newton", "lbfgs", "sgd")),
              "l1_ratio": Rule(float, low=0, high=1),
              "step_size": Rule(float, low=0, low_inclusive=False),
              "mini_batch_fraction": Rule(float, low=0, low_inclusive=False, high=1),
              "random_state": Rule(int, low=0, allow_none=True)}

    def __init__(self, *, solver: str = "newton", C: float = 1.0, l1_ratio: float = 0.0,
                 step_size: float = 1.0, mini_batch_fraction: float = 1.0, max_iter: int = 100,
                 tol: float = 1e-4, fit_intercept: bool = True,
                 class_weight: str | dict[Any, float] | None = None, random_state: int | None = 0,
                 n_jobs: int | None = None) -> None:
        self.solver = solver
        self.C = C
        self.l1_ratio = l1_ratio
        self.step_size = step_size
        self.mini_batch_fraction = mini_batch_fraction
        self.max_iter = max_iter
        self.tol = tol
        self.fit_intercept = fit_intercept
        self.class_weight = class_weight
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _check_more_params(self) -> None:
        super()._check_more_params()
        if self.l1_ratio > 0 and self.solver != "sgd":
            raise ParameterError(f"LogisticRegression(l1_ratio={self.l1_ratio!r}) adds an L1 term that "
                                 f"solver={self.solver!r} cannot minimise: expected l1_ratio=0 with "
                                 "this solver. Use solver='sgd' (soft-threshold updates) for L1 or "
                                 "elastic-net penalties")


class LinearSVM(_LinearBinaryClassifier):
    """Linear support vector machine (L2-loss, primal), on the same blocked passes.

    Minimises ``C · Σ s_i max(0, 1 - y_i (x_iᵀw + b))² + ½‖w‖²``: the squared hinge of
    liblinear's L2-loss SVC (scikit-learn ``LinearSVC(loss="squared_hinge", dual=False)``),
    except that the intercept is not penalised (liblinear's is, through
    ``intercept_scaling``).

    ``predict_proba`` is Platt's sigmoid ``σ(A·z + B)`` of the decision function ``z``,
    fitted after training from one more pass (a histogram of the training margins per
    class; see docs/logistic.md). It ranks rows like ``decision_function`` (A >= 0), but
    its 0.5 threshold need not fall at z = 0, so ``predict`` (the sign of z) can differ
    from the more probable class for rows near the boundary.

    Parameters
    ----------
    solver : {"newton", "lbfgs"}, default "newton"
        ``newton`` uses the generalised Hessian C·Σ_{margin violators} s_i x_i x_iᵀ + I
        (Keerthi & DeCoste 2005) with an Armijo line search; ``lbfgs`` as in
        :class:`LogisticRegression`.
    C, max_iter, tol, fit_intercept, class_weight, n_jobs
        As in :class:`LogisticRegression`.

    Attributes
    ----------
    coef_, intercept_, classes_, loss_curve_, iteration_seconds_, n_iter_, converged_,
    n_features_in_, feature_names_in_
        As in :class:`LogisticRegression`.
    calibration_ : ndarray of shape (2,)
        Platt's (A, B).
    """

    _loss = "squared_hinge"
    _rules = {**_COMMON_RULES, "solver": Rule(options=("newton", "lbfgs"))}

    def __init__(self, *, solver: str = "newton", C: float = 1.0, max_iter: int = 100,
                 tol: float = 1e-4, fit_intercept: bool = True,
                 class_weight: str | dict[Any, float] | None = None, n_jobs: int | None = None) -> None:
        self.solver = solver
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.fit_intercept = fit_intercept
        self.class_weight = class_weight
        self.n_jobs = n_jobs

    def _calibrate(self, problem: _Problem) -> None:
        coef = np.concatenate([self.coef_[0], self.intercept_ if self.fit_intercept else []])
        histogram = problem.runner.run(kernels.margin_histogram, coef, self.fit_intercept,
                                       problem.class_weight)
        self.calibration_ = np.array(solvers.platt(histogram))

    def _proba_args(self) -> dict[str, Any]:
        return {**super()._proba_args(), "slope": float(self.calibration_[0]),
                "offset": float(self.calibration_[1])}

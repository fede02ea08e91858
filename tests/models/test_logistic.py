"""LogisticRegression and LinearSVM: scikit-learn equality, solvers, Dask paths, errors, checks."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.svm import LinearSVC
from sklearn.utils.estimator_checks import parametrize_with_checks

from daskflow import DataError, ParameterError
from daskflow.models import LinearSVM, LogisticRegression, make_model
from daskflow.models.linear import _block_kernels as kernels

N_ROWS, N_FEATURES = 1_500, 4
NAMES = ["plays", "sessions", "recency", "ads"]
SCALES = np.array([1.0, 2.0, 0.5, 3.0])  # unequal scales: nothing may standardise them away


def planted(n: int = N_ROWS, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, labels drawn from a planted logistic model, and positive sample weights."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, N_FEATURES)) * SCALES
    logits = X @ np.array([0.8, -0.4, 1.5, 0.2]) - 0.7
    y = (rng.random(n) < 1 / (1 + np.exp(-logits))).astype(np.int64)
    return X, y, rng.uniform(0.2, 2.0, n)


X, Y, SW = planted()
X[::7, 1] = 0.0  # some zeros, so the sparse input stores fewer values than the dense one
FRAME = pd.DataFrame(X, columns=NAMES)


def objective(X: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: float, C: float,
              weight: np.ndarray, loss: str = "log") -> float:
    """f = C Σ s ℓ + ½‖w‖², written independently of the kernels."""
    z = X @ coef + intercept
    signed = np.where(y == y.max(), 1.0, -1.0)
    pointwise = (np.logaddexp(0, -signed * z) if loss == "log"
                 else np.maximum(0, 1 - signed * z) ** 2)
    return float(C * weight @ pointwise + 0.5 * coef @ coef)


def as_input(kind: str, X: np.ndarray, y: np.ndarray, weight: np.ndarray | None) -> tuple:
    if kind == "numpy":
        return X, y, weight
    if kind == "pandas":
        return pd.DataFrame(X, columns=NAMES), pd.Series(y), weight
    if kind == "sparse":
        return sp.csr_matrix(X), y, weight
    if kind == "dask_array":
        return (da.from_array(X, chunks=(400, 2)), da.from_array(y, chunks=400),
                None if weight is None else da.from_array(weight, chunks=400))
    frame = pd.DataFrame(X, columns=NAMES).assign(label=y, weight=1.0 if weight is None else weight)
    ddf = dd.from_pandas(frame, npartitions=3)
    return ddf[NAMES], ddf["label"], None if weight is None else ddf["weight"]


WEIGHTINGS = {"none": (None, None), "sample": (SW, None), "balanced": (SW, "balanced"),
              "dict": (None, {0: 0.5, 1: 2.0})}


@pytest.fixture(scope="module")
def sklearn_fits() -> dict[tuple[str, float], SkLogisticRegression]:
    fits = {}
    for name, (weight, class_weight) in WEIGHTINGS.items():
        for C in (0.05, 1.0):
            fits[name, C] = SkLogisticRegression(C=C, tol=1e-12, max_iter=10_000, class_weight=class_weight
                                                 ).fit(X, Y, sample_weight=weight)
    return fits


# -- scikit-learn equality -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["numpy", "pandas", "sparse", "dask_array", "dask_frame"])
@pytest.mark.parametrize("solver", ["newton", "lbfgs"])
@pytest.mark.parametrize("weighting", list(WEIGHTINGS))
def test_coefficients_match_scikit_learn(kind: str, solver: str, weighting: str,
                                         sklearn_fits: dict) -> None:
    weight, class_weight = WEIGHTINGS[weighting]
    C = 0.05 if weighting in ("sample", "dict") else 1.0
    reference = sklearn_fits[weighting, C]
    Xi, yi, wi = as_input(kind, X, Y, weight)
    with dask.config.set(scheduler="sync"):
        model = LogisticRegression(solver=solver, C=C, tol=1e-10, max_iter=500,
                                   class_weight=class_weight).fit(Xi, yi, sample_weight=wi)
    np.testing.assert_allclose(model.coef_, reference.coef_, atol=1e-4, rtol=0)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, atol=1e-4, rtol=0)
    assert model.coef_.shape == (1, N_FEATURES) and model.intercept_.shape == (1,)
    assert model.converged_ and model.n_features_in_ == N_FEATURES
    np.testing.assert_array_equal(model.classes_, [0, 1])


@pytest.mark.parametrize("solver", ["newton", "lbfgs"])
def test_loss_curve_is_the_objective_and_never_increases(solver: str) -> None:
    model = LogisticRegression(solver=solver, C=0.3, tol=1e-10).fit(X, Y, sample_weight=SW)
    curve = np.array(model.loss_curve_)
    assert len(curve) == model.n_iter_ == len(model.iteration_seconds_) > 1
    assert np.all(np.diff(curve) <= 1e-12 * curve[:-1])
    assert min(model.iteration_seconds_) >= 0
    expected = objective(X, Y, model.coef_[0], model.intercept_[0], 0.3, SW)
    assert curve[-1] == pytest.approx(expected, rel=1e-12)


def test_without_intercept_matches_scikit_learn() -> None:
    reference = SkLogisticRegression(C=0.2, fit_intercept=False, tol=1e-12, max_iter=10_000).fit(X, Y)
    for solver in ("newton", "lbfgs"):
        model = LogisticRegression(solver=solver, C=0.2, fit_intercept=False, tol=1e-10).fit(X, Y)
        np.testing.assert_allclose(model.coef_, reference.coef_, atol=1e-4)
        assert model.intercept_.tolist() == [0.0]


def test_sgd_reaches_the_optimum_with_spark_semantics() -> None:
    best = LogisticRegression(C=0.05, tol=1e-12).fit(X, Y)
    f_star = objective(X, Y, best.coef_[0], best.intercept_[0], 0.05, np.ones(N_ROWS))
    full = LogisticRegression(solver="sgd", C=0.05, step_size=2.0, max_iter=3_000, tol=1e-9).fit(X, Y)
    f_full = objective(X, Y, full.coef_[0], full.intercept_[0], 0.05, np.ones(N_ROWS))
    assert f_star <= f_full <= f_star * (1 + 1e-4)
    np.testing.assert_allclose(full.coef_, best.coef_, atol=2e-2)
    batch = LogisticRegression(solver="sgd", C=0.05, step_size=2.0, max_iter=1_000,
                               mini_batch_fraction=0.3, tol=0).fit(X, Y)
    f_batch = objective(X, Y, batch.coef_[0], batch.intercept_[0], 0.05, np.ones(N_ROWS))
    assert f_batch <= f_star * (1 + 1e-2)
    # Spark's loss history: the first entry is f at w = 0 estimated on the first batch.
    assert full.loss_curve_[0] == pytest.approx(0.05 * N_ROWS * np.log(2))
    assert len(batch.loss_curve_) == batch.n_iter_ == 1_000


def test_sgd_mini_batches_are_reproducible_and_fresh() -> None:
    params = dict(solver="sgd", mini_batch_fraction=0.2, max_iter=20, tol=0)
    a = LogisticRegression(**params, random_state=3).fit(X, Y)
    b = LogisticRegression(**params, random_state=3).fit(X, Y)
    c = LogisticRegression(**params, random_state=4).fit(X, Y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert not np.allclose(a.coef_, c.coef_)
    masks = [kernels.sample_mask(0, 1000, 3, t, 0.2) for t in (1, 2)]
    assert 150 < masks[0].sum() < 250 and (masks[0] != masks[1]).any()
    # The draws depend on the global row, never on how rows are blocked.
    split = np.concatenate([kernels.sample_mask(0, 300, 3, 1, 0.2),
                            kernels.sample_mask(300, 700, 3, 1, 0.2)])
    np.testing.assert_array_equal(split, masks[0])


def test_sgd_l1_matches_liblinear_with_exact_zeros() -> None:
    rng = np.random.default_rng(1)
    noisy = np.column_stack([X, rng.standard_normal((N_ROWS, 3))])
    reference = SkLogisticRegression(solver="liblinear", l1_ratio=1.0, C=0.02, tol=1e-10,
                                     intercept_scaling=1e3, max_iter=10_000).fit(noisy, Y)
    model = LogisticRegression(solver="sgd", C=0.02, l1_ratio=1.0, step_size=4.0, max_iter=2_000,
                               tol=0).fit(noisy, Y)
    np.testing.assert_allclose(model.coef_, reference.coef_, atol=1e-3)
    assert (model.coef_[0, 4:] == 0).all() and (model.coef_[0, :4] != 0).all()


# -- LinearSVM ----------------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["newton", "lbfgs"])
def test_linear_svm_matches_liblinear(solver: str) -> None:
    # liblinear penalises the intercept as a feature of value intercept_scaling; at 1e3 that
    # penalty on b is 1e-6 of ours, i.e. none.
    reference = LinearSVC(C=0.1, dual=False, tol=1e-12, max_iter=100_000, intercept_scaling=1e3
                          ).fit(X, Y, sample_weight=SW)
    model = LinearSVM(solver=solver, C=0.1, tol=1e-10, max_iter=500).fit(X, Y, sample_weight=SW)
    np.testing.assert_allclose(model.coef_, reference.coef_, atol=1e-4)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, atol=1e-4)
    f = objective(X, Y, model.coef_[0], model.intercept_[0], 0.1, SW, loss="squared_hinge")
    assert model.loss_curve_[-1] == pytest.approx(f, rel=1e-10)


def test_linear_svm_probabilities_are_platt_calibrated() -> None:
    model = LinearSVM(C=0.1).fit(X, Y)
    z = model.decision_function(X)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (np.argsort(proba[:, 1], kind="stable") == np.argsort(z, kind="stable")).all()
    # The same sigmoid fitted exactly on the unbinned margins, with Platt's targets.
    n_pos, n_neg = Y.sum(), N_ROWS - Y.sum()
    targets = np.where(Y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    zz, tt = np.concatenate([z, z]), np.concatenate([targets, 1 - targets])
    exact = SkLogisticRegression(C=1e12, tol=1e-12).fit(zz[:, None], np.repeat([1, 0], N_ROWS),
                                                         sample_weight=tt)
    np.testing.assert_allclose(model.calibration_, [exact.coef_[0, 0], exact.intercept_[0]], atol=2e-3)
    assert abs(proba[:, 1].mean() - Y.mean()) < 0.01


# -- Dask ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", [
    LogisticRegression(solver="newton", C=0.5, tol=1e-10),
    LogisticRegression(solver="lbfgs", C=0.5, tol=1e-10, class_weight="balanced"),
    LogisticRegression(solver="sgd", mini_batch_fraction=0.4, max_iter=15, tol=0),
    LinearSVM(solver="newton", C=0.5, tol=1e-10),
], ids=["newton", "lbfgs", "sgd", "svm"])
def test_dask_on_a_cluster_equals_in_memory(estimator: object, client: object) -> None:
    local = estimator.__class__(**estimator.get_params()).fit(FRAME, Y, sample_weight=SW)
    frame = dd.from_pandas(FRAME.assign(label=Y, weight=SW), npartitions=3)
    blocked = estimator.fit(frame[NAMES], frame["label"], sample_weight=frame["weight"], client=client)
    np.testing.assert_allclose(blocked.coef_, local.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(blocked.intercept_, local.intercept_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(blocked.loss_curve_, local.loss_curve_, rtol=1e-10)
    assert blocked.n_iter_ == local.n_iter_
    np.testing.assert_array_equal(blocked.feature_names_in_, NAMES)
    proba = blocked.predict_proba(frame[NAMES])
    assert isinstance(proba, da.Array) and proba.dtype == np.float64
    computed = client.compute(proba).result()
    np.testing.assert_allclose(computed, local.predict_proba(FRAME), rtol=1e-8, atol=1e-12)
    labels = client.compute(blocked.predict(frame[NAMES])).result()
    np.testing.assert_array_equal(labels, local.predict(FRAME))


def test_errors_found_on_workers_reach_the_caller(client: object) -> None:
    frame = dd.from_pandas(pd.DataFrame(bad(np.nan, row=1_400), columns=NAMES), npartitions=3)
    with pytest.raises(DataError, match=r"X contains NaN or infinity \(column 'recency', "
                                        r"LogisticRegression.fit, block 2\)"):
        LogisticRegression().fit(frame, Y, client=client)


def test_predictions_on_dask_arrays_are_lazy_blockwise() -> None:
    model = LogisticRegression().fit(X, Y)
    lazy = da.from_array(X, chunks=(500, 2))
    proba, decision = model.predict_proba(lazy), model.decision_function(lazy)
    assert isinstance(proba, da.Array) and proba.chunks == ((500, 500, 500), (2,))
    assert isinstance(decision, da.Array) and decision.chunks == ((500, 500, 500),)
    np.testing.assert_allclose(proba.compute(scheduler="sync"), model.predict_proba(X))
    assert model.predict(lazy).dtype == model.classes_.dtype


def test_string_labels_and_pandas_feature_names() -> None:
    labels = np.where(Y == 1, "converted", "stayed")
    model = LogisticRegression().fit(FRAME, labels)
    np.testing.assert_array_equal(model.classes_, ["converted", "stayed"])
    np.testing.assert_array_equal(model.feature_names_in_, NAMES)
    assert set(model.predict(FRAME)) == {"converted", "stayed"}
    # classes_[1] ("stayed") is the positive class, so its coefficients flip sign.
    flipped = LogisticRegression().fit(FRAME, Y)
    np.testing.assert_allclose(model.coef_, -flipped.coef_, atol=1e-6)
    with pytest.raises(DataError, match="feature names"):
        model.predict(FRAME[NAMES[::-1]])
    lazy = dd.from_pandas(FRAME, npartitions=2)
    model.fit(lazy, labels)
    with pytest.raises(DataError, match=r"expected the columns it was fitted on, in order"):
        model.predict(lazy[NAMES[::-1]])


# -- kernels ------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["log", "squared_hinge"])
def test_block_pass_derivatives_and_sparse_equal_dense(loss: str) -> None:
    rng = np.random.default_rng(2)
    signed = np.where(Y == 1, 1.0, -1.0)
    coef = rng.standard_normal(N_FEATURES + 1) * 0.3
    dense = kernels.block_pass(kernels.EncodedBlock(X, signed, SW, 0), coef, True, loss, 2)
    sparse = kernels.block_pass(kernels.EncodedBlock(sp.csr_matrix(X), signed, SW, 0), coef, True, loss, 2)
    np.testing.assert_allclose(sparse, dense, rtol=1e-10, atol=1e-9)
    p = N_FEATURES + 1

    def loss_sum(c: np.ndarray) -> float:
        return kernels.block_pass(kernels.EncodedBlock(X, signed, SW, 0), c, True, loss, 0)[0]

    step = 1e-6
    numeric = [(loss_sum(coef + step * e) - loss_sum(coef - step * e)) / (2 * step) for e in np.eye(p)]
    np.testing.assert_allclose(dense[2:2 + p], numeric, rtol=1e-5, atol=1e-4)
    if loss == "log":  # the Hessian of the log loss is XᵀDX exactly
        z = X @ coef[:-1] + coef[-1]
        q = 1 / (1 + np.exp(-z))
        Xa = np.column_stack([X, np.ones(N_ROWS)])
        np.testing.assert_allclose(dense[2 + p:].reshape(p, p), Xa.T @ (Xa * (SW * q * (1 - q))[:, None]),
                                   rtol=1e-10)
    assert dense[1] == pytest.approx(SW.sum())


def test_kernel_module_imports_neither_dask_nor_scikit_learn() -> None:
    """Kernels apart from Dask, and light workers: unpickling a block task loads only NumPy/SciPy/Numba."""
    tree = ast.parse(Path(kernels.__file__).read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not {n for n in names if n.split(".")[0] in ("dask", "distributed", "sklearn")}
    code = ("import sys, daskflow.models.linear._block_kernels, daskflow.models.linear._solver_kernels; "
            "print(sorted({'dask', 'sklearn', "
            "'pandas', 'scipy.optimize'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_registry_builds_both_models() -> None:
    assert isinstance(make_model("logistic_regression", {"solver": "sgd", "step_size": 0.5}),
                      LogisticRegression)
    assert make_model("linear_svm", {"C": 2.0}).C == 2.0


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "message"), [
    ({"solver": "adam"}, r"LogisticRegression\(solver='adam'\) is invalid: expected one of 'newton'"),
    ({"C": 0.0}, r"C=0.0\) is invalid: expected a number > 0"),
    ({"C": -1.0}, r"C=-1.0\) is invalid"),
    ({"step_size": 0.0}, r"step_size=0.0\) is invalid: expected a number > 0"),
    ({"step_size": -0.1}, r"step_size=-0.1\) is invalid"),
    ({"mini_batch_fraction": 0.0}, r"mini_batch_fraction=0.0\) is invalid: expected a number > 0 and <= 1"),
    ({"mini_batch_fraction": 1.5}, r"mini_batch_fraction=1.5\) is invalid"),
    ({"max_iter": 0}, r"max_iter=0\) is invalid: expected an integer >= 1"),
    ({"l1_ratio": 0.5}, r"solver='newton' cannot minimise.*Use solver='sgd'"),
    ({"l1_ratio": 1.0, "solver": "lbfgs"}, r"solver='lbfgs' cannot minimise"),
    ({"class_weight": "auto"}, r"class_weight='auto'\) is invalid: expected None, 'balanced' or a dict"),
    ({"class_weight": {0: -1.0}}, r"expected finite weights >= 0"),
    ({"class_weight": {7: 2.0}}, r"class_weight has labels \['7'\] that are not classes of y"),
])
def test_parameter_errors(params: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        LogisticRegression(**params).fit(X, Y)


def test_linear_svm_rejects_sgd() -> None:
    with pytest.raises(ParameterError, match=r"LinearSVM\(solver='sgd'\) is invalid"):
        LinearSVM(solver="sgd").fit(X, Y)


def bad(value: float, row: int = 3, column: int = 2) -> np.ndarray:
    out = X.copy()
    out[row, column] = value
    return out


@pytest.mark.parametrize("kind", ["numpy", "pandas", "dask_frame"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_features_name_the_column(kind: str, value: float) -> None:
    Xi, yi, _ = as_input(kind, bad(value), Y, None)
    where = "column 2" if kind == "numpy" else "column 'recency'"
    with pytest.raises(DataError, match=rf"X contains NaN or infinity \({where}.*Impute or drop"):
        LogisticRegression().fit(Xi, yi)


@pytest.mark.parametrize("kind", ["numpy", "dask_array"])
def test_label_errors(kind: str) -> None:
    nan_labels = Y.astype(float)
    nan_labels[5] = np.nan
    cases = [(nan_labels, r"y contains NaN or infinity"),
             (np.arange(N_ROWS) % 3, r"Only binary classification is supported.*3 classes"),
             (np.zeros(N_ROWS), r"y has only one class \(\[0.0\]\).*expected two classes"),
             (Y + 0.5, r"Unknown label type")]
    for labels, message in cases:
        Xi, yi, _ = as_input(kind, X, labels, None)
        with pytest.raises(DataError, match=message):
            LogisticRegression().fit(Xi, yi)


def test_length_and_weight_errors() -> None:
    with pytest.raises(DataError, match=r"X has 1500 rows but y has 1499.*one value per row"):
        LogisticRegression().fit(X, Y[:-1])
    frame = dd.from_pandas(FRAME, npartitions=3)
    with pytest.raises(DataError, match=r"X has 1500 rows but y has 1499"):
        LogisticRegression().fit(frame, Y[:-1])
    with pytest.raises(DataError, match=r"y has 2 blocks but X has 3"):
        LogisticRegression().fit(frame, dd.from_pandas(pd.Series(Y), npartitions=2))
    with pytest.raises(DataError, match=r"sample_weight has shape \(10,\) but X has 1500 rows"):
        LogisticRegression().fit(X, Y, sample_weight=np.ones(10))
    with pytest.raises(DataError, match=r"sample_weight holds NaN, infinite or negative"):
        LogisticRegression().fit(X, Y, sample_weight=-SW)
    with pytest.raises(DataError, match=r"class 1 has zero total weight"):
        LogisticRegression().fit(X, Y, sample_weight=np.where(Y == 1, 0.0, 1.0))
    with pytest.raises(DataError, match=r"column 'text' of X \(LogisticRegression.fit, block \d\) has dtype"):
        LogisticRegression().fit(dd.from_pandas(FRAME.assign(text="a"), npartitions=2), Y)


# -- scikit-learn's estimator checks ------------------------------------------------------------

_PLATT = ("Platt-calibrated probabilities need not put 0.5 at decision 0 (as SVC(probability=True)), "
          "so argmax(predict_proba) may differ from predict near the boundary")


def _expected_failures(estimator: object) -> dict[str, str]:
    return {"check_classifiers_train": _PLATT} if isinstance(estimator, LinearSVM) else {}


@parametrize_with_checks([LogisticRegression(), LogisticRegression(solver="lbfgs"),
                          LogisticRegression(solver="sgd"), LinearSVM()],
                         expected_failed_checks=_expected_failures)
def test_scikit_learn_estimator_checks(estimator: object, check: object) -> None:
    check(estimator)

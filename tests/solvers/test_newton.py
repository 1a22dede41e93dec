"""The second-order solvers (newton-cg, newton) and solver="auto".

* Against statsmodels' ``MNLogit(...).fit(method="newton")`` on unscaled survey-like data with a
  reference class and no penalty, the maximum-likelihood problem statisticians solve: the
  gradient reaches 1e-10 and the coefficients agree to 1e-7 relative.  Both are Newton
  iterations on a strictly convex, well-posed problem, so both end at the optimum to rounding:
  the coefficients' error is about cond(H) eps (here cond(H) ~ 1e6), far below 1e-7.
* Every solver reaches the same optimum on strictly convex problems (dense and CSR, both
  parametrizations, weights, float32): the distance to a tight Newton solution is within the
  radius that the objective gap and the curvature allow (tests/optimum_bounds.py).
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import statsmodels.api as sm
from optimum_bounds import compare
from softmax_problems import softmax_problem, survey_problem

from softmax_fast import SoftmaxRegression, reference
from softmax_fast._solvers import (
    AUTO_NEWTON_MAX_PARAMS,
    AUTO_SAGA_PARAMS_PER_NONZERO,
    choose_solver,
)

SOLVERS = ["lbfgs", "newton-cg", "newton", "saga"]


def _max_gradient(X, y, model, alpha, sample_weight=None, free=slice(None)):
    _, dW, db = reference.loss_and_grad(
        X, y, model.coef_, model.intercept_, alpha=alpha, sample_weight=sample_weight
    )
    if not model.fit_intercept:
        return np.abs(dW[free]).max()
    return max(np.abs(dW[free]).max(), np.abs(db[free]).max())


@pytest.mark.parametrize("solver", ["newton", "newton-cg"])
@pytest.mark.parametrize("K", [3, 7])
def test_matches_statsmodels_mnlogit_on_unscaled_data(solver, K):
    X, y = survey_problem(K=K)
    model = SoftmaxRegression(
        solver=solver, alpha=0.0, reference_class=0, tol=1e-10, max_iter=100
    ).fit(X, y)
    free = slice(1, None)
    assert _max_gradient(X, y, model, 0.0, free=free) <= 1e-10
    with warnings.catch_warnings():
        # statsmodels' own stopping rule (a parameter change below tol) may not trigger before
        # maxiter at this precision; its score is checked below instead
        warnings.simplefilter("ignore")
        result = sm.MNLogit(y, sm.add_constant(X, prepend=False)).fit(
            method="newton", tol=1e-12, maxiter=100, disp=0
        )
    assert np.abs(result.mle_retvals["score"]).max() <= 1e-10
    # statsmodels: (n_features + 1, K - 1), the constant last; ours: coef_ (K, n), intercept_
    ours = np.vstack([model.coef_[1:].T, model.intercept_[1:]])
    np.testing.assert_allclose(ours, result.params, rtol=1e-7, atol=0)
    assert model.n_iter_ <= (10 if solver == "newton" else 30)


def test_lbfgs_is_the_slow_solver_on_unscaled_data():
    """What the Newton solvers are for: on the same problem L-BFGS needs thousands of
    iterations (it stops on its relative-decrease test long before the gradient is small)."""
    X, y = survey_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lbfgs = SoftmaxRegression(
            solver="lbfgs", alpha=0.0, reference_class=0, tol=1e-10, max_iter=500
        ).fit(X, y)
    newton = SoftmaxRegression(solver="newton", alpha=0.0, reference_class=0, tol=1e-10).fit(X, y)
    assert newton.n_iter_ < 10 < lbfgs.n_iter_
    assert _max_gradient(X, y, lbfgs, 0.0, free=slice(1, None)) > 1e3 * _max_gradient(
        X, y, newton, 0.0, free=slice(1, None)
    )


def _problem(kind, dtype, weights):
    X, y = softmax_problem(300, 6, 4, seed=5)
    X[::7, 2] = 0.0
    if kind == "csr":
        X = sp.csr_matrix(np.where(np.abs(X) > 0.6, X, 0.0))
    X = X.astype(dtype)
    sw = None
    if weights:
        sw = np.random.default_rng(1).integers(0, 4, X.shape[0]).astype(np.float64)
    return X, y, sw


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("kind", ["dense", "csr"])
@pytest.mark.parametrize(
    ("alpha", "reference_class", "fit_intercept"),
    [(0.05, None, True), (0.0, 1, True), (0.02, 2, False)],
)
@pytest.mark.parametrize("weights", [False, True])
def test_every_solver_reaches_the_optimum(
    solver, kind, alpha, reference_class, fit_intercept, weights
):
    X, y, sw = _problem(kind, np.float64, weights)
    tight = SoftmaxRegression(
        solver="newton",
        alpha=alpha,
        reference_class=reference_class,
        fit_intercept=fit_intercept,
        tol=1e-13,
        max_iter=100,
    ).fit(X, y, sample_weight=sw)
    model = SoftmaxRegression(
        solver=solver,
        alpha=alpha,
        reference_class=reference_class,
        fit_intercept=fit_intercept,
        tol=1e-9,
        max_iter=10000,
        random_state=0,
    ).fit(X, y, sample_weight=sw)
    free = slice(None) if reference_class is None else [k for k in range(4) if k != reference_class]
    Xd = X.toarray() if kind == "csr" else X
    if solver != "lbfgs":  # (lbfgs may end on its relative-decrease test first)
        assert _max_gradient(Xd, y, model, alpha, sw, free) <= 1e-9
    comparison = compare(
        Xd,
        y,
        alpha,
        (tight.coef_, tight.intercept_),
        (model.coef_, model.intercept_),
        free=free,
        sample_weight=sw,
    )
    assert comparison.gap >= 0, comparison
    assert comparison.dist <= comparison.radius, comparison
    assert comparison.radius <= 1e-5, comparison


@pytest.mark.parametrize("solver", ["newton-cg", "newton"])
@pytest.mark.parametrize("kind", ["dense", "csr"])
def test_float32_data_reaches_the_float64_optimum(solver, kind):
    """float32 X: the data term's sums are float64 and the Hessian's rounding only slows the
    inner solve, so the solvers reach a small float64 gradient of the float32 data's
    objective."""
    X, y, _ = _problem(kind, np.float32, False)
    model = SoftmaxRegression(solver=solver, alpha=0.01, tol=1e-7, max_iter=100).fit(X, y)
    assert _max_gradient(X.astype(np.float64), y, model, 0.01) <= 1e-6


@pytest.mark.parametrize("kind", ["dense", "csr"])
def test_newton_on_the_singular_symmetric_form(kind):
    """alpha = 0 without a reference class: the Hessian is singular along the class shifts
    (Cholesky fails or is useless there); the minimum-norm Newton step still converges, to the
    model the reference-class form gives (the same probabilities)."""
    X, y, _ = _problem(kind, np.float64, False)
    symmetric = SoftmaxRegression(solver="newton", alpha=0.0, tol=1e-10).fit(X, y)
    assert symmetric.n_iter_ <= 20
    reference_form = SoftmaxRegression(
        solver="newton", alpha=0.0, reference_class=0, tol=1e-12
    ).fit(X, y)
    np.testing.assert_allclose(
        symmetric.predict_proba(X), reference_form.predict_proba(X), rtol=0, atol=1e-8
    )
    cg = SoftmaxRegression(solver="newton-cg", alpha=0.0, tol=1e-10).fit(X, y)
    np.testing.assert_allclose(
        cg.predict_proba(X), reference_form.predict_proba(X), rtol=0, atol=1e-8
    )


def test_second_order_solvers_are_repeatable():
    X, y, sw = _problem("dense", np.float64, True)
    for solver in ("newton-cg", "newton"):
        fits = [
            SoftmaxRegression(solver=solver, alpha=0.01, tol=1e-8).fit(X, y, sample_weight=sw)
            for _ in range(2)
        ]
        np.testing.assert_array_equal(fits[0].coef_, fits[1].coef_)
        np.testing.assert_array_equal(fits[0].intercept_, fits[1].intercept_)


def test_auto_is_the_default_and_follows_the_rule():
    assert SoftmaxRegression().solver == "auto"
    X, y, _ = _problem("dense", np.float64, False)
    small = SoftmaxRegression().fit(X, y)
    assert small.solver_ == choose_solver_for(X, y, small) == "newton"
    # wider than AUTO_NEWTON_MAX_PARAMS: well-scaled columns take lbfgs, and one column on
    # another scale (its mean square 1e4 times the others') newton-cg
    wide = np.hstack([X] * (AUTO_NEWTON_MAX_PARAMS // (4 * X.shape[1]) + 1))
    assert SoftmaxRegression().fit(wide, y).solver_ == "lbfgs"
    wide[:, 0] *= 100.0
    assert SoftmaxRegression().fit(wide, y).solver_ == "newton-cg"
    # CSR: newton up to AUTO_NEWTON_MAX_PARAMS_CSR, newton-cg above, saga from
    # AUTO_SAGA_PARAMS_PER_NONZERO parameters per stored entry on
    assert SoftmaxRegression().fit(sp.csr_matrix(X), y).solver_ == "newton"
    tall = sp.random(2000, 100, density=0.1, format="csr", random_state=0)  # 303 per 20,000
    assert SoftmaxRegression().fit(tall, np.arange(2000) % 3).solver_ == "newton-cg"
    text = sp.random(50, 400, density=0.05, format="csr", random_state=0)  # 1,203 per 1,000
    assert text.nnz * AUTO_SAGA_PARAMS_PER_NONZERO <= 3 * 401
    fits = [SoftmaxRegression().fit(text, np.arange(50) % 3) for _ in range(2)]
    assert fits[0].solver_ == "saga"
    # reproducible without a random_state: auto seeds saga's shuffling
    np.testing.assert_array_equal(fits[0].coef_, fits[1].coef_)
    seeded = SoftmaxRegression(random_state=0).fit(text, np.arange(50) % 3)
    np.testing.assert_array_equal(seeded.coef_, fits[0].coef_)


def choose_solver_for(X, y, model):
    objective = model._objective(X, np.searchsorted(model.classes_, y), None, None)
    return choose_solver(objective)


@pytest.mark.parametrize("solver", ["newton-cg", "newton"])
def test_progress_is_reported_each_iteration(solver):
    X, y, _ = _problem("dense", np.float64, False)
    steps = []
    model = SoftmaxRegression(solver=solver, alpha=0.01, tol=1e-8).fit(X, y, callback=steps.append)
    assert [s.iteration for s in steps] == list(range(1, model.n_iter_ + 1))
    assert steps[-1].grad_max <= 1e-8
    assert model.loss_curve_ == [s.objective for s in steps]
    assert all(b <= a for a, b in zip(model.loss_curve_[:-1], model.loss_curve_[1:], strict=True))


def test_full_hessian_memory_does_not_grow_with_the_rows():
    """The full Hessian's extra memory: per thread the (n_params, n_params) sums and one row
    block of about _HESSIAN_BLOCK_BYTES of products (and the block's rows in float64), never a
    copy of X: four times the rows, the same peak (to a block)."""
    import tracemalloc

    from softmax_fast._design import _HESSIAN_BLOCK_BYTES, DenseDesign
    from softmax_fast._objective import SoftmaxObjective

    peaks = []
    for m in (40_000, 160_000):
        X, y = softmax_problem(m, 20, 3, seed=2)
        objective = SoftmaxObjective(DenseDesign(X, 2), y, None, 3, 0.0, True, 0)
        theta = np.zeros(objective.n_params)
        tracemalloc.start()
        try:
            objective.hessian(theta)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    n_params = objective.n_params
    # (X grows by 19 MB; the peak by at most a block per thread, as the threads interleave)
    assert peaks[1] <= peaks[0] + 2 * _HESSIAN_BLOCK_BYTES
    assert peaks[0] < 2 * (3 * 8 * n_params**2 + 5 * _HESSIAN_BLOCK_BYTES)


def _float32_products_problem():
    X, y = softmax_problem(400, 12, 4, seed=9)
    X[:, 3] *= 30.0  # a spread of column scales for the diagonal preconditioner
    return X, y


def _count_float32_products(monkeypatch):
    from softmax_fast._objective import HessianOperator

    counts = {"float32": 0, "float64": 0}
    matvec, matvec_float32 = HessianOperator.matvec, HessianOperator.matvec_float32

    def counted(kind, method):
        def wrapper(self, v):
            counts[kind] += 1
            return method(self, v)

        return wrapper

    monkeypatch.setattr(HessianOperator, "matvec", counted("float64", matvec))
    monkeypatch.setattr(HessianOperator, "matvec_float32", counted("float32", matvec_float32))
    return counts


def test_newton_cg_float32_products_reach_the_same_optimum(monkeypatch):
    """On dense float64 X large enough for the float32 products (the threshold lowered here),
    newton-cg's inner loop runs on them, one float64 product per outer iteration checks each
    direction, and the fit meets the same float64 stop test at the same optimum as with
    float64 products (the values, gradients and line search are float64 either way)."""
    from softmax_fast import _objective as objective_module

    X, y = _float32_products_problem()
    alpha = 1e-3
    baseline = SoftmaxRegression(solver="newton-cg", alpha=alpha, tol=1e-10).fit(X, y)
    monkeypatch.setattr(objective_module, "FLOAT32_PRODUCTS_MIN_VALUES", 0)
    counts = _count_float32_products(monkeypatch)
    model = SoftmaxRegression(solver="newton-cg", alpha=alpha, tol=1e-10).fit(X, y)
    assert counts["float32"] > 2 * model.n_iter_  # the inner loop's products
    # one check per direction (the last may end the run without an iteration)
    assert model.n_iter_ <= counts["float64"] <= model.n_iter_ + 1
    assert _max_gradient(X, y, model, alpha) <= 1e-10
    comparison = compare(
        X, y, alpha, (baseline.coef_, baseline.intercept_), (model.coef_, model.intercept_)
    )
    assert comparison.dist <= comparison.radius, comparison
    assert comparison.radius <= 1e-5, comparison


def test_newton_cg_falls_back_to_float64_products_when_the_check_fails(monkeypatch):
    """A direction that fails the float64 check (forced here: a bound of 0) is recomputed
    with float64 products, which the fit keeps from then on; it still converges."""
    from softmax_fast import _objective as objective_module
    from softmax_fast import _solvers

    X, y = _float32_products_problem()
    monkeypatch.setattr(objective_module, "FLOAT32_PRODUCTS_MIN_VALUES", 0)
    monkeypatch.setattr(_solvers, "NEWTON_CG_FLOAT32_RESIDUAL", 0.0)
    counts = _count_float32_products(monkeypatch)
    model = SoftmaxRegression(solver="newton-cg", alpha=1e-3, tol=1e-10).fit(X, y)
    assert _max_gradient(X, y, model, 1e-3) <= 1e-10
    assert 0 < counts["float32"]
    # the first outer iteration's float32 solve, then float64 products only
    assert counts["float64"] > model.n_iter_


@pytest.mark.parametrize("kind", ["dense", "csr"])
def test_newton_cg_steps_exactly_along_the_class_shifts(kind):
    """A warm start whose features' K weights sit far off-centre (each feature's weights
    shifted together, by up to 4): the data term cannot see that part and the penalty's
    Newton step along it is exact, so newton-cg's first full step centres every feature's
    weights across the classes, and the fit ends at the optimum of a cold start.

    The warm start differs from the optimum along the shifts alone, where J is exactly
    quadratic, so the first direction is that part's Newton step and the line search takes it
    whole: what is left of the class means is rounding, that of the means themselves (eps
    max|offsets|) and of the data gradient's class sums (eps max|x|, divided by alpha in the
    step); bounded here with a factor 1e3 for the sums' lengths."""
    X, y, sw = _problem(kind, np.float64, True)
    alpha = 0.05
    cold = SoftmaxRegression(solver="newton", alpha=alpha, tol=1e-10).fit(X, y, sample_weight=sw)
    offsets = np.random.default_rng(3).uniform(-4, 4, X.shape[1])

    def warm_model(**params):
        model = SoftmaxRegression(solver="newton-cg", alpha=alpha, warm_start=True, **params)
        model.classes_ = cold.classes_
        model.coef_ = cold.coef_ + offsets
        model.intercept_ = cold.intercept_.copy()
        return model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one iteration: not converged
        first = warm_model(max_iter=1).fit(X, y, sample_weight=sw)
    x_max = float(np.abs(X.data if sp.issparse(X) else X).max())
    rounding = 1e3 * np.finfo(np.float64).eps * (np.abs(offsets).max() + x_max / alpha)
    assert np.abs(first.coef_.mean(axis=0)).max() <= rounding
    warm = warm_model(tol=1e-10).fit(X, y, sample_weight=sw)
    assert _max_gradient(X, y, warm, alpha, sample_weight=sw) <= 1e-10
    X_dense = X.toarray() if sp.issparse(X) else X
    comparison = compare(
        X_dense,
        y,
        alpha,
        (cold.coef_, cold.intercept_),
        (warm.coef_, warm.intercept_),
        sample_weight=sw,
    )
    assert comparison.dist <= comparison.radius, comparison

"""SAGA (softmax_fast._saga and its kernel softmax_fast._native.incremental): it converges to the
optimum that an independent solver (our L-BFGS run to a gradient of 1e-10) finds, on dense and
CSR data, float32 and float64, with sample weights (zeros included; integer weights are repeated
rows), a reference class and without an intercept; the native epoch is the NumPy transcription
of the same update sequence (tests/solvers/test_saga.py::_numpy_epochs) to ~1e-12, on the
just-in-time CSR path too; determinism; the inputs are left alone.

The coefficient tolerances follow from strong convexity: J is alpha-strongly convex in W, so
||theta - theta*|| <= ||grad J(theta)|| / alpha (with the intercepts, centred, where the data's
curvature in them exceeds alpha, as on these problems); the optimum's is summed from both
solvers' final gradients.
"""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler
from sparse_inputs import dense_of, random_csr

from softmax_fast import _saga, _solvers
from softmax_fast._design import CSRDesign, DenseDesign
from softmax_fast._objective import SoftmaxObjective
from softmax_fast._validation import as_csr_arrays

# ----------------------------------------------------------------------------- helpers


def _objective(X, y, sw, K, alpha, fit_intercept, reference):
    design = CSRDesign(as_csr_arrays(X), 1) if hasattr(X, "tocsr") else DenseDesign(X, 1)
    return SoftmaxObjective(design, y, sw, K, alpha, fit_intercept, reference)


def _lbfgs_optimum(objective):
    res = _solvers.lbfgs(
        objective, np.zeros(objective.n_params), max_iter=20000, tol=1e-10, ftol=0.0
    )
    value, grad = objective.value_and_grad(res.theta)
    assert np.max(np.abs(grad)) <= 1e-9  # (at the precision of the arithmetic)
    return res.theta, value, grad


def _centred(objective, theta):
    """(coef, intercept) with the symmetric form's free intercept shift removed."""
    coef, intercept = objective.unpack(theta)
    if objective.reference is None and objective.fit_intercept:
        intercept = intercept - intercept.mean()
    return np.concatenate([coef.ravel(), intercept])


def _assert_near_optimum(objective, theta, theta_star, grad_star):
    """W within (||grad J(theta)|| + ||grad J(theta*)||) / alpha of W*; the intercepts, not
    penalized (their curvature is the data's only, and couples with W's), within 10 times that
    (measured: 2.6 times on digits)."""
    _, grad = objective.value_and_grad(theta)
    bound = (np.linalg.norm(grad) + np.linalg.norm(grad_star)) / objective.alpha
    centred, centred_star = _centred(objective, theta), _centred(objective, theta_star)
    n_coef = objective.n_classes * objective.n_features
    distance = np.linalg.norm(centred[:n_coef] - centred_star[:n_coef])
    assert distance <= bound, (distance, bound)
    if objective.fit_intercept:
        distance = np.linalg.norm(centred[n_coef:] - centred_star[n_coef:])
        assert distance <= 10 * bound, (distance, bound)


def _digits():
    X, y = load_digits(return_X_y=True)
    X = np.ascontiguousarray(StandardScaler().fit_transform(X))
    return X, y.astype(np.intp)


# ----------------------------------------------------------------------------- (a) digits


@pytest.fixture(scope="module")
def digits_problem():
    X, y = _digits()
    m = X.shape[0]
    objective = _objective(X, y, None, 10, 1.0 / (0.5 * m), True, None)
    return objective, _lbfgs_optimum(objective)


def test_digits_200_epochs_within_one_percent_of_the_optimum(digits_problem):
    objective, (_, J_star, _) = digits_problem
    res = _saga.saga(
        objective,
        np.zeros(objective.n_params),
        max_iter=200,
        tol=0.0,
        rng=np.random.default_rng(0),
    )
    assert res.n_iter == 200 and not res.converged
    assert res.samples_seen == 200 * objective.n_samples
    assert len(res.loss_curve) == 200
    value, _ = objective.value_and_grad(res.theta)
    assert value == res.loss_curve[-1]
    assert value - J_star <= 0.01 * J_star


def test_digits_converges_to_a_gradient_of_1e8(digits_problem):
    objective, (theta_star, _, grad_star) = digits_problem
    steps = []
    res = _saga.saga(
        objective,
        np.zeros(objective.n_params),
        max_iter=3000,
        tol=1e-8,
        rng=np.random.default_rng(1),
        progress=steps.append,
    )
    assert res.converged and res.n_iter < 3000
    _, grad = objective.value_and_grad(res.theta)
    assert np.max(np.abs(grad)) <= 1e-8
    assert len(steps) == res.n_iter and steps[-1].unit == "epoch"
    assert steps[-1].grad_max <= 1e-8 and steps[-1].iteration == res.n_iter
    _assert_near_optimum(objective, res.theta, theta_star, grad_star)


def test_the_fixed_step_is_the_row_norm_bound(digits_problem):
    objective, _ = digits_problem
    X = objective.design.X
    m, alpha = objective.n_samples, objective.alpha
    L = 0.5 * np.max(np.sum(X * X, axis=1) + 1.0) + alpha
    for rule, expected in (
        ("scikit-learn", 1 / (2 * L + min(2 * m * alpha, L))),
        ("1/3L", 1 / (3 * L)),
    ):
        state = _saga.saga_state(
            objective, np.zeros(objective.n_params), step_rule=rule, adaptive=False
        )
        assert state.step == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="step_rule"):
        _saga.saga_state(objective, np.zeros(objective.n_params), step_rule="nope")


# ----------------------------------------------------------------------------- (b) CSR etc.


def _sparse_problem(dtype, index_dtype):
    X = random_csr(
        240, 30, 0.15, dtype=dtype, index_dtype=index_dtype, empty_rows=True, duplicates=True,
        unsorted=True, seed=3,
    )  # fmt: skip
    D = dense_of(X).astype(np.float64)
    rng = np.random.default_rng(5)
    W_true = rng.normal(size=(4, 30))
    y = np.argmax(D @ W_true.T + rng.gumbel(size=(240, 4)), axis=1).astype(np.intp)
    sw = rng.integers(0, 4, 240).astype(np.float64)  # zeros included
    return X, y, sw


@pytest.mark.parametrize(
    "dtype, index_dtype", [(np.float32, np.int32), (np.float64, np.int64), (np.float32, np.int64)]
)
def test_csr_weights_reference_no_intercept_converge(dtype, index_dtype):
    X, y, sw = _sparse_problem(dtype, index_dtype)
    scaled = sw / (sw.max() * 1.5)  # the estimator's scaling: the largest weight in [0.5, 1)
    objective = _objective(X, y, scaled, 4, 0.02, False, 2)
    # the float64 twin (float32 values are float64 ones): the objective's float32 evaluations
    # cast W to float32, their gradient is only that precise, while SAGA computes in float64
    twin = _objective(X.astype(np.float64), y, scaled, 4, 0.02, False, 2)
    theta_star, J_star, grad_star = _lbfgs_optimum(twin)
    theta = np.zeros(objective.n_params)
    state = objective.incremental_state(theta)
    rng = np.random.default_rng(0)
    for epoch in range(1, 5001):
        objective.incremental_epoch(theta, state, rng.permutation(objective.n_samples))
        value, grad = twin.value_and_grad(theta)
        if epoch == 200:
            assert value - J_star <= 0.01 * J_star
        if np.max(np.abs(grad)) <= 1e-8:
            break
    assert epoch >= 200 or np.max(np.abs(grad)) <= 1e-8
    assert np.max(np.abs(grad)) <= 1e-8, epoch
    _assert_near_optimum(twin, theta, theta_star, grad_star)
    coef, intercept = objective.unpack(theta)
    assert np.all(coef[2] == 0) and np.all(intercept == 0)
    if dtype == np.float64:  # the solver's own stop test
        res = _saga.saga(objective, np.zeros(objective.n_params), max_iter=5000, tol=1e-8,
                         rng=np.random.default_rng(0))  # fmt: skip
        assert res.converged and np.array_equal(res.theta, theta)


def test_integer_weights_are_repeated_rows():
    X, y, sw = _sparse_problem(np.float64, np.int32)
    D = dense_of(X).astype(np.float64)
    reps = sw.astype(np.intp)
    weighted = _objective(D, y, sw, 4, 0.02, True, None)
    repeated = _objective(np.repeat(D, reps, axis=0), np.repeat(y, reps), None, 4, 0.02, True, None)
    results = [
        _saga.saga(
            obj, np.zeros(obj.n_params), max_iter=5000, tol=1e-9, rng=np.random.default_rng(2)
        )
        for obj in (weighted, repeated)
    ]
    assert all(r.converged for r in results)
    bound = 2e-9 * np.sqrt(weighted.n_params) / 0.02
    distance = np.linalg.norm(
        _centred(weighted, results[0].theta) - _centred(repeated, results[1].theta)
    )
    assert distance <= bound


# ----------------------------------------------------------------------------- (c) NumPy twin


def _cross_entropy(z, col, has_reference):
    full = np.append(z, 0.0) if has_reference else z
    mx = full.max()
    return mx + np.log(np.sum(np.exp(full - mx))) - (z[col] if col >= 0 else 0.0)


def _numpy_epochs(D, objective, state, orders, W, b):
    """The update sequence of the kernel (its module docstring), row by row in NumPy, on the
    class-major W (K_free, n) and b (K_free,) or None; state: a copy of a fresh SagaState."""
    alpha, rf, has_ref = objective.alpha, state.row_factor, objective.reference is not None
    sw = objective.sample_weight
    A = np.zeros_like(W)
    Ab = np.zeros(W.shape[0])
    memory = np.zeros((D.shape[0], W.shape[0]))
    seen = np.zeros(D.shape[0], dtype=bool)
    n_seen, L = 0, state.curvature
    for order in orders:
        for i in order:
            w = 1.0 if sw is None else sw[i]
            if not w > 0:
                continue
            if not seen[i]:
                seen[i], n_seen = True, n_seen + 1
            x, col = D[i], state.label_col[i]
            z = W @ x + (b if b is not None else 0.0)
            full = np.append(z, 0.0) if has_ref else z
            p = np.exp(full - full.max())
            g = w * p[: z.size] / p.sum()
            if col >= 0:
                g[col] -= w
            if state.row_norms is not None:
                L = max(L * state.decay, state.curvature_min)
                gsq = g @ g
                if gsq > 1e-8 and L < state.curvature_max:
                    loss = w * _cross_entropy(z, col, has_ref)
                    while L < state.curvature_max:
                        tau = rf * state.row_norms[i] / L
                        if w * _cross_entropy(z - tau * g, col, has_ref) <= loss - 0.5 * tau * gsq:
                            break
                        L *= 2.0
                    L = min(L, state.curvature_max)
            Lt = L + alpha
            step = 1.0 / (state.step_a * Lt + min(state.step_c, Lt))
            avg = rf / n_seen
            d = g - memory[i]
            memory[i] = g
            W = (W - step * (rf * np.outer(d, x) + avg * A)) / (1.0 + step * alpha)
            if b is not None:
                b = b - step * (rf * d + avg * Ab)
            A += np.outer(d, x)
            Ab += d
    return W, b


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("adaptive", [True, False])
@pytest.mark.parametrize(
    "fit_intercept, reference, weighted, alpha",
    [(True, None, False, 0.1), (False, 1, True, 0.1), (True, 0, True, 40.0)],
)
def test_the_native_epoch_is_the_numpy_update_sequence(
    sparse, adaptive, fit_intercept, reference, weighted, alpha
):
    # alpha = 40: the penalty's factor falls below 1e-9 within the epochs (the CSR path's
    # re-normalization)
    m, n, K = 23, 6, 3
    X = random_csr(m, n, 0.4, empty_rows=True, duplicates=True, unsorted=True, seed=11)
    D = dense_of(X)
    rng = np.random.default_rng(7)
    y = rng.integers(0, K, m).astype(np.intp)
    sw = rng.integers(0, 3, m) / 3.0 if weighted else None
    objective = _objective(X if sparse else np.ascontiguousarray(D), y, sw, K, alpha,
                           fit_intercept, reference)  # fmt: skip
    theta0 = rng.normal(size=objective.n_params)
    theta = theta0.copy()
    state = _saga.saga_state(objective, theta, adaptive=adaptive)
    fresh = _saga.SagaState(**{k: np.copy(v) if isinstance(v, np.ndarray) else v
                               for k, v in vars(state).items()})  # fmt: skip
    orders = [rng.permutation(m) for _ in range(4)]
    for order in orders:
        _saga.saga_epoch(objective, theta, state, order)
    coef0, intercept0 = objective.unpack(theta0)
    free = objective.class_rows
    W, b = _numpy_epochs(
        D, objective, fresh, orders, coef0[free], intercept0[free] if fit_intercept else None
    )
    coef, intercept = objective.unpack(theta)
    np.testing.assert_allclose(coef[free], W, rtol=1e-12, atol=1e-12)
    if fit_intercept:
        np.testing.assert_allclose(intercept[free], b, rtol=1e-12, atol=1e-12)
    if reference is not None:
        assert np.all(coef[reference] == 0) and intercept[reference] == 0


def test_dense_and_csr_epochs_agree():
    X = random_csr(50, 12, 0.3, empty_rows=True, seed=4)
    y = np.random.default_rng(0).integers(0, 3, 50).astype(np.intp)
    dense = _objective(np.ascontiguousarray(dense_of(X)), y, None, 3, 0.5, True, None)
    sparse = _objective(X, y, None, 3, 0.5, True, None)
    thetas = []
    for obj in (dense, sparse):
        res = _saga.saga(obj, np.zeros(obj.n_params), max_iter=5, tol=0.0,
                         rng=np.random.default_rng(3))  # fmt: skip
        thetas.append(np.concatenate([a.ravel() for a in obj.unpack(res.theta)]))
    np.testing.assert_allclose(thetas[0], thetas[1], rtol=1e-12, atol=1e-13)


# ----------------------------------------------------------------------------- (d) contract


@pytest.mark.parametrize("sparse", [False, True])
def test_deterministic_and_inputs_unchanged(sparse):
    X, y, sw = _sparse_problem(np.float32, np.int32)
    data = X if sparse else np.ascontiguousarray(dense_of(X))
    copies = (X.data.copy(), X.indices.copy(), X.indptr.copy(), y.copy(), sw.copy())
    objective = _objective(data, y, sw / 4.0, 4, 0.05, True, None)
    theta0 = np.full(objective.n_params, 0.01)
    runs = [
        _saga.saga(objective, theta0, max_iter=7, tol=0.0, rng=np.random.default_rng(42))
        for _ in range(2)
    ]
    assert np.array_equal(runs[0].theta, runs[1].theta)
    assert runs[0].loss_curve == runs[1].loss_curve
    assert np.all(theta0 == 0.01)
    for before, after in zip(copies, (X.data, X.indices, X.indptr, y, sw), strict=True):
        assert np.array_equal(before, after)


def test_objective_methods_delegate():
    X, y = _digits()
    objective = _objective(X[:100], y[:100], None, 10, 0.1, True, None)
    theta = np.zeros(objective.n_params)
    state = objective.incremental_state(theta)
    objective.incremental_epoch(theta, state, np.arange(100))
    assert state.n_seen == 100 and np.any(theta != 0)
    with pytest.raises(ValueError, match="order"):
        objective.incremental_epoch(theta, state, np.array([100]))
    with pytest.raises(ValueError, match="theta"):
        objective.incremental_epoch(theta.astype(np.float32), state, np.arange(100))


def test_out_of_core_objective_is_refused():
    X, y = _digits()
    objective = SoftmaxObjective(DenseDesign(X, 1), None, None, 10, 0.1, True, None)
    with pytest.raises(ValueError, match="solver='saga' needs in-memory data"):
        objective.incremental_state(np.zeros(objective.n_params))


def test_all_weights_zero_is_a_no_op():
    X, y = _digits()
    objective = _objective(X[:20], y[:20], np.zeros(20), 10, 0.1, True, None)
    theta = np.ones(objective.n_params)
    state = objective.incremental_state(theta)
    objective.incremental_epoch(theta, state, np.arange(20))
    assert np.all(theta == 1.0)

"""Our L-BFGS (softmax_fast._lbfgs, behind solver="lbfgs"): the optimum SciPy's L-BFGS-B reaches
on every problem of the estimator tests, certified by convexity (optimum_bounds); quadratics with
known minimizers, Rosenbrock; the stopping rule; the progress / loss_curve contract; the strong
Wolfe conditions at every accepted step; non-finite values; determinism; memory.

Every tolerance is a bound: the strong (or local) convexity certificates of optimum_bounds, the
quadratics' ||x - x*|| <= ||A x - b|| / lambda_min, and first-order rounding bounds of the few
floating-point operations the solver does on the values it compares.
"""

import math
import tracemalloc
from fractions import Fraction
from itertools import pairwise

import numpy as np
import pytest
from optimum_bounds import EPS, compare, logit_magnitude, rounding_bound
from optimum_bounds import _gradient_rounding as gradient_rounding
from optimum_bounds import objective as reference_objective
from sklearn.datasets import load_digits, load_iris, load_wine, make_classification
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_sample_weight
from softmax_problems import softmax_problem as _softmax_problem

from softmax_fast import _lbfgs, _solvers
from softmax_fast._design import DenseDesign
from softmax_fast._objective import SoftmaxObjective
from softmax_fast._threads import effective_n_threads
from softmax_fast._validation import scaled_weights

EPS32 = float(np.finfo(np.float32).eps)
# the estimator's relative-decrease tolerance (64 float64 epsilons, as scikit-learn)
FTOL = 64 * EPS

# ----------------------------------------------------------------------------- problems


def _standardized(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _rare_class():
    X, y = _softmax_problem(900, 5, 3, seed=4)
    keep = (y != 2) | (np.arange(y.size) % 4 == 0)
    return X[keep], y[keep]


def _integer_weights():
    X, y = _softmax_problem(300, 5, 3, seed=2)
    return X, y, np.random.default_rng(0).integers(0, 4, X.shape[0]).astype(np.float64)


def _case(name):
    """(X, y, alpha, fit_intercept, reference, sample_weight): the data and parameters of the
    estimator tests (tests/estimator/test_estimator.py), and wine and make_classification."""
    if name == "iris":  # the docstring example: raw features
        X, y = load_iris(return_X_y=True)
        return X, y, 1e-3, True, None, None
    if name == "digits":
        X, y = _standardized(load_digits)
        return X, y, 1.0 / X.shape[0], True, None, None
    if name == "wine":
        X, y = _standardized(load_wine)
        return X, y, 1.0 / X.shape[0], True, None, None
    if name == "synthetic10":
        X, y = _softmax_problem(1500, 20, 10, seed=3)
        return X, y, 1.0 / X.shape[0], True, None, None
    if name == "make_classification":
        X, y = make_classification(
            n_samples=600, n_features=10, n_informative=6, n_classes=4, random_state=0
        )
        return X, y, 1e-2, True, None, None
    if name == "binary_reference":
        X, y = _softmax_problem(800, 6, 2, seed=5)
        return X, y, 1.0 / (0.5 * X.shape[0]), True, 0, None
    if name == "reference_no_penalty":
        X, y = _softmax_problem(2000, 4, 4, seed=11)
        return X, y, 0.0, True, 2, None
    if name == "tiny_alpha":
        X, y = _softmax_problem(2000, 5, 4, seed=7)
        return X, y, 1e-9, True, None, None
    if name == "sample_weights":
        X, y, w = _integer_weights()
        return X, y, 1e-2, True, None, w
    if name == "class_weight_balanced":
        X, y = _rare_class()
        return X, y, 1.0 / (2.0 * X.shape[0]), True, None, compute_sample_weight("balanced", y)
    if name == "no_intercept":
        X, y = _softmax_problem(300, 4, 3, seed=17)
        return X, y, 1e-4, False, None, None
    if name == "no_intercept_reference_weights":
        X, y, w = _integer_weights()
        return X, y, 1e-3, False, 1, w
    if name == "float32":
        X, y = _softmax_problem(5000, 20, 5, seed=12)
        return np.ascontiguousarray(X, dtype=np.float32), y, 1e-4, True, None, None
    raise KeyError(name)


_CASES = [
    "iris",
    "digits",
    "wine",
    "synthetic10",
    "make_classification",
    "binary_reference",
    "reference_no_penalty",
    "tiny_alpha",
    "sample_weights",
    "class_weight_balanced",
    "no_intercept",
    "no_intercept_reference_weights",
    "float32",
]


def _objective(X, y, alpha, fit_intercept, reference, sample_weight):
    """The objective the estimator hands its solver (estimator.py: _objective, _normalized)."""
    sw = None if sample_weight is None else scaled_weights(sample_weight)[0]
    return SoftmaxObjective(
        DenseDesign(X, effective_n_threads(None)),
        np.asarray(y, dtype=np.intp),
        sw,
        int(np.max(y)) + 1,
        alpha,
        fit_intercept,
        reference,
    )


def _parameters(objective, theta):
    """All K rows of (W, b), float64; the symmetric form's intercepts centred (as the estimator
    stores them: J is invariant under a common shift of the intercepts)."""
    W, b = objective.unpack(theta)
    if objective.reference is None and objective.fit_intercept:
        b = b - b.mean()
    return W, b


# ----------------------------------------------------------------------------- vs SciPy


def _assert_certified_pair(X, y, alpha, free, sw, ours, theirs, gate):
    """Both directions of optimum_bounds.compare: each point is no higher than the other beyond
    its own certificate (J(a) - J(b) <= J(a) - min J <= excess_a), the Bregman gaps are >= 0,
    the two are within the strong-convexity and local-curvature radii, and ours is certified
    within ``gate`` of min J.  Returns our Comparison."""
    comparisons = []
    for a, b in ((ours, theirs), (theirs, ours)):
        c = compare(X, y, alpha, a, b, free=free, sample_weight=sw)
        assert c.gap >= 0, c
        assert c.loss_a - c.loss_b <= c.excess_a + c.rounding, c
        assert c.dist <= c.radius, c
        if alpha > 0:
            assert c.w_dist <= c.w_radius, c
        comparisons.append(c)
    assert comparisons[0].excess_a <= gate, comparisons[0]
    return comparisons[0]


def _strong_convexity_pair(X, y, alpha, sw, ours, theirs, free):
    """Without intercepts every parameter is penalized: J is alpha-strongly convex, so at any
    theta, ||theta - theta*|| <= ||g|| / alpha and J(theta) - min J <= ||g||^2 / (2 alpha), g
    the exact gradient (long double reference, plus its rounding bound).  Returns, for each
    point, (J, ||g|| upper bound)."""
    out = []
    for W, b in (ours, theirs):
        J, g_W, _ = reference_objective(X, y, W, b, alpha, sw)
        e_W, _ = gradient_rounding(X, W, b, alpha, sw)
        g = np.abs(np.asarray(g_W, np.float64)[free]) + e_W[free] + EPS * np.abs(g_W[free])
        out.append((J, float(np.sqrt(np.sum(g * g))), rounding_bound(X, W, b, J, sw)))
    (J_a, g_a, r_a), (J_b, g_b, r_b) = out
    assert float(J_a - J_b) <= g_a**2 / (2 * alpha) + r_a + r_b
    assert float(J_b - J_a) <= g_b**2 / (2 * alpha) + r_a + r_b
    dist = float(np.sqrt(np.sum((ours[0] - theirs[0]) ** 2)))
    assert dist <= (g_a + g_b) / alpha * (1 + 4 * EPS)
    return float(J_a), g_a**2 / (2 * alpha)


@pytest.fixture(params=["float64 history", "float32 native history"])
def history(request, monkeypatch):
    """Both histories on every problem: the BLAS float64 one of small models, and the native
    float32 one of large models (forced, with the objective's native penalized gradient)."""
    if request.param == "float32 native history":
        from softmax_fast import _objective

        monkeypatch.setattr(_lbfgs, "NATIVE_HISTORY_MIN", 0)
        monkeypatch.setattr(_objective, "NATIVE_PENALTY_MIN", 0)
    return request.param


@pytest.mark.parametrize("name", _CASES)
def test_reaches_scipys_optimum(name, history):
    X, y, alpha, fit_intercept, reference, sw = _case(name)
    objective = _objective(X, y, alpha, fit_intercept, reference, sw)
    theta0 = np.zeros(objective.n_params)
    kw = dict(max_iter=10_000, tol=1e-10, ftol=FTOL)
    ours = _solvers.lbfgs(objective, theta0, **kw)
    theirs = _solvers._scipy_lbfgs(objective, theta0, **kw)
    assert ours.converged and theirs.converged
    assert len(ours.loss_curve) == ours.n_iter >= 1
    # the last loss is the objective at the returned parameters (the kernels are deterministic)
    assert ours.loss_curve[-1] == objective.value_and_grad(ours.theta)[0]
    a, b = _parameters(objective, ours.theta), _parameters(objective, theirs.theta)
    X64 = np.asarray(X, dtype=np.float64)  # float32 X: the same values, J evaluated exactly
    free = slice(None) if reference is None else [k for k in range(a[0].shape[0]) if k != reference]
    if not fit_intercept:
        J, excess = _strong_convexity_pair(X64, y, alpha, sw, a, b, free)
        assert excess <= 1e-10 * J
        return
    if X.dtype == np.float32:
        # The solvers see J computed from float32 logits (W, b and X rounded to float32): below
        # the rounding of that evaluation no solver can tell two points apart, so that is the
        # certificate asked of ours (optimum_bounds.rounding_bound in float32, the inputs'
        # rounding counted as in logit_rounding: 2 eps32 A_i per row, CE's slope <= 2).
        J = reference_objective(X64, y, *a, alpha, sw)[0]
        omega = np.full(X.shape[0], 1.0 / X.shape[0]) if sw is None else sw / sw.sum()
        gate = rounding_bound(X64, *a, J, sw, eps=EPS32) + 2 * EPS32 * float(
            omega @ logit_magnitude(X64, *a)
        )
    else:
        # the gate the estimator tests ask of an lbfgs fit at tol=1e-10
        gate = 1e-10 * float(reference_objective(X64, y, *a, alpha, sw)[0])
    _assert_certified_pair(X64, y, alpha, free, sw, a, b, gate)


# ----------------------------------------------------------------------------- test functions


class Recorder:
    """A function ``(x) -> (f, g)`` that records every evaluation (copies of x and g)."""

    def __init__(self, fun):
        self.fun = fun
        self.evaluations = []

    def __call__(self, x):
        value, grad = self.fun(x)
        self.evaluations.append((x.copy(), value, np.array(grad, dtype=np.float64)))
        return value, grad


def _diagonal_quadratic(d, c):
    """f(x) = 1/2 sum d_i (x_i - c_i)^2 (minimizer c), in float64."""

    def fun(x):
        r = x - c
        g = d * r
        return 0.5 * float(np.dot(r, g)), g

    return fun


def _dense_quadratic(n, condition, rng):
    """(fun, A, x_star): f(x) = 1/2 (x - x*)'A(x - x*), A SPD with eigenvalues spread over
    [1, condition] (up to the rounding of forming it).  (In the form 1/2 x'Ax - b'x, f* would be
    of order 1 and the value's rounding, eps |f*|, would hide the decrease of the last steps.)"""
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = (Q * np.logspace(0, np.log10(condition), n)) @ Q.T
    A = 0.5 * (A + A.T)
    x_star = rng.standard_normal(n)

    def fun(x):
        r = x - x_star
        g = A @ r
        return 0.5 * float(r @ g), g

    return fun, A, x_star


def _quadratic_distance_bound(A, x_star, x):
    """||x - x*|| <= ||A (x - x*)|| / lambda_min(A) for the stored (float64) A: the gradient
    computed in float64 (r = fl(x - x*), relative eps; A r, within gamma_n |A| |r|) is within
    (gamma_n + eps) |A| |r| of the exact one, and eigvalsh's smallest eigenvalue is within
    2 n eps ||A||_2 of A's."""
    n = x.size
    r = x - x_star
    error = ((n + 1) * EPS / (1 - (n + 1) * EPS)) * (np.abs(A) @ np.abs(r))
    residual = float(np.linalg.norm(np.abs(A @ r) + error))
    eigenvalues = np.linalg.eigvalsh(A)
    lam = eigenvalues[0] - 2 * n * EPS * eigenvalues[-1]
    assert lam > 0
    return residual / lam


def _rosenbrock(x):
    a, b = float(x[0]), float(x[1])
    f = 100.0 * (b - a * a) ** 2 + (1.0 - a) ** 2
    return f, np.array([-400.0 * a * (b - a * a) - 2.0 * (1.0 - a), 200.0 * (b - a * a)])


@pytest.mark.parametrize("condition", [1.0, 1e3, 1e6])
def test_diagonal_quadratic_reaches_its_minimizer(condition, rng, history):
    n = 200
    d = np.logspace(0, np.log10(condition), n)
    c = rng.standard_normal(n)
    res = _lbfgs.minimize_lbfgs(
        _diagonal_quadratic(d, c), np.zeros(n), max_iter=20_000, gtol=1e-9, ftol=0.0
    )
    assert res.status == _lbfgs.GTOL
    # ||x - c|| <= ||d (x - c)|| / min d, the gradient computed with two roundings a component
    # (x - c, then d times it: relative 2 eps, plus eps |x| for the subtraction's input scale)
    g = np.abs(d * (res.x - c)) * (1 + 2 * EPS) + 2 * EPS * d * np.abs(res.x)
    assert np.linalg.norm(res.x - c) <= float(np.linalg.norm(g)) / d.min()
    assert (
        np.linalg.norm(res.x - c)
        <= (np.sqrt(n) * 1e-9 + float(np.linalg.norm(g - np.abs(d * (res.x - c))))) / d.min()
    )


@pytest.mark.parametrize("n, condition", [(1, 1.0), (2, 10.0), (50, 1e4)])
def test_dense_quadratic_reaches_its_minimizer(n, condition, rng, history):
    fun, A, x_star = _dense_quadratic(n, condition, rng)
    res = _lbfgs.minimize_lbfgs(fun, rng.standard_normal(n), max_iter=10_000, gtol=1e-10, ftol=0.0)
    assert res.status == _lbfgs.GTOL
    # (with max|g| <= 1e-10 the bound is about sqrt(n) 1e-10 / lambda_min)
    assert np.linalg.norm(res.x - x_star) <= _quadratic_distance_bound(A, x_star, res.x)


def test_rosenbrock_converges_to_one_one(history):
    res = _lbfgs.minimize_lbfgs(
        _rosenbrock, np.array([-1.2, 1.0]), max_iter=1000, gtol=1e-10, ftol=0.0
    )
    assert res.status == _lbfgs.GTOL and res.n_iter < 200
    # f = 100 (y - x^2)^2 + (1 - x)^2 >= 0 vanishes only at (1, 1): from f's exact value,
    # |1 - x| <= sqrt(f), |y - x^2| <= sqrt(f) / 10 and |y - 1| <= |y - x^2| + |x - 1| |x + 1|
    a, b = (Fraction(v) for v in res.x)
    f = float(100 * (b - a * a) ** 2 + (1 - a) ** 2)
    dx = math.sqrt(f) * (1 + EPS)
    dy = dx / 10 + dx * (2 + dx)
    assert abs(res.x[0] - 1) <= dx and abs(res.x[1] - 1) <= dy
    # near (1, 1) a gradient of 1e-10 means a distance of ~1e-10 / 0.4 (the Hessian's smallest
    # eigenvalue there): the certified distance must be that small
    assert max(dx, dy) <= 1e-9


# ----------------------------------------------------------------------------- stopping rule


def test_optimal_start_point_takes_no_iteration():
    d = 2.0 ** np.arange(-3, 5)
    c = 2.0 ** -np.arange(8)  # exact: g = d (x - c) = 0 at x = c
    fun = Recorder(_diagonal_quadratic(d, c))
    calls = []
    res = _lbfgs.minimize_lbfgs(
        fun, c.copy(), max_iter=50, gtol=0.0, ftol=0.0, callback=lambda *a: calls.append(a)
    )
    assert (res.n_iter, res.n_fev, res.status, res.converged) == (0, 1, _lbfgs.GTOL, True)
    assert len(fun.evaluations) == 1 and not calls
    np.testing.assert_array_equal(res.x, c)
    # the solver module's contract: no iteration, no report, converged
    steps = []
    objective = _FunctionObjective(_diagonal_quadratic(d, c))
    out = _solvers.lbfgs(objective, c.copy(), max_iter=50, tol=0.0, ftol=0.0, progress=steps.append)
    assert (out.n_iter, out.loss_curve, out.converged, steps) == (0, [], True, [])


def test_max_iter_stops_unconverged():
    d = np.logspace(0, 4, 100)
    fun = _diagonal_quadratic(d, np.ones(100))
    res = _lbfgs.minimize_lbfgs(fun, np.zeros(100), max_iter=5, gtol=1e-12, ftol=0.0)
    assert (res.n_iter, res.status, res.converged) == (5, _lbfgs.MAX_ITER, False)
    out = _solvers.lbfgs(_FunctionObjective(fun), np.zeros(100), max_iter=5, tol=1e-12, ftol=0.0)
    assert (out.n_iter, len(out.loss_curve), out.converged) == (5, 5, False)
    zero = _lbfgs.minimize_lbfgs(fun, np.zeros(100), max_iter=0, gtol=1e-12, ftol=0.0)
    assert (zero.n_iter, zero.n_fev, zero.converged) == (0, 1, False)


def test_relative_decrease_stops_at_ftol():
    n = 300
    fun = _diagonal_quadratic(np.logspace(0, 6, n), np.ones(n))
    loss = []
    res = _lbfgs.minimize_lbfgs(
        fun,
        np.zeros(n),
        max_iter=100_000,
        gtol=0.0,
        ftol=1e-6,
        callback=lambda it, x, f, g, gmax: loss.append(f),
    )
    assert res.status == _lbfgs.FTOL and res.converged and len(loss) == res.n_iter
    values = [fun(np.zeros(n))[0], *loss]
    decreases = [(a - b) / max(abs(a), abs(b), 1.0) for a, b in pairwise(values)]
    assert decreases[-1] <= 1e-6 and all(r > 1e-6 for r in decreases[:-1])


def test_failed_line_search_tries_steepest_descent_then_stops(monkeypatch):
    """A gradient that stops matching f after some evaluations (it changes sign): the L-BFGS
    direction's line search fails, the history is dropped, the steepest-descent line search
    fails too, and the solver stops at the last accepted iterate, counted as converged."""
    d = np.logspace(0, 2, 20)
    quadratic = _diagonal_quadratic(d, np.ones(20))
    count = [0]

    def fun(x):
        count[0] += 1
        value, grad = quadratic(x)
        return value, (grad if count[0] <= 12 else -grad)

    resets = []
    real_reset = _lbfgs._CompactMemory.reset

    def reset(memory):
        resets.append(memory.k)
        real_reset(memory)

    monkeypatch.setattr(_lbfgs._CompactMemory, "reset", reset)
    recorder = Recorder(fun)
    iterates = []
    res = _lbfgs.minimize_lbfgs(
        recorder,
        np.zeros(20),
        max_iter=1000,
        gtol=1e-12,
        ftol=0.0,
        callback=lambda it, x, f, g, gmax: iterates.append((x.copy(), len(recorder.evaluations))),
    )
    assert res.status == _lbfgs.LINE_SEARCH_FAILED and res.converged
    assert len(resets) == 1 and resets[0] > 0  # one reset, of a non-empty history
    last_x, last_eval = iterates[-1]
    np.testing.assert_array_equal(res.x, last_x)
    assert res.n_fev == len(recorder.evaluations) <= last_eval + 2 * _lbfgs.MAX_LINE_SEARCH
    # some trials after it are along -g(last iterate) (the gradient it saw there): steepest
    # descent; and none is the iterate itself (a step that rounds away is not evaluated)
    g_last = recorder.evaluations[last_eval - 1][2]
    steps = [x - last_x for x, _, _ in recorder.evaluations[last_eval:]]
    assert all(np.any(s != 0) for s in steps)
    cosines = [-np.dot(s, g_last) / (np.linalg.norm(s) * np.linalg.norm(g_last)) for s in steps]
    assert max(cosines) >= 1 - 1e-6


def test_wrong_gradient_at_the_start_stops_without_an_iteration():
    quadratic = _diagonal_quadratic(np.ones(5), np.zeros(5))

    def fun(x):  # -grad: the "descent" direction goes uphill
        value, grad = quadratic(x)
        return value, -grad

    recorder = Recorder(fun)
    x0 = np.arange(1.0, 6.0)
    res = _lbfgs.minimize_lbfgs(recorder, x0, max_iter=100, gtol=1e-8, ftol=0.0)
    assert (res.n_iter, res.status, res.converged) == (0, _lbfgs.LINE_SEARCH_FAILED, True)
    np.testing.assert_array_equal(res.x, x0)
    assert 2 <= res.n_fev == len(recorder.evaluations) <= 1 + _lbfgs.MAX_LINE_SEARCH


# ----------------------------------------------------------------------------- contract


class _FunctionObjective:
    """An Objective (the solver module's Protocol) around ``fun``, recording evaluations."""

    n_samples = 1

    def __init__(self, fun):
        self.recorder = Recorder(fun)

    def value_and_grad(self, theta):
        return self.recorder(theta)

    def batch_value_and_grad(self, theta, sample_rows):
        raise NotImplementedError


def _small_softmax_objective():
    X, y = _softmax_problem(200, 4, 3, seed=23)
    return _objective(X, y, 1e-3, True, None, None)


@pytest.mark.parametrize("problem", ["softmax", "dense_quadratic", "rosenbrock"])
def test_progress_and_loss_curve_contract(problem, rng):
    if problem == "softmax":
        inner = _small_softmax_objective()
        fun, theta0 = inner.value_and_grad, np.zeros(inner.n_params)
    elif problem == "dense_quadratic":
        fun, _, _ = _dense_quadratic(30, 1e3, rng)
        theta0 = np.zeros(30)
    else:
        fun, theta0 = _rosenbrock, np.array([-1.2, 1.0])
    objective = _FunctionObjective(fun)
    evaluations = objective.recorder.evaluations
    steps, seen = [], []

    def progress(step):
        steps.append(step)
        seen.append(len(evaluations))

    res = _solvers.lbfgs(objective, theta0, max_iter=500, tol=1e-9, ftol=FTOL, progress=progress)
    assert res.converged
    # one report per iteration, numbered, with the value and max|g| of the newest evaluation
    # (the accepted point is the line search's last trial: nothing was evaluated again for it)
    assert len(steps) == res.n_iter == len(res.loss_curve) >= 2
    assert [s.iteration for s in steps] == list(range(1, res.n_iter + 1))
    assert all(s.max_iter == 500 and s.unit == "iteration" for s in steps)
    for step, n_seen, loss in zip(steps, seen, res.loss_curve, strict=True):
        _, value, grad = evaluations[n_seen - 1]
        assert step.objective == value == loss
        assert step.grad_max == np.abs(grad).max()
    np.testing.assert_array_equal(res.theta, evaluations[seen[-1] - 1][0])
    # the objective decreases at every iteration (sufficient decrease), from the start value
    values = [evaluations[0][1], *res.loss_curve]
    assert all(b <= a for a, b in pairwise(values))
    # never evaluated twice in a row at one point, and never outside a line search
    assert all(not np.array_equal(a[0], b[0]) for a, b in pairwise(evaluations))
    assert len(evaluations) == seen[-1] or res.n_iter == 500


@pytest.mark.parametrize("problem", ["softmax", "dense_quadratic", "rosenbrock", "nonfinite"])
def test_strong_wolfe_conditions_at_every_accepted_step(problem, rng):
    """On smooth, finite problems every accepted step meets both strong Wolfe conditions; where
    trials can be non-finite, every accepted step decreases f.

    With s = x_{k+1} - x_k (exact, in rationals): f_{k+1} <= f_k + c1 g_k's and
    |g_{k+1}'s| <= c2 |g_k's|, up to the rounding of the solver's own test, which sees
    t fl(g'd) for g's: |s_i - t d_i| <= eps (|t d_i| + |x_{k+1,i}|) (x_{k+1} = fl(x_k + t d)) and
    fl(g'd) is within gamma_n sum |g_i d_i| of g'd, so |t fl(g'd) - g's| <= E(g) =
    2 (n + 1) eps sum |g_i| (|s_i| + |x_{k+1,i}|); its comparisons add <= 3 eps of the values."""
    if problem == "softmax":
        inner = _small_softmax_objective()
        fun, x0 = inner.value_and_grad, np.zeros(inner.n_params)
    elif problem == "dense_quadratic":
        fun, _, _ = _dense_quadratic(30, 1e3, rng)
        x0 = rng.standard_normal(30)
    elif problem == "rosenbrock":
        fun, x0 = _rosenbrock, np.array([-1.2, 1.0])
    else:
        fun, x0 = _nonfinite_outside(_diagonal_quadratic(np.logspace(0, 3, 10), np.full(10, 2.5)))
    recorder = Recorder(fun)
    accepted = [1]  # evaluations count at each iterate (the start point: the first)
    res = _lbfgs.minimize_lbfgs(
        recorder,
        x0,
        max_iter=2000,
        gtol=1e-9,
        ftol=FTOL,
        callback=lambda *args: accepted.append(len(recorder.evaluations)),
    )
    assert res.converged and res.n_iter >= 2
    c1, c2 = Fraction(_lbfgs.C1), Fraction(_lbfgs.C2)
    n = x0.size
    for k0, k1 in pairwise(accepted):
        x_k, f_k, g_k = recorder.evaluations[k0 - 1]
        x_n, f_n, g_n = recorder.evaluations[k1 - 1]
        s = [Fraction(float(b)) - Fraction(float(a)) for a, b in zip(x_k, x_n, strict=True)]
        size = np.array([abs(float(v)) for v in s]) + np.abs(x_n)

        def budget(g, size=size):
            return Fraction(2 * (n + 1) * EPS * float(np.abs(g) @ size))

        slope_k = sum((Fraction(float(g)) * v for g, v in zip(g_k, s, strict=True)), Fraction(0))
        slope_n = sum((Fraction(float(g)) * v for g, v in zip(g_n, s, strict=True)), Fraction(0))
        f_k, f_n = Fraction(f_k), Fraction(f_n)
        assert slope_k < budget(g_k)  # a descent direction
        if problem == "nonfinite":
            # a search that shrank a non-finite trial may end on the bracket-width warning,
            # whose last trial is accepted on a decrease alone (as L-BFGS-B accepts it)
            assert f_n < f_k
            continue
        assert f_n - f_k <= c1 * slope_k + c1 * budget(g_k) + 3 * Fraction(EPS) * (
            abs(f_k) + abs(slope_k)
        )
        assert abs(slope_n) <= c2 * abs(slope_k) + budget(g_n) + c2 * budget(g_k) + 3 * Fraction(
            EPS
        ) * abs(slope_k)


def test_line_search_on_more_thuente_functions():
    """Moré & Thuente's (1994) test functions 1, 2 and 4-6 from initial steps 1e-3 .. 1e3: a step
    satisfying both strong Wolfe conditions every time, within the evaluation limit."""
    beta1, beta2 = 2.0, 0.004

    def phi1(a):
        return -a / (a * a + beta1), (a * a - beta1) / (a * a + beta1) ** 2

    def phi2(a):
        return (a + beta2) ** 5 - 2 * (a + beta2) ** 4, 5 * (a + beta2) ** 4 - 8 * (a + beta2) ** 3

    def yanai(b1, b2):
        def g(b):
            return math.sqrt(1 + b * b) - b

        def phi(a):
            f = g(b1) * math.sqrt((1 - a) ** 2 + b2 * b2) + g(b2) * math.sqrt(a * a + b1 * b1)
            df = -g(b1) * (1 - a) / math.sqrt((1 - a) ** 2 + b2 * b2) + g(b2) * a / math.sqrt(
                a * a + b1 * b1
            )
            return f, df

        return phi

    functions = [phi1, phi2, yanai(0.001, 0.001), yanai(0.01, 0.001), yanai(0.001, 0.01)]
    for phi in functions:
        for step in (1e-3, 1e-1, 1e1, 1e3):

            def fun(x, phi=phi):
                f, df = phi(float(x[0]))
                return f, np.array([df])

            f0, dphi0 = phi(0.0)
            x, d, xt = np.zeros(1), np.ones(1), np.empty(1)
            # (the paper's tight bracket tolerance: the default 0.1 ends a search early, on a
            # decrease that need not meet the Wolfe conditions, as L-BFGS-B does)
            ok, t, f, g, dphi, n_evals = _lbfgs._line_search(
                fun, x, d, xt, f0, dphi0, step, _lbfgs.MAX_LINE_SEARCH, xtol=1e-14
            )
            assert ok, (phi, step)
            assert f <= f0 + _lbfgs.C1 * t * dphi0 and abs(dphi) <= -_lbfgs.C2 * dphi0
            assert xt[0] == t and n_evals <= 20


def _float32_quadratic(rng, n=200):
    """f(x) = 1/2 sum d_i (x_i - c_i)^2 + 1 read at float32 parameters (as the kernels read W
    for float32 data), its minimizer c and the float64 gradient there: f is exact arithmetic
    on a grid of float32 steps, so near c its changes are rounding noise."""
    diagonal = np.logspace(0, 3, n)
    centre = rng.standard_normal(n)

    def fun(x):
        r = x.astype(np.float32).astype(np.float64) - centre
        return 0.5 * float(r @ (diagonal * r)) + 1.0, diagonal * r

    return fun, centre


def test_line_search_stops_where_rounding_noise_hides_the_decrease(rng, monkeypatch):
    """At the float32 resolution of the minimizer, a search along -g ends after
    _NOISE_CHECK_AFTER trials (the values contradict the slopes by more than the decrease
    they predict, at rounding size), not after bisecting the noise: the same search without
    the check takes many more evaluations."""
    fun, centre = _float32_quadratic(rng)
    n = centre.size
    res = _lbfgs.minimize_lbfgs(fun, np.zeros(n), max_iter=10_000, gtol=0.0, ftol=0.0)
    assert res.status == _lbfgs.LINE_SEARCH_FAILED
    # converged to the float32 resolution: |x - c| within a few float32 ulps of c, scaled by
    # the condition number 1e3 (the gradient is read at the rounded point)
    assert np.abs(res.x - centre).max() <= 1e3 * 8 * np.finfo(np.float32).eps * np.abs(centre).max()
    f0, g = fun(res.x)
    d = -g

    def search():
        return _lbfgs._line_search(fun, res.x, d, np.empty(n), f0, float(g @ d), 1.0, 50)

    ok, *_, n_evals = search()
    assert not ok and n_evals <= _lbfgs._NOISE_CHECK_AFTER
    monkeypatch.setattr(_lbfgs, "_NOISE_CHECK_AFTER", 10**9)
    assert search()[-1] >= 3 * n_evals


# ----------------------------------------------------------------------------- non-finite values


def _nonfinite_outside(quadratic, radius=3.0, value=math.nan):
    """``quadratic`` inside the box max|x_i| <= radius, ``value`` (and a gradient of ``value``)
    outside; and a start point from which the first step leaves the box."""

    def fun(x):
        if np.abs(x).max() > radius:
            return value, np.full(x.shape, value)
        return quadratic(x)

    return fun, np.full(10, -2.9)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_nonfinite_trial_values_shrink_the_step(value):
    d = np.logspace(0, 3, 10)
    fun, x0 = _nonfinite_outside(_diagonal_quadratic(d, np.full(10, 2.5)), value=value)
    recorder = Recorder(fun)
    res = _lbfgs.minimize_lbfgs(recorder, x0, max_iter=500, gtol=1e-9, ftol=0.0)
    assert res.converged and math.isfinite(res.fun)
    assert any(not math.isfinite(f) for _, f, _ in recorder.evaluations)  # it did step outside
    # ||x - c|| <= ||g|| / min d (g with its two roundings a component)
    g = np.abs(d * (res.x - 2.5)) * (1 + 2 * EPS) + 2 * EPS * np.abs(d * res.x)
    assert np.linalg.norm(res.x - 2.5) <= float(np.linalg.norm(g)) / d.min()


def test_nonfinite_gradient_alone_is_a_too_long_step():
    """f = 2 |x - c|^2 with an infinite gradient beyond |x_i| = 1.5: the first step (steepest
    descent, of length 1) reaches x_0 = 2 and is shortened to 1.5."""
    c = np.array([1.3, 0.0, 0.0])
    quadratic = _diagonal_quadratic(np.full(3, 4.0), c)

    def fun(x):
        value, grad = quadratic(x)
        return value, (grad if np.abs(x).max() <= 1.5 else np.full(3, np.inf))

    recorder = Recorder(fun)
    res = _lbfgs.minimize_lbfgs(
        recorder, np.array([1.0, 0.0, 0.0]), max_iter=100, gtol=1e-12, ftol=0.0
    )
    assert res.status == _lbfgs.GTOL
    assert not np.isfinite(recorder.evaluations[1][2]).all()
    # ||x - c|| <= ||g|| / 4 (g with two roundings a component)
    g = np.abs(4.0 * (res.x - c)) * (1 + 2 * EPS) + 8 * EPS * np.abs(res.x)
    assert np.linalg.norm(res.x - c) <= float(np.linalg.norm(g)) / 4.0


@pytest.mark.parametrize("bad", ["value", "gradient"])
def test_nonfinite_at_the_start_point_is_a_value_error(bad):
    def fun(x):
        g = np.ones_like(x)
        if bad == "gradient":
            g[1] = np.nan
            return 1.0, g
        return math.inf, g

    with pytest.raises(ValueError, match="not finite at the starting point"):
        _lbfgs.minimize_lbfgs(fun, np.zeros(3), max_iter=10, gtol=1e-6, ftol=0.0)
    with pytest.raises(ValueError, match="not finite at the starting point"):
        _solvers.lbfgs(_FunctionObjective(fun), np.zeros(3), max_iter=10, tol=1e-6, ftol=0.0)


# ----------------------------------------------------------------------------- implementation


def test_runs_are_bit_identical(history):
    objective = _small_softmax_objective()
    runs = [
        _lbfgs.minimize_lbfgs(
            objective.value_and_grad,
            np.zeros(objective.n_params),
            max_iter=200,
            gtol=1e-10,
            ftol=FTOL,
        )
        for _ in range(2)
    ]
    np.testing.assert_array_equal(runs[0].x, runs[1].x)
    assert runs[0].n_fev == runs[1].n_fev
    assert (runs[0].fun, runs[0].n_iter, runs[0].status) == (
        runs[1].fun,
        runs[1].n_iter,
        runs[1].status,
    )
    np.testing.assert_array_equal(runs[0].grad, runs[1].grad)


def _two_loop_exact(pairs, g):
    """The textbook two-loop recursion (Nocedal & Wright, Alg. 7.4) in rationals: -H g."""

    def rational(v):
        return [Fraction(float(x)) for x in v]

    def dot(a, b):
        return sum((u * v for u, v in zip(a, b, strict=True)), Fraction(0))

    S = [rational(s) for s, _ in pairs]
    Y = [rational(y) for _, y in pairs]
    rho = [1 / dot(s, y) for s, y in zip(S, Y, strict=True)]
    q = rational(g)
    alpha = [Fraction(0)] * len(S)
    for i in reversed(range(len(S))):
        alpha[i] = rho[i] * dot(S[i], q)
        q = [qj - alpha[i] * yj for qj, yj in zip(q, Y[i], strict=True)]
    gamma = dot(S[-1], Y[-1]) / dot(Y[-1], Y[-1])
    r = [gamma * qj for qj in q]
    for i in range(len(S)):
        beta = rho[i] * dot(Y[i], r)
        r = [rj + (alpha[i] - beta) * sj for rj, sj in zip(r, S[i], strict=True)]
    return np.array([-float(v) for v in r])


@pytest.mark.parametrize("n_pairs", [1, 2, 3, 7])
def test_compact_direction_equals_the_two_loop_recursion(n_pairs, rng):
    """The compact form and the two-loop recursion are the same matrix H (Byrd, Nocedal and
    Schnabel 1994).  The memory is driven as the solver drives it: the gradients of a quadratic
    with Hessian A (eigenvalues in [1, 2]) at points x_{k+1} = x_k + s_k (unit s_k), a direction
    at each g_k, y_k = g_{k+1} - g_k.  Every small matrix is then within a factor 4 of the
    identity's scale, so the float64 direction is within ~(n + 2m) eps relative of the exact
    one (the new pairs' products come from differences s_i'g_{k+1} - s_i'g_k, of terms no
    larger than a few times the result); 1e-12 leaves a margin of ~100."""
    n, m = 8, 3
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = (Q * rng.uniform(1, 2, n)) @ Q.T
    memory = _lbfgs._CompactMemory(n, m)
    pairs = []
    d = np.empty(n)
    g = rng.standard_normal(n)
    for _ in range(n_pairs):
        memory.g[:] = g
        if memory.k:
            memory.direction(d)  # as the solver does: a direction at each iterate
        s = rng.standard_normal(n)
        s /= np.linalg.norm(s)
        g_next = g + A @ s
        y = g_next - g
        memory.g[:] = g_next
        memory.push(1.0, s, y, float(s @ y), float(y @ y))
        pairs.append((s, y))
        g = g_next
    memory.direction(d)
    expected = _two_loop_exact(pairs[-m:], g)
    assert np.linalg.norm(d - expected) <= 1e-12 * np.linalg.norm(expected)


def _stored_pairs(memory, n):
    """The pairs a _NativeMemory holds, oldest first, as the float64 values of its rows."""
    from softmax_fast._native import vectors

    rows = vectors.history_rows(memory.Z, n).astype(np.float64)
    return [(rows[2 * q], rows[2 * q + 1]) for q in memory._pairs]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_pairs", [1, 2, 3, 7])
def test_native_direction_is_the_two_loop_recursion_of_its_stored_pairs(dtype, n_pairs, rng):
    """_NativeMemory's H is exactly the L-BFGS matrix of the pairs it stores (rounded to float32
    or not): its direction equals the exact two-loop recursion on the stored rows, driven as the
    solver drives it (update after each step, a direction at each iterate; more pairs than the
    m = 3 slots, so the ring wraps).  Every product is computed directly from the stored rows
    (float64 sums of 2n terms within a factor 4 of the result's scale), so the same bound as for
    the float64 history holds: ~(n + 2m) eps relative, 1e-12 with a margin of ~60.  (Lengths
    over several blocks of the layout: tests/native/test_vectors.py.)"""
    n, m = 70, 3
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = (Q * rng.uniform(1, 2, n)) @ Q.T
    memory = _lbfgs._NativeMemory(n, m, dtype, n_threads=2)
    d = np.empty(n)
    g = rng.standard_normal(n)
    memory.g[:] = g
    for _ in range(n_pairs):
        if memory.k:
            memory.direction(d)
        s = rng.standard_normal(n)
        s /= np.linalg.norm(s)
        g_next = g + A @ s
        g_max = memory.update(1.0, s, g_next, float(s @ (g_next - g)))
        assert g_max == np.abs(g_next).max()
        np.testing.assert_array_equal(memory.g, g_next)
        g = g_next
    assert memory.k == min(n_pairs, m)
    pairs = _stored_pairs(memory, n)
    if dtype == np.float32:
        assert all(np.array_equal(p, p.astype(np.float32)) for pair in pairs for p in pair)
    gd = memory.direction(d)
    expected = _two_loop_exact(pairs, g)
    assert np.linalg.norm(d - expected) <= 1e-12 * np.linalg.norm(expected)
    # g'd: two float64 sums of n products, each within n eps sum|g_i d_i| of the exact one
    assert abs(gd - float(g @ d)) <= 2 * n * EPS * float(np.abs(g * d).sum())


def test_native_memory_drops_a_pair_without_curvature_and_keeps_the_others(rng):
    """A step with s'y <= eps y'y (here y = -s: negative curvature) is not stored: the stored
    pairs, and so the direction, are the same as before it; the next good pair is stored."""
    n, m = 40, 2
    memory = _lbfgs._NativeMemory(n, m, np.float32)
    g = rng.standard_normal(n)
    memory.g[:] = g
    d = np.empty(n)
    for _ in range(3):  # fill both slots and wrap once, a direction after each pair
        s = rng.standard_normal(n)
        memory.update(1.0, s, g + 2.0 * s, 0.0)
        g = g + 2.0 * s
        memory.direction(d)
    before = _stored_pairs(memory, n)
    d_before = d.copy()
    s = rng.standard_normal(n)
    memory.update(1.0, s, g - s, 0.0)  # y = -s
    g = g - s
    after = _stored_pairs(memory, n)
    assert memory.k == m and len(after) == m
    for (s0, y0), (s1, y1) in zip(before, after, strict=True):
        np.testing.assert_array_equal(s0, s1)
        np.testing.assert_array_equal(y0, y1)
    # the direction at the new g from the same pairs: the exact recursion on them
    memory.direction(d)
    expected = _two_loop_exact(after, g)
    assert np.linalg.norm(d - expected) <= 1e-12 * np.linalg.norm(expected)
    assert not np.array_equal(d, d_before)  # (g moved)
    s = rng.standard_normal(n)
    memory.update(1.0, s, g + s, 0.0)
    assert len(_stored_pairs(memory, n)) == m
    np.testing.assert_array_equal(_stored_pairs(memory, n)[-1][0], s.astype(np.float32))


def test_large_models_get_the_float32_native_history():
    """The history is chosen by the model's size (NATIVE_HISTORY_MIN), the pairs' rows then
    float32 in a map of their own (4 MiB and more): 2 (m + 1) rows of 4 bytes, against the
    1 + 2m float64 rows of the small models' history."""
    import mmap

    small = _lbfgs._memory(_lbfgs.NATIVE_HISTORY_MIN - 1, 10, 1)
    large = _lbfgs._memory(_lbfgs.NATIVE_HISTORY_MIN, 10, 2)
    assert type(small) is _lbfgs._CompactMemory
    assert type(large) is _lbfgs._NativeMemory and large.n_threads == 2
    assert large.Z.dtype == np.float32 and large.Z.shape[1] == 22
    assert large.Z.nbytes < 0.55 * small.Z.nbytes
    base = large.Z
    while isinstance(base, np.ndarray):
        base = base.base
    assert isinstance(base.obj if isinstance(base, memoryview) else base, mmap.mmap)


def test_large_buffers_are_zero_writable_maps_of_their_own():
    """The history and the work vectors from 4 MiB up come from anonymous maps (not NumPy's
    huge-page-advised memory): zero, writable, C-contiguous float64, each its own map."""
    import mmap

    small, large = _lbfgs._zeros(100), _lbfgs._zeros((3, _lbfgs._OWN_MAP_BYTES // 8))

    def owner(a):
        while isinstance(a, np.ndarray):
            a = a.base
        return a.obj if isinstance(a, memoryview) else a

    assert isinstance(owner(large), mmap.mmap) and owner(small) is None
    for a in (small, large):
        assert a.dtype == np.float64 and a.flags.c_contiguous and a.flags.writeable
        assert not a.any()
    large[2, -1] = 1.0
    assert large.sum() == 1.0 and not _lbfgs._zeros(large.shape).any()


def test_memory_is_the_history_and_a_few_vectors(monkeypatch):
    """Peak memory of a run: the (1 + 2m) x n history and at most 10 more n-vectors (the
    iterate, the trial point, the direction, y, the objective's own gradient and temporaries):
    nothing history-sized is allocated per iteration.  (Every buffer from NumPy here, so that
    tracemalloc sees it.)"""
    monkeypatch.setattr(_lbfgs, "_OWN_MAP_BYTES", math.inf)
    n = 100_000
    d = np.linspace(1.0, 100.0, n)
    c = np.ones(n)

    def fun(x):
        r = np.subtract(x, c)
        g = np.multiply(d, r)
        return 0.5 * float(np.dot(r, g)), g

    x0 = np.zeros(n)
    tracemalloc.start()
    try:
        res = _lbfgs.minimize_lbfgs(fun, x0, max_iter=40, gtol=0.0, ftol=0.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert res.n_iter >= 20
    vector = 8 * n
    assert peak <= (1 + 2 * _lbfgs.HISTORY) * vector + 10 * vector

"""SoftmaxRegression: scikit-learn compatibility, agreement with LogisticRegression, the three
solvers reaching one optimum, weights, streaming, float32 without copies, meta-estimators.
Bad parameters and data are in test_estimator_input.py."""

import io
import pickle
import tracemalloc
import warnings

import joblib
import numpy as np
import pytest
from fitted_models import MIN_DECIDED, assert_same_model, assert_same_predictions
from optimum_bounds import (
    EPS,
    assert_predictions_agree,
    augmented_norms,
    centred_sum_bound,
    compare,
    decided_rows,
    logit_rounding,
    probability_tolerance,
    rounding_bound,
)
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.estimator_checks import parametrize_with_checks
from softmax_problems import softmax_problem as _softmax_problem

import softmax_fast
from softmax_fast import SoftmaxRegression, kernels, reference
from softmax_fast._design import DenseDesign

# ----------------------------------------------------------------------------- data


_DIGITS = None


def _digits():
    global _DIGITS
    if _DIGITS is None:
        X, y = load_digits(return_X_y=True)
        _DIGITS = StandardScaler().fit_transform(X), y
    return _DIGITS


def _synthetic10():
    return _softmax_problem(1500, 20, 10, seed=3)


_PROBLEMS = {"digits": _digits, "synthetic10": _synthetic10}


def _objective(model, X, y, alpha, sample_weight=None):
    """The objective J of a fitted model, from the kernel (the estimator's own definition)."""
    return kernels.loss_and_grad(
        X,
        np.searchsorted(model.classes_, y),
        model.coef_,
        model.intercept_,
        alpha=alpha,
        sample_weight=sample_weight,
    )[0]


# ----------------------------------------------------------------------------- scikit-learn checks

_FLOAT32_LOG_PROBA = (
    "float32 X gives float32 probabilities: where p rounds to 1.0 the check compares log(p) = 0 "
    "with atol=1e-9 against the exact log-softmax (about -5e-9); the float64 variants of this "
    "check pass"
)


_SGD_CLASS_WEIGHTS = (
    "class weights 1000 vs 1e-4 scale the unbiased weighted mini-batch gradients by up to 1e7, "
    "far too noisy for SGD; lbfgs passes this check"
)


def _expected_failure(estimator, check):
    """Why this (estimator, check) pair may fail, or None.  Decided per variant of a check
    (scikit-learn's own ``expected_failed_checks`` goes by check name only, which would also mark
    the float64 variants of check_classifiers_train, and they pass)."""
    name = getattr(check, "func", check).__name__
    keywords = getattr(check, "keywords", {})
    if name == "check_classifiers_train" and keywords.get("X_dtype") == "float32":
        return _FLOAT32_LOG_PROBA
    if name == "check_class_weight_classifiers" and estimator.solver == "sgd":
        return _SGD_CLASS_WEIGHTS
    return None


_CHECKED_ESTIMATORS = [
    SoftmaxRegression(),
    SoftmaxRegression(solver="sgd", tol=1e-4, random_state=0),
]
# A list, not the generator older scikit-learn passes (pytest deprecates generators there).
_checks_mark = parametrize_with_checks(_CHECKED_ESTIMATORS)
_parametrize_checks = pytest.mark.parametrize(
    _checks_mark.args[0], list(_checks_mark.args[1]), **_checks_mark.kwargs
)


# the checks' data sets are tiny and the sgd instance may stop at max_iter: not what they test
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@_parametrize_checks
def test_sklearn_estimator_checks(estimator, check, request):
    reason = _expected_failure(estimator, check)
    if reason is not None:  # run it all the same: XPASS when the data happen to be kind
        request.applymarker(pytest.mark.xfail(reason=reason, strict=False))
    check(estimator)


def test_exported_from_the_package():
    assert softmax_fast.SoftmaxRegression is SoftmaxRegression
    assert "SoftmaxRegression" in softmax_fast.__all__


def _sklearn_reached_our_optimum(
    X, y, alpha, sk_coef, sk_intercept, ours, free=slice(None), sample_weight=None
):
    """Both minimize one objective J (evaluated by the NumPy reference). Ours must be converged
    and no higher than scikit-learn's beyond what convexity allows from our stopping point: J is
    convex, so J(sk) >= J(ours) + grad J(ours) . (theta_sk - theta_ours), i.e.

        J(ours) - J(sk) <= grad J(ours) . (theta_ours - theta_sk) + rounding of the two values,

    the gradient evaluated at our stopping point, the rounding bounded by about (2 n + 5) eps
    times the mean per-row logit magnitude max_j (|x_i| |w_j| + |b_j|), plus (2 m + K n + 6) eps
    J (optimum_bounds.rounding_bound; the values are computed in long double).  The symmetric
    objective is invariant under a common shift of the intercepts and its intercept gradient
    sums to 0: the intercept difference is taken with that shift removed.  Which of two
    converged optima is lower by 1e-13 depends on the CPU's BLAS kernels; this bound does not.

    That inequality holds for any two points; what says that our solver converged is the
    certificate from our gradient and Hessian alone (optimum_bounds.excess_bound, the Newton
    decrement): J(ours) - min J <= excess, which must be within the 1e-10 relative the gate
    below asks of scikit-learn; then also J(ours) - J(sk) <= excess (+ rounding).

    Returns the Comparison (optimum_bounds.compare) when scikit-learn's objective is as low
    (relative 1e-10), so that the minimizers can be compared; older scikit-learn (1.3) stops its
    lbfgs earlier on ill-conditioned problems (digits: 9e-6 relative above the optimum, max
    |gradient| 3.5e-6), and then None: only the predictions are compared.  ``free``: the rows
    optimized (not a fixed reference class)."""
    our_dW, our_db = reference.loss_and_grad(
        X, y, ours.coef_, ours.intercept_, alpha=alpha, sample_weight=sample_weight
    )[1:]
    assert max(np.abs(our_dW[free]).max(), np.abs(our_db[free]).max()) <= 1e-6
    comparison = compare(
        X,
        y,
        alpha,
        (ours.coef_, ours.intercept_),
        (sk_coef, sk_intercept),
        free=free,
        sample_weight=sample_weight,
    )
    assert comparison.gap >= 0, comparison
    assert comparison.excess_a <= 1e-10 * comparison.loss_a, comparison
    assert comparison.loss_a - comparison.loss_b <= comparison.excess_a + comparison.rounding
    return comparison if comparison.loss_b <= comparison.loss_a * (1 + 1e-10) else None


def _assert_not_below_the_optimum(X, y, alpha, ref, other, sample_weight=None):
    """``ref`` (an lbfgs fit at tol=1e-10) is certified within 1e-10 relative of min J by its
    gradient and Hessian alone (optimum_bounds.excess_bound); then no ``other`` fit's objective
    is below ref's by more than that certificate plus the rounding of the two values.  (Which
    of two converged fits is lower by 1e-13 is up to the arithmetic.)  Returns the Comparison."""
    comparison = compare(
        X,
        y,
        alpha,
        (ref.coef_, ref.intercept_),
        (other.coef_, other.intercept_),
        sample_weight=sample_weight,
    )
    assert comparison.excess_a <= 1e-10 * comparison.loss_a, comparison
    assert comparison.loss_a - comparison.loss_b <= comparison.excess_a + comparison.rounding
    assert comparison.gap >= 0, comparison
    return comparison


def _two_evaluations(X, model, loss):
    """Bound on the difference of two float64 evaluations of J at the model's parameters (any
    summation order, any tile path): twice optimum_bounds.rounding_bound."""
    return 2 * rounding_bound(X, model.coef_, model.intercept_, loss, eps=EPS)


# ----------------------------------------------------------------------------- vs scikit-learn


@pytest.mark.parametrize("problem", ["digits", "synthetic10"])
def test_lbfgs_matches_sklearn_logistic_regression(problem):
    X, y = _PROBLEMS[problem]()
    C = 1.0
    alpha = 1.0 / (C * X.shape[0])
    sk = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(X, y)
    ours = SoftmaxRegression(alpha=alpha, tol=1e-10, max_iter=10_000).fit(X, y)
    params = (ours.coef_, ours.intercept_), (sk.coef_, sk.intercept_)
    comparison = _sklearn_reached_our_optimum(X, y, alpha, sk.coef_, sk.intercept_, ours)
    if comparison is None:
        assert_same_predictions(X, ours, sk, *params)
        return
    # intercepts are identified up to a common shift: the comparison centres them
    assert_same_model(X, ours, sk, *params, comparison)
    # ours are centred (the mean subtracted in float64)
    assert abs(ours.intercept_.sum()) <= centred_sum_bound(ours.intercept_)


# gd and sgd on the same data, with a stronger penalty so that the fixed-step methods converge in
# a test's time (the condition number grows like 1/alpha)
@pytest.mark.parametrize("problem", ["digits", "synthetic10"])
def test_gd_and_sgd_reach_the_lbfgs_objective(problem):
    X, y = _PROBLEMS[problem]()
    alpha = 0.02
    ref = SoftmaxRegression(alpha=alpha, tol=1e-10, max_iter=10_000).fit(X, y)
    f_ref = _objective(ref, X, y, alpha)
    gd = SoftmaxRegression(alpha=alpha, solver="gd", learning_rate=0.5, max_iter=4000, tol=1e-7)
    gd.fit(X, y)
    f_gd = _objective(gd, X, y, alpha)
    _assert_not_below_the_optimum(X, y, alpha, ref, gd)
    assert f_gd <= f_ref * (1 + 1e-6)
    # the solver's last value and the kernel's at the centred intercepts: one J (the common
    # shift leaves it unchanged), two float64 evaluations
    assert gd.loss_curve_[-1] == pytest.approx(f_gd, rel=0, abs=_two_evaluations(X, gd, f_gd))
    sgd = SoftmaxRegression(
        alpha=alpha,
        solver="sgd",
        learning_rate=0.5,
        batch_size=32,
        max_iter=60,
        tol=1e-7,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sgd.fit(X, y)
    f_sgd = _objective(sgd, X, y, alpha)
    _assert_not_below_the_optimum(X, y, alpha, ref, sgd)
    assert f_sgd <= f_ref * (1 + 1e-3)
    assert sgd.loss_curve_[-1] == pytest.approx(f_sgd, rel=0, abs=_two_evaluations(X, sgd, f_sgd))
    # all three predict (almost) alike
    assert np.mean(sgd.predict(X) == ref.predict(X)) > 0.98
    assert_same_predictions(X, gd, ref, (gd.coef_, gd.intercept_), (ref.coef_, ref.intercept_))


def test_sgd_is_reproducible_with_random_state():
    X, y = _softmax_problem(600, 5, 3, seed=1)
    kw = dict(solver="sgd", max_iter=5, batch_size=50, random_state=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = SoftmaxRegression(**kw).fit(X, y)
        b = SoftmaxRegression(**kw).fit(X, y)
        c = SoftmaxRegression(**{**kw, "random_state": 8}).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert not np.array_equal(a.coef_, c.coef_)


def test_binary_reference_class_is_logistic_regression():
    X, y = _softmax_problem(800, 6, 2, seed=5)
    labels = np.array(["neg", "pos"])[y]
    C = 0.5
    sk = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(X, labels)
    ours = SoftmaxRegression(
        alpha=1.0 / (C * X.shape[0]), reference_class="neg", tol=1e-10, max_iter=10_000
    ).fit(X, labels)
    assert ours.coef_.shape == (2, 6) and ours.intercept_.shape == (2,)
    np.testing.assert_array_equal(ours.coef_[0], 0.0)
    assert ours.intercept_[0] == 0.0
    y01 = (labels == "pos").astype(np.intp)
    sk_coef = np.vstack([np.zeros_like(sk.coef_), sk.coef_])
    sk_intercept = np.concatenate([[0.0], sk.intercept_])
    alpha = 1.0 / (C * X.shape[0])
    params = (ours.coef_, ours.intercept_), (sk_coef, sk_intercept)
    comparison = _sklearn_reached_our_optimum(X, y01, alpha, sk_coef, sk_intercept, ours, free=[1])
    if comparison is None:
        assert_same_predictions(X, ours, sk, *params)
        return
    # decision_function follows scikit-learn's binary convention: shape (m,), > 0 means classes_[1]
    assert ours.decision_function(X).shape == sk.decision_function(X).shape == (X.shape[0],)
    # coefficients and intercept within the radii, decision functions within radius *
    # ||(x_i, 1)||, predictions and probabilities alike (row 0 is fixed: no shift to remove)
    assert_same_model(X, ours, sk, *params, comparison)


def test_reference_form_and_symmetric_form_agree_without_penalty():
    X, y = _softmax_problem(2000, 4, 4, seed=11)
    labels = np.array(["a", "b", "c", "d"])[y]
    sym = SoftmaxRegression(alpha=0.0, tol=1e-10, max_iter=1000).fit(X, labels)
    ref = SoftmaxRegression(alpha=0.0, reference_class="c", tol=1e-10, max_iter=1000)
    ref.fit(X, labels)
    np.testing.assert_array_equal(ref.coef_[2], 0.0)
    assert ref.intercept_[2] == 0.0
    assert abs(sym.intercept_.sum()) <= centred_sum_bound(sym.intercept_)
    # Without a penalty the symmetric form minus its row "c" is a point of the reference form's
    # objective (the same J), which is strictly convex on rows a, b, d: ref's certificate and
    # the local curvature bound the distance between the two (optimum_bounds.compare).
    y_index = np.searchsorted(ref.classes_, labels)
    mapped = sym.coef_ - sym.coef_[2], sym.intercept_ - sym.intercept_[2]
    comparison = compare(X, y_index, 0.0, (ref.coef_, ref.intercept_), mapped, free=[0, 1, 3])
    assert comparison.excess_a <= 1e-10 * comparison.loss_a, comparison
    assert comparison.gap >= 0, comparison
    # the symmetric coefficients differ from the reference ones by the reference row
    assert comparison.dist <= comparison.radius, comparison
    # both forms describe the same probabilities: within exp(+-osc) of their logit difference,
    # which (per row, up to a common shift) is within radius * ||(x_i, 1)||
    Z_ref, Z_sym = ref.decision_function(X), sym.decision_function(X)
    rounding = logit_rounding(X, ref.coef_, ref.intercept_) + logit_rounding(X, *mapped)
    rounding += logit_rounding(X, sym.coef_, sym.intercept_)
    d = Z_ref - Z_sym
    osc = d.max(axis=1) - d.min(axis=1)
    assert np.all(osc <= 2 * (comparison.radius * augmented_norms(X) + rounding))
    P_ref, P_sym = ref.predict_proba(X), sym.predict_proba(X)
    tolerance = probability_tolerance(P_ref, P_sym, Z_ref, Z_sym, rounding)
    assert np.all(np.abs(P_ref - P_sym) <= tolerance)


# ----------------------------------------------------------------------------- weights


def test_integer_sample_weights_equal_repeated_rows():
    X, y = _softmax_problem(300, 5, 3, seed=2)
    w = np.random.default_rng(0).integers(0, 4, X.shape[0])
    kw = dict(alpha=1e-2, tol=1e-10, max_iter=1000)
    weighted = SoftmaxRegression(**kw).fit(X, y, sample_weight=w)
    repeated = SoftmaxRegression(**kw).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    # one objective J (weights summing to the repeated rows' count): weighted's certificate,
    # then strong convexity (alpha) and the local curvature bound the distance to repeated's
    comparison = compare(
        X,
        y,
        kw["alpha"],
        (weighted.coef_, weighted.intercept_),
        (repeated.coef_, repeated.intercept_),
        sample_weight=w,
    )
    assert comparison.excess_a <= 1e-10 * comparison.loss_a, comparison
    assert comparison.gap >= 0, comparison
    assert comparison.w_dist <= comparison.w_radius, comparison
    assert comparison.dist <= comparison.radius, comparison  # coefficients and intercepts
    unweighted = SoftmaxRegression(**kw).fit(X, y)
    assert np.abs(unweighted.coef_ - weighted.coef_).max() > 1e-2  # the weights do matter


def test_class_weight_balanced_matches_sklearn():
    X, y = _softmax_problem(900, 5, 3, seed=4)
    keep = (y != 2) | (np.arange(y.size) % 4 == 0)  # make class 2 rare
    X, y = X[keep], y[keep]
    C = 2.0
    sk = LogisticRegression(C=C, class_weight="balanced", tol=1e-10, max_iter=10_000).fit(X, y)
    # the balanced weights sum to the number of rows: alpha = 1 / (C * m)
    alpha = 1.0 / (C * X.shape[0])
    ours = SoftmaxRegression(alpha=alpha, class_weight="balanced", tol=1e-10, max_iter=10_000).fit(
        X, y
    )
    weights = compute_sample_weight("balanced", y)
    params = (ours.coef_, ours.intercept_), (sk.coef_, sk.intercept_)
    comparison = _sklearn_reached_our_optimum(
        X, y, alpha, sk.coef_, sk.intercept_, ours, sample_weight=weights
    )
    if comparison is None:
        assert_same_predictions(X, ours, sk, *params)
    else:  # the intercepts compared centred (identified up to a common shift)
        assert_same_model(X, ours, sk, *params, comparison)
    plain = SoftmaxRegression(alpha=alpha).fit(X, y)
    assert np.mean(ours.predict(X) == 2) > np.mean(plain.predict(X) == 2)


def test_class_weight_dict_equals_sample_weight():
    X, y = _softmax_problem(300, 4, 3, seed=6)
    kw = dict(alpha=1e-2, tol=1e-10, max_iter=1000)
    by_class = SoftmaxRegression(class_weight={0: 3.0, 2: 0.5}, **kw).fit(X, y)
    by_row = SoftmaxRegression(**kw).fit(X, y, sample_weight=np.array([3.0, 1.0, 0.5])[y])
    np.testing.assert_allclose(by_class.coef_, by_row.coef_, rtol=1e-8, atol=1e-10)


# ----------------------------------------------------------------------------- streaming, warm


def test_partial_fit_approaches_the_fit_objective():
    X, y = _softmax_problem(3000, 10, 5, seed=8)
    alpha = 1e-3
    full = SoftmaxRegression(alpha=alpha, tol=1e-10, max_iter=1000).fit(X, y)
    f_full = _objective(full, X, y, alpha)
    stream = SoftmaxRegression(alpha=alpha, batch_size=50, learning_rate=0.5, random_state=0)
    rng = np.random.default_rng(0)
    classes = np.arange(5)
    curve = []
    for _ in range(8):
        order = rng.permutation(X.shape[0])
        for start in range(0, X.shape[0], 300):
            rows = order[start : start + 300]
            stream.partial_fit(X[rows], y[rows], classes=classes)
        curve.append(_objective(stream, X, y, alpha))
    assert stream.n_iter_ == 8 * 10 and len(stream.loss_curve_) == 80
    assert curve[-1] < curve[0]
    _assert_not_below_the_optimum(X, y, alpha, full, stream)
    assert curve[-1] <= f_full * (1 + 1e-2)
    assert np.mean(stream.predict(X) == full.predict(X)) > 0.95


def test_partial_fit_classes_rules():
    X, y = _softmax_problem(200, 3, 3, seed=9)
    labels = np.array(["x", "y", "z"])[y]
    model = SoftmaxRegression()
    with pytest.raises(ValueError, match="classes"):
        model.partial_fit(X, labels)
    model.partial_fit(X[labels != "z"], labels[labels != "z"], classes=["x", "y", "z"])
    np.testing.assert_array_equal(model.classes_, ["x", "y", "z"])
    assert model.coef_.shape == (3, 3)
    model.partial_fit(X, labels)  # later calls need no classes
    with pytest.raises(ValueError, match="y: .*'w'"):
        model.partial_fit(X[:2], np.array(["x", "w"]))
    with pytest.raises(ValueError, match="classes"):
        model.partial_fit(X, labels, classes=["x", "y"])
    with pytest.raises(ValueError, match="X has 2 features"):
        model.partial_fit(X[:, :2], labels)
    with pytest.raises(ValueError, match="class_weight"):
        SoftmaxRegression(class_weight="balanced").partial_fit(X, labels, classes=["x", "y", "z"])


def test_warm_start_resumes_from_the_previous_solution():
    X, y = _softmax_problem(1000, 8, 4, seed=10)
    model = SoftmaxRegression(alpha=1e-3, tol=1e-8, max_iter=500, warm_start=True).fit(X, y)
    cold_iters = model.n_iter_
    previous = model.coef_.copy(), model.intercept_.copy()
    model.fit(X, y)
    assert model.n_iter_ <= 2 < cold_iters
    # both near the one optimum: the refit's certificate, strong convexity, local curvature
    comparison = compare(X, y, 1e-3, (model.coef_, model.intercept_), previous)
    assert comparison.excess_a <= 1e-10 * comparison.loss_a, comparison
    assert comparison.w_dist <= comparison.w_radius, comparison
    assert comparison.dist <= comparison.radius, comparison
    # a nearby problem: fewer iterations from the previous solution than from zero
    model.set_params(alpha=1.2e-3).fit(X, y)
    cold = SoftmaxRegression(alpha=1.2e-3, tol=1e-8, max_iter=500).fit(X, y)
    assert model.n_iter_ < cold.n_iter_
    comparison = compare(
        X, y, 1.2e-3, (cold.coef_, cold.intercept_), (model.coef_, model.intercept_)
    )
    assert comparison.excess_a <= 1e-10 * comparison.loss_a, comparison
    assert comparison.w_dist <= comparison.w_radius, comparison
    assert comparison.dist <= comparison.radius, comparison
    # without warm_start every fit starts from zero
    again = clone(cold).fit(X, y)
    assert again.n_iter_ == cold.n_iter_


# ----------------------------------------------------------------------------- float32


def test_float32_is_never_copied_to_float64(monkeypatch):
    X, y = _softmax_problem(20_000, 40, 5, seed=12)
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    seen = []
    real = DenseDesign.loss_grad

    def spy(design, W, *args):
        seen.append((np.shares_memory(design.X, X32), design.X.dtype, W.dtype))
        return real(design, W, *args)

    monkeypatch.setattr(DenseDesign, "loss_grad", spy)
    tracemalloc.start()
    try:
        # (lbfgs: the fused gradient's path; newton's Hessian is float64 by design, from
        # row blocks of X of bounded size: tests/solvers/test_newton.py)
        m32 = SoftmaxRegression(alpha=1e-4, solver="lbfgs").fit(X32, y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seen and all(s == (True, np.float32, np.float32) for s in seen)
    assert peak < 0.5 * X32.nbytes  # a float64 copy alone would be 2 * X32.nbytes
    monkeypatch.setattr(DenseDesign, "loss_grad", real)
    m64 = SoftmaxRegression(alpha=1e-4, solver="lbfgs").fit(X, y)
    # the two predict alike wherever their logits decide (float32 logits: X and the
    # coefficients rounded to float32, then float32 arithmetic), so the scores differ by at most
    # the fraction of undecided rows
    eps32 = float(np.finfo(np.float32).eps)
    rounding = logit_rounding(X, m64.coef_, m64.intercept_) + logit_rounding(
        X, m32.coef_, m32.intercept_, eps=eps32, input_roundings=2
    )
    Z32 = m32.decision_function(X32).astype(np.float64)
    Z64 = m64.decision_function(X)
    assert_predictions_agree(m32.predict(X32), m64.predict(X), Z32, Z64, rounding, MIN_DECIDED)
    undecided = 1.0 - decided_rows(Z32, Z64, rounding).mean()
    assert abs(m32.score(X32, y) - m64.score(X, y)) <= undecided
    assert m32.predict_proba(X32[:5]).dtype == np.float32
    np.testing.assert_allclose(m32.coef_, m64.coef_, atol=1e-3)


def test_c_contiguous_float64_is_not_copied(monkeypatch):
    X, y = _softmax_problem(500, 4, 3, seed=13)
    same = []
    real = DenseDesign.loss_grad
    monkeypatch.setattr(
        DenseDesign,
        "loss_grad",
        lambda design, *a: (same.append(design.X is X), real(design, *a))[1],
    )
    SoftmaxRegression().fit(X, y)
    assert same and all(same)


# ----------------------------------------------------------------------------- meta-estimators, IO


def test_pipeline_and_grid_search():
    X, y = load_digits(return_X_y=True)
    pipe = Pipeline([("scale", StandardScaler()), ("clf", SoftmaxRegression(alpha=1e-2))])
    pipe.fit(X[:1400], y[:1400])
    assert pipe.score(X[1400:], y[1400:]) > 0.9
    assert pipe.predict_proba(X[:3]).shape == (3, 10)
    # a penalty of 10 underfits badly: the grid search must pick 1e-2
    grid = GridSearchCV(pipe, {"clf__alpha": [1e-2, 10.0]}, cv=3).fit(X[:600], y[:600])
    assert grid.best_params_ == {"clf__alpha": 1e-2}
    assert grid.best_score_ > 0.8
    assert grid.predict(X[:5]).shape == (5,)


def test_pickle_joblib_clone_and_params(tmp_path):
    X, y = _softmax_problem(300, 5, 3, seed=14)
    labels = np.array(["cat", "dog", "eel"])[y]
    model = SoftmaxRegression(alpha=1e-3, reference_class="dog").fit(X, labels)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
    joblib.dump(model, tmp_path / "m.joblib")
    loaded = joblib.load(tmp_path / "m.joblib")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    fresh = clone(model)
    assert not hasattr(fresh, "coef_")
    assert fresh.get_params() == model.get_params()
    assert fresh.set_params(alpha=0.5, solver="gd").get_params()["solver"] == "gd"
    assert model.get_params()["alpha"] == 1e-3


def test_feature_names_in_from_a_dataframe():
    pd = pytest.importorskip("pandas")
    X, y = _softmax_problem(100, 3, 3, seed=15)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    model = SoftmaxRegression().fit(df, y)
    np.testing.assert_array_equal(model.feature_names_in_, ["a", "b", "c"])
    model.predict(df)


# ----------------------------------------------------------------------------- behaviour


def test_fitted_attributes_and_probabilities():
    X, y = _softmax_problem(400, 6, 4, seed=16)
    model = SoftmaxRegression(alpha=1e-3).fit(X, y)
    assert model.coef_.shape == (4, 6) and model.intercept_.shape == (4,)
    assert model.n_features_in_ == 6 and model.n_iter_ >= 1
    assert len(model.loss_curve_) == model.n_iter_
    assert model.loss_curve_[-1] <= model.loss_curve_[0]
    P = model.predict_proba(X)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.exp(model.predict_log_proba(X)), P, rtol=1e-12)
    Z = model.decision_function(X)
    # two float64 evaluations of the logits, (n + 1) eps |x_i| . |w_j| + |b_j| each
    magnitude = np.abs(X) @ np.abs(model.coef_).T + np.abs(model.intercept_)
    tolerance = 2 * (X.shape[1] + 1) * EPS * magnitude
    assert np.all(np.abs(Z - (X @ model.coef_.T + model.intercept_)) <= tolerance)
    # predict (the kernel's logits) is the argmax of decision_function (NumPy's) on every row
    # whose top-two gap the rounding of the two cannot close
    rounding = logit_rounding(X, model.coef_, model.intercept_)
    assert_predictions_agree(model.predict(X), Z.argmax(axis=1), Z, Z, rounding, MIN_DECIDED)
    # with alpha > 0 each feature's coefficients sum to 0 over the classes (the penalty's optimum)
    np.testing.assert_allclose(model.coef_.sum(axis=0), 0.0, atol=1e-6)


def test_no_intercept():
    X, y = _softmax_problem(300, 4, 3, seed=17)
    model = SoftmaxRegression(fit_intercept=False).fit(X, y)
    np.testing.assert_array_equal(model.intercept_, 0.0)
    # two float64 evaluations of the logits, (n + 1) eps |x_i| . |w_j| each
    magnitude = np.abs(X) @ np.abs(model.coef_).T
    tolerance = 2 * (X.shape[1] + 1) * EPS * magnitude
    assert np.all(np.abs(model.decision_function(X) - X @ model.coef_.T) <= tolerance)


def test_predict_log_proba_uses_log_softmax_not_log_of_proba():
    X, y = _softmax_problem(200, 3, 3, seed=18)
    model = SoftmaxRegression().fit(X, y)
    far = 1e3 * X[:20]  # logits in the thousands: probabilities underflow to 0
    with np.errstate(divide="ignore"):
        naive = np.log(model.predict_proba(far))
    logp = model.predict_log_proba(far)
    assert np.isneginf(naive).any()
    assert np.all(np.isfinite(logp))
    Z = far @ model.coef_.T + model.intercept_
    np.testing.assert_allclose(logp, Z - Z.max(axis=1, keepdims=True), atol=1e-6, rtol=1e-9)


@pytest.mark.parametrize("solver", ["lbfgs", "gd", "sgd"])
def test_convergence_warning_once_at_max_iter(solver):
    X, y = _softmax_problem(300, 4, 3, seed=19)
    model = SoftmaxRegression(solver=solver, max_iter=2, tol=1e-12, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, y)
    conv = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert len(conv) == 1
    assert "max_iter" in str(conv[0].message) and "Increase max_iter" in str(conv[0].message)
    assert model.n_iter_ == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        SoftmaxRegression(alpha=1e-2, max_iter=500).fit(X, y)  # converges: no warning


@pytest.mark.parametrize("solver", ["lbfgs", "gd", "sgd"])
def test_verbose_prints_objective_and_gradient(solver, capsys):
    X, y = _softmax_problem(200, 3, 3, seed=20)
    kw = dict(solver=solver, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        SoftmaxRegression(**kw).fit(X, y)
        assert capsys.readouterr().out == ""
        SoftmaxRegression(verbose=1, **kw).fit(X, y)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) >= 2
    assert all("objective" in line and "max|grad|" in line for line in lines)


def test_gd_with_too_large_a_step_is_reported():
    X, y = _softmax_problem(100, 3, 3, seed=21)
    with pytest.raises(ValueError, match="learning_rate"):
        SoftmaxRegression(solver="gd", alpha=1.0, learning_rate=1e3, max_iter=2000).fit(X, y)


def test_docstring_example_runs():
    out = io.StringIO()
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    clf = SoftmaxRegression(alpha=1e-3).fit(X, y)
    print(clf.predict(X[:2]), file=out)
    assert out.getvalue().strip() == "[0 0]"
    assert clf.score(X, y) > 0.95

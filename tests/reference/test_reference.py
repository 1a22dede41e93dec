"""The NumPy reference against hand-computed truths.

The reference is the yardstick for every kernel test, so it is checked here on its own: against
values worked out by hand, against math.exp/math.log evaluated row by row in Python, and its
gradients against central finite differences.  This file needs only ``reference.py``: when the
package cannot be imported (the extension is not built yet), the module is loaded by file path.
"""

import math

import numpy as np
import pytest
from kernel_test_helpers import central_diff
from reference_module import ref

EPS = float(np.finfo(np.float64).eps)
# Accuracy of exp and log, in ulps (an ulp of x is <= eps |x|): NumPy's float64 SIMD versions
# (its AVX-512 ones included) within 4, Python's math (the C library) within 1.
NP_ULP, MATH_ULP = 4, 1


def row_loss_tolerance(Z):
    """Bound on |NumPy's - Python's| cross-entropy of each row (lse - z_y, or a y-weighted mean
    of such terms).  Each side: K exps and one log (within its ulps) of terms bounded by A_i =
    max_k |z_ik| + log K, a sum of K terms and two subtractions: eps ((ulp + 2) 3 A_i + K)."""
    A = np.abs(Z).max(axis=1) + math.log(Z.shape[1])
    return EPS * ((NP_ULP + MATH_ULP + 4) * 3 * A + 2 * Z.shape[1])


def sigmoid(t):
    return 1.0 / (1.0 + math.exp(-t))


def py_logsumexp(row):
    return math.log(math.fsum(math.exp(v) for v in row))


# ---------------------------------------------------------------------------------------------
# Known values
# ---------------------------------------------------------------------------------------------


def test_softmax_of_3_4_6():
    p = ref.softmax(np.array([[3.0, 4.0, 6.0]]))[0]
    np.testing.assert_allclose(p, [0.04201007, 0.1141952, 0.84379473], rtol=0, atol=1e-7)
    # The same probabilities rounded to 4 decimals, and truncated to 4 decimals.
    np.testing.assert_array_equal(np.round(p, 4), [0.0420, 0.1142, 0.8438])
    np.testing.assert_allclose(np.floor(p * 1e4) / 1e4, [0.0420, 0.1141, 0.8437], atol=1e-12)


def test_softmax_3_4_6_by_hand():
    e = [math.exp(3 - 6), math.exp(4 - 6), 1.0]
    expected = [v / sum(e) for v in e]
    # each side: its exp of each entry and of the sum's terms, a sum of K terms, a division
    rtol = (2 * (NP_ULP + MATH_ULP) + 3 + 2) * EPS
    np.testing.assert_allclose(ref.softmax(np.array([[3.0, 4.0, 6.0]]))[0], expected, rtol=rtol)


def test_sigmoid_equals_two_class_softmax():
    # sigmoid(2 * 1 + 1) = 0.9526 (4 decimals) is softmax([3, 0])[0].
    s = sigmoid(2 * 1 + 1)
    assert round(s, 4) == 0.9526
    p = ref.softmax(np.array([[3.0, 0.0]]))[0]
    # one exp each (of exp(-3) < 1), a sum, a division, the complement 1 - s: absolute
    atol = (NP_ULP + MATH_ULP + 4) * EPS
    assert abs(p[0] - s) <= atol
    assert abs(p[1] - (1 - s)) <= atol


def test_two_class_softmax_is_sigmoid_of_difference():
    rng = np.random.default_rng(0)
    Z = rng.normal(0, 5, size=(200, 2))
    p = ref.softmax(Z)
    expected = np.array([sigmoid(a - b) for a, b in Z])
    np.testing.assert_allclose(p[:, 0], expected, rtol=1e-13)
    np.testing.assert_allclose(p[:, 1], 1 - expected, rtol=1e-12, atol=1e-15)


def test_softmax_rows_sum_to_one_and_shift_invariance():
    rng = np.random.default_rng(1)
    Z = rng.normal(0, 3, size=(50, 17))
    p = ref.softmax(Z)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-14)
    assert (p > 0).all()
    np.testing.assert_allclose(ref.softmax(Z + rng.normal(0, 100, size=(50, 1))), p, rtol=1e-11)


def test_log_softmax_equals_log_of_softmax_on_moderate_inputs():
    rng = np.random.default_rng(2)
    Z = rng.normal(0, 4, size=(40, 9))
    np.testing.assert_allclose(ref.log_softmax(Z), np.log(ref.softmax(Z)), rtol=1e-12, atol=1e-14)


def test_log_softmax_finite_where_softmax_underflows():
    lp = ref.log_softmax(np.array([[0.0, -800.0, 5.0]]))
    assert np.isfinite(lp).all()
    np.testing.assert_allclose(lp[0, 1], -805.0 - math.log1p(math.exp(-5.0)), rtol=1e-15)


def test_logsumexp_against_math():
    rng = np.random.default_rng(3)
    Z = rng.normal(0, 2, size=(20, 6))
    expected = [py_logsumexp(row) for row in Z]
    np.testing.assert_array_less(np.abs(ref.logsumexp(Z) - expected), row_loss_tolerance(Z))
    # Large values where the naive formula overflows.
    big = np.array([[1000.0, 1000.0], [-1000.0, -1001.0]])
    np.testing.assert_allclose(
        ref.logsumexp(big), [1000 + math.log(2), -1000 + math.log1p(math.exp(-1))], rtol=1e-15
    )


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_reference_handles_masks():
    Z = np.array([[0.0, -np.inf, 1.0], [-np.inf, 2.0, -np.inf]])
    p = ref.softmax(Z)
    assert p[0, 1] == 0 and p[1, 0] == 0 and p[1, 2] == 0 and p[1, 1] == 1
    lp = ref.log_softmax(Z)
    assert lp[0, 1] == -np.inf and lp[1, 1] == 0
    Y = np.array([[0.5, 0.0, 0.5], [0.0, 1.0, 0.0]])
    losses = ref.cross_entropy(Z, Y, reduction="none")
    assert np.isfinite(losses).all()
    assert ref.cross_entropy(Z, np.array([1, 1]), reduction="none")[0] == np.inf


# ---------------------------------------------------------------------------------------------
# Cross-entropy
# ---------------------------------------------------------------------------------------------


def test_cross_entropy_by_hand():
    rng = np.random.default_rng(4)
    Z = rng.normal(0, 2, size=(12, 5))
    y = rng.integers(0, 5, size=12)
    w = rng.uniform(0.5, 2.0, size=12)
    rows = [py_logsumexp(Z[i]) - Z[i, y[i]] for i in range(12)]
    # per row; weighted: one product more (relative eps); the reductions: a sum of 12 terms
    # >= 0 (and of the weights, and a division) on top of the rows' own errors
    tol = row_loss_tolerance(Z)
    got = ref.cross_entropy(Z, y, reduction="none")
    np.testing.assert_array_less(np.abs(got - rows), tol)
    got = ref.cross_entropy(Z, y, sample_weight=w, reduction="none")
    np.testing.assert_array_less(np.abs(got - w * np.array(rows)), w * tol + 2 * EPS * got)
    total = math.fsum(rows)
    summed = tol.sum() + 14 * EPS * total
    assert ref.cross_entropy(Z, y) == pytest.approx(total / 12, rel=0, abs=summed / 12)
    assert ref.cross_entropy(Z, y, reduction="sum") == pytest.approx(total, rel=0, abs=summed)
    wmean = math.fsum(wi * r for wi, r in zip(w, rows, strict=True)) / math.fsum(w)
    wtol = math.fsum(w * tol) / math.fsum(w) + 30 * EPS * wmean
    assert ref.cross_entropy(Z, y, sample_weight=w) == pytest.approx(wmean, rel=0, abs=wtol)


def test_cross_entropy_soft_targets_by_hand():
    rng = np.random.default_rng(5)
    Z = rng.normal(0, 2, size=(8, 4))
    Y = rng.dirichlet(np.ones(4), size=8)
    rows = [
        -math.fsum(Y[i, k] * (Z[i, k] - py_logsumexp(Z[i])) for k in range(4)) for i in range(8)
    ]
    # a y-weighted mean of the label terms (sum y = 1), and the K products and the sum: 2 K eps
    tol = row_loss_tolerance(Z) + 2 * 4 * EPS * np.array(rows)
    np.testing.assert_array_less(np.abs(ref.cross_entropy(Z, Y, reduction="none") - rows), tol)


def test_one_hot_targets_equal_labels():
    rng = np.random.default_rng(6)
    Z = rng.normal(0, 3, size=(30, 7))
    y = rng.integers(0, 7, size=30)
    Y = ref.one_hot(y, 7)
    w = rng.uniform(0.1, 2.0, size=30)
    for reduction in ("mean", "sum", "none"):
        np.testing.assert_allclose(
            ref.cross_entropy(Z, Y, sample_weight=w, reduction=reduction),
            ref.cross_entropy(Z, y, sample_weight=w, reduction=reduction),
            rtol=1e-14,
        )
    l1, g1 = ref.cross_entropy_grad(Z, y, w)
    l2, g2 = ref.cross_entropy_grad(Z, Y, w)
    assert l1 == pytest.approx(l2, rel=1e-14)
    np.testing.assert_allclose(g1, g2, rtol=1e-14)


def test_cross_entropy_of_two_classes_is_logistic_loss():
    rng = np.random.default_rng(7)
    Z = rng.normal(0, 3, size=(25, 2))
    y = rng.integers(0, 2, size=25)
    # -log sigmoid(z_y - z_other)
    expected = [math.log1p(math.exp(-(Z[i, y[i]] - Z[i, 1 - y[i]]))) for i in range(25)]
    # absolute: a small loss is lse - z_y with cancellation (log(1 + e^-margin) in the reference)
    got = ref.cross_entropy(Z, y, reduction="none")
    np.testing.assert_array_less(np.abs(got - expected), row_loss_tolerance(Z))


# ---------------------------------------------------------------------------------------------
# Gradients against central finite differences (float64)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("targets", ["labels", "soft"])
def test_reference_cross_entropy_grad_finite_differences(targets):
    rng = np.random.default_rng(8)
    Z = rng.normal(0, 2, size=(6, 4))
    y = rng.integers(0, 4, size=6) if targets == "labels" else rng.dirichlet(np.ones(4), size=6)
    w = rng.uniform(0.2, 2.0, size=6)
    loss, dZ = ref.cross_entropy_grad(Z, y, w)
    assert loss == pytest.approx(ref.cross_entropy(Z, y, w), rel=1e-15)
    fd = central_diff(lambda: ref.cross_entropy(Z, y, w), Z)
    np.testing.assert_allclose(dZ, fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("targets", ["labels", "soft"])
@pytest.mark.parametrize("intercept", [False, True])
def test_reference_loss_and_grad_finite_differences(targets, intercept):
    rng = np.random.default_rng(9)
    m, K, n = 15, 4, 3
    X = rng.normal(size=(m, n))
    W = rng.normal(size=(K, n))
    b = rng.normal(size=K) if intercept else None
    y = rng.integers(0, K, size=m) if targets == "labels" else rng.dirichlet(np.ones(K), size=m)
    w = rng.uniform(0.2, 2.0, size=m)
    alpha = 0.7
    loss, dW, db = ref.loss_and_grad(X, y, W, b, alpha=alpha, sample_weight=w)

    # The objective written out directly.
    Z = X @ W.T + (0 if b is None else b)
    expected = ref.cross_entropy(Z, y, w) + 0.5 * alpha * np.sum(W**2)
    assert loss == pytest.approx(expected, rel=1e-14)

    fdW = central_diff(lambda: ref.loss_and_grad(X, y, W, b, alpha=alpha, sample_weight=w)[0], W)
    np.testing.assert_allclose(dW, fdW, rtol=1e-6, atol=1e-9)
    if intercept:
        fdb = central_diff(
            lambda: ref.loss_and_grad(X, y, W, b, alpha=alpha, sample_weight=w)[0], b
        )
        np.testing.assert_allclose(db, fdb, rtol=1e-6, atol=1e-9)
        # The intercept is not penalized: db does not depend on alpha.
        _, _, db0 = ref.loss_and_grad(X, y, W, b, alpha=0.0, sample_weight=w)
        np.testing.assert_allclose(db, db0, rtol=1e-15)
    else:
        assert db is None


def test_reference_predict_is_argmax_and_proba_rows_sum_to_one():
    rng = np.random.default_rng(10)
    X = rng.normal(size=(40, 3))
    W = rng.normal(size=(5, 3))
    b = rng.normal(size=5)
    P = ref.predict_proba(X, W, b)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-14)
    np.testing.assert_array_equal(ref.predict(X, W, b), np.argmax(X @ W.T + b, axis=1))
    np.testing.assert_array_equal(ref.predict(X, W, b), np.argmax(P, axis=1))

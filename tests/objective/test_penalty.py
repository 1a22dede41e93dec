"""The L2 penalty's forms: ``l2_penalty`` (value and ``alpha W``) and ``add_l2_penalty`` (the
same added to a gradient in place, block by block) give the same bits; the objective's native
penalized gradient (large models) agrees with them to rounding."""

import numpy as np
import pytest

from softmax_fast._objective import _PENALTY_BLOCK, add_l2_penalty, l2_penalty


@pytest.mark.parametrize(
    "shape", [(1, 1), (3, 7), (2, _PENALTY_BLOCK // 2 + 5), (5, _PENALTY_BLOCK)], ids=str
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("alpha", [0.0, 1e-4, 3.0])
def test_added_penalty_equals_the_penalty_and_its_gradient(shape, dtype, alpha):
    rng = np.random.default_rng(0)
    W = rng.standard_normal(shape).astype(dtype)
    grad = rng.standard_normal(shape)
    W_before = W.copy()
    value, penalty_grad = l2_penalty(W, alpha)
    expected = grad + penalty_grad
    out = grad.copy()
    assert add_l2_penalty(out, W, alpha) == value
    np.testing.assert_array_equal(out, expected)  # bit for bit: the same two roundings
    np.testing.assert_array_equal(W, W_before)


def test_added_penalty_on_a_non_contiguous_gradient():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((4, 6))
    base = rng.standard_normal((6, 4))
    grad = base.T  # (4, 6), not C-contiguous
    value, penalty_grad = l2_penalty(W, 0.5)
    expected = grad + penalty_grad
    assert add_l2_penalty(grad, W, 0.5) == value
    np.testing.assert_array_equal(grad, expected)
    np.testing.assert_array_equal(base.T, expected)  # written through to the caller's array


@pytest.mark.parametrize("reference", [None, 1])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_objective_native_penalized_gradient_equals_the_numpy_one(
    monkeypatch, reference, fit_intercept
):
    """The objective's two ways of adding the penalty (NumPy below NATIVE_PENALTY_MIN
    coefficients, one native pass from there on): the same value and gradient, up to the
    rounding of ||W||^2 (a sum of n_coef squares, 2 n_coef eps relative for both sums
    together) and of ``dW + alpha W`` (one or two roundings: 2 eps of |dW| + |alpha W|)."""
    from softmax_fast import _objective
    from softmax_fast._design import DenseDesign

    rng = np.random.default_rng(3)
    X = rng.standard_normal((60, 9))
    y = rng.integers(0, 4, 60)
    objective = _objective.SoftmaxObjective(
        DenseDesign(X, 2), y.astype(np.intp), None, 4, 0.3, fit_intercept, reference
    )
    theta = rng.standard_normal(objective.n_params)
    value, grad = objective.value_and_grad(theta)
    monkeypatch.setattr(_objective, "NATIVE_PENALTY_MIN", 0)
    native_value, native_grad = objective.value_and_grad(theta)
    k_n = objective.class_rows.size * objective.n_features
    eps = float(np.finfo(np.float64).eps)
    squares = float(theta[:k_n] @ theta[:k_n])
    assert abs(native_value - value) <= 2 * k_n * eps * 0.15 * squares + 4 * eps * abs(value)
    data_term = grad[:k_n] - 0.3 * theta[:k_n]
    bound = 2 * eps * (np.abs(data_term) + np.abs(0.3 * theta[:k_n])) * 2
    assert (np.abs(native_grad[:k_n] - grad[:k_n]) <= bound).all()
    np.testing.assert_array_equal(native_grad[k_n:], grad[k_n:])  # the intercepts: no penalty


@pytest.mark.parametrize("n_threads", [1, 2])
def test_added_penalty_native_pass_within_rounding(monkeypatch, n_threads):
    """From NATIVE_PENALTY_MIN coefficients on, add_l2_penalty is one native pass in place:
    ``grad + alpha W`` within one or two roundings (2 eps of |grad| + |alpha W|) and ||W||^2
    within 2 n eps of NumPy's sum (both sums' errors)."""
    from softmax_fast import _objective

    monkeypatch.setattr(_objective, "NATIVE_PENALTY_MIN", 0)
    rng = np.random.default_rng(4)
    W = rng.standard_normal((3, 3000))
    grad = rng.standard_normal((3, 3000))
    out = grad.copy()
    value = add_l2_penalty(out, W, 0.7, n_threads)
    eps = float(np.finfo(np.float64).eps)
    squares = float(np.sum(W * W))
    assert abs(value - 0.35 * squares) <= 2 * W.size * eps * 0.35 * squares
    bound = 2 * eps * (np.abs(grad) + np.abs(0.7 * W))
    assert (np.abs(out - (grad + 0.7 * W)) <= bound).all()

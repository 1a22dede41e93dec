"""The L2 penalty's two forms: ``l2_penalty`` (value and ``alpha W``) and ``add_l2_penalty``
(the same added to a gradient in place, block by block) give the same bits."""

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

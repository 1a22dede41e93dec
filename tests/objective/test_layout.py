"""theta's layout follows the design: (K_free, n) for dense X, feature-major (n, K_free) for CSR
X.  ``pack`` and ``unpack`` convert from and to the user's (K, n) coefficients exactly, and the
objective on a CSR design is the public ``loss_and_grad`` on the same X and coefficients: the
same kernel sums in either layout (the public call reads W and writes dW as (K, n), or
transposes them exactly) and the same penalty terms, so the same gradient bits in float64
(the loss up to the order of ||W||^2's terms), and dW rounded once to float32 by the public
call for float32 X."""

import numpy as np
import pytest
import scipy.sparse as sp

import softmax_fast as sf
from softmax_fast._design import CSRDesign, DenseDesign
from softmax_fast._objective import SoftmaxObjective
from softmax_fast._validation import as_csr_arrays

EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)


def _problem(dtype, seed=0, m=40, n=70, K=5):
    rng = np.random.default_rng(seed)
    X = sp.random(m, n, density=0.15, format="csr", random_state=seed, dtype=np.float64)
    X = X.astype(dtype)
    y = rng.integers(0, K, m).astype(np.intp)
    W = rng.standard_normal((K, n))
    b = rng.standard_normal(K)
    return X, y, W, b


@pytest.mark.parametrize("design_kind", ["dense", "csr"])
@pytest.mark.parametrize("reference", [None, 2])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_pack_and_unpack_are_exact_inverses_in_either_layout(design_kind, reference, fit_intercept):
    X, y, W, b = _problem(np.float64)
    design = CSRDesign(as_csr_arrays(X), 1) if design_kind == "csr" else DenseDesign(X.toarray(), 1)
    assert design.feature_major == (design_kind == "csr")
    objective = SoftmaxObjective(design, y, None, 5, 0.1, fit_intercept, reference)
    if reference is not None:
        W[reference], b[reference] = 0.0, 0.0
    theta = objective.pack(W, b)
    assert theta.shape == (objective.n_params,)
    coef, intercept = objective.unpack(theta)
    np.testing.assert_array_equal(coef, W)
    np.testing.assert_array_equal(intercept, b if fit_intercept else np.zeros(5))
    free = W[objective.class_rows]
    k_n = free.size
    expected = free.T.ravel() if design.feature_major else free.ravel()
    np.testing.assert_array_equal(theta[:k_n], expected)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reference", [None, 2])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_csr_objective_is_the_public_call(dtype, reference, n_threads):
    X, y, W, b = _problem(dtype, seed=1)
    alpha = 0.3
    if reference is not None:
        W[reference], b[reference] = 0.0, 0.0
    design = CSRDesign(as_csr_arrays(X), n_threads)
    objective = SoftmaxObjective(design, y, None, 5, alpha, True, reference)
    theta = objective.pack(W, b)
    value, grad = objective.value_and_grad(theta)
    # the public call on the coefficients the kernels see (W and b in X's dtype)
    Wd, bd = W.astype(dtype), b.astype(dtype)
    loss, dW, db = sf.loss_and_grad(X, y, Wd, bd, alpha=alpha, n_threads=n_threads)
    dW_obj, db_obj = objective.unpack(grad)
    rows = objective.class_rows
    if dtype == np.float64:
        # ||W||^2 summed over theta (feature-major, the free classes) or over W (K, n): the
        # same terms in another order (n_coef eps relative, each sum)
        squares = float(np.sum(W**2))
        assert abs(value - loss) <= 2 * W.size * EPS64 * 0.5 * alpha * squares
        np.testing.assert_array_equal(dW_obj[rows], dW[rows])
        np.testing.assert_array_equal(db_obj[rows], db[rows])
    else:
        # the objective's penalty is on theta (float64), the public call's on W in float32;
        # the public call rounds dW and db once to float32
        W32 = Wd.astype(np.float64)
        penalty_gap = 0.5 * alpha * abs(float(np.sum(W32**2) - np.sum(W**2)))
        assert abs(value - loss) <= penalty_gap + 4 * EPS32 * abs(loss)
        gap = alpha * np.abs(W32 - W) + EPS32 * np.abs(dW_obj) + 1e-30
        assert (np.abs(dW_obj[rows] - dW[rows]) <= gap[rows]).all()
        assert (np.abs(db_obj[rows] - db[rows]) <= EPS32 * np.abs(db_obj[rows]) + 1e-30).all()

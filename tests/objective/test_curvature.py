"""The objective's second derivatives (``hessian``, ``hessian_operator``'s ``matvec`` and
``diagonal``) against the plain NumPy reference (``softmax_fast.reference.hessian`` and
``hess_vec``, written from the definition block by block) and against central finite
differences of the fused gradient, on dense and CSR designs, both parametrizations, with and
without intercepts and weights.

Tolerances: float64 sums of m terms agree to a few hundred ulps of the largest entry;
float32 X is exact in float64, so the full Hessian (float64 probabilities) is as precise, while
the Hessian-vector product and the diagonal take the probabilities and the direction in
float32 (relative rounding ~6e-8 per factor, a few factors). A central difference with step h
errs by O(h^2) times the third derivative (bounded here, |x| <= ~3) plus eps |g| / h rounding.
"""

import numpy as np
import pytest
import scipy.sparse as sp

from softmax_fast import reference
from softmax_fast._design import HESSIAN_MAX_PARAMS, CSRDesign, DenseDesign
from softmax_fast._objective import SoftmaxObjective
from softmax_fast._validation import as_csr_arrays


def _problem(kind, dtype, seed=0, m=120, n=7, K=4, weights=False):
    rng = np.random.default_rng(seed)
    X = sp.random(m, n, density=0.4, format="csr", random_state=seed, dtype=np.float64)
    X.data = rng.standard_normal(X.data.size)
    X = sp.csr_matrix(X.toarray() * (np.arange(m) % 17 != 3)[:, None])  # some empty rows
    X = X.astype(dtype)
    y = rng.integers(0, K, m).astype(np.intp)
    sw = None
    if weights:
        sw = rng.random(m)
        sw[::5] = 0.0
    design = CSRDesign(as_csr_arrays(X), 2) if kind == "csr" else DenseDesign(X.toarray(), 2)
    return X, y, sw, design


def _objective(kind, dtype, reference_class, fit_intercept, weights, alpha=0.3, seed=0):
    X, y, sw, design = _problem(kind, dtype, seed=seed, weights=weights)
    objective = SoftmaxObjective(design, y, sw, 4, alpha, fit_intercept, reference_class)
    theta = np.random.default_rng(seed + 1).standard_normal(objective.n_params) * 0.5
    return X, sw, objective, theta


def _free_class_major(objective, H_all):
    """The free classes' rows and columns of a class-major Hessian over all K classes."""
    d = objective.n_features + int(objective.fit_intercept)
    idx = (objective.class_rows[:, None] * d + np.arange(d)[None, :]).ravel()
    return H_all[np.ix_(idx, idx)]


CASES = [
    pytest.param(kind, ref, fi, w, id=f"{kind}-ref{ref}-intercept{fi}-weights{w}")
    for kind in ("dense", "csr")
    for ref in (None, 2)
    for fi in (True, False)
    for w in (False, True)
]


@pytest.mark.parametrize(("kind", "ref", "fit_intercept", "weights"), CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_hessian_is_the_reference(kind, ref, fit_intercept, weights, dtype):
    X, sw, objective, theta = _objective(kind, dtype, ref, fit_intercept, weights)
    W, b = objective.unpack(theta)
    H = objective.hessian(theta)
    assert H.shape == (objective.n_params,) * 2 and H.dtype == np.float64
    np.testing.assert_array_equal(H, H.T)
    X64 = X.astype(np.float64)
    expected = _free_class_major(
        objective, reference.hessian(X64, W, b if fit_intercept else None, 0.3, sw)
    )
    order = objective._theta_order()
    scale = np.abs(expected).max()
    np.testing.assert_allclose(H[np.ix_(order, order)], expected, rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize(("kind", "ref", "fit_intercept", "weights"), CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_hessian_vector_product_and_diagonal_are_the_reference(
    kind, ref, fit_intercept, weights, dtype
):
    X, sw, objective, theta = _objective(kind, dtype, ref, fit_intercept, weights)
    W, b = objective.unpack(theta)
    operator = objective.hessian_operator(theta)
    rng = np.random.default_rng(7)
    X64 = X.astype(np.float64)
    atol_rel = 1e-12 if dtype == np.float64 else 2e-6
    for _ in range(3):
        v = rng.standard_normal(objective.n_params)
        V, c = objective.unpack(v)
        HV, Hc = reference.hess_vec(
            X64, W, b if fit_intercept else None, V, c if fit_intercept else None, 0.3, sw
        )
        expected = objective.pack(HV, Hc)
        got = operator.matvec(v)
        # each entry sums |D_ik x_ij| terms; bound the rounding by the largest such sum
        bound = np.abs(expected).max() + np.abs(v).max()
        np.testing.assert_allclose(got, expected, rtol=0, atol=atol_rel * bound)
    H = objective.hessian(theta)
    np.testing.assert_allclose(
        operator.diagonal(), np.diag(H), rtol=0, atol=atol_rel * np.abs(np.diag(H)).max()
    )


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("strategy", ["rows", "rows+column pass", "columns"])
def test_csr_diagonal_in_every_strategy(strategy, dtype, n_threads, monkeypatch):
    """The CSR diagonal (one native pass: row accumulators, or the column pass over the CSC
    copy with its values squared) against the full reference Hessian's diagonal, in each
    strategy the design may pick, with zero-weight and empty rows and repeated columns in a
    row; bit-identical between calls; X left alone."""
    monkeypatch.setattr(CSRDesign, "strategy", lambda self, K: strategy)
    X, y, sw, _ = _problem("csr", dtype, seed=4, weights=True)
    X = sp.csr_matrix(X)
    # a row of positive weight with one column twice (its entries squared one by one)
    r0 = next(r for r in range(X.shape[0]) if sw[r] > 0 and X.indptr[r + 1] - X.indptr[r] >= 2)
    first = int(X.indptr[r0])
    X.indices[first + 1], X.data[first + 1] = X.indices[first], 2.5
    X.has_sorted_indices = False
    design = CSRDesign(as_csr_arrays(X), n_threads)
    data_before = design.X.data.copy()
    objective = SoftmaxObjective(design, y, sw, 4, 0.3, True, None)
    theta = np.random.default_rng(9).standard_normal(objective.n_params) * 0.5
    W, b = objective.unpack(theta)
    dense = np.zeros(X.shape)
    np.add.at(dense, (np.repeat(np.arange(X.shape[0]), np.diff(X.indptr)), X.indices), X.data)
    H = _free_class_major(objective, reference.hessian(dense, W, b, 0.3, sw))
    order = objective._theta_order()
    expected = np.empty(objective.n_params)
    expected[order] = np.diag(H)
    # the duplicated entry enters the diagonal as its two squares, not the square of its sum
    j0 = int(X.indices[first])
    P0 = objective.hessian_operator(theta).curvature.P[r0].astype(np.float64)
    x0, x1 = X.data[first : first + 2].astype(np.float64)
    cross = 2 * x0 * x1 * sw[r0] * P0 * (1 - P0) / sw.sum()
    assert np.abs(cross).max() > 1e-3 * np.abs(expected).max()
    K = 4
    expected[j0 * K : (j0 + 1) * K] -= cross
    got = objective.hessian_operator(theta).diagonal()
    # sums of m non-negative terms: relative rounding at most m eps (3e-14 here) plus the
    # probabilities' few ulps; float32 X: the probabilities rounded to float32
    atol = (1e-12 if dtype == np.float64 else 2e-6) * np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=0, atol=atol)
    np.testing.assert_array_equal(objective.hessian_operator(theta).diagonal(), got)
    np.testing.assert_array_equal(design.X.data, data_before)


@pytest.mark.parametrize(("kind", "ref", "fit_intercept", "weights"), CASES)
def test_hessian_is_the_derivative_of_the_gradient(kind, ref, fit_intercept, weights):
    _, _, objective, theta = _objective(kind, np.float64, ref, fit_intercept, weights, seed=3)
    H = objective.hessian(theta)
    operator = objective.hessian_operator(theta)
    h = 1e-5
    rng = np.random.default_rng(11)
    for _ in range(3):
        v = rng.standard_normal(objective.n_params)
        g_plus = objective.value_and_grad(theta + h * v)[1]
        g_minus = objective.value_and_grad(theta - h * v)[1]
        difference = (g_plus - g_minus) / (2 * h)
        scale = np.abs(difference).max()
        np.testing.assert_allclose(H @ v, difference, rtol=0, atol=1e-7 * scale)
        np.testing.assert_allclose(operator.matvec(v), difference, rtol=0, atol=1e-7 * scale)


@pytest.mark.parametrize("kind", ["dense", "csr"])
def test_symmetric_form_without_penalty_is_singular_along_class_shifts(kind):
    """Adding one vector to every class's parameters leaves the probabilities unchanged: with
    alpha = 0 the symmetric form's Hessian maps that direction to 0 (to rounding)."""
    _, _, objective, theta = _objective(kind, np.float64, None, True, True, alpha=0.0)
    shift = np.random.default_rng(2).standard_normal(objective.n_features + 1)
    coef = np.tile(shift[:-1], (4, 1))
    intercept = np.full(4, shift[-1])
    v = objective.pack(coef, intercept)
    H = objective.hessian(theta)
    scale = np.abs(H).max() * np.abs(v).max()
    np.testing.assert_allclose(H @ v, 0.0, atol=1e-13 * scale)
    np.testing.assert_allclose(objective.hessian_operator(theta).matvec(v), 0.0, atol=1e-13 * scale)
    assert np.linalg.eigvalsh(H)[-1] > 0


EPS = float(np.finfo(np.float64).eps)


def _product_rounding(objective, X, sw, v):
    """A bound on the rounding of H v (full Hessian or operator) for float64 X: each of H's
    data entries sums m terms w_i x_ij x_ij' (p_k delta - p_k p_k') / sum w, each at most
    |w_i x_ij x_ij'| / sum w in size, and H v sums n_params of them, so the error is at most
    (m + n_params) eps times M |v|, M_(jk, j'k') = sum_i w_i |x_ij x_ij'| / sum w (the
    intercept a column of ones), with a factor 4 for the constants of the bound."""
    Xa = np.abs(X.toarray())
    if objective.fit_intercept:
        Xa = np.hstack([Xa, np.ones((Xa.shape[0], 1))])
    w = np.ones(Xa.shape[0]) if sw is None else sw
    W, b = objective.unpack(np.abs(v))
    V = np.hstack([W, b[:, None]]) if objective.fit_intercept else W  # (K, d) of |v|
    per_feature = Xa.T @ (w * (Xa @ V.sum(axis=0))) / w.sum()  # (M |v|) of each class
    gamma = (objective.n_samples + objective.n_params) * EPS
    return 4 * gamma * (float(per_feature.max()) + objective.alpha * float(np.abs(v).max()))


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("kind", ["dense", "csr"])
def test_hessian_is_alpha_on_the_class_shifts(kind, fit_intercept):
    """ClassShifts: on the features' class shifts (each feature's K weights moved together)
    the Hessian is alpha times the identity, and it maps their complement into itself (class
    sums of H v are 0 when v's are), against the full Hessian; remove/add are the orthogonal
    projection and its inverse; none in the reference-class form.  Tolerances: the rounding
    bounds of the products (_product_rounding) and of a mean of K values."""
    X, sw, objective, theta = _objective(kind, np.float64, None, fit_intercept, True, alpha=0.3)
    shifts = objective.class_shifts()
    assert shifts is not None and shifts.curvature == 0.3
    H = objective.hessian(theta)
    operator = objective.hessian_operator(theta)
    rng = np.random.default_rng(5)
    n, K = objective.n_features, 4
    v = np.zeros(objective.n_params)
    shifts.add(v, rng.standard_normal((n, 1) if kind == "csr" else (1, n)), 1.0)
    coef, _ = objective.unpack(v)
    np.testing.assert_array_equal(coef, np.tile(coef[:1], (K, 1)))  # one number a feature
    bound = _product_rounding(objective, X, sw, v)
    np.testing.assert_allclose(H @ v, 0.3 * v, rtol=0, atol=bound)
    np.testing.assert_allclose(operator.matvec(v), 0.3 * v, rtol=0, atol=bound)

    u = rng.standard_normal(objective.n_params)
    u_before = u.copy()
    means = shifts.remove(u)
    coef_u, intercept_u = objective.unpack(u)
    u_max = float(np.abs(u_before).max())
    # a mean of K values and K subtractions: within 4 K eps max|u| per class sum
    np.testing.assert_allclose(coef_u.sum(axis=0), 0.0, atol=4 * K * EPS * u_max)
    dot_bound = 4 * (objective.n_params + K) * EPS * u_max * float(np.abs(v).sum())
    np.testing.assert_allclose(u @ v, 0.0, atol=dot_bound)
    np.testing.assert_array_equal(u[K * n :], u_before[K * n :])  # intercepts untouched
    restored = shifts.add(u.copy(), means, 1.0)
    np.testing.assert_allclose(restored, u_before, rtol=0, atol=4 * EPS * u_max)
    # H u's class sums: 0 for the data term; alpha times u's (rounding-sized) for the penalty
    bound = _product_rounding(objective, X, sw, u) * K + 0.3 * 4 * K * EPS * u_max
    for Hu in (H @ u, operator.matvec(u)):
        class_sums = objective.unpack(Hu)[0].sum(axis=0)
        np.testing.assert_allclose(class_sums, 0.0, atol=bound)

    _, _, reference_form, _ = _objective(kind, np.float64, 2, fit_intercept, True)
    assert reference_form.class_shifts() is None


@pytest.mark.parametrize("kind", ["dense", "csr"])
def test_invariant_directions_without_the_class_shifts(kind):
    """alpha = 0: ``invariant_directions()`` holds the n features' shifts and the intercepts'
    shift; ``class_shifts=False`` leaves out the former (newton-cg handles them through
    ClassShifts, without an (n_params, n) basis)."""
    _, _, objective, _ = _objective(kind, np.float64, None, True, False, alpha=0.0)
    n = objective.n_features
    every = objective.invariant_directions()
    assert every.shape == (objective.n_params, n + 1)
    # K = 4: entries 1/2, squares and sums exact
    np.testing.assert_array_equal(every.T @ every, np.eye(n + 1))
    intercepts = objective.invariant_directions(class_shifts=False)
    assert intercepts.shape == (objective.n_params, 1)
    np.testing.assert_array_equal(intercepts[:, 0], every[:, -1])


@pytest.mark.parametrize("kind", ["dense", "csr"])
def test_curvature_is_repeatable_and_leaves_inputs_alone(kind):
    X, sw, objective, theta = _objective(kind, np.float64, 2, True, True)
    data = objective.design.X.data.copy() if kind == "csr" else objective.design.X.copy()
    theta_before = theta.copy()
    operator = objective.hessian_operator(theta)
    v = np.random.default_rng(0).standard_normal(objective.n_params)
    v_before = v.copy()
    first = operator.matvec(v)
    for _ in range(3):
        np.testing.assert_array_equal(operator.matvec(v), first)
        np.testing.assert_array_equal(objective.hessian_operator(theta).matvec(v), first)
    np.testing.assert_array_equal(objective.hessian(theta), objective.hessian(theta))
    np.testing.assert_array_equal(theta, theta_before)
    np.testing.assert_array_equal(v, v_before)
    after = objective.design.X.data if kind == "csr" else objective.design.X
    np.testing.assert_array_equal(after, data)


def test_full_hessian_refuses_large_models():
    m, n = 10, HESSIAN_MAX_PARAMS // 2
    design = DenseDesign(np.zeros((m, n)), 1)
    objective = SoftmaxObjective(design, np.arange(m) % 3, None, 3, 0.1, True, None)
    with pytest.raises(ValueError, match="too large"):
        objective.hessian(np.zeros(objective.n_params))


# ----------------------------------------------------------------------------- float32 products


@pytest.mark.parametrize(
    ("ref", "fit_intercept", "weights"), [(None, True, True), (2, False, False)]
)
def test_float32_products_approximate_the_float64_ones(monkeypatch, ref, fit_intercept, weights):
    """``matvec_float32`` rounds X, the probabilities and the direction to float32 (relative
    rounding 6e-8 each) and sums in float64: it agrees with ``matvec`` to a few 1e-7 of the
    largest term, and so does the diagonal; the caller's X is left alone."""
    from softmax_fast import _objective as objective_module

    monkeypatch.setattr(objective_module, "FLOAT32_PRODUCTS_MIN_VALUES", 0)
    X, sw, objective, theta = _objective("dense", np.float64, ref, fit_intercept, weights)
    X_before = objective.design.X.copy()
    exact = objective.hessian_operator(theta)
    approx = objective.hessian_operator(theta, float32_products=True)
    assert not exact.has_float32 and approx.has_float32
    assert objective.float32_design().X.dtype == np.float32
    assert objective.float32_design() is objective.float32_design()  # one copy per objective
    rng = np.random.default_rng(3)
    for _ in range(3):
        v = rng.standard_normal(objective.n_params)
        expected = exact.matvec(v)
        np.testing.assert_array_equal(approx.matvec(v), expected)  # matvec stays float64
        bound = np.abs(expected).max() + np.abs(v).max()
        got = approx.matvec_float32(v)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6 * bound)
        assert not np.array_equal(got, expected)  # it is a different (float32) product
        np.testing.assert_array_equal(exact.matvec_float32(v), expected)  # no copy: matvec
    diagonal = exact.diagonal()
    np.testing.assert_allclose(
        approx.diagonal(), diagonal, rtol=0, atol=2e-6 * np.abs(diagonal).max()
    )
    np.testing.assert_array_equal(objective.design.X, X_before)


def test_float32_products_only_where_they_pay(monkeypatch):
    """Only dense float64 X between FLOAT32_PRODUCTS_MIN_VALUES values and a copy of
    FLOAT32_PRODUCTS_MAX_BYTES gets the float32 copy: not CSR X, not float32 X (already
    float32), not small X (its products are cheap), not X whose copy would be too large."""
    from softmax_fast import _objective as objective_module

    def has_copy(kind, dtype):
        _, _, objective, theta = _objective(kind, dtype, None, True, False)
        return objective.hessian_operator(theta, float32_products=True).has_float32

    assert not has_copy("dense", np.float64)  # 120 x 7: below the default threshold
    monkeypatch.setattr(objective_module, "FLOAT32_PRODUCTS_MIN_VALUES", 0)
    assert has_copy("dense", np.float64)
    assert not has_copy("dense", np.float32)
    assert not has_copy("csr", np.float64)
    monkeypatch.setattr(objective_module, "FLOAT32_PRODUCTS_MAX_BYTES", 4 * 120 * 7 - 4)
    assert not has_copy("dense", np.float64)

"""The native Hessian-vector products on CSR X: ``_native.csr.hess_vec`` (the "rows" and
"rows+column pass" strategies) and ``_native.csr.hess_vec_columns`` (the "columns" strategy).

The data term's Hessian at the probabilities P applied to a direction (V, c):

    R = X Vt + c,  D_ik = w_i * scale * P_ik * (R_ik - sum_j P_ij R_ij),
    dVt = X^T D,   dc = sum_i D_i.

Each kernel is compared with that formula in np.longdouble on exact float64 copies of its
inputs (float32 values convert exactly), over float32/float64 data, int32/int64 indices, 1 and
2 threads, with and without weights (zeros included) and c, m < n and m > n, empty rows and
columns, and K from 1 to 9 and beyond (the column kernels' register blocks of 4 to 32 classes
and the K mod 4 left).

The tolerance.  Every kernel works in float64 whatever X's dtype, so both dtypes get a float64
rounding bound (stricter than a float32 one): R_ik carries at most (nnz_i + 1) u (|X| |Vt| +
|c|)_ik, the dot sum_j P_ij R_ij another K u on sum_j P_ij |R|_ij, D_ik a few u more; a sum of
dVt adds nnz_j u of |X|^T |D|.  So with |D|_ik = |w_i scale| P_ik (|R|_ik + sum_j P_ij |R|_ij),
|R| = |X| |Vt| + |c|, each result is within 2 (max nnz_i + max nnz_j + K + 8) u of |X|^T |D|
(dVt) and of sum_i |D|_i (dc).
"""

import numpy as np
import pytest
import scipy.sparse as sp

from softmax_fast._design import _balanced_bounds
from softmax_fast._native import csr as native_csr

EPS64 = float(np.finfo(np.float64).eps)
STRATEGIES = ("rows", "rows+column pass", "columns")
SHAPES = {"m<n": (23, 61), "m>n": (97, 19)}


# ---------------------------------------------------------------------------------------------
# Problems, the kernels' calls and the reference
# ---------------------------------------------------------------------------------------------


def random_csr(rng, m, n, density, dtype, index_dtype):
    """A canonical (sorted, no duplicates) random CSR matrix with empty rows and empty columns:
    row 0, the last row and about a fifth of the others store nothing, as do the first and the
    last column and about a fifth of the others."""
    X = sp.random(m, n, density=density, format="csr", random_state=rng, dtype=np.float64)
    X.data = rng.standard_normal(X.nnz)
    keep_rows = rng.random(m) > 0.2
    keep_rows[[0, m - 1]] = False
    keep_cols = rng.random(n) > 0.2 if n > 0 else np.zeros(0, bool)
    if n > 0:
        keep_cols[[0, n - 1]] = False
    X = sp.diags(keep_rows.astype(float)) @ X @ sp.diags(keep_cols.astype(float))
    X = sp.csr_matrix(X)
    X.eliminate_zeros()
    X.sort_indices()
    X.data = X.data.astype(dtype)
    X.indices = X.indices.astype(index_dtype)
    X.indptr = X.indptr.astype(index_dtype)
    return X


def softmax(Z):
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def random_direction(rng, X, K, with_c, weights):
    """P (m, K) a softmax of random logits (rows summing to 1), Vt (n, K), c (K,) or None, in
    X's dtype; sample weights (float64) or None."""
    m, n = X.shape
    P = softmax(3.0 * rng.standard_normal((m, K))).astype(X.dtype)
    Vt = rng.standard_normal((n, K)).astype(X.dtype)
    c = rng.standard_normal(K).astype(X.dtype) if with_c else None
    if weights is None:
        w = None
    else:
        w = rng.uniform(0.1, 3.0, size=m)
        if weights == "zeros":
            w[rng.random(m) < 0.3] = 0.0
            w[0] = w[m // 2] = 0.0
    return P, Vt, c, w


def csc_of(X):
    """The CSC arrays of X with X's index dtype (as ``to_csc`` returns them)."""
    C = X.tocsc()
    C.sort_indices()
    return C.data, C.indices.astype(X.indices.dtype), C.indptr.astype(X.indices.dtype)


def bounds_of(X, n_threads):
    """Row and column chunk bounds as the design makes them (more chunks than threads)."""
    row_chunks = 1 if n_threads == 1 else 5
    col_chunks = 1 if n_threads == 1 else 3
    rows = _balanced_bounds(X.indptr, row_chunks)
    cols = _balanced_bounds(csc_of(X)[2], col_chunks)
    return rows, cols


def call(strategy, X, P, Vt, c, w, scale, n_threads, row_bounds=None, col_bounds=None):
    """(dVt, dc) of the kernel of ``strategy``."""
    m, n = X.shape
    rb, cb = bounds_of(X, n_threads)
    row_bounds = rb if row_bounds is None else row_bounds
    col_bounds = cb if col_bounds is None else col_bounds
    if strategy == "columns":
        data, rows, colptr = csc_of(X)
        return native_csr.hess_vec_columns(
            data, rows, colptr, m, col_bounds, row_bounds, P, Vt, c, w, scale, n_threads
        )
    csc = (None, None, None, None)
    if strategy == "rows+column pass":
        csc = (*csc_of(X), col_bounds)
    return native_csr.hess_vec(
        X.data, X.indices, X.indptr, n, row_bounds, P, Vt, c, w, scale, *csc, n_threads
    )


def reference(X, P, Vt, c, w, scale):
    """dVt, dc of the definition in np.longdouble, and the rounding scales |X|^T |D| and
    sum_i |D|_i of the module docstring (float64)."""
    m, _ = X.shape
    L = np.longdouble
    A = X.toarray().astype(np.float64)
    P64, V64 = P.astype(np.float64), Vt.astype(np.float64)
    c64 = np.zeros(P.shape[1]) if c is None else c.astype(np.float64)
    ws = (np.ones(m) if w is None else w) * scale
    R = A.astype(L) @ V64.astype(L) + c64.astype(L)
    s = np.sum(P64.astype(L) * R, axis=1, keepdims=True)
    D = ws.astype(L)[:, None] * P64.astype(L) * (R - s)
    dVt = A.astype(L).T @ D
    dc = D.sum(axis=0)
    R_abs = np.abs(A) @ np.abs(V64) + np.abs(c64)
    D_abs = np.abs(ws)[:, None] * P64 * (R_abs + np.sum(P64 * R_abs, axis=1, keepdims=True))
    return dVt, (dc if c is not None else None), np.abs(A).T @ D_abs, D_abs.sum(axis=0)


def tolerance(X, K):
    """The factor of the module docstring: 2 (max nnz_i + max nnz_j + K + 8) u."""
    row_nnz = int(np.diff(X.indptr).max(initial=0))
    col_nnz = int(np.diff(X.tocsc().indptr).max(initial=0))
    return 2 * (row_nnz + col_nnz + K + 8) * EPS64


def check(got, X, P, Vt, c, w, scale, what):
    dVt, dc = got
    n = X.shape[1]
    K = P.shape[1]
    assert type(dVt) is np.ndarray and dVt.dtype == np.float64 and dVt.shape == (n, K), what
    assert dVt.flags.c_contiguous, what
    ref_dVt, ref_dc, scale_dVt, scale_dc = reference(X, P, Vt, c, w, scale)
    tol = tolerance(X, K)
    err = np.abs(dVt.astype(np.longdouble) - ref_dVt).astype(np.float64)
    bad = err > tol * scale_dVt + 1e-300
    assert not bad.any(), f"{what}: dVt off by {err[bad].max():.3g} > {tol:.3g} x scale"
    if c is None:
        assert dc is None, what
    else:
        assert type(dc) is np.ndarray and dc.dtype == np.float64 and dc.shape == (K,), what
        err = np.abs(dc.astype(np.longdouble) - ref_dc).astype(np.float64)
        bad = err > tol * scale_dc + 1e-300
        assert not bad.any(), f"{what}: dc off by {err[bad].max():.3g}"


# ---------------------------------------------------------------------------------------------
# 1. Against the formula
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_c", [False, True], ids=["no_c", "c"])
@pytest.mark.parametrize("weights", [None, "positive", "zeros"], ids=["unweighted", "w", "w0"])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64], ids=["i32", "i64"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_matches_the_formula(rng, strategy, shape, dtype, index_dtype, n_threads, weights, with_c):
    m, n = SHAPES[shape]
    X = random_csr(rng, m, n, 0.15, dtype, index_dtype)
    K = 5
    P, Vt, c, w = random_direction(rng, X, K, with_c, weights)
    scale = 1.0 / (m if w is None else w.sum())
    got = call(strategy, X, P, Vt, c, w, scale, n_threads)
    check(got, X, P, Vt, c, w, scale, f"{strategy} {shape}")


@pytest.mark.parametrize("K", [*range(1, 10), 12, 17, 31, 32, 36])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_class_count(rng, strategy, shape, dtype, K):
    """K from 1 to 9 and beyond: the column kernels' blocks of 1 to 8 four-wide vectors (a
    block of 8 and a second one from K = 36) and the one-class loop of the K mod 4 left."""
    m, n = SHAPES[shape]
    index_dtype = np.int32 if K % 2 else np.int64
    X = random_csr(rng, m, n, 0.2, dtype, index_dtype)
    P, Vt, c, w = random_direction(rng, X, K, True, "zeros")
    got = call(strategy, X, P, Vt, c, w, 0.37, 2)
    check(got, X, P, Vt, c, w, 0.37, f"{strategy} K={K}")


@pytest.mark.parametrize("case", ["no entries", "one row", "one column", "no columns", "dense"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_degenerate_shapes(rng, strategy, case):
    m, n, density = {
        "no entries": (13, 7, 0.0),
        "one row": (1, 9, 0.6),
        "one column": (11, 1, 0.6),
        "no columns": (8, 0, 0.0),
        "dense": (9, 6, 1.0),
    }[case]
    if case == "dense":
        X = sp.csr_matrix(rng.standard_normal((m, n)))
    elif n == 0:
        X = sp.csr_matrix((m, n))
    else:
        X = sp.random(m, n, density=density, format="csr", random_state=rng)
    X.indices, X.indptr = X.indices.astype(np.int32), X.indptr.astype(np.int32)
    for with_c in (False, True):
        P, Vt, c, w = random_direction(rng, X, 6, with_c, "positive")
        for n_threads in (1, 2):
            got = call(strategy, X, P, Vt, c, w, 0.5, n_threads)
            check(got, X, P, Vt, c, w, 0.5, f"{strategy} {case}")


def test_strategies_agree_on_a_larger_problem(rng):
    """m = 3000 rows (many row blocks a chunk), n = 500: the three strategies agree with each
    other within twice the rounding bound, and with the formula."""
    X = random_csr(rng, 3000, 500, 0.02, np.float64, np.int32)
    P, Vt, c, w = random_direction(rng, X, 10, True, "zeros")
    results = [call(s, X, P, Vt, c, w, 1e-3, 2) for s in STRATEGIES]
    for strategy, got in zip(STRATEGIES, results, strict=True):
        check(got, X, P, Vt, c, w, 1e-3, strategy)
    _, _, scale_dVt, _ = reference(X, P, Vt, c, w, 1e-3)
    tol = 2 * tolerance(X, 10)
    for got in results[1:]:
        assert np.all(np.abs(got[0] - results[0][0]) <= tol * scale_dVt)


# ---------------------------------------------------------------------------------------------
# 2. Weights of zero, determinism, the inputs
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_rows_of_weight_zero_contribute_exactly_zero(rng, strategy):
    """What P holds in a row of weight 0 (even NaN) changes no bit of the result."""
    X = random_csr(rng, 40, 30, 0.2, np.float64, np.int64)
    P, Vt, c, w = random_direction(rng, X, 7, True, "zeros")
    zero = w == 0
    a = call(strategy, X, P, Vt, c, w, 1.0, 2)
    P2 = P.copy()
    P2[zero] = np.nan
    b = call(strategy, X, P2, Vt, c, w, 1.0, 2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert np.isfinite(b[0]).all() and np.isfinite(b[1]).all()
    # and the same rows with all weights 0: exact zeros
    d = call(strategy, X, P2, Vt, c, np.zeros(X.shape[0]), 1.0, 2)
    assert not d[0].any() and not d[1].any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_repeated_calls_are_bit_identical(rng, strategy, dtype):
    """The same call twice gives the same bits, and so do 1 and 2 threads on the same chunk
    bounds (each chunk's sums and their chunk-order sum do not depend on the thread running
    them)."""
    X = random_csr(rng, 500, 300, 0.05, dtype, np.int32)
    P, Vt, c, w = random_direction(rng, X, 10, True, "zeros")
    rows, cols = bounds_of(X, 2)
    first = call(strategy, X, P, Vt, c, w, 0.01, 2, rows, cols)
    for n_threads in (2, 2, 1):
        again = call(strategy, X, P, Vt, c, w, 0.01, n_threads, rows, cols)
        assert again[0].tobytes() == first[0].tobytes()
        assert again[1].tobytes() == first[1].tobytes()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_inputs_are_not_modified(rng, strategy):
    """Every input is passed read-only (a const view; a write would not even compile) and is
    bit for bit as it was after the call."""
    X = random_csr(rng, 50, 40, 0.2, np.float32, np.int64)
    P, Vt, c, w = random_direction(rng, X, 6, True, "zeros")
    arrays = [X.data, X.indices, X.indptr, P, Vt, c, w]
    saved = [a.copy() for a in arrays]
    for a in arrays:
        a.flags.writeable = False
    call(strategy, X, P, Vt, c, w, 1.0, 2)
    for a, s in zip(arrays, saved, strict=True):
        assert a.tobytes() == s.tobytes() and a.dtype == s.dtype


# ---------------------------------------------------------------------------------------------
# 3. The Hessian of the native gradient
# ---------------------------------------------------------------------------------------------


def native_grad(X, labels, Wt, b, w, scale, n_threads):
    rows, _ = bounds_of(X, n_threads)
    bad, _, dWt, db = native_csr.loss_and_grad(
        X.data, X.indices, X.indptr, X.shape[1], rows, labels, None, Wt, b, w, scale,
        None, None, None, None, n_threads,
    )  # fmt: skip
    assert bad == -1
    return dWt, db


@pytest.mark.parametrize("weights", [None, "zeros"], ids=["unweighted", "w0"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_central_difference_of_the_native_gradient(rng, strategy, weights):
    """Hv at P = softmax(X Wt + b) is (grad(W + eps V, b + eps c) - grad(W - eps V,
    b - eps c)) / (2 eps) of the native loss_and_grad, within O(eps^2) and the rounding of
    the difference (u |grad| / eps)."""
    m, n, K = 120, 45, 4
    X = random_csr(rng, m, n, 0.15, np.float64, np.int32)
    labels = rng.integers(K, size=m).astype(np.intp)
    Wt = rng.standard_normal((n, K))
    b = rng.standard_normal(K)
    _, Vt, c, w = random_direction(rng, X, K, True, weights)
    scale = 1.0 / (m if w is None else w.sum())
    P = softmax(X @ Wt + b)
    dVt, dc = call(strategy, X, P, Vt, c, w, scale, 2)
    eps = 1e-4
    plus = native_grad(X, labels, Wt + eps * Vt, b + eps * c, w, scale, 2)
    minus = native_grad(X, labels, Wt - eps * Vt, b - eps * c, w, scale, 2)
    fd_dVt = (plus[0] - minus[0]) / (2 * eps)
    fd_dc = (plus[1] - minus[1]) / (2 * eps)
    np.testing.assert_allclose(dVt, fd_dVt, rtol=0, atol=1e-6 * np.abs(fd_dVt).max())
    np.testing.assert_allclose(dc, fd_dc, rtol=0, atol=1e-6 * np.abs(fd_dc).max())


# ---------------------------------------------------------------------------------------------
# 4. Bad arguments (the O(1) checks that keep the kernels inside their arrays)
# ---------------------------------------------------------------------------------------------


def test_inconsistent_arguments_raise(rng):
    X = random_csr(rng, 20, 10, 0.3, np.float64, np.int32)
    P, Vt, c, w = random_direction(rng, X, 3, True, "positive")
    rows, cols = bounds_of(X, 2)
    data, crow, colptr = csc_of(X)
    args = dict(P=P, Vt=Vt, c=c, w=w)

    def rows_call(**kw):
        a = {**args, **kw}
        return native_csr.hess_vec(
            X.data, X.indices, X.indptr, 10, kw.get("rows", rows), a["P"], a["Vt"], a["c"],
            a["w"], 1.0, *kw.get("csc", (None, None, None, None)), 2,
        )  # fmt: skip

    with pytest.raises(ValueError, match="P"):
        rows_call(P=P[:-1])
    with pytest.raises(ValueError, match="Vt"):
        rows_call(Vt=Vt[:, :2].copy())
    with pytest.raises(ValueError, match="c"):
        rows_call(c=c[:2].copy())
    with pytest.raises(ValueError, match="sample_weight"):
        rows_call(w=w[:3].copy())
    with pytest.raises(ValueError, match="row_bounds"):
        rows_call(rows=rows[:-1].copy())
    with pytest.raises(ValueError, match="all or none"):
        rows_call(csc=(data, crow, colptr, None))
    with pytest.raises(ValueError, match="col_bounds"):
        rows_call(csc=(data, crow, colptr, cols[:-1].copy()))
    with pytest.raises(ValueError, match="P"):
        native_csr.hess_vec_columns(data, crow, colptr, 20, cols, rows, P[:5], Vt, c, w, 1.0, 2)

"""The NumPy reference on scipy.sparse X against the dense reference on ``X.toarray()``.

``loss_and_grad``, ``predict_proba`` and ``predict`` take a sparse X (any format: CSR, CSC, COO,
...) through scipy.sparse products only.  Here, over the shared awkward inputs of
tests/sparse_inputs.py (densities 0 to 1, empty rows, one row, int32/int64 indices,
float32/float64, unsorted indices, duplicates, explicit zeros, csr_matrix/csr_array), the
sparse reference equals the dense one within bounds derived from the float rounding (below),
its gradients equal central finite differences, and the caller's matrix is left exactly as it
was.  The helper module sparse_inputs.py is tested here too.

The tolerances.  Dense and sparse evaluations run the same code on the same values except for
the order (and count) of the terms of two sums: the logits X W^T and the gradient G^T X.  Each
evaluation is within a first-order rounding bound of the exact result, and so their difference
is within twice that bound (``_one_side_bounds``: an N-term sum in any order is within
(N - 1) u sum|terms| of the exact one, u the unit roundoff; every bound uses eps = 2u, which
also covers the second-order terms).  No tolerance is read off the digits of one CPU.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from kernel_test_helpers import central_diff, random_weights
from reference_module import ref
from sparse_inputs import (
    SPARSE_CASES,
    assert_unchanged,
    canonical,
    dense_of,
    format_flags,
    random_csr,
    snapshot,
    sparse_case,
    sparse_problem,
)

EPS64 = float(np.finfo(np.float64).eps)
# Accuracy of NumPy's exp and log, in ulps (test_reference.py's NP_ULP: its float64 SIMD
# versions within 4; its float32 ones and the C library's long double ones are no worse).
ULP = 4
FLOAT64_CASES = [c for c, kw in SPARSE_CASES.items() if np.dtype(kw.get("dtype")) == np.float64]


@pytest.fixture
def never_densified(monkeypatch):
    """Densifying a sparse matrix (toarray, todense, np.asarray) raises: proof it never happens."""

    def refuse(*args, **kwargs):
        raise AssertionError("a sparse matrix was densified")

    classes = (sp.csr_matrix, sp.csr_array, sp.csc_matrix, sp.csc_array)
    for cls in classes + (sp.coo_matrix, sp.coo_array):
        for name in ("toarray", "todense", "__array__"):
            monkeypatch.setattr(cls, name, refuse, raising=False)


# ---------------------------------------------------------------------------------------------
# Rounding bounds of one evaluation of the reference (dense or sparse)
# ---------------------------------------------------------------------------------------------


def _softmax64(Z):
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def stored_counts(X):
    """Terms of the sparse sums: stored entries (duplicates included) per row and per column."""
    C = X.tocoo()  # keeps duplicates
    m, n = X.shape
    return np.bincount(C.row, minlength=m), np.bincount(C.col, minlength=n)


def _one_side_bounds(D, Y, W, b, alpha, w, dtype, row_terms, col_terms):
    """First-order bounds on how far one evaluation of the reference in ``dtype`` (unit eps u)
    is from the exact result, from exact float64 copies of its inputs: D (m, n) the dense X,
    Y (m, K) the targets, W, b, w; ``row_terms``/``col_terms`` the terms of the sparse sums per
    row/column (the dense sums have n and m).  Returns a dict of bounds: "dz" (m,), "P" (m, K),
    "loss", "dW" (K, n), "db" (K,).

    * Logits: an (N + 1)-term sum (N = max(n, stored terms), + b) in any order:
      |dz_i| <= (N + 1) u max_k (|x_i| . |w_k| + |b_k|).
    * Softmax, with s = max z - z >= 0: exp(-s) is off by u s (the rounded shift) + ULP u
      (exp) + 2 dz (the logits, shift included), relatively; the K-term sum by K u more, and
      the division by u: |dp/p| <= eps_p = 2 dz + 2 u (max s + ULP) + (K + 1) u.
    * G = (p - y) omega, omega = w / sum(w) (a float64 sum of m weights, a division, a cast to
      ``dtype``): |dG| <= omega p eps_p + |G| (2 u + (m + 1) eps64 + u).
    * dW = G^T X + alpha W, an (M + 1)-term sum (M = max(m, stored terms of the column)):
      |d dW| <= |dG|^T |X| + (M + 1) u (|G|^T |X| + alpha |W|) + u alpha |W|; db = sum_i G_i:
      |d db| <= sum_i |dG_i| + m u sum_i |G_i|.
    * log_softmax = -s - log sum exp(-s): |d logp| <= eps_lp = 2 dz + 2 u max s + (K + ULP) u
      + ULP u log K + u max|logp|; a row's loss -sum_k y_k logp_k: eps_lp sum y + (K + 1) u
      sum_k y_k |logp_k|; the loss, a sum of m weighted row losses in float64 (long double for
      long double), turned into a Python float, divided by sum(w) and added to the penalty
      (the same float64 bits in both evaluations: the same W): sum_i omega_i e_i +
      (m + 1) u_sum |L| + 3 eps64 |L|.
    """
    u = float(np.finfo(dtype).eps)
    u_sum = float(np.finfo(np.promote_types(np.float64, dtype)).eps)
    m, n = D.shape
    K = W.shape[0]
    bb = np.zeros(K) if b is None else b
    absX = np.abs(D)
    Z = D @ W.T + bb
    M = absX @ np.abs(W).T + np.abs(bb)
    dz = (np.maximum(n, row_terms) + 1) * u * M.max(axis=1, initial=0.0)
    s = Z.max(axis=1, keepdims=True) - Z
    smax = s.max(axis=1)
    P = _softmax64(Z)
    logP = -s - np.log(np.exp(-s).sum(axis=1, keepdims=True))

    eps_p = 2 * dz + 2 * u * (smax + ULP) + (K + 1) * u
    wn = np.ones(m) if w is None else np.asarray(w, dtype=np.float64)
    omega = wn / wn.sum()
    G = (P - Y) * omega[:, None]
    dG = omega[:, None] * P * eps_p[:, None] + np.abs(G) * (3 * u + (m + 1) * EPS64)
    aW = abs(alpha) * np.abs(W)
    col = np.maximum(m, col_terms)[None, :] + 1
    dW = dG.T @ absX + col * u * (np.abs(G).T @ absX + aW) + u * aW
    db = dG.sum(axis=0) + m * u * np.abs(G).sum(axis=0)

    eps_lp = 2 * dz + 2 * u * smax + (K + ULP) * u + ULP * u * np.log(K) + u * np.abs(logP).max(1)
    e_row = eps_lp * Y.sum(axis=1) + (K + 1) * u * (Y * np.abs(logP)).sum(axis=1)
    L = abs(float(omega @ -(Y * logP).sum(axis=1)) + 0.5 * alpha * float(np.sum(W**2)))
    loss = float(omega @ e_row) + (m + 1) * u_sum * L + 3 * EPS64 * L
    return {"dz": dz, "P": P * eps_p[:, None], "loss": loss, "dW": dW, "db": db}


def compute_dtype(X):
    """The dtype the reference computes in for X: float32, float64 and long double stay."""
    floats = (np.float32, np.float64, np.longdouble)
    return X.dtype if X.dtype in floats else np.dtype(np.float64)


def difference_bounds(X, y, W, b=None, alpha=0.0, w=None):
    """Bounds on |sparse reference - dense reference| (each within _one_side_bounds of the
    exact result): twice the one-side bounds, with the sparse sums' term counts."""
    dtype = compute_dtype(X)
    D = dense_of(X).astype(np.float64)
    K = W.shape[0]
    y = np.asarray(y)
    Y = np.eye(K)[y] if y.ndim == 1 else y.astype(np.float64)
    b64 = None if b is None else np.asarray(b, dtype=np.float64)
    rows, cols = stored_counts(X)
    one = _one_side_bounds(D, Y, W.astype(np.float64), b64, alpha, w, dtype, rows, cols)
    return {k: 2 * v for k, v in one.items()}


def assert_within(actual, desired, bound, what):
    actual, desired = np.asarray(actual, np.float64), np.asarray(desired, np.float64)
    assert actual.shape == desired.shape, f"{what}: shape {actual.shape} != {desired.shape}"
    err = np.abs(actual - desired)
    excess = err - bound
    worst = np.unravel_index(int(np.argmax(excess)), err.shape) if err.size else ()
    assert err.size == 0 or excess[worst] <= 0, (
        f"{what}: |sparse - dense| = {err[worst]:.3e} > bound {np.asarray(bound)[worst]:.3e} "
        f"at {worst}"
    )


# ---------------------------------------------------------------------------------------------
# Sparse against dense
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("targets", ["labels", "probabilities"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("alpha", [0.0, 0.3])
@pytest.mark.parametrize("intercept", [False, True], ids=["no_b", "b"])
@pytest.mark.parametrize("K", [1, 2, 20])
@pytest.mark.parametrize("case", SPARSE_CASES)
def test_loss_and_grad_sparse_equals_dense(rng, case, K, intercept, alpha, weighted, targets):
    X = sparse_case(case)
    D = dense_of(X)
    W, b, y = sparse_problem(rng, X, K, intercept, targets)
    w = random_weights(rng, X.shape[0]) if weighted else None
    snap = snapshot(X)
    loss, dW, db = ref.loss_and_grad(X, y, W, b, alpha=alpha, sample_weight=w)
    assert_unchanged(X, snap)
    loss_d, dW_d, db_d = ref.loss_and_grad(D, y, W, b, alpha=alpha, sample_weight=w)

    assert isinstance(loss, float)
    assert type(dW) is np.ndarray and dW.dtype == dW_d.dtype == X.dtype
    bounds = difference_bounds(X, y, W, b, alpha, w)
    assert_within(loss, loss_d, bounds["loss"], "loss")
    assert_within(dW, dW_d, bounds["dW"], "dW")
    if intercept:
        assert type(db) is np.ndarray and db.dtype == db_d.dtype == X.dtype
        assert_within(db, db_d, bounds["db"], "db")
    else:
        assert db is None and db_d is None


@pytest.mark.parametrize("intercept", [False, True], ids=["no_b", "b"])
@pytest.mark.parametrize("K", [1, 2, 20])
@pytest.mark.parametrize("case", SPARSE_CASES)
def test_predict_proba_and_predict_sparse_equal_dense(rng, case, K, intercept):
    X = sparse_case(case)
    D = dense_of(X)
    W, b, y = sparse_problem(rng, X, K, intercept, "labels")
    snap = snapshot(X)
    P = ref.predict_proba(X, W, b)
    labels = ref.predict(X, W, b)
    assert_unchanged(X, snap)
    P_d = ref.predict_proba(D, W, b)
    labels_d = ref.predict(D, W, b)

    assert type(P) is np.ndarray and P.dtype == P_d.dtype == X.dtype
    bounds = difference_bounds(X, y, W, b)
    # |p_sparse - p_dense| <= 2 p eps_p (relative); the smallest normal number for underflow.
    assert_within(P, P_d, bounds["P"] + np.finfo(X.dtype).tiny, "predict_proba")

    # predict: the argmax of logits, each evaluation within dz/2 (a half of the difference
    # bound) of the exact ones: a label's exact logit is within dz of the row's max, and the
    # float64 logits used to check that are within (n + 1) eps64 (|x||w| + |b|) of exact.
    assert labels.shape == labels_d.shape == (X.shape[0],)
    D64, W64 = D.astype(np.float64), W.astype(np.float64)
    b64 = 0.0 if b is None else b.astype(np.float64)
    Z = D64 @ W64.T + b64
    rows, _ = stored_counts(X)
    M = (np.abs(D64) @ np.abs(W64).T + np.abs(b64)).max(axis=1, initial=0.0)
    band = bounds["dz"] + 2 * (np.maximum(X.shape[1], rows) + 1) * EPS64 * M
    top = Z.max(axis=1)
    for got in (labels, labels_d):
        assert np.all(Z[np.arange(X.shape[0]), got] >= top - band)
    alone = (Z >= (top - 2 * band)[:, None]).sum(axis=1) == 1  # one class near the max
    np.testing.assert_array_equal(labels[alone], labels_d[alone])


def test_sparse_longdouble_stays_longdouble():
    X = sparse_case("noncanonical").astype(np.longdouble)
    D = dense_of(X)
    assert X.dtype == np.longdouble and D.dtype == np.longdouble
    rng = np.random.default_rng(11)
    W, b, y = sparse_problem(rng, X, 5, True, "probabilities")
    w = random_weights(rng, X.shape[0])
    loss, dW, db = ref.loss_and_grad(X, y, W, b, alpha=0.2, sample_weight=w)
    loss_d, dW_d, db_d = ref.loss_and_grad(D, y, W, b, alpha=0.2, sample_weight=w)
    assert dW.dtype == db.dtype == np.longdouble
    bounds = difference_bounds(X, y, W, b, 0.2, w)
    assert_within(loss, loss_d, bounds["loss"], "loss")
    assert_within(dW, dW_d, bounds["dW"], "dW")
    assert_within(db, db_d, bounds["db"], "db")
    P = ref.predict_proba(X, W, b)
    assert P.dtype == np.longdouble
    assert_within(P, ref.predict_proba(D, W, b), bounds["P"], "predict_proba")


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_sparse_integer_data_is_computed_in_float64(dtype):
    rng = np.random.default_rng(12)
    # Booleans without duplicates: the data is converted to float64 before a sparse product
    # sums duplicates (True, True -> 2.0), while toarray() sums them in bool (True).
    duplicates = dtype is not np.bool_
    X = random_csr(30, 12, 0.3, seed=3, unsorted=True, duplicates=duplicates)
    X.data = np.round(X.data * 3).astype(dtype)  # duplicate halves: integers now
    D = dense_of(X)
    W, b, y = sparse_problem(rng, X.astype(np.float64), 4, True, "labels")
    loss, dW, db = ref.loss_and_grad(X, y, W, b, alpha=0.1)
    loss_d, dW_d, db_d = ref.loss_and_grad(D, y, W, b, alpha=0.1)
    assert dW.dtype == db.dtype == np.float64
    bounds = difference_bounds(X.astype(np.float64), y, W, b, 0.1)
    assert_within(loss, loss_d, bounds["loss"], "loss")
    assert_within(dW, dW_d, bounds["dW"], "dW")
    P = ref.predict_proba(X, W, b)
    assert P.dtype == np.float64
    assert_within(P, ref.predict_proba(D, W, b), bounds["P"], "predict_proba")


_FORMATS = {
    "csc_matrix": lambda X: sp.csc_matrix(X),
    "csc_array": lambda X: sp.csc_array(X),
    "coo_matrix": lambda X: sp.coo_matrix(X),  # keeps X's duplicates
    "coo_array": lambda X: sp.coo_array(X),
    "coo_own_duplicates": lambda X: _coo_with_duplicates(X),
    "bsr": lambda X: X.tobsr(),
    "lil": lambda X: X.tolil(),
    "dok": lambda X: X.todok(),
    "dia": lambda X: X.todia(),
}


def _coo_with_duplicates(X):
    """A COO matrix of X's values whose every entry is stored twice (halves: exact sums), in
    reversed order (unsorted)."""
    C = canonical(X).tocoo()
    row, col, half = C.row[::-1], C.col[::-1], C.data[::-1] / 2
    A = sp.coo_matrix(
        (np.concatenate([half, half]), (np.tile(row, 2), np.tile(col, 2))), shape=X.shape
    )
    assert A.nnz == 2 * C.nnz
    return A


@pytest.mark.parametrize("fmt", _FORMATS)
def test_other_sparse_formats_are_accepted(rng, fmt):
    X = _FORMATS[fmt](sparse_case("noncanonical"))
    D = dense_of(X)
    np.testing.assert_array_equal(D, dense_of(sparse_case("noncanonical")))
    W, b, y = sparse_problem(rng, X, 6, True, "labels")
    w = random_weights(rng, X.shape[0])
    snap = snapshot(X)
    loss, dW, db = ref.loss_and_grad(X, y, W, b, alpha=0.1, sample_weight=w)
    P = ref.predict_proba(X, W, b)
    labels = ref.predict(X, W, b)
    assert_unchanged(X, snap)
    loss_d, dW_d, db_d = ref.loss_and_grad(D, y, W, b, alpha=0.1, sample_weight=w)
    bounds = difference_bounds(X, y, W, b, 0.1, w)
    assert_within(loss, loss_d, bounds["loss"], "loss")
    assert_within(dW, dW_d, bounds["dW"], "dW")
    assert_within(db, db_d, bounds["db"], "db")
    assert_within(P, ref.predict_proba(D, W, b), bounds["P"], "predict_proba")
    assert labels.shape == (X.shape[0],) and labels.dtype.kind == "i"


@pytest.mark.parametrize("case", ["noncanonical", "noncanonical_array_float32_int64", "zero"])
def test_sparse_reference_never_densifies(rng, case, never_densified):
    X = sparse_case(case)
    W, b, y = sparse_problem(rng, X, 3, True, "labels")
    for A in (X, X.tocsc(), X.tocoo()):
        ref.loss_and_grad(A, y, W, b, alpha=0.1)
        ref.predict_proba(A, W, b)
        ref.predict(A, W, b)


def test_cached_format_flags_of_the_caller_are_kept():
    """A caller's matrix whose flags scipy has cached (correctly) keeps them; the reference
    does not canonicalize it (sum_duplicates and sort_indices would work in place)."""
    X = sparse_case("unsorted_duplicates")
    assert not X.has_canonical_format and not X.has_sorted_indices  # now cached on X
    snap = snapshot(X)
    W, b, y = sparse_problem(np.random.default_rng(13), X, 3, True, "labels")
    ref.loss_and_grad(X, y, W, b)
    ref.predict_proba(X, W, b)
    ref.predict(X, W, b)
    assert_unchanged(X, snap)
    assert vars(X)["_has_canonical_format"] is False


# ---------------------------------------------------------------------------------------------
# Gradients against central finite differences
# ---------------------------------------------------------------------------------------------

# max over p in [0, 1] of |p (1 - p) (1 - 2 p)|: the third derivative of logsumexp along one
# coordinate, d^3/dz_k^3 = p_k (1 - p_k) (1 - 2 p_k)
_THIRD = 1.0 / (6.0 * np.sqrt(3.0))


@pytest.mark.parametrize("targets", ["labels", "probabilities"])
@pytest.mark.parametrize("case", FLOAT64_CASES)
def test_sparse_gradient_finite_differences(rng, case, targets):
    # A small version of each case: K n + K evaluations of the loss on either side.
    X = sparse_case(case, m=min(SPARSE_CASES[case]["m"], 25), n=min(SPARSE_CASES[case]["n"], 6))
    m, n = X.shape
    K = 3
    W, b, y = sparse_problem(rng, X, K, True, targets)
    w = random_weights(rng, m)
    alpha = 0.4
    snap = snapshot(X)
    loss, dW, db = ref.loss_and_grad(X, y, W, b, alpha=alpha, sample_weight=w)

    def f():
        return ref.loss_and_grad(X, y, W, b, alpha=alpha, sample_weight=w)[0]

    h = 1e-5
    fdW = central_diff(f, W, h)
    fdb = central_diff(f, b, h)
    assert_unchanged(X, snap)

    # |fd - g| <= truncation h^2/6 max|f'''| (f''' along W_kj: sum_i omega_i x_ij^3 times the
    # third derivative of logsumexp, at most _THIRD; along b_k: x_ij -> 1) + rounding of the
    # loss (each evaluation within eps_L: 2 eps_L / 2h) + the rounded step (W + h is off by
    # eps |W + h|: |g| eps (|W| + h) / h) + the reference's own gradient error.
    D = dense_of(X)
    one = {k: v / 2 for k, v in difference_bounds(X, y, W, b, alpha, w).items()}
    omega = w / w.sum()
    trunc_W = h**2 / 6 * _THIRD * (omega @ np.abs(D) ** 3)[None, :]
    trunc_b = h**2 / 6 * _THIRD * omega.sum()
    bound_W = trunc_W + one["loss"] / h + np.abs(dW) * EPS64 * (np.abs(W) + h) / h + one["dW"]
    bound_b = trunc_b + one["loss"] / h + np.abs(db) * EPS64 * (np.abs(b) + h) / h + one["db"]
    assert_within(dW, fdW, bound_W, "dW vs finite differences")
    assert_within(db, fdb, bound_b, "db vs finite differences")
    assert isinstance(loss, float)


# ---------------------------------------------------------------------------------------------
# sparse_inputs.py itself
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", SPARSE_CASES)
def test_random_csr_is_what_it_says(case):
    kw = SPARSE_CASES[case]
    X = sparse_case(case)
    m, n = kw["m"], kw["n"]
    cls = sp.csr_array if kw.get("container") == "array" else sp.csr_matrix
    assert type(X) is cls and X.format == "csr" and X.shape == (m, n)
    index_dtype = np.dtype(kw.get("index_dtype", np.int32))
    assert X.indices.dtype == index_dtype and X.indptr.dtype == index_dtype
    assert X.data.dtype == np.dtype(kw.get("dtype", np.float64))
    assert not set(vars(X)) & {"_has_sorted_indices", "_has_canonical_format"}  # none cached

    D = dense_of(X)
    np.testing.assert_array_equal(X.toarray(), D)  # scipy means the duplicates as we do
    C = canonical(X)
    np.testing.assert_array_equal(C.toarray(), D)
    assert C.has_canonical_format and format_flags(C)["has_canonical_format"]

    flags = format_flags(X)
    probe = X.copy()  # scipy's own lazily computed flags, on a copy
    assert probe.has_sorted_indices == flags["has_sorted_indices"]
    assert probe.has_canonical_format == flags["has_canonical_format"]
    non_canonical = kw.get("unsorted", False) or kw.get("duplicates", False)
    assert flags["has_canonical_format"] == (not non_canonical)
    assert flags["has_sorted_indices"] == (not kw.get("unsorted", False))

    rows, _ = stored_counts(X)
    positions = np.unique(np.stack([np.repeat(np.arange(m), rows), X.indices]), axis=1).shape[1]
    assert (positions < X.nnz) == kw.get("duplicates", False)
    assert np.any(X.data == 0) == kw.get("explicit_zeros", False)
    if kw.get("empty_rows", False):
        assert rows[0] == 0 and rows[-1] == 0 and (m == 1 or rows.any())
    if kw["density"] == 0:
        assert not D.any()
        assert X.nnz == (3 if kw.get("explicit_zeros") else 0)
    elif not any(kw.get(k) for k in ("empty_rows", "unsorted", "duplicates", "explicit_zeros")):
        assert X.nnz == max(1, round(kw["density"] * m * n))
        assert np.count_nonzero(D) == X.nnz


def test_random_csr_is_fresh_and_deterministic():
    A = random_csr(20, 10, 0.4, unsorted=True, duplicates=True, seed=5)
    B = random_csr(20, 10, 0.4, unsorted=True, duplicates=True, seed=5)
    for name in ("data", "indices", "indptr"):
        a, b = getattr(A, name), getattr(B, name)
        assert a is not b and not np.shares_memory(a, b)
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(random_csr(20, 10, 0.4, seed=6).toarray(), A.toarray())


@pytest.mark.parametrize("density", [0.0, 1e-4, 0.01, 0.5, 1.0])
@pytest.mark.parametrize("m", [1, 7])
def test_random_csr_densities_and_one_row(density, m):
    X = random_csr(m, 9, density, seed=4)
    assert X.nnz == (0 if density == 0 else max(1, round(density * m * 9)))
    assert X.has_canonical_format
    np.testing.assert_array_equal(X.toarray() != 0, dense_of(X) != 0)


def test_random_csr_refuses_what_it_cannot_make():
    with pytest.raises(ValueError, match="stored entries"):
        random_csr(5, 5, 0.0, duplicates=True)
    with pytest.raises(ValueError, match="stored entries"):
        random_csr(1, 5, 0.5, unsorted=True, empty_rows=True)
    with pytest.raises(ValueError, match="n >= 2"):
        random_csr(5, 1, 0.5, unsorted=True)
    with pytest.raises(ValueError, match="index_dtype"):
        random_csr(5, 5, 0.5, index_dtype=np.int16)
    with pytest.raises(ValueError, match="container"):
        random_csr(5, 5, 0.5, container="coo")
    # unsorted where no row has two entries: a second one is added, so it really is unsorted
    X = random_csr(50, 40, 1e-3, unsorted=True, seed=2)
    assert not format_flags(X)["has_sorted_indices"]


def test_snapshot_has_no_side_effects_and_catches_modifications():
    X = sparse_case("noncanonical")
    snap = snapshot(X)
    assert not set(vars(X)) & {"_has_sorted_indices", "_has_canonical_format"}
    assert_unchanged(X, snap)
    _ = X.has_canonical_format  # caches the true (False) flags: not a modification
    assert_unchanged(X, snap)

    def caught(modify, case="noncanonical", fmt=None):
        A = sparse_case(case)
        A = A if fmt is None else A.asformat(fmt)
        s = snapshot(A)
        modify(A)
        with pytest.raises(AssertionError):
            assert_unchanged(A, s)

    caught(lambda A: A.sort_indices())
    caught(lambda A: A.sum_duplicates())
    caught(lambda A: A.eliminate_zeros())
    caught(lambda A: A.data.__setitem__(0, 1.5))
    caught(lambda A: setattr(A, "data", A.data.copy()))  # an equal copy, but not the same
    caught(lambda A: setattr(A, "_has_canonical_format", True))  # a wrong flag
    caught(lambda A: setattr(A, "indices", A.indices.astype(np.int64)))
    caught(lambda A: A.indices.setflags(write=False))
    caught(lambda A: A.sum_duplicates(), fmt="coo")
    caught(lambda A: A.__setitem__((0, 0), 7.0), case="density_1", fmt="lil")
    caught(lambda A: A.__setitem__((0, 0), 7.0), case="density_1", fmt="dok")
    # scipy's own flag caching, read before the snapshot, is kept as it was
    Y = sparse_case("duplicates")
    assert Y.has_sorted_indices and not Y.has_canonical_format
    s = snapshot(Y)
    assert_unchanged(Y, s)

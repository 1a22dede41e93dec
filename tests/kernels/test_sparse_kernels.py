"""The linear kernels on scipy.sparse X: ``loss_and_grad``, ``predict_proba`` and ``predict``.

Over the shared awkward inputs of tests/sparse_inputs.py (densities 0 to 1, empty rows, one row,
int32/int64 indices, float32/float64, unsorted indices, duplicates, explicit zeros,
csr_matrix/csr_array), every sparse-capable kernel is compared with the NumPy reference on the
same sparse X and with the dense kernel on ``dense_of(X)``; its gradient with central finite
differences; its results with 1 and 2 threads and with the column pass; and the caller's matrix
is checked to be exactly as it was after every call.  Bad sparse input is in test_bad_input.py.

The tolerances.  Every evaluation is within a first-order rounding bound of the exact result
(``sparse_inputs.rounding_bounds``, the derivation of tests/reference/test_reference_sparse.py),
and so two evaluations differ by at most the sum of their two bounds.  The three evaluations:

* our CSR kernel: float64 arithmetic whatever X's dtype (logits, softmax, G, the gradient sums
  and the loss), the sums over the stored entries (``stored_counts``), then dW, db and the
  probabilities rounded once to X's dtype (u_out = eps32 for float32, nothing for float64);
* the reference on the same sparse X: arithmetic in X's dtype over the same stored entries;
* the dense kernel on ``dense_of(X)``: arithmetic in X's dtype, sums of n and m terms.

No tolerance is read off the digits of one CPU.  Bit-identity is asserted only for our kernel
repeating the same call: repeated calls with the same thread count, inputs that the validation
turns into the very same call (integer data converted exactly to float64, float64 W cast to
float32 X's dtype), and the column pass's gradient, whose every sum runs over its column in row
order whatever the threads (the design note of _native/csr.pyx).
"""

import numpy as np
import pytest
import scipy.sparse as sp
from kernel_test_helpers import central_diff, random_weights
from sparse_inputs import (
    EPS64,
    SPARSE_CASES,
    RoundingBounds,
    assert_unchanged,
    assert_within,
    canonical,
    dense_of,
    random_csr,
    snapshot,
    sparse_case,
    sparse_problem,
    stored_counts,
)

import softmax_fast as sf
from softmax_fast import _design
from softmax_fast import reference as ref
from softmax_fast._design import CSRDesign
from softmax_fast._validation import as_csr_arrays

FLOAT64_CASES = [c for c, kw in SPARSE_CASES.items() if np.dtype(kw.get("dtype")) == np.float64]
EPS32 = float(np.finfo(np.float32).eps)


# ---------------------------------------------------------------------------------------------
# Problems and bounds
# ---------------------------------------------------------------------------------------------


def _exact(X, y, W, b, w):
    """Exact float64 copies of the inputs as the kernels see them (W, b, Y in X's dtype)."""
    dtype = X.dtype
    K = W.shape[0]
    D = dense_of(X).astype(np.float64)
    y = np.asarray(y)
    Y = np.eye(K)[y] if y.ndim == 1 else y.astype(dtype).astype(np.float64)
    W64 = np.asarray(W).astype(dtype).astype(np.float64)
    b64 = None if b is None else np.asarray(b).astype(dtype).astype(np.float64)
    w64 = None if w is None else np.asarray(w, dtype=np.float64)
    return D, Y, W64, b64, w64


def bounds(X, y, W, b=None, alpha=0.0, w=None, kinds=("kernel", "reference", "dense")):
    """One-side rounding bounds (see the module docstring) of one evaluation of each of
    ``kinds``: "kernel" (our CSR kernel on X), "reference" (the reference on X), "dense" (the
    dense kernel on dense_of(X)); a dict kind -> rounding_bounds dict."""
    D, Y, W64, b64, w64 = _exact(X, y, W, b, w)
    m, n = D.shape
    exact = RoundingBounds(D, Y, W64, b64, alpha, w64)
    u_dtype = float(np.finfo(X.dtype).eps)
    rows, cols = stored_counts(X)
    spec = {
        "kernel": (EPS64, rows, cols, EPS32 if X.dtype == np.float32 else 0.0),
        "reference": (u_dtype, rows, cols, 0.0),
        "dense": (u_dtype, np.full(m, n), np.full(n, m), 0.0),
    }
    return {
        kind: exact.of(u=u, row_terms=r, col_terms=c, u_out=u_out)
        for kind, (u, r, c, u_out) in ((k, spec[k]) for k in kinds)
    }


def _sum(*bs):
    return {key: sum(b[key] for b in bs) for key in bs[0]}


def kernel_pair_bounds(X, y, W, b=None, alpha=0.0, w=None):
    """Bounds on the difference of two evaluations of our kernel (other threads, the column
    pass, another input format): twice its one-side bounds."""
    one = bounds(X, y, W, b, alpha, w, kinds=("kernel",))["kernel"]
    return _sum(one, one)


def _kwargs(alpha=0.0, w=None, n_threads=None):
    kwargs = {"alpha": alpha, "n_threads": n_threads}
    if w is not None:
        kwargs["sample_weight"] = w
    return kwargs


def check_outputs(X, loss, dW, db, K, intercept):
    """The contract's types, dtypes, shapes and layout of loss_and_grad's results."""
    m, n = X.shape
    dtype = np.float32 if X.dtype == np.float32 else np.float64
    assert isinstance(loss, float) and np.isfinite(loss)
    assert type(dW) is np.ndarray and dW.dtype == dtype and dW.shape == (K, n)
    assert dW.flags.c_contiguous and np.isfinite(dW).all()
    if intercept:
        assert type(db) is np.ndarray and db.dtype == dtype and db.shape == (K,)
        assert np.isfinite(db).all()
    else:
        assert db is None


def assert_results_within(got, expected, bound, intercept, what):
    loss, dW, db = got
    loss_e, dW_e, db_e = expected
    assert_within(loss, loss_e, bound["loss"], f"{what}: loss")
    assert_within(dW, dW_e, bound["dW"], f"{what}: dW")
    if intercept:
        assert_within(db, db_e, bound["db"], f"{what}: db")


def assert_identical(a, b, what):
    """Bit-identical results (loss, dW, db) of two calls."""
    assert a[0] == b[0], f"{what}: loss {a[0]!r} != {b[0]!r}"
    np.testing.assert_array_equal(a[1], b[1], err_msg=f"{what}: dW")
    assert a[1].dtype == b[1].dtype
    if a[2] is None:
        assert b[2] is None
    else:
        np.testing.assert_array_equal(a[2], b[2], err_msg=f"{what}: db")


# ---------------------------------------------------------------------------------------------
# 1. Against the reference and the dense kernel
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.0, 0.3])
@pytest.mark.parametrize("intercept", [False, True], ids=["no_b", "b"])
@pytest.mark.parametrize("K", [1, 2, 20])
@pytest.mark.parametrize("case", SPARSE_CASES)
def test_loss_and_grad(rng, case, K, intercept, alpha):
    X = sparse_case(case)
    D = dense_of(X)
    snap = snapshot(X)
    # with and without sample weights, both forms of y: one matrix, four problems, two of them
    # on two threads (the conftest lets any work take them), two on one (cheaper on a busy
    # machine: the threads themselves are compared below)
    for weighted in (False, True):
        for targets in ("labels", "probabilities"):
            n_threads = 2 if weighted == (targets == "probabilities") else 1
            what = f"{'weighted' if weighted else 'unweighted'} {targets}, {n_threads} threads"
            W, b, y = sparse_problem(rng, X, K, intercept, targets)
            w = random_weights(rng, X.shape[0]) if weighted else None
            got = sf.loss_and_grad(X, y, W, b, **_kwargs(alpha, w, n_threads))
            assert_unchanged(X, snap)
            check_outputs(X, *got, K, intercept)

            expected = ref.loss_and_grad(X, y, W, b, alpha=alpha, sample_weight=w)
            assert_unchanged(X, snap)
            bound = bounds(X, y, W, b, alpha, w)
            ours = bound["kernel"]
            both = _sum(ours, bound["reference"])
            assert_results_within(got, expected, both, intercept, f"{what} vs reference")

            dense = sf.loss_and_grad(D, y, W, b, **_kwargs(alpha, w, n_threads=1))
            check_outputs(X, *dense, K, intercept)
            both = _sum(ours, bound["dense"])
            assert_results_within(got, dense, both, intercept, f"{what} vs dense kernel")


def decided_rows(X, W, b, dz):
    """Rows whose argmax every evaluation must get right, and the exact argmax.

    Each evaluation's logits are within its dz (rounding_bounds; ``dz`` their max over the
    evaluations) of the exact ones, and the float64 logits used here within (n + 1) eps64
    (|x||w| + |b|) of them: where the float64 top-two gap exceeds 2 dz + 2 of that, every
    evaluation's largest logit is the exact one's.  Rows storing only zeros have exact logits
    in every evaluation (0 or b, no rounding), so their argmax, ties to the lowest index, is
    always decided."""
    y = np.zeros(X.shape[0], dtype=np.intp)
    D, _, W64, b64, _ = _exact(X, y, W, b, None)
    Z = D @ W64.T + (0.0 if b64 is None else b64)
    truth = np.argmax(Z, axis=1)
    zero_rows = ~np.any(D != 0, axis=1)
    if Z.shape[1] < 2:
        return np.ones(Z.shape[0], dtype=bool), truth
    M = (np.abs(D) @ np.abs(W64).T + (0.0 if b64 is None else np.abs(b64))).max(axis=1)
    dz_truth = (D.shape[1] + 1) * EPS64 * M
    top2 = np.sort(Z, axis=1)[:, -2:]
    gap = top2[:, 1] - top2[:, 0]
    return zero_rows | (gap > 2 * dz + 2 * dz_truth), truth


@pytest.mark.parametrize("intercept", [False, True], ids=["no_b", "b"])
@pytest.mark.parametrize("K", [1, 2, 20])
@pytest.mark.parametrize("case", SPARSE_CASES)
def test_predict_proba_and_predict(rng, case, K, intercept):
    X = sparse_case(case)
    D = dense_of(X)
    m = X.shape[0]
    W, b, _ = sparse_problem(rng, X, K, intercept, "labels")
    snap = snapshot(X)
    P = sf.predict_proba(X, W, b)
    labels = sf.predict(X, W, b)
    assert_unchanged(X, snap)

    dtype = np.float32 if X.dtype == np.float32 else np.float64
    assert type(P) is np.ndarray and P.dtype == dtype and P.shape == (m, K)
    assert np.isfinite(P).all()
    # An underflowed probability is off by at most the smallest normal number of the dtype.
    tiny = float(np.finfo(dtype).tiny)
    bound = bounds(X, np.zeros(m, dtype=np.intp), W, b)
    ours = bound["kernel"]["P"] + tiny
    P_ref, P_dense = ref.predict_proba(X, W, b), sf.predict_proba(D, W, b, n_threads=1)
    assert_within(P, P_ref, ours + bound["reference"]["P"], "predict_proba vs reference")
    assert_within(P, P_dense, ours + bound["dense"]["P"], "predict_proba vs dense kernel")

    assert type(labels) is np.ndarray and labels.dtype == np.intp and labels.shape == (m,)
    assert ((labels >= 0) & (labels < K)).all()
    dz = np.max([bound[kind]["dz"] for kind in bound], axis=0)
    decided, truth = decided_rows(X, W, b, dz)
    assert decided.mean() >= 0.9 or m < 10, f"only {decided.sum()} of {m} rows decided"
    np.testing.assert_array_equal(labels[decided], truth[decided])
    np.testing.assert_array_equal(ref.predict(X, W, b)[decided], truth[decided])
    np.testing.assert_array_equal(sf.predict(D, W, b, n_threads=1)[decided], truth[decided])


# ---------------------------------------------------------------------------------------------
# 2. Gradients against central finite differences
# ---------------------------------------------------------------------------------------------

# max over p in [0, 1] of |p (1 - p) (1 - 2 p)|: the third derivative of logsumexp along one
# coordinate, d^3/dz_k^3 = p_k (1 - p_k) (1 - 2 p_k)
_THIRD = 1.0 / (6.0 * np.sqrt(3.0))
FD_CASES = ["noncanonical", "density_1", "empty_rows", "m1_dense_unsorted_dup", "int64"]


@pytest.mark.parametrize("targets", ["labels", "probabilities"])
@pytest.mark.parametrize("case", FD_CASES)
def test_gradient_finite_differences(rng, case, targets):
    # A small float64 version of each case: K n + K loss evaluations on either side.
    X = sparse_case(case, m=min(SPARSE_CASES[case]["m"], 25), n=min(SPARSE_CASES[case]["n"], 6))
    m = X.shape[0]
    K, alpha, h = 3, 0.4, 1e-5
    W, b, y = sparse_problem(rng, X, K, True, targets)
    w = random_weights(rng, m)
    snap = snapshot(X)
    loss, dW, db = sf.loss_and_grad(X, y, W, b, alpha=alpha, sample_weight=w)

    def f():  # one thread: cheap calls (the threads are tested below)
        return sf.loss_and_grad(X, y, W, b, alpha=alpha, sample_weight=w, n_threads=1)[0]

    fdW = central_diff(f, W, h)
    fdb = central_diff(f, b, h)
    assert_unchanged(X, snap)

    # |fd - g| <= truncation h^2/6 max|f'''| (f''' along W_kj: sum_i omega_i x_ij^3 times the
    # third derivative of logsumexp, at most _THIRD; along b_k: x_ij -> 1; the penalty is
    # quadratic) + rounding of the loss (each evaluation within eps_L: 2 eps_L / 2h) + the
    # rounded step (W + h is off by eps |W + h|: |g| eps (|W| + h) / h) + the kernel's own
    # gradient error.
    one = bounds(X, y, W, b, alpha, w, kinds=("kernel",))["kernel"]
    omega = w / w.sum()
    trunc_W = h**2 / 6 * _THIRD * (omega @ np.abs(dense_of(X)) ** 3)[None, :]
    trunc_b = h**2 / 6 * _THIRD * omega.sum()
    bound_W = trunc_W + one["loss"] / h + np.abs(dW) * EPS64 * (np.abs(W) + h) / h + one["dW"]
    bound_b = trunc_b + one["loss"] / h + np.abs(db) * EPS64 * (np.abs(b) + h) / h + one["db"]
    assert_within(dW, fdW, bound_W, "dW vs finite differences")
    assert_within(db, fdb, bound_b, "db vs finite differences")
    assert isinstance(loss, float)


# ---------------------------------------------------------------------------------------------
# 3. Threads, repeated calls, the column pass
# ---------------------------------------------------------------------------------------------


def skewed_csr(dtype=np.float64, seed=7):
    """Row 0 stores 200 entries, the other 60 rows 0 to 2: row chunks of about equal non-zeros
    are very unequal in rows (some may hold no row at all)."""
    rng = np.random.default_rng(seed)
    m, n = 61, 200
    counts = np.concatenate([[n], rng.integers(0, 3, m - 1)])
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    indices = np.concatenate([rng.permutation(n)[:c] for c in counts]).astype(np.int32)
    data = rng.standard_normal(indptr[-1]).astype(dtype)
    return sp.csr_matrix((data, indices, indptr), shape=(m, n))


THREAD_CASES = [
    "noncanonical",
    "noncanonical_array_float32_int64",
    "density_1e-4",
    "density_1",
    "zero",
    "m1",
    "skewed",
]


def thread_case(case):
    return skewed_csr() if case == "skewed" else sparse_case(case)


def _all_outputs(X, y, W, b, alpha, w, n_threads):
    kwargs = _kwargs(alpha, w, n_threads)
    snap = snapshot(X)
    results = sf.loss_and_grad(X, y, W, b, **kwargs)
    P = sf.predict_proba(X, W, b, n_threads=n_threads)
    labels = sf.predict(X, W, b, n_threads=n_threads)
    assert_unchanged(X, snap)
    return results, P, labels


@pytest.mark.parametrize("targets", ["labels", "probabilities"])
@pytest.mark.parametrize("case", THREAD_CASES)
def test_threads_agree_and_repeated_calls_are_identical(rng, case, targets):
    X = thread_case(case)
    m, K, alpha = X.shape[0], 5, 0.2
    W, b, y = sparse_problem(rng, X, K, True, targets)
    w = random_weights(rng, m)
    # (whichever gradient strategy CSRDesign picks for this shape and team: every one sums the
    # same terms, in an order that depends on the team only)
    pair = kernel_pair_bounds(X, y, W, b, alpha, w)
    tiny = float(np.finfo(X.dtype).tiny)
    dz = bounds(X, y, W, b, kinds=("kernel",))["kernel"]["dz"]
    decided, truth = decided_rows(X, W, b, dz)
    one = _all_outputs(X, y, W, b, alpha, w, 1)
    for n_threads in (1, 2, 4):
        first = _all_outputs(X, y, W, b, alpha, w, n_threads)
        again = _all_outputs(X, y, W, b, alpha, w, n_threads)
        what = f"{n_threads} threads"
        # the same thread count: bit for bit the same (chunks of the same bounds, summed in
        # chunk order)
        assert_identical(first[0], again[0], what)
        np.testing.assert_array_equal(first[1], again[1], err_msg=f"{what}: predict_proba")
        np.testing.assert_array_equal(first[2], again[2], err_msg=f"{what}: predict")
        # another thread count: other chunks, another summation order, within the bound
        assert_results_within(first[0], one[0], pair, True, f"{what} vs 1 thread")
        assert_within(first[1], one[1], pair["P"] + tiny, f"{what} vs 1 thread: predict_proba")
        np.testing.assert_array_equal(first[2][decided], truth[decided], err_msg=what)


@pytest.fixture
def column_pass(monkeypatch):
    """The CSR gradient takes the column pass whenever its team has more than one thread."""
    monkeypatch.setattr(_design, "ROW_ACCUMULATOR_BYTES", 0)


COLUMN_CASES = [
    "noncanonical",
    "noncanonical_array_float32_int64",
    "density_1e-4",
    "zero",
    "n1",
    "m1",
    "skewed",
]


@pytest.mark.parametrize("case", COLUMN_CASES)
def test_column_pass(rng, case, column_pass):
    X = thread_case(case)
    m, n = X.shape
    K, alpha = 4, 0.3
    W, b, y = sparse_problem(rng, X, K, True, "probabilities")
    w = random_weights(rng, m)
    Xc = as_csr_arrays(X)
    # With one thread the row accumulator is the result itself: never the column pass.
    assert not CSRDesign(Xc, 1).uses_column_pass(K)
    assert CSRDesign(Xc, 2).uses_column_pass(K) == (m > 1)  # m = 1: a team of one thread

    snap = snapshot(X)
    rows = sf.loss_and_grad(X, y, W, b, **_kwargs(alpha, w, 1))
    columns = sf.loss_and_grad(X, y, W, b, **_kwargs(alpha, w, 2))
    again = sf.loss_and_grad(X, y, W, b, **_kwargs(alpha, w, 2))
    assert_unchanged(X, snap)
    check_outputs(X, *columns, K, True)
    assert_identical(columns, again, "column pass, repeated")
    assert_results_within(
        columns,
        rows,
        kernel_pair_bounds(X, y, W, b, alpha, w),
        True,
        "column pass vs row accumulators",
    )
    # Each feature's K sums run over its column's entries in row order, whatever the threads
    # (the design note of _native/csr.pyx): dW is the same bits with 3 and 4 threads.
    for n_threads in (3, 4):
        other = sf.loss_and_grad(X, y, W, b, **_kwargs(alpha, w, n_threads))
        np.testing.assert_array_equal(other[1], columns[1], err_msg=f"{n_threads} threads: dW")
    assert_unchanged(X, snap)


# K's that reach every block of the column kernels (_sfsparse.h): one to eight four-wide
# vectors held in registers (K = 4 .. 35), several blocks of eight (K >= 32), and K mod 4
# classes left over (1, 2 or 3), or none.
COLUMN_BLOCK_KS = [1, 2, 3, 4, 7, 9, 14, 16, 19, 22, 27, 28, 31, 32, 33, 38, 67]


@pytest.mark.parametrize("strategy", ["columns", "rows+column pass"])
@pytest.mark.parametrize("K", COLUMN_BLOCK_KS)
def test_column_kernels_every_class_block(rng, K, strategy, monkeypatch):
    """The column strategies (forced) against the reference and against the row accumulators
    of one thread, for K's through every class block of the column kernels."""
    m, n = (23, 61) if strategy == "columns" else (61, 23)  # "columns" needs m < n
    X = random_csr(m, n, 0.2, unsorted=True, duplicates=True, empty_rows=True, seed=K)
    W, b, y = sparse_problem(rng, X, K, True, "labels")
    w = random_weights(rng, m)
    alpha = 0.3
    rows = sf.loss_and_grad(X, y, W, b, **_kwargs(alpha, w, 1))
    monkeypatch.setattr(CSRDesign, "strategy", lambda self, K: strategy)
    got = sf.loss_and_grad(X, y, W, b, **_kwargs(alpha, w, 2))
    check_outputs(X, *got, K, True)
    assert_identical(got, sf.loss_and_grad(X, y, W, b, **_kwargs(alpha, w, 2)), "repeated")
    expected = ref.loss_and_grad(X, y, W, b, alpha=alpha, sample_weight=w)
    one = bounds(X, y, W, b, alpha, w, kinds=("kernel", "reference"))
    assert_results_within(
        got, expected, _sum(one["kernel"], one["reference"]), True, f"{strategy} vs reference"
    )
    assert_results_within(
        got, rows, kernel_pair_bounds(X, y, W, b, alpha, w), True, f"{strategy} vs rows"
    )
    # The fit's feature-major call (Wt in, dWt out) and the one-off class-major one (W in, dW
    # out, read and written in place by "columns"): the same sums, the same bits.
    design = CSRDesign(as_csr_arrays(X), 2)
    w_scaled = w / w.max() * 0.75
    one_off = design.class_major_loss_grad(W, b, y, None, w_scaled, 0.01)
    fit = design.loss_grad(np.ascontiguousarray(W.T), b, y, None, w_scaled, 0.01)
    assert one_off[0] == fit[0]
    np.testing.assert_array_equal(one_off[1], fit[1].T)
    np.testing.assert_array_equal(one_off[2], fit[2])


def test_column_pass_threshold(monkeypatch):
    """uses_column_pass(K): the team's row accumulators (team * n * K * 8 bytes) above
    ROW_ACCUMULATOR_BYTES."""
    X = as_csr_arrays(sparse_case("noncanonical"))
    n, K = X.shape[1], 3
    design = CSRDesign(X, 2)
    assert not design.uses_column_pass(K)  # the shipped 256 MiB
    monkeypatch.setattr(_design, "ROW_ACCUMULATOR_BYTES", 2 * n * K * 8)
    assert not design.uses_column_pass(K)
    monkeypatch.setattr(_design, "ROW_ACCUMULATOR_BYTES", 2 * n * K * 8 - 1)
    assert design.uses_column_pass(K)
    assert not CSRDesign(X, 1).uses_column_pass(K)


# ---------------------------------------------------------------------------------------------
# 4. The caller's matrix, in any accepted format, is left as it was
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def never_densified(monkeypatch):
    """Densifying a sparse matrix (toarray, todense, np.asarray) raises: proof it never happens."""

    def refuse(*args, **kwargs):
        raise AssertionError("a sparse matrix was densified")

    for cls in (
        sp.csr_matrix,
        sp.csr_array,
        sp.csc_matrix,
        sp.csc_array,
        sp.coo_matrix,
        sp.coo_array,
    ):
        for name in ("toarray", "todense", "__array__"):
            monkeypatch.setattr(cls, name, refuse, raising=False)


def _cached_flags(X):
    _ = X.has_canonical_format, X.has_sorted_indices  # scipy caches them on X
    return X


FORMATS = {
    "csr": lambda X: X,
    "csr_cached_flags": _cached_flags,
    "csc": lambda X: X.tocsc(),  # keeps the container (csc_matrix or csc_array)
    "csc_other_container": lambda X: (
        sp.csc_array if isinstance(X, sp.spmatrix) else sp.csc_matrix
    )(X),
    "coo": lambda X: X.tocoo(),  # keeps the duplicates
    "coo_other_container": lambda X: (
        sp.coo_array if isinstance(X, sp.spmatrix) else sp.coo_matrix
    )(X),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "case", ["noncanonical", "noncanonical_array_float32_int64", "unsorted_duplicates"]
)
def test_caller_matrix_unchanged_in_every_format(rng, case, fmt, monkeypatch):
    base = sparse_case(case)
    K, alpha = 4, 0.2
    W, b, y = sparse_problem(rng, base, K, True, "labels")
    w = random_weights(rng, base.shape[0])
    expected = sf.loss_and_grad(base, y, W, b, **_kwargs(alpha, w))
    P_expected = sf.predict_proba(base, W, b)
    pair = kernel_pair_bounds(base, y, W, b, alpha, w)
    dz = bounds(base, y, W, b, kinds=("kernel",))["kernel"]["dz"]
    decided, truth = decided_rows(base, W, b, dz)

    X = FORMATS[fmt](base)
    snap = snapshot(X)
    got = [sf.loss_and_grad(X, y, W, b, **_kwargs(alpha, w, nt)) for nt in (1, 2)]
    P = sf.predict_proba(X, W, b)
    labels = sf.predict(X, W, b)
    assert_unchanged(X, snap)
    with monkeypatch.context() as patch:  # the column pass builds its own CSC copy
        patch.setattr(_design, "ROW_ACCUMULATOR_BYTES", 0)
        got.append(sf.loss_and_grad(X, y, W, b, **_kwargs(alpha, w, 2)))
    assert_unchanged(X, snap)
    for i, result in enumerate(got):
        check_outputs(base, *result, K, True)
        assert_results_within(result, expected, pair, True, f"{fmt} #{i} vs csr")
    assert_within(P, P_expected, pair["P"] + float(np.finfo(base.dtype).tiny), f"{fmt}: proba")
    np.testing.assert_array_equal(labels[decided], truth[decided])


@pytest.mark.parametrize("case", ["noncanonical", "noncanonical_array_float32_int64", "zero"])
def test_kernels_never_densify(rng, case, never_densified, monkeypatch):
    X = sparse_case(case)
    W, b, y = sparse_problem(rng, X, 3, True, "labels")
    for A in (X, X.tocsc(), X.tocoo()):
        sf.loss_and_grad(A, y, W, b, alpha=0.1)
        sf.predict_proba(A, W, b)
        sf.predict(A, W, b)
    monkeypatch.setattr(_design, "ROW_ACCUMULATOR_BYTES", 0)
    sf.loss_and_grad(X, y, W, b, alpha=0.1, n_threads=2)


# ---------------------------------------------------------------------------------------------
# 5. Rows of weight 0 whose loss is +inf
# ---------------------------------------------------------------------------------------------


def _infinite_loss_row_problem(targets):
    """Row 2 stores x = 1 in column 0, where W holds +-1.5e308: its logits +-1.5e308 are
    finite, but its target class 1 is 3e308 below the max, so its loss is +inf; the other rows
    use column 1 only, with small coefficients."""
    m = 7
    indptr = np.array([0, 1, 2, 3, 4, 4, 5, 6], dtype=np.int32)
    indices = np.array([1, 1, 0, 1, 1, 1], dtype=np.int32)
    data = np.array([0.5, -1.0, 1.0, 2.0, 0.25, -0.75])
    X = sp.csr_matrix((data, indices, indptr), shape=(m, 2))
    W = np.array([[1.5e308, 0.3], [-1.5e308, -0.2]])
    b = np.array([0.1, -0.1])
    labels = np.array([0, 1, 1, 0, 1, 0, 1])
    y = labels if targets == "labels" else np.eye(2)[labels]
    return X, y, W, b


@pytest.mark.parametrize(
    ("path", "n_threads"),
    [("rows", 1), ("rows", 2), ("column_pass", 2), ("wide", 1), ("wide", 2)],
)
@pytest.mark.parametrize("targets", ["labels", "probabilities"])
def test_weight_zero_row_with_infinite_loss_counts_zero(targets, path, n_threads, monkeypatch):
    if path == "column_pass":
        monkeypatch.setattr(_design, "ROW_ACCUMULATOR_BYTES", 0)
    X, y, W, b = _infinite_loss_row_problem(targets)
    if path == "wide":  # more columns than rows: 8 empty columns, with coefficients 0.5
        X = sp.hstack([X, sp.csr_matrix((X.shape[0], 8))], format="csr")
        W = np.hstack([W, np.full((2, 8), 0.5)])
    m = X.shape[0]
    w = np.array([1.0, 2.0, 0.0, 1.0, 0.5, 1.0, 1.5])
    snap = snapshot(X)
    loss, dW, db = sf.loss_and_grad(X, y, W, b, sample_weight=w, n_threads=n_threads)
    assert_unchanged(X, snap)
    assert np.isfinite(loss) and np.isfinite(dW).all() and np.isfinite(db).all()
    # The same as the problem without row 2 (weight 0: it adds nothing, its G is 0): our
    # kernel on the other rows, within the bound of two evaluations of those rows.
    keep = np.arange(m) != 2
    Xk, yk, wk = X[keep], np.asarray(y)[keep], w[keep]
    without = sf.loss_and_grad(Xk, yk, W, b, sample_weight=wk, n_threads=n_threads)
    assert_results_within(
        (loss, dW, db), without, kernel_pair_bounds(Xk, yk, W, b, 0.0, wk), True, "vs without row 2"
    )
    # and as for dense X (the dense kernel leaves the row out too)
    dense = sf.loss_and_grad(dense_of(X), y, W, b, sample_weight=w, n_threads=n_threads)
    assert np.isfinite(dense[0])
    assert_results_within(
        (loss, dW, db), dense, kernel_pair_bounds(Xk, yk, W, b, 0.0, wk), True, "vs dense kernel"
    )

    # With a positive weight the row's loss is +inf, its gradient finite (p - y is bounded).
    w[2] = 1.0
    loss, dW, db = sf.loss_and_grad(X, y, W, b, sample_weight=w, n_threads=n_threads)
    assert loss == np.inf and np.isfinite(dW).all() and np.isfinite(db).all()
    assert sf.loss_and_grad(dense_of(X), y, W, b, sample_weight=w)[0] == np.inf
    assert sf.loss_and_grad(X, y, W, b, n_threads=n_threads)[0] == np.inf
    P = sf.predict_proba(X, W, b, n_threads=n_threads)
    assert np.isfinite(P).all() and P[2, 0] == 1.0 and P[2, 1] == 0.0
    assert sf.predict(X, W, b, n_threads=n_threads)[2] == 0
    assert_unchanged(X, snap)


# ---------------------------------------------------------------------------------------------
# 7. Index dtypes; other data dtypes
# ---------------------------------------------------------------------------------------------


def with_index_dtypes(X, indices_dtype, indptr_dtype):
    """A fresh CSR of X's class, data and stored order, its indices and indptr of the given
    dtypes (assigned after construction: scipy's constructor would make them one dtype)."""
    A = type(X)((X.data.copy(), X.indices.copy(), X.indptr.copy()), shape=X.shape)
    A.indices = np.ascontiguousarray(X.indices, dtype=indices_dtype)
    A.indptr = np.ascontiguousarray(X.indptr, dtype=indptr_dtype)
    assert A.indices.dtype == indices_dtype and A.indptr.dtype == indptr_dtype
    return A


INDEX_DTYPES = [
    (np.int32, np.int32),
    (np.int64, np.int64),
    (np.int32, np.int64),
    (np.int64, np.int32),
]


@pytest.mark.parametrize("column", [False, True], ids=["rows", "column_pass"])
@pytest.mark.parametrize("case", ["noncanonical_array_float32_int64", "float32", "noncanonical"])
def test_index_dtypes_give_the_same_result(rng, case, column, monkeypatch):
    if column:
        monkeypatch.setattr(_design, "ROW_ACCUMULATOR_BYTES", 0)
    base = sparse_case(case)
    K, alpha = 3, 0.1
    W, b, y = sparse_problem(rng, base, K, True, "labels")
    w = random_weights(rng, base.shape[0])
    dz = bounds(base, y, W, b, kinds=("kernel",))["kernel"]["dz"]
    decided, truth = decided_rows(base, W, b, dz)
    results = []
    for indices_dtype, indptr_dtype in INDEX_DTYPES:
        X = with_index_dtypes(base, indices_dtype, indptr_dtype)
        snap = snapshot(X)
        got = (
            sf.loss_and_grad(X, y, W, b, **_kwargs(alpha, w, 2)),
            sf.predict_proba(X, W, b, n_threads=2),
            sf.predict(X, W, b, n_threads=2),
        )
        assert_unchanged(X, snap)
        check_outputs(base, *got[0], K, True)
        results.append(got)
    # The same values in the same stored order, other index widths (one index dtype for both
    # in the kernel, int64 when either is): another compiled specialization, so within the
    # bound of two evaluations (bit-identity is asserted only for repeated calls).
    pair = kernel_pair_bounds(base, y, W, b, alpha, w)
    tiny = float(np.finfo(base.dtype).tiny)
    for (idx, ptr), got in zip(INDEX_DTYPES[1:], results[1:], strict=True):
        what = f"indices {np.dtype(idx)}, indptr {np.dtype(ptr)}"
        assert_results_within(got[0], results[0][0], pair, True, what)
        assert_within(got[1], results[0][1], pair["P"] + tiny, f"{what}: predict_proba")
        np.testing.assert_array_equal(got[2][decided], truth[decided], err_msg=what)
    # The canonical input (sorted, duplicates summed, int32): within the bound of two
    # evaluations.
    C = canonical(base)
    expected = sf.loss_and_grad(C, y, W, b, **_kwargs(alpha, w, 2))
    assert_results_within(results[0][0], expected, pair, True, "vs canonical")
    assert_within(results[0][1], sf.predict_proba(C, W, b), pair["P"] + tiny, "proba vs canonical")
    np.testing.assert_array_equal(results[0][2][decided], truth[decided], err_msg="canonical")


@pytest.mark.parametrize("data_dtype", [np.int64, np.int8, np.uint16, np.float16])
def test_integer_and_float16_data_compute_in_float64(rng, data_dtype):
    base = random_csr(30, 12, 0.3, seed=3, unsorted=True, duplicates=True)
    base.data = np.round(base.data * 4) / 2  # halves of integers: duplicate halves sum exactly
    X = base.copy()
    X.data = np.round(base.data * 2).astype(data_dtype)  # integers (float16: exactly)
    as64 = base.copy()
    as64.data = X.data.astype(np.float64)
    W, b, y = sparse_problem(rng, as64, 4, True, "labels")
    snap = snapshot(X)
    got = sf.loss_and_grad(X, y, W, b, alpha=0.1, n_threads=2)
    P = sf.predict_proba(X, W, b, n_threads=2)
    assert_unchanged(X, snap)
    check_outputs(as64, *got, 4, True)
    assert P.dtype == np.float64
    # converted exactly to float64: the very same call as on float64 data
    assert_identical(got, sf.loss_and_grad(as64, y, W, b, alpha=0.1, n_threads=2), "vs float64")
    np.testing.assert_array_equal(P, sf.predict_proba(as64, W, b, n_threads=2))


def test_float32_x_casts_w_and_b_to_float32(rng):
    X = sparse_case("float32")
    W, b, y = sparse_problem(rng, X, 3, True, "labels")
    W64 = W.astype(np.float64) + 1e-9  # not a float32 number: rounded to W's float32 values
    got = sf.loss_and_grad(X, y, W64, b.astype(np.float64), n_threads=1)
    assert got[1].dtype == got[2].dtype == np.float32
    assert_identical(got, sf.loss_and_grad(X, y, W64.astype(np.float32), b, n_threads=1), "")


def test_float32_logits_are_formed_in_float64(rng):
    """float32 X whose logits (~1e40) overflow float32 (~3.4e38) but not float64: the CSR
    kernel forms the logits in float64 (its design note), so the results are finite, within the
    bound of two evaluations of the float64 arithmetic of the kernel (outputs rounded to
    float32) of those on the float64 copy.  (The dense float32 kernel, whose logits are float32,
    reports such rows as overflowing.)"""
    X = sparse_case("float32")
    X.data = X.data * np.float32(1e20)
    W, b, y = sparse_problem(rng, X, 3, True, "labels")
    W = (W * np.float32(1e20)).astype(np.float32)
    X64, W64, b64 = X.astype(np.float64), W.astype(np.float64), b.astype(np.float64)
    got = sf.loss_and_grad(X, y, W, b)
    check_outputs(X, *got, 3, True)
    pair = kernel_pair_bounds(X, y, W, b)  # eps32 output rounding included
    assert_results_within(got, sf.loss_and_grad(X64, y, W64, b64), pair, True, "vs float64")
    P = sf.predict_proba(X, W, b)
    assert P.dtype == np.float32 and np.isfinite(P).all()
    assert_within(P, sf.predict_proba(X64, W64, b64), pair["P"] + 1e-38, "predict_proba")


# ---------------------------------------------------------------------------------------------
# Valid rows whose plain sum of logits is NaN
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["sparse", "dense"])
def test_predict_row_with_huge_logits_and_an_overflowed_one(form):
    """Logits [1e308, 1e308, -inf] (the -inf an overflow of 1e308 * -10) are valid: no NaN, no
    +inf, a finite one.  Their plain sum is inf + -inf = NaN, which predict once took for a bad
    row (fixed in b1e2240: the rule is tested per logit)."""
    X = sp.csr_matrix(np.array([[1e308, 1.0]]))
    X = X if form == "sparse" else X.toarray()
    W = np.array([[1.0, 0.0], [1.0, 0.0], [-10.0, 0.0]])
    np.testing.assert_array_equal(sf.predict_proba(X, W), [[0.5, 0.5, 0.0]])
    np.testing.assert_array_equal(sf.predict(X, W), [0])  # ties: the lowest index


# ---------------------------------------------------------------------------------------------
# The CSC copy of the column strategies
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", SPARSE_CASES)
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_to_csc_is_scipys_transpose_whatever_the_threads(case, n_threads):
    """_native.csr.to_csc (a counting sort over row chunks) gives exactly scipy's tocsc():
    within each column the entries in row order (repeats kept), the same bits for every chunk
    count, the CSR's dtypes."""
    from softmax_fast._native import csr as native_csr

    X = sparse_case(case)
    Xc = as_csr_arrays(X)
    m = Xc.shape[0]
    bounds = np.linspace(0, m, min(n_threads, m) + 1).astype(np.intp)
    data, rows, colptr = native_csr.to_csc(
        Xc.data, Xc.indices, Xc.indptr, Xc.shape[1], bounds, n_threads
    )
    expected = sp.csr_matrix((Xc.data, Xc.indices, Xc.indptr), shape=Xc.shape).tocsc()
    np.testing.assert_array_equal(colptr, expected.indptr)
    np.testing.assert_array_equal(rows, expected.indices)
    np.testing.assert_array_equal(data, expected.data)
    assert data.dtype == Xc.data.dtype and rows.dtype == colptr.dtype == Xc.indices.dtype

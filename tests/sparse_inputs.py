"""Shared random scipy.sparse (CSR) inputs of the softmax_fast test suite.

The kernel, estimator and IO tests of sparse input build their matrices here, so that every suite
sees the same awkward cases: all-zero matrices, empty rows, one row, int32 and int64 indices,
float32 and float64 data, unsorted column indices, duplicate entries, explicit stored zeros,
``csr_matrix`` and ``csr_array``.  Like kernel_test_helpers.py, nothing here imports
``softmax_fast`` (the reference tests must be collectable without the compiled extension); the
test modules import it by name: ``from sparse_inputs import random_csr, SPARSE_CASES, ...``.

* ``random_csr(m, n, density, ...)``: a fresh CSR matrix or array, built directly from
  (data, indices, indptr), so that the non-canonical variants really are non-canonical.
* ``sparse_case(case_id, **overrides)``: ``random_csr`` of one row of ``SPARSE_CASES``.
* ``dense_of(X)``: the dense equivalent, from the stored arrays (duplicates summed).
* ``canonical(X)``: a canonical CSR copy (sorted indices, duplicates summed; X untouched).
* ``format_flags(X)``: the true has_sorted_indices / has_canonical_format of a compressed
  matrix, computed from its arrays without reading (and so caching) scipy's lazy flags.
* ``snapshot(X)`` / ``assert_unchanged(X, snap)``: that a function left the caller's matrix
  exactly as it was (arrays, dtypes, shape, class, and scipy's cached format flags).
* ``stored_counts(X)``, ``rounding_bounds(...)``, ``assert_within(...)``: first-order bounds on
  the rounding of one evaluation of the softmax-regression results (the terms of its sums,
  the unit roundoff of its arithmetic, the rounding of its outputs), and the check that two
  evaluations differ by no more than the sum of their bounds.

scipy's format flags: "sorted" means non-decreasing column indices within each row, "canonical"
means sorted with no duplicate (row, column) entries; explicit zeros do not make a matrix
non-canonical.  scipy computes both lazily: ``X.has_canonical_format`` reads the cached
``X._has_canonical_format`` if the instance has that attribute, and otherwise scans the arrays and
caches the result (likewise ``_has_sorted_indices``).  So reading the property is a side effect;
``format_flags``, ``snapshot`` and ``assert_unchanged`` only look at ``vars(X)`` and the arrays.

Use in a test module::

    @pytest.mark.parametrize("case", SPARSE_CASES)
    def test_something(case):
        X = sparse_case(case)
        D = dense_of(X)
        snap = snapshot(X)
        ...
        assert_unchanged(X, snap)
"""

import copy as _copy

import numpy as np
import scipy.sparse as sp
from kernel_test_helpers import soft_targets

_INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))
_CONTAINERS = {"matrix": sp.csr_matrix, "array": sp.csr_array}
# scipy's lazily cached format flags of the compressed formats (CSR, CSC, BSR).
_LAZY_FLAGS = ("_has_sorted_indices", "_has_canonical_format")


# ---------------------------------------------------------------------------------------------
# Random CSR inputs
# ---------------------------------------------------------------------------------------------


def random_csr(
    m,
    n,
    density,
    *,
    dtype=np.float64,
    index_dtype=np.int32,
    container="matrix",
    empty_rows=False,
    unsorted=False,
    duplicates=False,
    explicit_zeros=False,
    seed=0,
):
    """A fresh random (m, n) ``csr_matrix`` (container="matrix") or ``csr_array`` ("array").

    Stored values are N(0, 1) in ``dtype``, at ``round(density * cells)`` distinct positions
    drawn without replacement (at least one when density > 0), ``cells`` being the m * n cells
    of the rows that may hold entries (all rows, or those left by ``empty_rows``).  Density 0 is
    the all-zero matrix with nnz = 0.  ``.indices`` and ``.indptr`` have exactly
    ``index_dtype`` (int32 or int64; scipy's constructor would downcast small int64 indices of a
    csr_matrix to int32, so they are set afterwards).  The matrix carries no cached format
    flags, like any freshly built scipy matrix.

    * empty_rows: the first and the last row and about a quarter of the others are empty
      (stored nothing), at least one row is left non-empty when m > 1; for m = 1 the only row is
      empty (so the matrix is all-zero).
    * explicit_zeros: about a fifth of the stored values (at least one) are exactly 0.0, still
      stored; at density 0, three stored zeros (the matrix stays all-zero, nnz = 3).
    * duplicates: about a fifth of the entries (at least one) are stored twice, each copy holding
      half the value, so that the copies sum (as scipy means duplicates) exactly to the value in
      any order; ``has_canonical_format`` is then False.
    * unsorted: the entries of every row are shuffled, and at least one row is really out of
      order (a second entry is added to a row if no row has two distinct columns), so that
      ``has_sorted_indices`` and ``has_canonical_format`` are False.  Without it, indices are
      sorted within rows (duplicate copies adjacent).

    A variant that cannot be made (duplicates or unsorted with nothing stored; unsorted with
    n = 1) is a ValueError.  ``dense_of(X)`` is its dense equivalent.
    """
    index_dtype = np.dtype(index_dtype)
    if index_dtype not in _INDEX_DTYPES:
        raise ValueError(f"index_dtype must be int32 or int64, got {index_dtype}")
    if container not in _CONTAINERS:
        raise ValueError(f"container must be 'matrix' or 'array', got {container!r}")
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density must be in [0, 1], got {density}")
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)

    empty = np.zeros(m, dtype=bool)
    if empty_rows and m > 0:
        empty = rng.random(m) < 0.25
        empty[0] = empty[-1] = True
        if empty.all() and m > 1:
            empty[m // 2] = False
    filled = np.flatnonzero(~empty)
    cells = filled.size * n

    nnz = 0 if density == 0 or cells == 0 else max(1, int(round(density * cells)))
    flat = np.sort(rng.choice(cells, size=nnz, replace=False)) if nnz else np.zeros(0, np.int64)
    rows = filled[flat // n].astype(np.int64)
    cols = (flat % n).astype(np.int64)
    vals = rng.standard_normal(nnz).astype(dtype)

    if explicit_zeros:
        if nnz:
            vals[rng.choice(nnz, size=max(1, nnz // 5), replace=False)] = 0
        elif cells:
            flat = np.sort(rng.choice(cells, size=min(3, cells), replace=False))
            rows, cols = filled[flat // n].astype(np.int64), (flat % n).astype(np.int64)
            vals = np.zeros(flat.size, dtype=dtype)
    if (duplicates or unsorted) and rows.size == 0:
        raise ValueError("duplicates/unsorted need stored entries (density > 0, a non-empty row)")

    if unsorted:
        if n < 2:
            raise ValueError("unsorted needs n >= 2 (two distinct columns in a row)")
        if np.bincount(rows, minlength=m).max() < 2:
            # No row has two entries: give the row of the first entry a second column.
            r, c = rows[0], cols[0]
            extra = (c + 1 + rng.integers(n - 1)) % n
            value = 0.0 if density == 0 else rng.standard_normal()
            rows = np.append(rows, r)
            cols = np.append(cols, extra)
            vals = np.append(vals, np.asarray(value, dtype=dtype))

    # The intended matrix, from the distinct positions (before any duplicate is split off).
    intended = np.zeros((m, n), dtype=dtype)
    intended[rows, cols] = vals

    if duplicates:
        dup = rng.choice(rows.size, size=max(1, rows.size // 5), replace=False)
        half = (vals[dup] / 2).astype(dtype)
        vals = vals.copy()
        vals[dup] = half
        rows = np.concatenate([rows, rows[dup]])
        cols = np.concatenate([cols, cols[dup]])
        vals = np.concatenate([vals, half])

    if unsorted:
        order = np.lexsort((rng.random(rows.size), rows))
    else:
        order = np.lexsort((cols, rows))  # stable: duplicate copies stay adjacent
    rows, cols, vals = rows[order], cols[order], vals[order]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=m))])
    if unsorted and _row_sorted(indptr, cols)[0]:
        # The shuffle left every row in order: reverse one row with two distinct columns.
        counts = np.diff(indptr)
        for i in np.flatnonzero(counts >= 2):
            seg = slice(indptr[i], indptr[i + 1])
            if np.unique(cols[seg]).size >= 2:
                cols[seg], vals[seg] = cols[seg][::-1].copy(), vals[seg][::-1].copy()
                break

    data = np.ascontiguousarray(vals, dtype=dtype)
    indices = np.ascontiguousarray(cols, dtype=index_dtype)
    indptr = np.ascontiguousarray(indptr, dtype=index_dtype)
    X = _CONTAINERS[container]((data, indices, indptr), shape=(m, n))
    X.data, X.indices, X.indptr = data, indices, indptr  # the exact arrays and index dtype
    X.check_format(full_check=True)  # keeps int64 (it downcasts only when asked to check values)
    for name in _LAZY_FLAGS:  # fresh: nothing cached (the constructor of some versions may)
        vars(X).pop(name, None)

    assert X.indices.dtype == index_dtype and X.indptr.dtype == index_dtype
    assert X.data.dtype == dtype and X.shape == (m, n)
    assert np.array_equal(dense_of(X), intended), "random_csr: duplicates do not sum exactly"
    flags = format_flags(X)
    if unsorted:
        assert not flags["has_sorted_indices"] and not flags["has_canonical_format"]
    if duplicates:
        assert not flags["has_canonical_format"]
    # What scipy itself reports, computed (and cached) on a throwaway copy, never on X.
    probe = X.copy()
    assert probe.has_sorted_indices == flags["has_sorted_indices"]
    assert probe.has_canonical_format == flags["has_canonical_format"]
    return X


def _row_sorted(indptr, indices):
    """(non-decreasing, strictly increasing) indices within every row of a compressed format."""
    indptr = np.asarray(indptr, dtype=np.int64)
    indices = np.asarray(indices, dtype=np.int64)[: indptr[-1]]
    major = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    step = np.diff(indices)[major[1:] == major[:-1]]
    return bool(np.all(step >= 0)), bool(np.all(step > 0))


# A table of awkward inputs for parametrizing: id -> random_csr keyword arguments (shape,
# density, variant and seed included).  The shapes are small enough for a dense reference with
# K = 20 classes; density 1e-4 needs 1e5 cells to store anything but a handful of entries.
_BASE = {"m": 40, "n": 30, "density": 0.3}
_CASES = [
    ("zero", {"density": 0.0}),
    ("density_1e-4", {"m": 200, "n": 500, "density": 1e-4}),
    ("density_0.01", {"m": 100, "n": 120, "density": 0.01}),
    ("density_0.5", {"density": 0.5}),
    ("density_1", {"density": 1.0}),
    ("empty_rows", {"empty_rows": True}),
    ("m1", {"m": 1}),
    ("m1_dense_unsorted_dup", {"m": 1, "density": 1.0, "unsorted": True, "duplicates": True}),
    ("n1", {"m": 30, "n": 1, "density": 0.5}),
    ("int64", {"index_dtype": np.int64}),
    ("float32", {"dtype": np.float32}),
    ("float32_int64", {"dtype": np.float32, "index_dtype": np.int64}),
    ("unsorted", {"unsorted": True}),
    ("duplicates", {"duplicates": True}),
    ("unsorted_duplicates", {"unsorted": True, "duplicates": True}),
    ("explicit_zeros", {"explicit_zeros": True}),
    ("zero_explicit_zeros", {"density": 0.0, "explicit_zeros": True}),
    ("array", {"container": "array"}),
    ("array_int64", {"container": "array", "index_dtype": np.int64}),
    (
        "noncanonical",
        {"empty_rows": True, "unsorted": True, "duplicates": True, "explicit_zeros": True},
    ),
    (
        "noncanonical_array_float32_int64",
        {
            "container": "array",
            "dtype": np.float32,
            "index_dtype": np.int64,
            "empty_rows": True,
            "unsorted": True,
            "duplicates": True,
            "explicit_zeros": True,
        },
    ),
]
SPARSE_CASES = {
    case_id: {**_BASE, **kwargs, "seed": seed}
    for seed, (case_id, kwargs) in enumerate(_CASES, start=1000)
}


def sparse_case(case_id, **overrides):
    """``random_csr`` of the SPARSE_CASES row ``case_id``, any of its arguments overridden."""
    return random_csr(**{**SPARSE_CASES[case_id], **overrides})


# ---------------------------------------------------------------------------------------------
# Dense equivalents and format flags
# ---------------------------------------------------------------------------------------------


def dense_of(X):
    """The dense (m, n) ndarray a sparse X means, in X's dtype, from its stored arrays (the
    entries of duplicate positions added in stored order, as scipy's toarray does), without any
    scipy operation on X for CSR, CSC and COO; other formats go through ``X.tocoo()``."""
    fmt = X.format
    if fmt in ("csr", "csc"):
        counts = np.diff(np.asarray(X.indptr, dtype=np.int64))
        major = np.repeat(np.arange(counts.size), counts)
        minor = np.asarray(X.indices[: major.size], dtype=np.int64)
        rows, cols = (major, minor) if fmt == "csr" else (minor, major)
        vals = X.data[: major.size]
    else:
        C = X if fmt == "coo" else X.tocoo()
        rows, cols, vals = np.asarray(C.row), np.asarray(C.col), C.data
    D = np.zeros(X.shape, dtype=X.dtype)
    np.add.at(D, (rows, cols), vals)
    return D


def canonical(X):
    """A canonical CSR copy of X (sorted indices, duplicates summed, explicit zeros kept) of the
    same container kind; X itself is not touched (sum_duplicates works in place, on the copy)."""
    C = X.tocsr(copy=True)
    C.sum_duplicates()
    return C


def format_flags(X):
    """The true {"has_sorted_indices", "has_canonical_format"} of a CSR, CSC or BSR X, computed
    from its indptr and indices (never by reading the properties, which cache on X)."""
    if X.format not in ("csr", "csc", "bsr"):
        raise ValueError(f"format_flags: a compressed format, not {X.format}")
    is_sorted, strictly = _row_sorted(X.indptr, X.indices)
    return {"has_sorted_indices": is_sorted, "has_canonical_format": strictly}


# ---------------------------------------------------------------------------------------------
# Rounding bounds of one evaluation (kernels or reference, dense or sparse)
# ---------------------------------------------------------------------------------------------

EPS64 = float(np.finfo(np.float64).eps)
# Accuracy of the exp and log of the evaluations bounded here, in ulps: NumPy's float64 SIMD
# versions within 4 (test_reference.py's NP_ULP; its float32 ones and the C library's long
# double ones are no worse), the kernels' own vectorized ones about 1 (tests/native/test_exp.py).
EXP_LOG_ULP = 4


def stored_counts(X):
    """Terms of the sparse sums: stored entries (duplicates and explicit zeros included) per row
    and per column of a CSR, CSC or COO X, from its arrays (no scipy operation on X)."""
    m, n = X.shape
    if X.format in ("csr", "csc"):
        indptr = np.asarray(X.indptr, dtype=np.int64)
        major = np.diff(indptr)
        minor = np.asarray(X.indices[: indptr[-1]], dtype=np.int64)
        if X.format == "csr":
            return major, np.bincount(minor, minlength=n)
        return np.bincount(minor, minlength=m), major
    if X.format == "coo":
        rows, cols = np.asarray(X.row, dtype=np.int64), np.asarray(X.col, dtype=np.int64)
        return np.bincount(rows, minlength=m), np.bincount(cols, minlength=n)
    raise ValueError(f"stored_counts: CSR, CSC or COO, not {X.format}")


def _softmax64(Z):
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def rounding_bounds(D, Y, W, b, alpha, w, *, u, row_terms, col_terms, u_sum=EPS64, u_out=0.0):
    """First-order bounds on how far one evaluation of softmax regression is from the exact
    result, from exact float64 copies of its inputs: D (m, n) the dense X, Y (m, K) the targets,
    W (K, n), b (K,) or None, alpha, w (m,) or None.  The evaluation's arithmetic has unit eps
    ``u`` (2 unit roundoffs: also covers the second-order terms), its loss sums unit ``u_sum``;
    its dW, db and probabilities are rounded once more at the end, to a unit ``u_out`` (0: none);
    ``row_terms``/``col_terms`` are the terms of its sums per row/column (a dense evaluation's
    have n and m; a sparse one's the stored entries, ``stored_counts``).  Returns a dict of
    bounds: "dz" (m,), "P" (m, K), "loss", "dW" (K, n), "db" (K,).

    The derivation of tests/reference/test_reference_sparse.py (``_one_side_bounds``), with
    ``u_out`` and the penalty's summation order added:

    * Logits: an (N + 1)-term sum (N = max(n, terms of the row), + b) in any order:
      |dz_i| <= (N + 1) u max_k (|x_i| . |w_k| + |b_k|).
    * Softmax, with s = max z - z >= 0: exp(-s) is off by u s (the rounded shift) + ULP u
      (exp) + 2 dz (the logits, shift included), relatively; the K-term sum by K u more, and
      the division by u: |dp/p| <= eps_p = 2 dz + 2 u (max s + ULP) + (K + 1) u.
    * G = (p - y) omega, omega = w / sum(w) (a float64 sum of m weights, a division, a cast):
      |dG| <= omega p eps_p + |G| (3 u + (m + 1) eps64).  (A kernel forms p omega - y omega:
      its rounding of y omega, 2 u omega y <= 2 u (omega p + |G|), is inside these terms.)
    * dW = G^T X + alpha W, an (M + 1)-term sum (M = max(m, terms of the column)) in any order
      (chunk partial sums added in any tree: no more roundings per term):
      |d dW| <= |dG|^T |X| + (M + 1) u (|G|^T |X| + alpha |W|) + u alpha |W|; db = sum_i G_i:
      |d db| <= sum_i |dG_i| + m u sum_i |G_i|.  Then the final rounding: u_out (|dW| + bound).
    * Probabilities: p eps_p, then u_out (p + p eps_p).
    * log_softmax = -s - log sum exp(-s): |d logp| <= eps_lp = 2 dz + 2 u max s + (K + ULP) u
      + ULP u log K + u max|logp|; a row's loss -sum_k y_k logp_k: eps_lp sum y + (K + 1) u
      sum_k y_k |logp_k|; the loss, a sum of m weighted row losses, divided by sum(w), plus the
      penalty (alpha / 2) ||W||^2 (a sum of K n squares in float64, in any order):
      sum_i omega_i e_i + (m + 1) u_sum |L| + 3 eps64 |L| + (K n + 3) u_sum (alpha / 2) ||W||^2.
    """
    return RoundingBounds(D, Y, W, b, alpha, w).of(
        u=u, row_terms=row_terms, col_terms=col_terms, u_sum=u_sum, u_out=u_out
    )


class RoundingBounds:
    """``rounding_bounds`` of several evaluations of one problem: the exact quantities (logits,
    probabilities, G, ...) are computed once, ``of(u=..., ...)`` gives one evaluation's bounds."""

    def __init__(self, D, Y, W, b, alpha, w):
        m, n = D.shape
        K = W.shape[0]
        bb = np.zeros(K) if b is None else b
        self.shape = (m, n, K)
        self.alpha = alpha
        self.absX = np.abs(D)
        Z = D @ W.T + bb
        self.M = (self.absX @ np.abs(W).T + np.abs(bb)).max(axis=1, initial=0.0)
        s = Z.max(axis=1, keepdims=True) - Z
        self.smax = s.max(axis=1)
        self.P = _softmax64(Z)
        self.logP = -s - np.log(np.exp(-s).sum(axis=1, keepdims=True))
        wn = np.ones(m) if w is None else np.asarray(w, dtype=np.float64)
        self.omega = wn / wn.sum()
        self.G = (self.P - Y) * self.omega[:, None]
        self.absG_X = np.abs(self.G).T @ self.absX
        self.aW = abs(alpha) * np.abs(W)
        self.abs_dW = np.abs(self.G.T @ D + alpha * W)
        self.abs_db = np.abs(self.G.sum(axis=0))
        self.sum_absG = np.abs(self.G).sum(axis=0)
        self.Y_sum = Y.sum(axis=1)
        self.Y_abs_logP = (Y * np.abs(self.logP)).sum(axis=1)
        # (no penalty at all for alpha = 0: 0 * inf would be NaN where ||W||^2 overflows)
        self.penalty = 0.5 * abs(alpha) * float(np.sum(W**2)) if alpha else 0.0
        self.L = abs(float(self.omega @ -(Y * self.logP).sum(axis=1)) + self.penalty)

    def of(self, *, u, row_terms, col_terms, u_sum=EPS64, u_out=0.0):
        """The bounds of one evaluation (the arguments as for ``rounding_bounds``)."""
        m, n, K = self.shape
        ULP = EXP_LOG_ULP
        dz = (np.maximum(n, row_terms) + 1) * u * self.M
        eps_p = 2 * dz + 2 * u * (self.smax + ULP) + (K + 1) * u
        dG = self.omega[:, None] * self.P * eps_p[:, None]
        dG = dG + np.abs(self.G) * (3 * u + (m + 1) * EPS64)
        col = np.maximum(m, col_terms)[None, :] + 1
        dW = dG.T @ self.absX + col * u * (self.absG_X + self.aW) + u * self.aW
        dW = dW + u_out * (self.abs_dW + dW)
        db = dG.sum(axis=0) + m * u * self.sum_absG
        db = db + u_out * (self.abs_db + db)
        dP = self.P * eps_p[:, None]
        dP = dP + u_out * (self.P + dP)

        eps_lp = (
            2 * dz
            + 2 * u * self.smax
            + (K + ULP) * u
            + ULP * u * np.log(K)
            + u * np.abs(self.logP).max(axis=1)
        )
        e_row = eps_lp * self.Y_sum + (K + 1) * u * self.Y_abs_logP
        L = self.L
        loss = float(self.omega @ e_row) + (m + 1) * u_sum * L + 3 * EPS64 * L
        loss += (K * n + 3) * u_sum * self.penalty
        return {"dz": dz, "P": dP, "loss": loss, "dW": dW, "db": db}


def assert_within(actual, desired, bound, what):
    """|actual - desired| <= bound elementwise (bound broadcast); NaN never passes."""
    actual, desired = np.asarray(actual, np.float64), np.asarray(desired, np.float64)
    assert actual.shape == desired.shape, f"{what}: shape {actual.shape} != {desired.shape}"
    assert not np.isnan(actual).any(), f"{what}: NaN in the result"
    err = np.abs(actual - desired)
    bound = np.broadcast_to(np.asarray(bound, np.float64), err.shape)
    excess = err - bound
    if err.size == 0:
        return
    worst = np.unravel_index(int(np.argmax(np.where(np.isnan(excess), np.inf, excess))), err.shape)
    assert excess[worst] <= 0, (
        f"{what}: |difference| = {err[worst]:.3e} > bound {bound[worst]:.3e} at {worst} "
        f"(got {actual[worst]!r}, expected {desired[worst]!r})"
    )


# ---------------------------------------------------------------------------------------------
# The caller's matrix unchanged
# ---------------------------------------------------------------------------------------------


def _copy_value(value):
    if isinstance(value, np.ndarray):
        # Object arrays (LIL's rows and data: arrays of lists) are copied deeply.
        return _copy.deepcopy(value) if value.dtype == object else value.copy()
    if isinstance(value, tuple):
        return tuple(_copy_value(v) for v in value)
    return _copy.deepcopy(value)


def _same(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return False
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        if a.dtype == object:
            return all(_same(x, y) for x, y in zip(a.ravel(), b.ravel(), strict=True))
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, (tuple, list)):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(_same(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _arrays_of(value):
    """The arrays an attribute holds (an array, or COO's coords: a tuple of arrays), or None."""
    arrays = value if isinstance(value, tuple) else (value,)
    return arrays if all(isinstance(a, np.ndarray) for a in arrays) else None


def snapshot(X):
    """Everything a function could change on the caller's sparse X, copied without side
    effects: the class, and every instance attribute (``vars(X)``: data, indices and indptr or
    coords, with their dtypes and writeable flags; the shape; scipy's cached format flags,
    present or not), each kept as the object itself and as a copy (plus the items of a
    dict-based DOK)."""
    attrs = vars(X)
    return {
        "cls": type(X),
        "attrs": {name: (value, _copy_value(value)) for name, value in attrs.items()},
        "writeable": {
            name: tuple(a.flags.writeable for a in arrays)
            for name, arrays in ((name, _arrays_of(v)) for name, v in attrs.items())
            if arrays is not None
        },
        "items": dict(X.items()) if isinstance(X, dict) else None,
    }


def assert_unchanged(X, snap):
    """X is as ``snapshot`` found it: the same class; every attribute still there, an array
    still the same object (not replaced, even by an equal copy) with the same writeable flag,
    every attribute equal to its copy (values, dtypes, shapes; a cached format flag keeps its
    value); no attribute added, except scipy's lazy format flags (``_has_sorted_indices``,
    ``_has_canonical_format``) cached with the value the arrays really have (reading
    ``X.has_canonical_format`` caches it; setting it wrongly, e.g. to True on an unsorted
    matrix, is a modification)."""
    assert type(X) is snap["cls"], f"class changed: {snap['cls'].__name__} -> {type(X).__name__}"
    now = vars(X)
    for name, (obj, saved) in snap["attrs"].items():
        assert name in now, f"attribute {name} was removed"
        if name in snap["writeable"]:
            assert now[name] is obj, f"attribute {name} was replaced by another object"
            writeable = tuple(a.flags.writeable for a in _arrays_of(obj))
            assert writeable == snap["writeable"][name], f"{name}: writeable flag changed"
        assert _same(now[name], saved), f"attribute {name} was modified"
    added = set(now) - set(snap["attrs"])
    if added:
        assert added <= set(_LAZY_FLAGS), f"attributes added: {sorted(added)}"
        truth = format_flags(X)
        for name in added:
            expected = truth[name.lstrip("_")]
            assert now[name] == expected, f"{name} cached as {now[name]}, the arrays say {expected}"
    if snap["items"] is not None:
        assert dict(X.items()) == snap["items"], "DOK entries were modified"


def sparse_problem(rng, X, K, intercept, targets):
    """W (K, n) with logits of size ~3, b, and y (labels or probability rows) for sparse X, in
    the dtype X's values are computed in (float32, float64 and long double stay; others are
    float64)."""
    m, n = X.shape
    floats = (np.float32, np.float64, np.longdouble)
    dtype = X.dtype if X.dtype in floats else np.dtype(np.float64)
    per_row = max(1.0, X.nnz / max(m, 1))
    W = (rng.standard_normal((K, n)) * (3.0 / np.sqrt(per_row))).astype(dtype)
    b = rng.standard_normal(K).astype(dtype) if intercept else None
    if targets == "labels":
        y = rng.integers(0, K, size=m)
    else:
        y = soft_targets(rng, m, K, dtype=dtype)
    return W, b, y

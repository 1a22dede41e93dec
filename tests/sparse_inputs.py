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

"""Argument checks and the dtype policy shared by the public functions.

Every check raises ``TypeError`` (wrong kind of object or dtype) or ``ValueError`` (wrong shape or
value) with a message that starts with the argument's name.  Nothing here modifies its inputs;
arrays are copied only when the kernels need another dtype or layout.
"""

import numbers
from typing import NamedTuple

import numpy as np

_REAL_KINDS = "iuf"


def _describe_dtype(dtype):
    if dtype.kind == "b":
        return "boolean"
    if dtype.kind == "c":
        return "complex"
    if dtype.kind == "O":
        return "object"
    if dtype.kind in "US":
        return "string/bytes"
    if dtype.kind == "V":
        return f"structured/void ({dtype})"
    return str(dtype)


def as_array(a, name):
    """``np.asarray(a)``, with errors that name the argument.

    None, ragged nested sequences and masked arrays with masked entries (whose mask would be
    silently dropped) are refused.
    """
    if a is None:
        raise TypeError(f"{name}: expected an array, got None")
    if isinstance(a, np.ma.MaskedArray) and np.ma.is_masked(a):
        raise ValueError(
            f"{name}: is a masked array with masked entries; the mask would be ignored. Pass "
            f"{name}.filled(value) or drop the masked rows"
        )
    try:
        return np.asarray(a)
    except (ValueError, TypeError) as exc:  # ragged nested lists, unconvertible objects
        raise ValueError(f"{name}: cannot be converted to an array ({exc})") from None


def _check_real_dtype(a, name):
    if a.dtype.kind not in _REAL_KINDS:
        raise TypeError(
            f"{name}: {_describe_dtype(a.dtype)} arrays are not supported; "
            f"pass real numbers (float32 stays float32, other real dtypes become float64)"
        )


def compute_dtype(a):
    """The dtype policy: float32 stays float32, every other real dtype becomes float64.

    float32 of either byte order (``">f4"`` too) counts as float32.
    """
    is_float32 = a.dtype.kind == "f" and a.dtype.itemsize == 4
    return np.dtype(np.float32) if is_float32 else np.dtype(np.float64)


def aligned_contiguous(arr, dtype):
    """``arr`` as a C-contiguous, aligned array of ``dtype`` (no copy if it is one).

    ``np.ascontiguousarray`` keeps a misaligned view (e.g. at an odd byte offset in a buffer);
    the kernels dereference typed C pointers, which must be aligned (undefined behaviour
    otherwise, reported by UBSan).
    """
    return np.require(arr, dtype=dtype, requirements=("C", "A"))


def as_float_array(a, name, *, ndim, dtype=None):
    """``a`` as a C-contiguous float32/float64 array of ``ndim`` dimensions (no copy if it is one).

    ``dtype=None`` applies the dtype policy; otherwise ``a`` is cast to ``dtype``.
    """
    arr = as_array(a, name)
    _check_real_dtype(arr, name)
    if arr.ndim != ndim:
        raise ValueError(
            f"{name}: expected a {ndim}-D array, got {arr.ndim}-D with shape {arr.shape}"
        )
    target = compute_dtype(arr) if dtype is None else np.dtype(dtype)
    return aligned_contiguous(arr, target)


def check_finite(a, name):
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or infinity")


def check_n_classes(K, name):
    if K == 0:
        raise ValueError(f"{name}: has no classes (K = 0); at least one column is needed")


def check_rows(m, name):
    if m == 0:
        raise ValueError(f"{name}: has no rows (m = 0); a loss needs at least one sample")


def _first_row(mask):
    return int(np.flatnonzero(mask)[0])


def target_tolerance(dtype, K):
    """How far a target-probability row's sum may be from 1."""
    eps = float(np.finfo(dtype).eps)
    return max(np.sqrt(eps), 4.0 * K * eps)


def check_targets(y, m, K, dtype, name="y"):
    """Labels (m,) of an integer dtype, or target probabilities (m, K).

    Returns ``(labels, None)`` with labels a C-contiguous ``intp`` array, or ``(None, Y)`` with Y
    a C-contiguous array of ``dtype``.
    """
    arr = as_array(y, name)
    if arr.ndim == 1:
        if arr.dtype.kind == "f":
            raise TypeError(
                f"{name}: a float array of shape (m,) is not taken as class labels; pass integer "
                f"class indices, or target probabilities of shape (m, K)"
            )
        if arr.dtype.kind not in "iu":
            raise TypeError(
                f"{name}: class labels must be integers, got {_describe_dtype(arr.dtype)} values"
            )
        if arr.shape[0] != m:
            raise ValueError(f"{name}: has {arr.shape[0]} labels but there are {m} rows")
        # min/max first: no temporary of m booleans unless a label is out of range (the extra
        # memory of a kernel call must not grow with m; tests/kernels/test_memory.py)
        if m and (arr.min() < 0 or arr.max() >= K):
            i = _first_row((arr < 0) | (arr >= K))
            raise ValueError(
                f"{name}: label {arr[i]} in row {i} is outside the class range [0, {K})"
            )
        return aligned_contiguous(arr, np.intp), None
    if arr.ndim == 2:
        _check_real_dtype(arr, name)
        if arr.shape != (m, K):
            raise ValueError(
                f"{name}: target probabilities must have shape (m, K) = {(m, K)}, got {arr.shape}"
            )
        Y = aligned_contiguous(arr, dtype)
        if m:
            bad = ~np.isfinite(Y).all(axis=1)
            if bad.any():
                raise ValueError(f"{name}: row {_first_row(bad)} contains NaN or infinity")
            bad = (Y < 0).any(axis=1)
            if bad.any():
                raise ValueError(f"{name}: row {_first_row(bad)} has negative probabilities")
            sums = Y.sum(axis=1, dtype=np.float64)
            bad = np.abs(sums - 1.0) > target_tolerance(dtype, K)
            if bad.any():
                i = _first_row(bad)
                raise ValueError(f"{name}: row {i} sums to {sums[i]!r}, not 1")
        return None, Y
    raise ValueError(
        f"{name}: expected integer labels of shape (m,) or probabilities of shape (m, K), "
        f"got a {arr.ndim}-D array"
    )


def check_sample_weight(sample_weight, m, name="sample_weight"):
    """Returns ``(weights or None, sum of weights)`` with weights a float64 C-contiguous array."""
    if sample_weight is None:
        return None, float(m)
    arr = as_array(sample_weight, name)
    _check_real_dtype(arr, name)
    if arr.ndim != 1 or arr.shape[0] != m:
        raise ValueError(f"{name}: expected shape ({m},), got {arr.shape}")
    w = aligned_contiguous(arr, np.float64)
    if m:
        bad = ~np.isfinite(w)
        if bad.any():
            raise ValueError(f"{name}: weight in row {_first_row(bad)} is NaN or infinite")
        bad = w < 0
        if bad.any():
            raise ValueError(f"{name}: weight in row {_first_row(bad)} is negative")
    # w >= 0 here, so the sum is positive exactly when one weight is (the sum may overflow)
    if not (w > 0).any():
        raise ValueError(f"{name}: weights sum to 0.0; they must sum to a positive number")
    with np.errstate(over="ignore"):
        total = float(w.sum())
    return w, total


def scaled_weights(w):
    """``(w * 2**-e, sum)`` with ``2**-e`` the power of two bringing ``max(w)`` into [0.5, 1).

    A weighted mean and its gradient do not change when every weight is multiplied by the same
    number, and multiplying by a power of two is exact, so the kernels compute bit for bit the
    same mean; but the scaled sum can neither overflow (huge weights: sum(w) = inf, loss NaN)
    nor be so small that 1 / sum(w) overflows (subnormal weights: gradient NaN).
    """
    _, e = np.frexp(np.max(w))
    ws = np.ldexp(w, -int(e))
    return ws, float(ws.sum())


def check_alpha(alpha, name="alpha"):
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(alpha).__name__}")
    alpha = float(alpha)
    if not np.isfinite(alpha) or alpha < 0:
        raise ValueError(f"{name}: must be a finite number >= 0, got {alpha}")
    return alpha


def check_out(out, shape, dtype, name="out"):
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(out).__name__}")
    if isinstance(out, np.ma.MaskedArray):
        raise TypeError(f"{name}: masked arrays are not supported (the mask would not be updated)")
    if out.dtype != dtype:
        raise ValueError(f"{name}: has dtype {out.dtype}, the result is {np.dtype(dtype)}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name}: has shape {out.shape}, the result has shape {tuple(shape)}")
    if not out.flags.writeable:
        raise ValueError(f"{name}: is read-only")


# ----------------------------------------------------------------------------- sparse X

# scipy.sparse formats taken as X: CSR as it is, CSC and COO converted once to CSR.
SPARSE_FORMATS = ("csr", "csc", "coo")


class CSRArrays(NamedTuple):
    """The three arrays of a validated CSR matrix, as the compiled kernels take them.

    ``data`` float32/float64, ``indices`` and ``indptr`` of one dtype (int32 or int64), all
    1-D C-contiguous and aligned; ``shape`` (m, n).  Column indices within a row may be unsorted
    and repeated (repeats add up, as in scipy): the kernels need neither order nor uniqueness.
    """

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple[int, int]

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def nnz(self) -> int:
        return int(self.indices.shape[0])


def is_sparse(X) -> bool:
    """True for a scipy.sparse matrix or array (without importing scipy.sparse otherwise)."""
    module = type(X).__module__
    if not module.startswith("scipy.sparse"):
        return False
    import scipy.sparse

    return bool(scipy.sparse.issparse(X))


def _check_compressed(data, indices, indptr, n_major, n_minor, name, major, minor):
    """The arrays of a CSR (major = row) or CSC (major = column) matrix: integer index arrays,
    ``indptr`` of n_major + 1 entries from 0 to the number of stored entries, non-decreasing,
    minor indices in [0, n_minor), as many values as indices."""
    data, indices, indptr = (np.asarray(a) for a in (data, indices, indptr))
    for part, arr in (("indices", indices), ("indptr", indptr)):
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise TypeError(f"{name}: {part} must be a 1-D integer array, got {arr.dtype}")
    if data.ndim != 1:
        raise ValueError(f"{name}: data must be 1-D, got shape {data.shape}")
    if indptr.shape[0] != n_major + 1:
        raise ValueError(
            f"{name}: indptr has {indptr.shape[0]} entries; a matrix of {n_major} {major}s "
            f"needs {n_major + 1}"
        )
    nnz = indices.shape[0]
    if data.shape[0] != nnz:
        raise ValueError(
            f"{name}: data has {data.shape[0]} entries but indices has {nnz}; they must match"
        )
    if indptr[0] != 0 or indptr[-1] != nnz:
        raise ValueError(
            f"{name}: indptr must start at 0 and end at the number of stored entries ({nnz}); "
            f"got {indptr[0]} and {indptr[-1]}"
        )
    steps = np.diff(indptr)
    if steps.size and steps.min() < 0:
        raise ValueError(
            f"{name}: indptr is not non-decreasing ({major} {_first_row(steps < 0)} ends "
            f"before it starts)"
        )
    if nnz:
        low, high = int(indices.min()), int(indices.max())
        if low < 0 or high >= n_minor:
            bad = low if low < 0 else high
            where = int(np.searchsorted(indptr, int(np.flatnonzero(indices == bad)[0]), "right"))
            raise ValueError(
                f"{name}: {minor} index {bad} in {major} {where - 1} is outside "
                f"[0, {n_minor}) (the matrix has {n_minor} {minor}s)"
            )


def _check_coo(X, m, n, name):
    """The coordinates of a COO matrix: integer, one per stored value, within the shape."""
    data = np.asarray(X.data)
    rows, cols = np.asarray(X.row), np.asarray(X.col)
    for part, coords in (("row", rows), ("col", cols)):
        if coords.ndim != 1 or coords.dtype.kind not in "iu":
            raise TypeError(f"{name}: {part} must be a 1-D integer array, got {coords.dtype}")
        if coords.shape[0] != data.shape[0]:
            raise ValueError(
                f"{name}: {part} has {coords.shape[0]} entries but data has {data.shape[0]}; "
                f"they must match"
            )
    outside = (rows < 0) | (rows >= m)
    if outside.any():
        p = _first_row(outside)
        raise ValueError(
            f"{name}: row index {int(rows[p])} of stored entry {p} is outside [0, {m}) (the "
            f"matrix has {m} rows)"
        )
    outside = (cols < 0) | (cols >= n)
    if outside.any():
        p = _first_row(outside)
        raise ValueError(
            f"{name}: column index {int(cols[p])} in row {int(rows[p])} is outside [0, {n}) "
            f"(the matrix has {n} columns)"
        )


def as_csr_arrays(X, name="X", dtype=None) -> CSRArrays:
    """A scipy.sparse X as validated CSR arrays, without modifying X.

    CSR is used as it is (no copy when its dtypes are the kernels'); CSC and COO are converted
    once to CSR.  ``dtype=None`` applies the dtype policy (float32 stays float32, other real
    dtypes become float64).  Checked: the format, a real dtype, ``indptr`` (m + 1 entries,
    starting at 0, non-decreasing, ending at the number of stored entries), column indices in
    [0, n), at most 2**31 - 1 columns with int32 indices, finite stored values (naming the first
    bad row).  Unsorted and duplicate column indices and explicit zeros are allowed.
    """
    fmt = getattr(X, "format", None)
    if fmt not in SPARSE_FORMATS:
        raise TypeError(
            f"{name}: scipy.sparse format {fmt!r} is not supported; pass CSR (csr_matrix or "
            f"csr_array), or CSC or COO (converted once to CSR), e.g. {name}.tocsr()"
        )
    if X.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D sparse matrix, got {X.ndim}-D")
    _check_real_dtype(X, name)
    m, n = (int(s) for s in X.shape)
    # The caller's arrays are checked before any scipy conversion, which trusts them (a bad
    # index of a CSC or COO matrix would make tocsr() write out of bounds).
    if fmt == "coo":
        _check_coo(X, m, n, name)
        X = X.tocsr()  # a new matrix: the caller's is left as it was
    elif fmt == "csc":
        _check_compressed(X.data, X.indices, X.indptr, n, m, name, "column", "row")
        X = X.tocsr()
    data, indices, indptr = (np.asarray(a) for a in (X.data, X.indices, X.indptr))
    _check_compressed(data, indices, indptr, m, n, name, "row", "column")
    nnz = indices.shape[0]
    if indices.dtype.itemsize < 8 or indptr.dtype.itemsize < 8:
        if n > 2**31 - 1:
            raise ValueError(
                f"{name}: {n} columns need int64 indices (int32 holds at most 2**31 - 1)"
            )
    # One signed index dtype for both arrays: int32 when both are 32-bit and fit, else int64.
    wide = indices.dtype.itemsize > 4 or indptr.dtype.itemsize > 4 or nnz > 2**31 - 1
    index_dtype = np.dtype(np.int64) if wide else np.dtype(np.int32)
    indices = aligned_contiguous(indices, index_dtype)
    indptr = aligned_contiguous(indptr, index_dtype)
    target = compute_dtype(data) if dtype is None else np.dtype(dtype)
    data = aligned_contiguous(data, target)
    finite = np.isfinite(data)
    if not finite.all():
        position = _first_row(~finite)
        row = int(np.searchsorted(indptr, position, side="right")) - 1
        raise ValueError(f"{name}: row {row} contains NaN or infinity")
    return CSRArrays(data, indices, indptr, (m, n))

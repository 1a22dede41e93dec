"""Data files of the ``softmax-fast`` command: CSV, npz and svmlight/libsvm.

* CSV (``.csv``): a header row; every feature cell a finite number; the target column (named by
  ``target``) holds integers or class names.  UTF-8, with or without a byte-order mark; blank
  lines are skipped.  Returned dense.
* npz (``.npz``), read without pickle, either of:

  - dense: an array ``X`` (2-D, numeric);
  - sparse: a matrix written by ``scipy.sparse.save_npz`` (the arrays ``format``, ``shape``,
    ``data`` and ``indices``/``indptr`` for CSR and CSC, ``row``/``col`` for COO), returned as
    a CSR matrix;

  and, optionally, the labels (``y`` or the array named by ``target``).  ``save_npz`` writes
  no labels; to keep them beside a sparse matrix, write its arrays and ``y`` into one archive
  with ``np.savez`` (see :func:`read_data`).
* svmlight/libsvm text (``.svm``, ``.svmlight``, ``.libsvm``): read with scikit-learn's reader
  and returned as a CSR matrix (never densified); integral labels become integers.  The file
  does not say whether its feature indices count from 0 or from 1: the caller says
  (``zero_based``), or it is guessed as scikit-learn does (zero-based when some index is 0, else
  one-based), and :func:`read_data_file` reports the base used.  A guess alone can shift every
  column by one (a file of zero-based data that happens to hold no index 0 is read one-based),
  so ``softmax-fast fit`` stores the training file's base in the model and ``predict`` reads
  with it.

Problems are reported as ``ValueError`` naming the file and what is wrong with it (the CSV line
and column where there is one); a missing file is a ``FileNotFoundError``.
"""

import csv
import math
from os import PathLike
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.sparse

from ._npz import NpzError, read_npz_checked

SVMLIGHT_SUFFIXES = (".svm", ".svmlight", ".libsvm")
# The scipy.sparse.save_npz formats read_data accepts; each is returned as CSR.
SPARSE_FORMATS = ("csr", "csc", "coo")
# Every array name scipy.sparse.save_npz writes, for any format and SciPy version (``coords``:
# COO of newer SciPy; ``_is_array``: SciPy >= 1.12 marks a sparse array, not a matrix).
_SAVE_NPZ_MEMBERS = frozenset(
    {"format", "shape", "data", "indices", "indptr", "row", "col", "coords", "offsets", "_is_array"}
)
# A CSC or COO archive does not bound its row count by an array it holds (CSR's indptr does),
# yet building the CSR allocates one row offset per row: a file of a few hundred bytes declaring
# 10**10 rows would allocate 80 GB.  Such an archive may declare at most this many rows, plus
# this many per stored value.
_MAX_ROWS_ANYWAY = 2**24
_MAX_ROWS_PER_STORED_VALUE = 64
_INT64_MAX = np.iinfo(np.int64).max

__all__ = [
    "SPARSE_FORMATS",
    "SVMLIGHT_SUFFIXES",
    "DataFile",
    "IndexBaseError",
    "read_data",
    "read_data_file",
]


class IndexBaseError(ValueError):
    """An svmlight file read as one-based holds the feature index 0 (the message says where)."""


class DataFile(NamedTuple):
    """What :func:`read_data_file` read: :func:`read_data`'s three values and the index base."""

    X: np.ndarray | scipy.sparse.csr_matrix
    y: np.ndarray | None
    feature_names: list[str] | None
    zero_based: bool | None
    """svmlight: True when the feature indices were read as counting from 0, False when from 1
    (index 1 is column 0); None for the other formats."""


def _parse_number(text):
    try:
        return float(text)
    except ValueError:
        return None


def _read_csv(path, target, columns=None):
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not a UTF-8 text CSV file (byte {exc.start}: {exc.reason})"
        ) from None
    except csv.Error as exc:
        raise ValueError(f"{path}: not a valid CSV file ({exc})") from None
    if not rows:
        raise ValueError(f"{path}: empty CSV file (a header row is required)")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    for name in header:
        if header.count(name) > 1:
            raise ValueError(f"{path}: column name {name!r} appears more than once in the header")
    body = [r for r in body if any(cell.strip() for cell in r)]
    if not body:
        raise ValueError(f"{path}: no data rows after the header")
    for i, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ValueError(
                f"{path}: line {i} has {len(row)} fields, the header has {len(header)}"
            )
    fields = list(zip(*body, strict=True))  # one tuple of cells per column
    if target is not None and target not in header:
        raise ValueError(f"{path}: no column named {target!r} (columns: {', '.join(header)})")
    if columns is not None:
        missing = [name for name in columns if name not in header]
        if missing:
            raise ValueError(f"{path}: no column(s) {', '.join(map(repr, missing))}")
        features = list(columns)
    else:
        features = [name for name in header if name != target]
    if not features:
        raise ValueError(f"{path}: no feature columns (only the target {target!r})")
    X = np.empty((len(body), len(features)))
    for j, name in enumerate(features):
        values = fields[header.index(name)]
        for i, cell in enumerate(values):
            number = _parse_number(cell)
            if number is None:
                problem = "has an empty cell" if not cell.strip() else "is not numeric"
                raise ValueError(
                    f"{path}: column {name!r} {problem} (line {i + 2}: {cell!r}); "
                    f"features must be numbers"
                )
            if not math.isfinite(number):
                raise ValueError(
                    f"{path}: column {name!r} holds {cell.strip()!r} (line {i + 2}); "
                    f"features must be finite numbers"
                )
            X[i, j] = number
    y = None
    if target is not None:
        y = _csv_labels(path, target, [cell.strip() for cell in fields[header.index(target)]])
    return X, y, features


def _csv_labels(path, target, raw):
    """Class labels from the target column's cells: integers when every cell is one, else the
    strings.  Empty cells, NaN / infinity and non-integer numbers (a continuous target, which
    would otherwise become one class per distinct value) are refused."""
    numbers = [_parse_number(cell) for cell in raw]
    for i, (cell, number) in enumerate(zip(raw, numbers, strict=True)):
        if not cell:
            raise ValueError(
                f"{path}: the target column {target!r} has an empty cell (line {i + 2})"
            )
        if number is not None and not math.isfinite(number):
            raise ValueError(
                f"{path}: the target column {target!r} holds {cell!r} (line {i + 2}); "
                f"class labels must be integers or names"
            )
    if all(v is not None for v in numbers):
        for i, v in enumerate(numbers):
            if not v.is_integer():
                raise ValueError(
                    f"{path}: the target column {target!r} holds the non-integer number "
                    f"{raw[i]!r} (line {i + 2}); a classifier needs class labels (integers or "
                    f"names), not continuous values"
                )
        return np.array([int(v) for v in numbers])
    return np.array(raw)


def _read_npz(path, target):
    try:
        arrays = read_npz_checked(path)
    except NpzError as exc:
        raise ValueError(f"{path}: cannot read the npz archive ({exc})") from None
    key = target or "y"
    if "format" in arrays:
        if "X" in arrays:
            raise ValueError(
                f"{path}: the npz archive holds both a dense 'X' and a sparse matrix ('format', "
                f"...); keep one"
            )
        if key in _SAVE_NPZ_MEMBERS:
            raise ValueError(
                f"{path}: {key!r} is an array of the sparse matrix, not the labels; store the "
                f"labels under another name (e.g. 'y')"
            )
        X = _sparse_from_arrays(path, arrays)
    elif "X" in arrays:
        X = arrays["X"]
        if X.ndim != 2 or X.dtype.kind not in "iuf":
            raise ValueError(f"{path}: 'X' must be a 2-D numeric array, got {X.dtype} {X.shape}")
    else:
        raise ValueError(
            f"{path}: the npz archive has no array 'X' and no sparse matrix written by "
            f"scipy.sparse.save_npz (arrays 'format', 'shape', 'data', ...) (it has: "
            f"{sorted(arrays)})"
        )
    y = arrays.get(key)
    if target is not None and y is None:
        raise ValueError(f"{path}: the npz archive has no array {target!r}")
    if y is not None and y.shape != (X.shape[0],):
        raise ValueError(
            f"{path}: {key!r} must hold one label per row of X, shape ({X.shape[0]},); "
            f"got shape {y.shape}"
        )
    return X, y, None


def _bad_sparse(path, why):
    return ValueError(f"{path}: not a valid sparse matrix archive ({why})")


def _non_finite(path, row):
    return ValueError(f"{path}: X has NaN or infinity in row {row} (counting from 0)")


def _exceeds_int64(a):
    """Whether the integer array ``a`` holds a value above the int64 range (compared in uint64:
    NumPy 1.x would compare a uint64 array with a Python int in float64)."""
    return a.dtype.kind == "u" and a.size > 0 and a.max() > np.uint64(_INT64_MAX)


def _index_array(path, arrays, key, length):
    """``arrays[key]`` as int64, checked: 1-D, integers, ``length`` entries."""
    a = arrays[key]
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise _bad_sparse(path, f"{key!r} must be a 1-D integer array, got {a.dtype} {a.shape}")
    if a.shape[0] != length:
        raise _bad_sparse(path, f"{key!r} has {a.shape[0]:,} entries, it needs {length:,}")
    if _exceeds_int64(a):
        raise _bad_sparse(path, f"{key!r} holds {a.max()}, too large for an index")
    return a.astype(np.int64, copy=False)


def _check_within(path, key, a, bound, what):
    """Every entry of the int64 array ``a`` in [0, bound)."""
    outside = (a < 0) | (a >= bound)
    if outside.any():
        k = int(np.argmax(outside))
        raise _bad_sparse(
            path,
            f"{key!r} holds {a[k]} at position {k}, outside [0, {bound}) (the number of {what})",
        )


def _sparse_from_arrays(path, arrays):
    """The canonical CSR matrix of a ``scipy.sparse.save_npz`` archive's arrays, every array
    checked before the matrix is built: SciPy's constructors check little (neither the index
    bounds nor that ``indptr`` is non-decreasing), and its C++ conversions would read or write
    out of bounds on such input."""
    fmt = arrays["format"]
    if fmt.shape != () or fmt.dtype.kind not in "SU":
        raise _bad_sparse(
            path, f"'format' must be one string such as 'csr', got {fmt.dtype} {fmt.shape}"
        )
    name = fmt.item()
    name = name.decode("ascii", errors="replace") if isinstance(name, bytes) else str(name)
    if name not in SPARSE_FORMATS:
        raise ValueError(
            f"{path}: sparse format {name[:20]!r} is not supported (accepted: "
            f"{', '.join(SPARSE_FORMATS)}; convert with .tocsr() before scipy.sparse.save_npz)"
        )
    if name == "coo" and "coords" in arrays:
        needed = ["shape", "data", "coords"]
    elif name == "coo":
        needed = ["shape", "data", "row", "col"]
    else:
        needed = ["shape", "data", "indices", "indptr"]
    missing = [key for key in needed if key not in arrays]
    if missing:
        raise _bad_sparse(path, f"format {name!r} needs {', '.join(map(repr, missing))}")
    shape = arrays["shape"]
    if shape.shape != (2,) or shape.dtype.kind not in "iu":
        raise _bad_sparse(
            path, f"'shape' must be 2 integers, got {shape.dtype} of shape {shape.shape}"
        )
    if (shape.dtype.kind == "i" and shape.min() < 0) or _exceeds_int64(shape):
        raise _bad_sparse(path, f"'shape' is {tuple(shape.tolist())}")
    n_rows, n_cols = (int(v) for v in shape)
    data = arrays["data"]
    if data.ndim != 1 or data.dtype.kind not in "iuf":
        raise _bad_sparse(
            path, f"'data' must be a 1-D numeric array, got {data.dtype} {data.shape}"
        )
    nnz = data.shape[0]
    if name != "csr" and n_rows > _MAX_ROWS_ANYWAY + _MAX_ROWS_PER_STORED_VALUE * nnz:
        raise _bad_sparse(
            path,
            f"'shape' declares {n_rows:,} rows for {nnz:,} stored values; a {name} archive may "
            f"declare at most {_MAX_ROWS_ANYWAY:,} + {_MAX_ROWS_PER_STORED_VALUE} per stored "
            f"value (convert it with .tocsr() before saving)",
        )
    if name == "coo":
        if "coords" in arrays:
            coords = arrays["coords"]
            if coords.shape != (2, nnz) or coords.dtype.kind not in "iu":
                raise _bad_sparse(
                    path,
                    f"'coords' must be a (2, {nnz}) integer array, got {coords.dtype} "
                    f"{coords.shape}",
                )
            arrays = {**arrays, "row": coords[0], "col": coords[1]}
        row = _index_array(path, arrays, "row", nnz)
        col = _index_array(path, arrays, "col", nnz)
        _check_within(path, "row", row, n_rows, "rows")
        _check_within(path, "col", col, n_cols, "columns")
    else:
        major, minor = (n_rows, n_cols) if name == "csr" else (n_cols, n_rows)
        indptr = _index_array(path, arrays, "indptr", major + 1)
        indices = _index_array(path, arrays, "indices", nnz)
        if indptr[0] != 0:
            raise _bad_sparse(path, f"'indptr' starts at {indptr[0]}, not 0")
        if indptr[-1] != nnz:
            raise _bad_sparse(
                path, f"'indptr' ends at {indptr[-1]}, but 'data' holds {nnz:,} stored values"
            )
        steps = np.diff(indptr)
        if (steps < 0).any():
            k = int(np.argmax(steps < 0))
            raise _bad_sparse(
                path,
                f"'indptr' decreases from {indptr[k]} to {indptr[k + 1]} at entry {k + 1}; it "
                f"must be non-decreasing",
            )
        _check_within(path, "indices", indices, minor, "columns" if name == "csr" else "rows")
    if data.dtype.kind == "f":
        finite = np.isfinite(data)
        if not finite.all():
            k = int(np.argmax(~finite))  # the first stored value that is not finite
            if name == "coo":
                at = row[k]
            elif name == "csc":
                at = indices[k]
            else:
                at = np.searchsorted(indptr, k, side="right") - 1
            raise _non_finite(path, int(at))
    if data.dtype not in (np.float32, np.float64):
        data = data.astype(np.float64)  # integers, float16, long double
    if name == "coo":
        X = scipy.sparse.coo_matrix((data, (row, col)), shape=(n_rows, n_cols))
    elif name == "csc":
        X = scipy.sparse.csc_matrix((data, indices, indptr), shape=(n_rows, n_cols))
    else:
        X = scipy.sparse.csr_matrix((data, indices, indptr), shape=(n_rows, n_cols))
    return _canonical_csr(X)


def _canonical_csr(X):
    """``X`` as a CSR matrix in canonical format (sorted indices, duplicates summed)."""
    X = X.tocsr() if X.format != "csr" else X
    if not isinstance(X, scipy.sparse.csr_matrix):  # a csr_array
        X = scipy.sparse.csr_matrix(X)
    X.sum_duplicates()
    return X


def _read_svmlight(path, zero_based):
    """``(X, y, zero_based used)``: the indices read as written (zero-based), then shifted down by
    one when the file counts from 1 (given, or guessed: no index 0 anywhere in the file)."""
    from sklearn.datasets import load_svmlight_file

    try:
        X, y = load_svmlight_file(str(path), zero_based=True)
    except ValueError as exc:
        raise ValueError(f"{path}: not a valid svmlight/libsvm file ({exc})") from None
    y = y.astype(int) if np.all(np.mod(y, 1) == 0) else y
    X = _canonical_csr(X)
    has_zero = X.nnz > 0 and int(X.indices.min()) == 0
    if zero_based is None:
        zero_based = bool(has_zero) or X.nnz == 0  # scikit-learn's guess
    if zero_based:
        return X, y, True
    if has_zero:
        k = int(np.argmax(X.indices == 0))
        row = int(np.searchsorted(X.indptr, k, side="right") - 1)
        raise IndexBaseError(
            f"{path}: feature index 0 in row {row} (counting from 0), but the file is read as "
            f"one-based (its feature indices counting from 1)"
        )
    # One-based: index j is column j - 1.  The width is the highest index (the reader's is one
    # more); a file without any feature keeps one (zero) column.
    width = max(X.shape[1] - 1, 1)
    X = scipy.sparse.csr_matrix((X.data, X.indices - 1, X.indptr), shape=(X.shape[0], width))
    return X, y, False


def read_data(
    path: str | PathLike,
    target: str | None = None,
    columns: list[str] | None = None,
    *,
    zero_based: bool | None = None,
) -> tuple[np.ndarray | scipy.sparse.csr_matrix, np.ndarray | None, list[str] | None]:
    """Read a data file: ``(X, y, feature_names)`` of :func:`read_data_file`.

    Parameters and returns as there, less the index base.
    """
    X, y, names, _ = read_data_file(path, target, columns, zero_based=zero_based)
    return X, y, names


def read_data_file(
    path: str | PathLike,
    target: str | None = None,
    columns: list[str] | None = None,
    *,
    zero_based: bool | None = None,
) -> DataFile:
    """Read a data file.

    Parameters
    ----------
    path : str or path-like
        ``.csv`` (header row), ``.npz`` (a dense ``X`` or a ``scipy.sparse.save_npz`` matrix,
        and optionally the labels) or svmlight/libsvm text (``.svm``, ``.svmlight``,
        ``.libsvm``).
    target : str, optional
        CSV: the name of the label column (required to get ``y``).  npz: the array holding
        the labels (default ``"y"``).  svmlight files always carry labels.
    columns : list of str, optional
        CSV only: the feature columns to read, in this order (other columns are ignored, so a
        label column left in the file does no harm).  Default: every column but ``target``.
    zero_based : bool, optional
        svmlight only (ignored for the other formats): True when the file's feature indices
        count from 0 (index 0 is column 0), False when they count from 1 (index 1 is column 0;
        an index 0 is then an :class:`IndexBaseError`).  Default: guessed as scikit-learn's
        ``zero_based="auto"`` does, zero-based when some index is 0, else one-based; the guess
        is reported as ``zero_based`` of the result.  Pass the base the data was written with
        whenever it is known: a guess shifts every column of a zero-based file without any
        index 0 by one.

    Returns
    -------
    DataFile
        A named tuple of the following.
    X : ndarray or scipy.sparse.csr_matrix of shape (n_samples, n_features)
        Finite features.  CSV: a float64 ndarray.  svmlight: a float64 CSR matrix.  npz with an
        array ``X``: that array, in its stored dtype.  npz with a sparse matrix: a CSR matrix,
        float32 or float64 as stored (other numeric dtypes become float64).  Every CSR matrix is
        in canonical format (sorted column indices, duplicates summed) and never densified.
    y : ndarray of shape (n_samples,) or None
        The labels, when the file has them.
    feature_names : list of str or None
        CSV: the feature columns, in the order of X's columns; None for the other formats.
    zero_based : bool or None
        svmlight: the index base used (given or guessed); None for the other formats.

    Raises
    ------
    FileNotFoundError
        When ``path`` is not a file.
    ValueError
        When the file cannot be read as its format, or holds no rows, NaN or infinity.
    IndexBaseError
        (a ``ValueError``) When an svmlight file read as one-based holds the index 0.

    Notes
    -----
    An ``.npz`` archive is read without pickle (object arrays are refused from their header)
    and holds either

    * a dense matrix: an array ``X``, as written by ``np.savez(path, X=X, y=y)``; or
    * a sparse matrix: the arrays that ``scipy.sparse.save_npz`` writes, for the formats CSR,
      CSC or COO (``format``, ``shape``, ``data`` and ``indices``, ``indptr`` or ``row``,
      ``col``; BSR, DIA and others are refused: convert them with ``.tocsr()``).  Every array
      is checked before the matrix is built: integer index arrays, ``indptr`` starting at 0,
      non-decreasing and ending at the number of stored values, indices within the shape,
      finite values.

    and, in either case, optionally the labels, ``y`` (or the array named by ``target``), one
    per row.  ``scipy.sparse.save_npz(path, X)`` writes no labels, which is enough for
    ``softmax-fast predict``; to fit, write the matrix's arrays and the labels into one archive::

        X = X.tocsr()
        np.savez("train.npz", format="csr", shape=X.shape, data=X.data,
                 indices=X.indices, indptr=X.indptr, y=y)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such data file")
    suffix = path.suffix.lower()
    names, base = None, None
    if suffix == ".npz":
        X, y, names = _read_npz(path, target)
    elif suffix in SVMLIGHT_SUFFIXES:
        X, y, base = _read_svmlight(path, zero_based)
    elif suffix == ".csv":
        X, y, names = _read_csv(path, target, columns)
    else:
        raise ValueError(
            f"{path}: unknown data format {suffix!r}; use .csv (with a header row), .npz "
            f"(arrays X, y, or a scipy.sparse.save_npz matrix) or svmlight "
            f"({', '.join(SVMLIGHT_SUFFIXES)})"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{path}: no data (X has shape {X.shape})")
    if scipy.sparse.issparse(X):
        # The stored values only (never densified); summing duplicates may have overflowed.
        finite = np.isfinite(X.data)
        if not finite.all():
            k = int(np.argmax(~finite))
            raise _non_finite(path, int(np.searchsorted(X.indptr, k, side="right") - 1))
    else:
        finite = np.isfinite(X).all(axis=1)
        if not finite.all():
            raise _non_finite(path, int(np.flatnonzero(~finite)[0]))
    return DataFile(X, y, names, base)

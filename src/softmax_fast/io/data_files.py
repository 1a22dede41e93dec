"""Data files of the ``softmax-fast`` command: CSV, npz and svmlight/libsvm.

* CSV (``.csv``): a header row; every feature cell a finite number; the target column (named by
  ``target``) holds integers or class names.  UTF-8, with or without a byte-order mark; blank
  lines are skipped.
* npz (``.npz``): an array ``X`` (2-D, numeric) and, optionally, the labels (``y`` or the array
  named by ``target``), read without pickle.
* svmlight/libsvm text (``.svm``, ``.svmlight``, ``.libsvm``): read with scikit-learn's reader and
  returned dense; integral labels become integers.

Problems are reported as ``ValueError`` naming the file and what is wrong with it (the CSV line
and column where there is one); a missing file is a ``FileNotFoundError``.
"""

import csv
import math
from os import PathLike
from pathlib import Path

import numpy as np

from ._npz import NpzError, read_npz_checked

SVMLIGHT_SUFFIXES = (".svm", ".svmlight", ".libsvm")

__all__ = ["SVMLIGHT_SUFFIXES", "read_data"]


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
    if "X" not in arrays:
        raise ValueError(f"{path}: the npz archive has no array 'X' (it has: {sorted(arrays)})")
    X = arrays["X"]
    if X.ndim != 2 or X.dtype.kind not in "iuf":
        raise ValueError(f"{path}: 'X' must be a 2-D numeric array, got {X.dtype} {X.shape}")
    key = target or "y"
    y = arrays.get(key)
    if target is not None and y is None:
        raise ValueError(f"{path}: the npz archive has no array {target!r}")
    if y is not None and y.shape != (X.shape[0],):
        raise ValueError(
            f"{path}: {key!r} must hold one label per row of X, shape ({X.shape[0]},); "
            f"got shape {y.shape}"
        )
    return X, y, None


def _read_svmlight(path, target):
    from sklearn.datasets import load_svmlight_file

    try:
        X, y = load_svmlight_file(str(path))
    except ValueError as exc:
        raise ValueError(f"{path}: not a valid svmlight/libsvm file ({exc})") from None
    y = y.astype(int) if np.all(np.mod(y, 1) == 0) else y
    return X.toarray(), y, None


def read_data(
    path: str | PathLike,
    target: str | None = None,
    columns: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """Read a data file.

    Parameters
    ----------
    path : str or path-like
        ``.csv`` (header row), ``.npz`` (arrays ``X`` and ``y``) or svmlight/libsvm text.
    target : str, optional
        CSV: the name of the label column (required to get ``y``).  npz: the array holding
        the labels (default ``"y"``).  svmlight files always carry labels.
    columns : list of str, optional
        CSV only: the feature columns to read, in this order (other columns are ignored, so a
        label column left in the file does no harm).  Default: every column but ``target``.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Finite features (float64 for CSV and svmlight; the stored dtype for npz).
    y : ndarray of shape (n_samples,) or None
        The labels, when the file has them.
    feature_names : list of str or None
        CSV: the feature columns, in the order of X's columns; None for the other formats.

    Raises
    ------
    FileNotFoundError
        When ``path`` is not a file.
    ValueError
        When the file cannot be read as its format, or holds no rows, NaN or infinity.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such data file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        X, y, names = _read_npz(path, target)
    elif suffix in SVMLIGHT_SUFFIXES:
        X, y, names = _read_svmlight(path, target)
    elif suffix == ".csv":
        X, y, names = _read_csv(path, target, columns)
    else:
        raise ValueError(
            f"{path}: unknown data format {suffix!r}; use .csv (with a header row), .npz "
            f"(arrays X, y) or svmlight ({', '.join(SVMLIGHT_SUFFIXES)})"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{path}: no data (X has shape {X.shape})")
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"{path}: X has NaN or infinity in row {row} (counting from 0)")
    return X, y, names

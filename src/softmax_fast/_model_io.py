"""Model files and data files of the ``softmax-fast`` command.

Model files are NumPy ``.npz`` archives read with ``allow_pickle=False``, so a model file can
never execute code.  Before any array is read, every member's ``.npy`` header is checked: an
archive that is not a zip, holds members other than the arrays below, object (pickle) arrays, a
header declaring more (or less) data than the member holds, or more than ``MAX_MODEL_BYTES``
uncompressed (a zip bomb) is refused.  Format (version 1):

===================  ======================================================================
array                content
===================  ======================================================================
``format``           the string ``"softmax_fast.model"``
``version``          integer format version (1); newer versions are refused, not guessed at
``coef``             (K, n) float64 coefficients
``intercept``        (K,) float64 intercepts
``classes``          (K,) class labels: integers, floats, booleans or strings (no objects)
``params``           JSON text of the estimator's ``get_params()`` (JSON-serializable values)
``feature_names``    (n,) strings, or absent when the model was fitted without names
===================  ======================================================================

Every array is checked on loading: shapes consistent with ``coef``, n >= 1 and K >= 2, finite
float64 coefficients, distinct classes, and ``params`` valid for :class:`SoftmaxRegression`.

Data files: CSV with a header row, ``.npz`` with arrays ``X`` (and ``y``), or svmlight/libsvm
text (``.svm``, ``.svmlight``, ``.libsvm``).  Problems are reported as ``ValueError`` naming the
file and what is wrong with it.
"""

import csv
import json
import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

MODEL_FORMAT = "softmax_fast.model"
MODEL_VERSION = 1
SVMLIGHT_SUFFIXES = (".svm", ".svmlight", ".libsvm")
# The most bytes a model file may unpack to.  1 GiB is 134 million float64 coefficients; a
# zip member of a few megabytes can declare (and decompress to) far more: a zip bomb.
MAX_MODEL_BYTES = 2**30
_MODEL_MEMBERS = frozenset(
    {"format", "version", "coef", "intercept", "classes", "params", "feature_names"}
)
_NPY_MAX_HEADER = 10000  # numpy's own default limit on a .npy header


# ----------------------------------------------------------------------------- npz archives


class _NpzError(Exception):
    """Why an .npz archive is refused (callers add the path)."""


def _npy_header(f):
    """(shape, fortran_order, dtype) of the .npy stream ``f``, leaving ``f`` at the data."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f, max_header_size=_NPY_MAX_HEADER)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(f, max_header_size=_NPY_MAX_HEADER)
    raise _NpzError(f".npy format version {version[0]}.{version[1]} is not supported")


def _read_npz_checked(path, allowed=None, max_bytes=None):
    """The arrays of the .npz archive ``path``, each checked before it is read.

    Raises ``_NpzError`` when the file is not a zip archive, a member is not a ``.npy`` array
    (or is not in ``allowed``, or appears twice), the archive unpacks to more than
    ``max_bytes``, a header is malformed, declares an object (pickle) dtype, or declares a
    different amount of data than its member holds (truncated or hand-crafted; this also keeps
    a small file from making NumPy allocate terabytes).  Never unpickles anything.
    """
    try:
        if not zipfile.is_zipfile(path):
            raise _NpzError("not an npz archive (a zip file of .npy arrays)")
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            names = [info.filename for info in infos]
            if len(set(names)) != len(names):
                raise _NpzError("a member appears twice in the archive")
            for name in names:
                if not name.endswith(".npy"):
                    raise _NpzError(f"member {name!r} is not a .npy array")
            keys = [name[: -len(".npy")] for name in names]
            if allowed is not None:
                unexpected = sorted(set(keys) - set(allowed))
                if unexpected:
                    raise _NpzError(f"unexpected members: {', '.join(unexpected)}")
            total = sum(info.file_size for info in infos)
            if max_bytes is not None and total > max_bytes:
                raise _NpzError(
                    f"it unpacks to {total:,} bytes, more than the limit of {max_bytes:,} "
                    f"(MAX_MODEL_BYTES)"
                )
            arrays = {}
            for key, info in zip(keys, infos, strict=True):
                with archive.open(info) as f:
                    shape, _, dtype = _npy_header(f)
                    if dtype.hasobject:
                        raise _NpzError(f"{key}: object arrays are refused (they need pickle)")
                    data_bytes = math.prod(shape) * dtype.itemsize
                    held = info.file_size - f.tell()
                    if data_bytes != held:
                        raise _NpzError(
                            f"{key}: the header declares {data_bytes:,} bytes of data "
                            f"(shape {shape}, {dtype}) but the member holds {held:,}"
                        )
                with archive.open(info) as f:
                    arrays[key] = np.lib.format.read_array(
                        f, allow_pickle=False, max_header_size=_NPY_MAX_HEADER
                    )
            return arrays
    except _NpzError:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,
        EOFError,
        OSError,
        ValueError,
        NotImplementedError,  # an unsupported compression method
        RuntimeError,  # an encrypted member
    ) as exc:
        raise _NpzError(f"truncated or corrupt npz archive: {exc}") from None


# ----------------------------------------------------------------------------- model files


def _storable_labels(classes, path):
    classes = np.asarray(classes)
    if classes.dtype.kind in "biufU":
        return classes
    if classes.dtype.kind == "O" and all(isinstance(c, str) for c in classes):
        return classes.astype(str)
    raise ValueError(
        f"{path}: cannot store class labels of dtype {classes.dtype} without pickle; "
        f"use integer or string labels"
    )


def save_model(estimator, path, feature_names=None):
    """Write a fitted estimator's coefficients, intercepts, classes and parameters to ``path``.

    ``feature_names`` (the data file's column names) default to the estimator's
    ``feature_names_in_`` when it has them.
    """
    params = {}
    for key, value in estimator.get_params().items():
        try:
            json.dumps(value)
        except TypeError:
            continue  # not JSON-serializable (e.g. a RandomState): not needed to predict
        params[key] = value
    arrays = {
        "format": np.array(MODEL_FORMAT),
        "version": np.array(MODEL_VERSION),
        "coef": np.asarray(estimator.coef_, dtype=np.float64),
        "intercept": np.asarray(estimator.intercept_, dtype=np.float64),
        "classes": _storable_labels(estimator.classes_, path),
        "params": np.array(json.dumps(params)),
    }
    names = feature_names
    if names is None:
        names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        arrays["feature_names"] = np.asarray(names, dtype=str)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _corrupt(path, why):
    return ValueError(f"{path}: not a valid softmax_fast model file ({why})")


def read_model_arrays(path):
    """Read and check a model file; returns a dict of its arrays and the decoded params."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    try:
        arrays = _read_npz_checked(path, allowed=_MODEL_MEMBERS, max_bytes=MAX_MODEL_BYTES)
    except _NpzError as exc:
        raise _corrupt(path, str(exc)) from None
    missing = {"format", "version", "coef", "intercept", "classes", "params"} - set(arrays)
    if missing:
        raise _corrupt(path, f"missing {', '.join(sorted(missing))}")
    fmt = arrays["format"]
    if fmt.shape != () or fmt.dtype.kind != "U" or str(fmt) != MODEL_FORMAT:
        raise _corrupt(path, f"format is {str(fmt)[:100]!r}")
    version = arrays["version"]
    if version.shape != () or version.dtype.kind not in "iu":
        raise _corrupt(path, "bad version field")
    if int(version) > MODEL_VERSION or int(version) < 1:
        raise ValueError(
            f"{path}: model file version {int(version)} is not supported by this softmax_fast "
            f"(it reads version {MODEL_VERSION}); upgrade softmax_fast or re-save the model"
        )
    coef, intercept, classes = arrays["coef"], arrays["intercept"], arrays["classes"]
    if coef.ndim != 2 or coef.dtype != np.float64:
        raise _corrupt(path, f"coef must be a 2-D float64 array, got {coef.dtype} {coef.shape}")
    K, n = coef.shape
    if n < 1:
        raise _corrupt(path, "coef has no columns (features)")
    if intercept.shape != (K,) or intercept.dtype != np.float64:
        raise _corrupt(path, f"intercept must be a float64 array of shape ({K},)")
    if classes.shape != (K,) or K < 2:
        raise _corrupt(path, f"classes must have shape ({K},) with K >= 2")
    if classes.dtype.kind not in "biufU":
        raise _corrupt(
            path, f"classes must be integers, floats, booleans or strings, got {classes.dtype}"
        )
    if classes.dtype.kind == "f" and not np.all(np.isfinite(classes)):
        raise _corrupt(path, "classes contain NaN or infinity")
    if np.unique(classes).size != K:
        raise _corrupt(path, "classes are not distinct")
    if not (np.all(np.isfinite(coef)) and np.all(np.isfinite(intercept))):
        raise _corrupt(path, "non-finite coefficients")
    params = arrays["params"]
    if params.shape != () or params.dtype.kind != "U":
        raise _corrupt(path, "params must be one JSON string")
    try:
        params = json.loads(str(params))
    except json.JSONDecodeError as exc:
        raise _corrupt(path, f"params are not JSON: {exc}") from None
    if not isinstance(params, dict):
        raise _corrupt(path, "params must be a JSON object")
    names = arrays.get("feature_names")
    if names is not None and (names.shape != (n,) or names.dtype.kind != "U"):
        raise _corrupt(path, f"feature_names must be {n} strings")
    return {
        "coef": coef,
        "intercept": intercept,
        "classes": classes,
        "params": params,
        "feature_names": names,
    }


def load_model(path):
    """``(model, feature_names)`` from a file written by :func:`save_model`.

    ``model`` is a fitted ``SoftmaxRegression``; ``feature_names`` the stored column names or
    None.  The names are returned beside the model rather than set as ``feature_names_in_``,
    so that predicting on a plain array does not warn about missing names.
    """
    from .estimator import SoftmaxRegression

    content = read_model_arrays(path)
    model = SoftmaxRegression()
    valid = model.get_params()
    model.set_params(**{k: v for k, v in content["params"].items() if k in valid})
    try:  # e.g. n_threads (used to predict) of a wrong type or value
        model._check_params()
    except (TypeError, ValueError) as exc:
        raise _corrupt(path, f"params: {exc}") from None
    model.coef_ = content["coef"]
    model.intercept_ = content["intercept"]
    model.classes_ = content["classes"]
    model.n_features_in_ = content["coef"].shape[1]
    names = content["feature_names"]
    return model, None if names is None else [str(name) for name in names]


# ----------------------------------------------------------------------------- data files


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
        arrays = _read_npz_checked(path)
    except _NpzError as exc:
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


def read_data(path, target=None, columns=None):
    """Read a data file; returns ``(X, y or None, feature names or None)``.

    Parameters
    ----------
    path : str or Path
        ``.csv`` (header row), ``.npz`` (arrays ``X`` and ``y``) or svmlight/libsvm text.
    target : str, optional
        CSV: the name of the label column (required to get ``y``).  npz: the array holding
        the labels (default ``"y"``).  svmlight files always carry labels.
    columns : list of str, optional
        CSV only: the feature columns to read, in this order (other columns are ignored, so a
        label column left in the file does no harm).  Default: every column but ``target``.
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

"""Model files and data files of the ``softmax-fast`` command.

Model files are NumPy ``.npz`` archives read with ``allow_pickle=False``, so a model file can
never execute code.  Format (version 1):

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

Data files: CSV with a header row, ``.npz`` with arrays ``X`` (and ``y``), or svmlight/libsvm
text (``.svm``, ``.svmlight``, ``.libsvm``).  Problems are reported as ``ValueError`` naming the
file and what is wrong with it.
"""

import csv
import json
import zipfile
from pathlib import Path

import numpy as np

MODEL_FORMAT = "softmax_fast.model"
MODEL_VERSION = 1
SVMLIGHT_SUFFIXES = (".svm", ".svmlight", ".libsvm")


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
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise _corrupt(path, f"truncated or not an npz archive: {exc}") from None
    except ValueError as exc:  # object arrays need pickle: refused
        raise _corrupt(path, str(exc)) from None
    missing = {"format", "version", "coef", "intercept", "classes", "params"} - set(arrays)
    if missing:
        raise _corrupt(path, f"missing {', '.join(sorted(missing))}")
    if str(arrays["format"]) != MODEL_FORMAT:
        raise _corrupt(path, f"format is {str(arrays['format'])!r}")
    version = arrays["version"]
    if version.shape != () or version.dtype.kind not in "iu":
        raise _corrupt(path, "bad version field")
    if int(version) > MODEL_VERSION or int(version) < 1:
        raise ValueError(
            f"{path}: model file version {int(version)} is not supported by this softmax_fast "
            f"(it reads version {MODEL_VERSION}); upgrade softmax_fast or re-save the model"
        )
    coef, intercept, classes = arrays["coef"], arrays["intercept"], arrays["classes"]
    if coef.ndim != 2 or coef.dtype.kind != "f":
        raise _corrupt(path, "coef must be a 2-D float array")
    K, n = coef.shape
    if intercept.shape != (K,) or intercept.dtype.kind != "f":
        raise _corrupt(path, f"intercept must have shape ({K},)")
    if classes.shape != (K,) or K < 2:
        raise _corrupt(path, f"classes must have shape ({K},) with K >= 2")
    if not (np.all(np.isfinite(coef)) and np.all(np.isfinite(intercept))):
        raise _corrupt(path, "non-finite coefficients")
    try:
        params = json.loads(str(arrays["params"]))
    except json.JSONDecodeError as exc:
        raise _corrupt(path, f"params are not JSON: {exc}") from None
    if not isinstance(params, dict):
        raise _corrupt(path, "params must be a JSON object")
    names = arrays.get("feature_names")
    if names is not None and names.shape != (n,):
        raise _corrupt(path, f"feature_names must have shape ({n},)")
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
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path}: empty CSV file (a header row is required)")
    header, body = [h.strip() for h in rows[0]], rows[1:]
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
    X = np.empty((len(body), len(features)))
    for j, name in enumerate(features):
        values = fields[header.index(name)]
        for i, cell in enumerate(values):
            number = _parse_number(cell)
            if number is None:
                raise ValueError(
                    f"{path}: column {name!r} is not numeric (line {i + 2}: {cell!r}); "
                    f"features must be numbers"
                )
            X[i, j] = number
    y = None
    if target is not None:
        raw = [cell.strip() for cell in fields[header.index(target)]]
        numbers = [_parse_number(cell) for cell in raw]
        if all(v is not None and float(v).is_integer() for v in numbers):
            y = np.array([int(v) for v in numbers])
        else:
            y = np.array(raw)
    return X, y, features


def _read_npz(path, target):
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the npz archive ({exc})") from None
    if "X" not in arrays:
        raise ValueError(f"{path}: the npz archive has no array 'X' (it has: {sorted(arrays)})")
    X = arrays["X"]
    if X.ndim != 2 or X.dtype.kind not in "iuf":
        raise ValueError(f"{path}: 'X' must be a 2-D numeric array, got {X.dtype} {X.shape}")
    y = arrays.get(target or "y")
    if target is not None and y is None:
        raise ValueError(f"{path}: the npz archive has no array {target!r}")
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
        return _read_npz(path, target)
    if suffix in SVMLIGHT_SUFFIXES:
        return _read_svmlight(path, target)
    if suffix == ".csv":
        return _read_csv(path, target, columns)
    raise ValueError(
        f"{path}: unknown data format {suffix!r}; use .csv (with a header row), .npz "
        f"(arrays X, y) or svmlight ({', '.join(SVMLIGHT_SUFFIXES)})"
    )

"""Model files: a fitted ``SoftmaxRegression``, optionally with its ``StandardScaler``, as a
versioned ``.npz`` archive, never pickle.

Python API
----------
``save_model(estimator, path)`` writes a fitted ``SoftmaxRegression``, or a fitted
``Pipeline(StandardScaler, SoftmaxRegression)`` (e.g. ``make_pipeline(StandardScaler(),
SoftmaxRegression())``, what ``softmax-fast fit --standardize`` fits).  ``load_model(path)``
returns ``(estimator, feature_names)``; ``estimator`` is what was saved: a ``SoftmaxRegression``
when the file holds no scaler, else a ``Pipeline`` of a ``StandardScaler`` (step
``"standardscaler"``) and the ``SoftmaxRegression`` (step ``"softmaxregression"``), so that
``estimator.predict(X)`` on raw features is always right.  ``load_model_file(path)`` returns
the same two and the index base of the svmlight file the model was fitted on (a
:class:`ModelFile`).  Both kinds have ``predict``,
``predict_proba``, ``classes_`` and ``n_features_in_``.  The loaded scaler holds ``mean_``,
``scale_`` and ``n_features_in_`` (``var_`` and ``n_samples_seen_`` are not stored).  A scaler
that does not centre (``StandardScaler(with_mean=False)``, what ``--standardize`` fits on sparse
input) is stored with means of zero and loads as one that does not centre, so that it scales
sparse input without densifying it.

Safety
------
Model files are NumPy ``.npz`` archives read with ``allow_pickle=False``, so loading one can
never execute code.  Before any array is read, every member's ``.npy`` header is checked: an
archive that is not a zip, holds members other than the arrays below, object (pickle) arrays, a
header declaring more (or less) data than the member holds, or more than ``MAX_MODEL_BYTES``
uncompressed (a zip bomb) is refused.

Format (version 2; version 1 is the same without the scaler arrays, and still loads)
------------------------------------------------------------------------------------

``svmlight_zero_based`` joined version 2 before any release wrote version 2 files (0.1.0.dev0
writes version 1), so the version was not bumped: every file that lacks it, version 1 or 2,
still loads, with an unknown index base (None).

=======================  ========================================================================
array                    content
=======================  ========================================================================
``format``               the string ``"softmax_fast.model"``
``version``              integer format version (2); newer versions are refused, not guessed at
``coef``                 (K, n) float64 coefficients
``intercept``            (K,) float64 intercepts
``classes``              (K,) class labels: integers, floats, booleans or strings (no objects)
``params``               JSON text of the estimator's ``get_params()`` (JSON-serializable values)
``feature_names``        (n,) strings, or absent when the model was fitted without names
``scaler_mean``          (n,) float64 feature means, subtracted before the model (optional, with
                         ``scaler_scale``; version 2); all zeros for a scaler that does not
                         centre, which loads as ``StandardScaler(with_mean=False)``
``scaler_scale``         (n,) float64 positive feature scales, divided by after the mean (optional,
                         with ``scaler_mean``; version 2; a constant column has scale 1)
``svmlight_zero_based``  a boolean scalar: the model was fitted on an svmlight file whose feature
                         indices count from 0 (True) or from 1 (False), so that ``softmax-fast
                         predict`` reads svmlight files with the same base (optional; version 2;
                         absent for other training data and in earlier files)
=======================  ========================================================================

Every array is checked on loading: shapes consistent with ``coef``, n >= 1 and K >= 2, finite
float64 coefficients, distinct classes, finite scaler means and finite positive scales, and
``params`` valid for ``SoftmaxRegression``.  Any problem is a ``ValueError`` reading
``PATH: not a valid softmax_fast model file (why)``.
"""

import json
from os import PathLike
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ._npz import NpzError, read_npz_checked

MODEL_FORMAT = "softmax_fast.model"
MODEL_VERSION = 2
# The most bytes a model file may unpack to.  1 GiB is 134 million float64 coefficients; a
# zip member of a few megabytes can declare (and decompress to) far more: a zip bomb.
MAX_MODEL_BYTES = 2**30
_REQUIRED = frozenset({"format", "version", "coef", "intercept", "classes", "params"})
_SCALER = frozenset({"scaler_mean", "scaler_scale"})
_MEMBERS = _REQUIRED | _SCALER | {"feature_names", "svmlight_zero_based"}

__all__ = [
    "MAX_MODEL_BYTES",
    "MODEL_FORMAT",
    "MODEL_VERSION",
    "ModelFile",
    "load_model",
    "load_model_file",
    "read_model_arrays",
    "save_model",
]


class ModelFile(NamedTuple):
    """What :func:`load_model_file` read: :func:`load_model`'s two values and the index base."""

    estimator: Any
    feature_names: list[str] | None
    svmlight_zero_based: bool | None
    """The index base of the svmlight file the model was fitted on (True: counting from 0);
    None when it was fitted on other data, or the file does not record it (earlier files)."""


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


def _split_pipeline(estimator):
    """``(model, scaler or None)`` of a SoftmaxRegression or a Pipeline(StandardScaler, model)."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if not isinstance(estimator, Pipeline):
        return estimator, None
    steps = [step for _, step in estimator.steps if step not in (None, "passthrough")]
    if len(steps) == 1:
        return steps[0], None
    if len(steps) != 2 or type(steps[0]) is not StandardScaler:
        raise ValueError(
            "save_model stores a SoftmaxRegression or a Pipeline(StandardScaler, "
            f"SoftmaxRegression), got a Pipeline of {[type(s).__name__ for s in steps]}"
        )
    return steps[1], steps[0]


def _scaler_arrays(scaler, n):
    """The (mean, scale) that a fitted StandardScaler applies, as float64 arrays of shape (n,)."""
    mean = scaler.mean_ if scaler.with_mean else None
    scale = scaler.scale_ if scaler.with_std else None
    mean = np.zeros(n) if mean is None else np.asarray(mean, dtype=np.float64)
    scale = np.ones(n) if scale is None else np.asarray(scale, dtype=np.float64)
    return mean, scale


def save_model(
    estimator: Any,
    path: str | PathLike,
    feature_names: list[str] | np.ndarray | None = None,
    *,
    svmlight_zero_based: bool | None = None,
) -> None:
    """Write a fitted model (and its scaler, if any) to ``path``.

    Parameters
    ----------
    estimator : SoftmaxRegression or Pipeline
        A fitted ``SoftmaxRegression`` (anything with ``coef_``, ``intercept_``, ``classes_``
        and ``get_params()``), or a fitted ``Pipeline(StandardScaler, SoftmaxRegression)``.
        Parameters that JSON cannot hold (e.g. a ``RandomState``) are left out: they are not
        needed to predict.
    path : str or path-like
        The file to write (conventionally ``.npz``).
    feature_names : sequence of str, optional
        The data file's column names; default: the estimator's ``feature_names_in_`` when it
        has them.
    svmlight_zero_based : bool, optional
        When the model was fitted on an svmlight file: whether its feature indices count from
        0 (True) or from 1 (False), as ``read_data_file`` reports it.  Stored so that files to
        predict on are read with the same base; default: not stored.

    Raises
    ------
    ValueError
        When the class labels cannot be stored without pickle (objects other than strings), or
        a Pipeline is not a StandardScaler followed by the model.
    """
    model, scaler = _split_pipeline(estimator)
    params = {}
    for key, value in model.get_params().items():
        try:
            json.dumps(value)
        except TypeError:
            continue
        params[key] = value
    coef = np.asarray(model.coef_, dtype=np.float64)
    arrays = {
        "format": np.array(MODEL_FORMAT),
        "version": np.array(MODEL_VERSION),
        "coef": coef,
        "intercept": np.asarray(model.intercept_, dtype=np.float64),
        "classes": _storable_labels(model.classes_, path),
        "params": np.array(json.dumps(params)),
    }
    if scaler is not None:
        arrays["scaler_mean"], arrays["scaler_scale"] = _scaler_arrays(scaler, coef.shape[1])
    names = feature_names
    if names is None:
        names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        arrays["feature_names"] = np.asarray(names, dtype=str)
    if svmlight_zero_based is not None:
        if not isinstance(svmlight_zero_based, bool | np.bool_):
            raise TypeError(
                f"svmlight_zero_based must be True, False or None, got {svmlight_zero_based!r}"
            )
        arrays["svmlight_zero_based"] = np.array(bool(svmlight_zero_based))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _corrupt(path, why):
    return ValueError(f"{path}: not a valid softmax_fast model file ({why})")


def read_model_arrays(path: str | PathLike) -> dict[str, Any]:
    """Read and check a model file.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save_model`.

    Returns
    -------
    dict
        ``coef``, ``intercept``, ``classes``, ``feature_names``, ``scaler_mean`` and
        ``scaler_scale`` (the last three None when absent) as arrays, ``params`` as the decoded
        dict, ``version`` as an int, ``svmlight_zero_based`` as a bool (None when absent).

    Raises
    ------
    FileNotFoundError
        When ``path`` is not a file.
    ValueError
        When the file is not a valid model file, or of a newer format version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    try:
        arrays = read_npz_checked(path, allowed=_MEMBERS, max_bytes=MAX_MODEL_BYTES)
    except NpzError as exc:
        raise _corrupt(path, str(exc)) from None
    missing = _REQUIRED - set(arrays)
    if missing:
        raise _corrupt(path, f"missing {', '.join(sorted(missing))}")
    fmt = arrays["format"]
    if fmt.shape != () or fmt.dtype.kind != "U" or str(fmt) != MODEL_FORMAT:
        raise _corrupt(path, f"format is {str(fmt)[:100]!r}")
    stored_version = arrays["version"]
    if stored_version.shape != () or stored_version.dtype.kind not in "iu":
        raise _corrupt(path, "bad version field")
    version = int(stored_version)
    if version > MODEL_VERSION or version < 1:
        raise ValueError(
            f"{path}: model file version {version} is not supported by this softmax_fast "
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
    mean, scale = _checked_scaler(path, arrays, version, n)
    zero_based = _checked_index_base(path, arrays, version)
    return {
        "version": version,
        "coef": coef,
        "intercept": intercept,
        "classes": classes,
        "params": params,
        "feature_names": names,
        "scaler_mean": mean,
        "scaler_scale": scale,
        "svmlight_zero_based": zero_based,
    }


def _checked_index_base(path, arrays, version):
    """The stored svmlight index base (True: zero-based), or None when there is none."""
    stored = arrays.get("svmlight_zero_based")
    if stored is None:
        return None
    if version < 2:
        raise _corrupt(path, f"svmlight_zero_based in a version {version} file (it needs 2)")
    if stored.shape != () or stored.dtype != np.bool_:
        raise _corrupt(
            path, f"svmlight_zero_based must be one boolean, got {stored.dtype} {stored.shape}"
        )
    return bool(stored)


def _checked_scaler(path, arrays, version, n):
    """``(mean, scale)`` of the stored scaler, or ``(None, None)`` when there is none."""
    present = sorted(_SCALER & set(arrays))
    if not present:
        return None, None
    if version < 2:
        raise _corrupt(path, f"{', '.join(present)} in a version {version} file (they need 2)")
    if len(present) == 1:
        (missing,) = _SCALER - set(present)
        raise _corrupt(path, f"{present[0]} without {missing}")
    mean, scale = arrays["scaler_mean"], arrays["scaler_scale"]
    for key, value in (("scaler_mean", mean), ("scaler_scale", scale)):
        if value.shape != (n,) or value.dtype != np.float64:
            raise _corrupt(
                path,
                f"{key} must be a float64 array of shape ({n},), got {value.dtype} {value.shape}",
            )
        if not np.all(np.isfinite(value)):
            raise _corrupt(path, f"{key} holds NaN or infinity")
    if not np.all(scale > 0):
        raise _corrupt(path, "scaler_scale must be positive")
    return mean, scale


def _fitted_scaler(mean, scale):
    """A fitted StandardScaler applying ``(X - mean) / scale``.

    Means of zero (what a ``with_mean=False`` scaler is stored as, in every version-2 file) give
    a scaler with ``with_mean=False``: the same arithmetic on dense input, and sparse input is
    scaled rather than refused (centring would densify it).
    """
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler(with_mean=bool(np.any(mean != 0)))
    scaler.mean_, scaler.scale_, scaler.n_features_in_ = mean, scale, mean.shape[0]
    return scaler


def load_model(path: str | PathLike) -> tuple[Any, list[str] | None]:
    """Load a model file written by :func:`save_model`: ``(estimator, feature_names)``.

    :func:`load_model_file` returns these and the svmlight index base; parameters, returns and
    errors as there.
    """
    estimator, names, _ = load_model_file(path)
    return estimator, names


def load_model_file(path: str | PathLike) -> ModelFile:
    """Load a model file written by :func:`save_model`.

    Parameters
    ----------
    path : str or path-like
        The model file.

    Returns
    -------
    ModelFile
        A named tuple of the following.
    estimator : SoftmaxRegression or Pipeline
        The fitted model; a ``Pipeline(StandardScaler, SoftmaxRegression)`` (steps
        ``"standardscaler"`` and ``"softmaxregression"``) when the file holds a scaler.
    feature_names : list of str or None
        The stored column names.  They are returned beside the model rather than set as
        ``feature_names_in_``, so that predicting on a plain array does not warn about missing
        names.
    svmlight_zero_based : bool or None
        The index base of the svmlight file the model was fitted on (True: from 0, False: from
        1); None when the file does not record one.

    Raises
    ------
    FileNotFoundError
        When ``path`` is not a file.
    ValueError
        When the file is not a valid model file (including parameters the estimator refuses).
    """
    from ..estimator import SoftmaxRegression

    content = read_model_arrays(path)
    try:
        model = SoftmaxRegression._from_model_arrays(
            coef=content["coef"],
            intercept=content["intercept"],
            classes=content["classes"],
            params=content["params"],
        )
    except (TypeError, ValueError) as exc:  # e.g. n_threads (used to predict) of a wrong type
        raise _corrupt(path, f"params: {exc}") from None
    names = None if content["feature_names"] is None else list(map(str, content["feature_names"]))
    zero_based = content["svmlight_zero_based"]
    if content["scaler_mean"] is None:
        return ModelFile(model, names, zero_based)
    from sklearn.pipeline import make_pipeline

    scaler = _fitted_scaler(content["scaler_mean"], content["scaler_scale"])
    return ModelFile(make_pipeline(scaler, model), names, zero_based)

"""Every bad input of every public kernel function: one table of the public signatures.

Each row of the table is a function, one of its arguments given a bad value (wrong types and
objects, wrong ndim and shapes, labels out of range, bad targets and weights, K = 0, m = 0,
non-finite values, bad options) and the exception that value must raise.  Each case checks the
exception type, that the message names the argument (as a whole word, so "Z" does not match
"Zero" nor "np.Z"), where given that the message says more (the row, the label), that the inputs
are unchanged after the failing call, and, by completing, that the interpreter did not crash.
The messages that name the first offending row of the logits follow the table; then sparse X
(a second table: bad CSR structure, non-finite stored values, unsupported formats and dtypes,
too many columns for int32 indices, overflowing logits), and CSC/COO input with a bad
structure, run in a fresh interpreter so that a crash shows as a failed test.

Accepted-but-odd inputs (float16, lists, matrices, big-endian, huge weights, ...) are in
test_odd_inputs.py; the estimator's bad parameters and data in estimator/test_estimator_input.py.
"""

import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp
from kernel_test_helpers import PUBLIC_ARRAY_ARGS, Snapshot
from sparse_inputs import assert_unchanged, snapshot

import softmax_fast as sf

M, K, N = 6, 4, 3

# Positional and keyword arguments of every public function.
POSITIONAL = {
    "softmax": ("Z",),
    "log_softmax": ("Z",),
    "logsumexp": ("Z",),
    "cross_entropy": ("Z", "y"),
    "cross_entropy_grad": ("Z", "y"),
    "loss_and_grad": ("X", "y", "W", "b"),
    "predict_proba": ("X", "W", "b"),
    "predict": ("X", "W", "b"),
}
KEYWORDS = {
    "softmax": ("out", "n_threads"),
    "log_softmax": ("out", "n_threads"),
    "logsumexp": ("n_threads",),
    "cross_entropy": ("sample_weight", "reduction", "n_threads"),
    "cross_entropy_grad": ("sample_weight", "n_threads"),
    "loss_and_grad": ("alpha", "sample_weight", "n_threads"),
    "predict_proba": ("n_threads",),
    "predict": ("n_threads",),
}
Z_FUNCS = ("softmax", "log_softmax", "logsumexp", "cross_entropy", "cross_entropy_grad")
X_FUNCS = ("loss_and_grad", "predict_proba", "predict")
Y_FUNCS = ("cross_entropy", "cross_entropy_grad", "loss_and_grad")
W_FUNCS = ("cross_entropy", "cross_entropy_grad", "loss_and_grad")  # take sample_weight
OUT_FUNCS = ("softmax", "log_softmax")
ALL_FUNCS = Z_FUNCS + X_FUNCS


ARRAYS = PUBLIC_ARRAY_ARGS


def base_data(dtype=np.float64, m=M):
    rng = np.random.default_rng(2024)
    return {
        "Z": rng.normal(0, 2, size=(m, K)).astype(dtype),
        "y": rng.integers(0, K, size=m),
        "Y": rng.dirichlet(np.ones(K), size=m),
        "X": rng.normal(size=(m, N)).astype(dtype),
        "W": rng.normal(size=(K, N)).astype(dtype),
        "b": rng.normal(size=K).astype(dtype),
        "w": rng.uniform(0.5, 2.0, size=m),
    }


def build_call(fname, d, overrides):
    """Positional args and kwargs for ``fname`` from the base data with ``overrides`` applied."""
    defaults = {"Z": d["Z"], "y": d["y"], "X": d["X"], "W": d["W"], "b": d["b"]}
    args = [overrides.get(p, defaults[p]) for p in POSITIONAL[fname]]
    kwargs = {}
    for key, value in overrides.items():
        if key in POSITIONAL[fname]:
            continue
        assert key in KEYWORDS[fname], f"{fname} takes no {key}"
        kwargs[key] = value
    return args, kwargs


def names_pattern(*names):
    """Regex matching any of ``names`` as a whole word (not after a letter, digit, _ or .)."""
    return r"(?<![\w.])(?:" + "|".join(re.escape(n) for n in names) + r")\b"


def check_raises(fname, exc, names, overrides, d, message=None):
    args, kwargs = build_call(fname, d, overrides)
    snap = Snapshot(
        **{f"arg{i}": a for i, a in enumerate(args)},
        **{k: v for k, v in kwargs.items() if k != "out"},
    )
    with pytest.raises(exc, match=names_pattern(*names)) as info:
        getattr(sf, fname)(*args, **kwargs)
    snap.assert_unchanged()
    if message is not None:
        assert re.search(message, str(info.value)), str(info.value)
    return info


def _ragged(a):
    a = np.asarray(a)
    rows = a.tolist() if a.ndim == 2 else [[v] for v in a.tolist()]
    rows[-1] = rows[-1] + [0.0]
    return rows


def _masked(a):
    mask = np.zeros(np.shape(a), dtype=bool)
    mask.flat[0] = True
    return np.ma.masked_array(a, mask=mask)


# Wrong objects for any array argument: kind -> (make the bad value from the good one, exception)
WRONG_OBJECTS = {
    "None": (lambda a: None, TypeError),
    "ragged-list": (_ragged, ValueError),
    "masked-entries": (_masked, ValueError),
    "structured": (lambda a: np.zeros(np.shape(a), dtype=[("v", "f8")]), TypeError),
    "datetime64": (lambda a: np.zeros(np.shape(a), dtype="M8[s]"), TypeError),
    "timedelta64": (lambda a: np.zeros(np.shape(a), dtype="m8[s]"), TypeError),
    "nested-str-list": (lambda a: np.asarray(a).astype(str).tolist(), TypeError),
}


# ---------------------------------------------------------------------------------------------
# The case table: (case id, functions, exception, names the message must contain, overrides,
# optionally a regex the message must match too)
# ---------------------------------------------------------------------------------------------


def _cases():
    d = base_data()
    Z, X, W, b, y, Y, w = d["Z"], d["X"], d["W"], d["b"], d["y"], d["Y"], d["w"]
    strings = np.array([["a"] * K] * M)
    cases = []

    def add(case_id, funcs, exc, names, overrides, message=None):
        for f in funcs:
            cases.append(pytest.param(f, exc, names, overrides, message, id=f"{f}-{case_id}"))

    def with_weights(fname, overrides):
        """``overrides`` plus the (good) sample weights, for the functions that take them."""
        return {"sample_weight": w, **overrides} if fname in W_FUNCS else overrides

    good = {"Z": Z, "y": y, "X": X, "W": W, "b": b, "sample_weight": w}

    # ---- TypeError: bool / complex / object / str / bytes arrays ----------------------------
    for kind, make in (
        ("bool", lambda a: a > 0),
        ("complex", lambda a: a.astype(np.complex128)),
        ("object", lambda a: a.astype(object)),
        ("str", lambda a: a.astype(str)),
        ("bytes", lambda a: a.astype("S8")),
    ):
        add(f"Z-{kind}", Z_FUNCS, TypeError, ("Z",), {"Z": make(Z)})
        add(f"X-{kind}", X_FUNCS, TypeError, ("X",), {"X": make(X)})
        add(f"W-{kind}", X_FUNCS, TypeError, ("W",), {"W": make(W)})
        add(f"b-{kind}", X_FUNCS, TypeError, ("b",), {"b": make(b)})
        add(
            f"sample_weight-{kind}",
            W_FUNCS,
            TypeError,
            ("sample_weight",),
            {"sample_weight": make(w)},
        )
    add("Z-strings", Z_FUNCS, TypeError, ("Z",), {"Z": strings})
    # y: bool labels, bool one-hot, complex, object, strings, 1-D float (not taken as labels).
    add("y-bool", Y_FUNCS, TypeError, ("y",), {"y": y > 1})
    add("y-bool-onehot", Y_FUNCS, TypeError, ("y",), {"y": np.eye(K, dtype=bool)[y]})
    add("y-complex", Y_FUNCS, TypeError, ("y",), {"y": Y.astype(np.complex128)})
    add("y-object", Y_FUNCS, TypeError, ("y",), {"y": y.astype(object)})
    add("y-str", Y_FUNCS, TypeError, ("y",), {"y": y.astype(str)})
    add("y-float-1d", Y_FUNCS, TypeError, ("y",), {"y": y.astype(np.float64)})
    add("y-float32-1d", Y_FUNCS, TypeError, ("y",), {"y": y.astype(np.float32)})
    for f in Y_FUNCS:  # float labels with a NaN
        nan_labels = np.where(np.arange(M) == 2, np.nan, y)
        add("y-float-nan", (f,), TypeError, ("y",), with_weights(f, {"y": nan_labels}))
    # n_threads: not an int, or a bool.
    for bad in (1.5, 2.0, "2", True, False, [2]):
        add(f"n_threads-{bad!r}", ALL_FUNCS, TypeError, ("n_threads",), {"n_threads": bad})
    for bad_id, bad in (
        ("np.float64", np.float64(2.0)),
        ("complex", 2 + 0j),
        ("object", object()),
        ("bytes", b"2"),
    ):
        for f in ALL_FUNCS:
            overrides = with_weights(f, {"n_threads": bad})
            add(f"n_threads-{bad_id}", (f,), TypeError, ("n_threads",), overrides)
    # alpha: not a real number (a bool, a list or an array neither).
    for bad_id, bad in (
        ("None", None),
        ("str", "0.1"),
        ("bool", True),
        ("complex", 0.5j),
        ("list", [0.1]),
        ("array", np.array([0.1, 0.2])),
    ):
        f = "loss_and_grad"
        add(f"alpha-{bad_id}", (f,), TypeError, ("alpha",), with_weights(f, {"alpha": bad}))
    # out: not a numpy array, or a masked one.
    add("out-list", OUT_FUNCS, TypeError, ("out",), {"out": np.zeros((M, K)).tolist()})
    add("out-masked", OUT_FUNCS, TypeError, ("out",), {"out": np.ma.masked_array(np.zeros((M, K)))})

    # ---- wrong objects for every array argument ---------------------------------------------
    for fname, arrays in ARRAYS.items():
        for arg in arrays:
            for kind, (make, exc) in WRONG_OBJECTS.items():
                if kind == "None" and arg in ("b", "sample_weight"):
                    continue  # None is their default
                overrides = with_weights(fname, {arg: make(good[arg])})
                add(f"{arg}-{kind}", (fname,), exc, (arg,), overrides)

    # ---- float16 NaN / inf: converted to float64 first, still caught ------------------------
    for fname, arrays in ARRAYS.items():
        for arg in arrays:
            if arg == "y":
                continue
            for v_id, value in (("nan", np.nan), ("inf", np.inf), ("-inf", -np.inf)):
                bad = np.asarray(good[arg], dtype=np.float16).copy()
                bad.flat[1] = value
                if arg == "Z" and value == -np.inf:
                    bad[1] = -np.inf  # one -inf is allowed; a row of them is not
                overrides = with_weights(fname, {arg: bad})
                add(f"{arg}-float16-{v_id}", (fname,), ValueError, (arg,), overrides)

    # ---- ValueError: wrong number of dimensions ---------------------------------------------
    add("Z-1d", Z_FUNCS, ValueError, ("Z",), {"Z": Z[0]})
    add("Z-0d", Z_FUNCS, ValueError, ("Z",), {"Z": np.float64(1.0)})
    add("Z-3d", Z_FUNCS, ValueError, ("Z",), {"Z": Z[None]})
    add("X-1d", X_FUNCS, ValueError, ("X",), {"X": X[0]})
    add("X-3d", X_FUNCS, ValueError, ("X",), {"X": X[None]})
    add("W-1d", X_FUNCS, ValueError, ("W",), {"W": W[0]})
    add("W-3d", X_FUNCS, ValueError, ("W",), {"W": W[None]})
    add("b-2d", X_FUNCS, ValueError, ("b",), {"b": b[None]})
    add("b-0d", X_FUNCS, ValueError, ("b",), {"b": np.float64(1.0)})
    add("y-3d", Y_FUNCS, ValueError, ("y",), {"y": Y[None]})
    add("y-0d", Y_FUNCS, ValueError, ("y",), {"y": np.int64(1)})
    add("sample_weight-2d", W_FUNCS, ValueError, ("sample_weight",), {"sample_weight": w[None]})

    # ---- mismatched shapes ------------------------------------------------------------------
    W_wide = np.ones((K, N + 1))
    add("X-vs-W", X_FUNCS, ValueError, ("X", "W"), {"W": W_wide})
    add("y-labels-long", Y_FUNCS, ValueError, ("y",), {"y": np.append(y, 0)})
    add("y-labels-short", Y_FUNCS, ValueError, ("y",), {"y": y[:-1]})
    add("y-probs-K", Y_FUNCS, ValueError, ("y",), {"y": np.full((M, K + 1), 1.0 / (K + 1))})
    add("y-probs-m", Y_FUNCS, ValueError, ("y",), {"y": np.full((M + 1, K), 1.0 / K)})
    add("b-vs-W", X_FUNCS, ValueError, ("b",), {"b": np.zeros(K + 1)})
    add("b-vs-W-short", X_FUNCS, ValueError, ("b",), {"b": np.zeros(K - 1)})
    add(
        "sample_weight-long",
        W_FUNCS,
        ValueError,
        ("sample_weight",),
        {"sample_weight": np.ones(M + 1)},
    )
    add(
        "sample_weight-short",
        W_FUNCS,
        ValueError,
        ("sample_weight",),
        {"sample_weight": np.ones(M - 1)},
    )
    add("out-shape-K", OUT_FUNCS, ValueError, ("out",), {"out": np.zeros((M, K + 1))})
    add("out-shape-m", OUT_FUNCS, ValueError, ("out",), {"out": np.zeros((M + 1, K))})
    add("out-1d", OUT_FUNCS, ValueError, ("out",), {"out": np.zeros(M * K)})
    add("out-transposed", OUT_FUNCS, ValueError, ("out",), {"out": np.zeros((K, M))})

    # ---- K = 0 / m = 0 ----------------------------------------------------------------------
    Z0 = np.zeros((M, 0))
    add("Z-K0", ("softmax", "log_softmax", "logsumexp"), ValueError, ("Z",), {"Z": Z0})
    add(
        "Z-K0",
        ("cross_entropy", "cross_entropy_grad"),
        ValueError,
        ("Z",),
        {"Z": Z0, "y": np.zeros((M, 0))},
    )
    add(
        "W-K0", ("predict_proba", "predict"), ValueError, ("W",), {"W": np.zeros((0, N)), "b": None}
    )
    add(
        "Z-m0-K0",
        ("softmax", "log_softmax", "logsumexp"),
        ValueError,
        ("Z",),
        {"Z": np.zeros((0, 0))},
    )
    add(
        "W-m0-K0",
        ("predict_proba", "predict"),
        ValueError,
        ("W",),
        {"X": np.zeros((0, N)), "W": np.zeros((0, N)), "b": None},
    )
    add(
        "W-K0",
        ("loss_and_grad",),
        ValueError,
        ("W",),
        {"W": np.zeros((0, N)), "b": None, "y": np.zeros((M, 0))},
    )
    add(
        "Z-m0",
        ("cross_entropy", "cross_entropy_grad"),
        ValueError,
        ("Z", "y"),
        {"Z": np.zeros((0, K)), "y": np.zeros(0, dtype=np.int64)},
    )
    add(
        "Z-m0-probs",
        ("cross_entropy", "cross_entropy_grad"),
        ValueError,
        ("Z", "y"),
        {"Z": np.zeros((0, K)), "y": np.zeros((0, K))},
    )
    add(
        "X-m0",
        ("loss_and_grad",),
        ValueError,
        ("X", "y"),
        {"X": np.zeros((0, N)), "y": np.zeros(0, dtype=np.int64)},
    )

    # ---- labels outside [0, K) --------------------------------------------------------------
    for label_id, labels in (
        ("neg", np.where(np.arange(M) == 2, -1, y)),
        ("K", np.where(np.arange(M) == 4, K, y)),
        ("huge", np.where(np.arange(M) == 0, 10**12, y)),
        ("int8-neg", np.where(np.arange(M) == 1, -1, y).astype(np.int8)),
        ("uint8-255", np.where(np.arange(M) == 5, 255, y).astype(np.uint8)),
        # Not np.where(..., uint64 max, y): NumPy 1.26 promotes that to float64 (2**64).
        (
            "uint64-max",
            np.where(np.arange(M) == 3, np.uint64(np.iinfo(np.uint64).max), y.astype(np.uint64)),
        ),
    ):
        add(f"y-label-{label_id}", Y_FUNCS, ValueError, ("y",), {"y": labels})
    # int64 labels at the ends of the range: the message names the label and its row
    for label_id, extreme in (
        ("int64-max", np.iinfo(np.int64).max),
        ("int64-min", np.iinfo(np.int64).min),
        ("2**62", 2**62),
    ):
        labels = np.where(np.arange(M) == 4, extreme, y).astype(np.int64)
        for f in Y_FUNCS:
            add(
                f"y-label-{label_id}",
                (f,),
                ValueError,
                ("y",),
                with_weights(f, {"y": labels}),
                message=r"\by: label -?\d+ in row 4\b",
            )

    # ---- target probabilities ----------------------------------------------------------------
    def bad_rows(value_row):
        T = Y.copy()
        T[2] = value_row
        return T

    for t_id, row in (
        ("negative", [1.5, -0.5, 0.0, 0.0]),
        ("nan", [np.nan, 0.5, 0.5, 0.0]),
        ("inf", [np.inf, 0.0, 0.0, 0.0]),
        ("sum-half", [0.25, 0.25, 0.0, 0.0]),
        ("sum-two", [1.0, 1.0, 0.0, 0.0]),
        ("zeros", [0.0, 0.0, 0.0, 0.0]),
        ("sum-1e-3", [0.501, 0.5, 0.0, 0.0]),
    ):
        add(f"y-probs-{t_id}", Y_FUNCS, ValueError, ("y",), {"y": bad_rows(row)})
    # -inf in a row of uniform targets: the message names the row
    T = np.full((M, K), 1.0 / K)
    T[3, 0] = -np.inf
    for f in Y_FUNCS:
        overrides = with_weights(f, {"y": T})
        add("y-probs-neginf", (f,), ValueError, ("y",), overrides, message=r"\by: row 3\b")

    # ---- sample weights ----------------------------------------------------------------------
    for w_id, value in (("negative", -0.5), ("nan", np.nan), ("inf", np.inf), ("-inf", -np.inf)):
        ww = w.copy()
        ww[3] = value
        add(f"sample_weight-{w_id}", W_FUNCS, ValueError, ("sample_weight",), {"sample_weight": ww})
    add(
        "sample_weight-zeros",
        W_FUNCS,
        ValueError,
        ("sample_weight",),
        {"sample_weight": np.zeros(M)},
    )
    add(
        "sample_weight-int-zeros",
        W_FUNCS,
        ValueError,
        ("sample_weight",),
        {"sample_weight": np.zeros(M, dtype=np.int64)},
    )

    # ---- out: dtype, read-only ---------------------------------------------------------------
    add("out-float32", OUT_FUNCS, ValueError, ("out",), {"out": np.zeros((M, K), np.float32)})
    add("out-int64", OUT_FUNCS, ValueError, ("out",), {"out": np.zeros((M, K), np.int64)})
    add(
        "out-float32-for-int-Z",
        OUT_FUNCS,
        ValueError,
        ("out",),
        {"Z": np.ones((M, K), np.int32), "out": np.zeros((M, K), np.float32)},
    )
    add(
        "out-float64-for-float32-Z",
        OUT_FUNCS,
        ValueError,
        ("out",),
        {"Z": Z.astype(np.float32), "out": np.zeros((M, K))},
    )
    ro = np.zeros((M, K))
    ro.flags.writeable = False
    add("out-readonly", OUT_FUNCS, ValueError, ("out",), {"out": ro})

    # ---- n_threads <= 0, unknown reduction, bad alpha ---------------------------------------
    for bad in (0, -1, -8):
        add(f"n_threads-{bad}", ALL_FUNCS, ValueError, ("n_threads",), {"n_threads": bad})
    for bad in ("avg", "MEAN", "", "means"):
        add(
            f"reduction-{bad!r}", ("cross_entropy",), ValueError, ("reduction",), {"reduction": bad}
        )
    # reduction that is not a string: a ValueError too (the value is not one of the three)
    for bad_id, bad in (
        ("None", None),
        ("int", 1),
        ("bytes", b"mean"),
        ("array", np.array(["mean", "sum"])),
        ("list", ["mean"]),
    ):
        f = "cross_entropy"
        overrides = with_weights(f, {"reduction": bad})
        add(f"reduction-{bad_id}", (f,), ValueError, ("reduction",), overrides)
    for bad in (-0.1, -np.inf, np.nan, np.inf):
        add(f"alpha-{bad!r}", ("loss_and_grad",), ValueError, ("alpha",), {"alpha": bad})

    # ---- non-finite W or b -------------------------------------------------------------------
    for v_id, value in (("nan", np.nan), ("inf", np.inf), ("-inf", -np.inf)):
        Wb = W.copy()
        Wb[1, 2] = value
        add(f"W-{v_id}", X_FUNCS, ValueError, ("W",), {"W": Wb})
        bb = b.copy()
        bb[2] = value
        add(f"b-{v_id}", X_FUNCS, ValueError, ("b",), {"b": bb})
    return cases


@pytest.mark.parametrize(("fname", "exc", "names", "overrides", "message"), _cases())
def test_bad_input(fname, exc, names, overrides, message):
    check_raises(fname, exc, names, overrides, base_data(), message)


# ---------------------------------------------------------------------------------------------
# NaN / +inf logits and all -inf rows: the message names the first offending row
# ---------------------------------------------------------------------------------------------


def _row_pattern(i):
    return rf"\brow {i}\b"


def _z_with(rows, values, dtype, m=M):
    Z = base_data(dtype, m)["Z"]
    for r, v in zip(rows, values, strict=True):
        if v == "all-inf":
            Z[r] = -np.inf
        else:
            Z[r, 1] = v
    return Z


BAD_LOGITS = [("nan", np.nan), ("inf", np.inf), ("all-neginf", "all-inf")]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("kind", "value"), BAD_LOGITS, ids=[k for k, _ in BAD_LOGITS])
@pytest.mark.parametrize("fname", Z_FUNCS)
def test_bad_logit_names_row(fname, kind, value, dtype):
    d = base_data(dtype)
    Z = _z_with([3], [value], dtype)
    args, kwargs = build_call(fname, d, {"Z": Z})
    snap = Snapshot(Z=Z)
    with pytest.raises(ValueError, match=_row_pattern(3)) as info:
        getattr(sf, fname)(*args, **kwargs)
    snap.assert_unchanged()
    # The message names the argument too.
    assert re.search(names_pattern("Z"), str(info.value)), str(info.value)


@pytest.mark.parametrize("fname", Z_FUNCS)
def test_first_offending_row_is_named(fname):
    d = base_data()
    # rows 2 (all -inf), 3 (NaN) and 5 (+inf) are bad: row 2 is the first.
    Z = _z_with([5, 3, 2], [np.inf, np.nan, "all-inf"], np.float64)
    args, kwargs = build_call(fname, d, {"Z": Z})
    with pytest.raises(ValueError, match=_row_pattern(2)) as info:
        getattr(sf, fname)(*args, **kwargs)
    assert not re.search(r"\brow [35]\b", str(info.value)), str(info.value)


def test_single_class_minus_inf_row_is_an_error():
    Z = np.zeros((5, 1))
    Z[4, 0] = -np.inf
    for fname in ("softmax", "log_softmax", "logsumexp"):
        with pytest.raises(ValueError, match=_row_pattern(4)):
            getattr(sf, fname)(Z)
    with pytest.raises(ValueError, match=_row_pattern(4)):
        sf.cross_entropy(Z, np.zeros(5, dtype=np.int64))


@pytest.mark.parametrize("n_threads", [1, 2, 4])
@pytest.mark.parametrize("fname", Z_FUNCS + X_FUNCS)
def test_first_offending_row_with_threads(fname, n_threads):
    # Many rows, several bad ones spread over what each thread would get; row 2400 is first.
    m = 5000
    d = base_data(np.float64, m)
    bad = {"Z": [4700, 2600, 2400, 4999], "X": [4700, 2600, 2400, 4999]}
    if fname in Z_FUNCS:
        Z = d["Z"].copy()
        Z[bad["Z"], 0] = np.nan
        overrides = {"Z": Z}
    else:
        X = d["X"].copy()
        X[bad["X"], 1] = np.nan
        overrides = {"X": X}
    overrides["n_threads"] = n_threads
    args, kwargs = build_call(fname, d, overrides)
    with pytest.raises(ValueError, match=_row_pattern(2400)) as info:
        getattr(sf, fname)(*args, **kwargs)
    assert not re.search(r"\brow (?:2600|4700|4999)\b", str(info.value)), str(info.value)


def _x_cases():
    d = base_data()
    X, W = d["X"], d["W"]
    cases = []
    Xn = X.copy()
    Xn[3, 1] = np.nan
    cases.append(("X-nan", {"X": Xn}))
    Xi = X.copy()
    Xi[3, 0] = np.inf
    cases.append(("X-inf", {"X": Xi}))
    # Finite X whose logits overflow to +inf inside the kernel.
    Xo = X.copy()
    Xo[3] = 1e308
    cases.append(("X-overflow", {"X": Xo, "W": np.abs(W) + 1.0}))
    # -inf in X with positive W: every logit of row 3 is -inf.
    Xm = X.copy()
    Xm[3, 2] = -np.inf
    cases.append(("X-all-neginf-logits", {"X": Xm, "W": np.abs(W) + 1.0}))
    return cases


X_CASES = _x_cases()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("case_id", "overrides"), X_CASES, ids=[c for c, _ in X_CASES])
@pytest.mark.parametrize("fname", X_FUNCS)
def test_bad_logits_from_x_name_row(fname, case_id, overrides, dtype):
    d = base_data(dtype)
    overrides = {k: v.copy() for k, v in overrides.items()}
    if case_id == "X-overflow" and dtype == np.float32:
        overrides["X"][3] = 2e38  # times W >= 1, summed over 3 features: > float32 max
    overrides = {k: v.astype(dtype) for k, v in overrides.items()}
    args, kwargs = build_call(fname, d, overrides)
    snap = Snapshot(**overrides)
    with pytest.raises(ValueError, match=_row_pattern(3)) as info:
        getattr(sf, fname)(*args, **kwargs)
    snap.assert_unchanged()
    assert re.search(names_pattern("X", "W", "b"), str(info.value)), str(info.value)


@pytest.mark.parametrize("fname", X_FUNCS)
def test_bad_x_row_with_sample_weight_and_alpha(fname):
    d = base_data()
    X = d["X"].copy()
    X[4, 0] = np.nan
    extra = {"alpha": 0.5, "sample_weight": d["w"]} if fname == "loss_and_grad" else {}
    args, kwargs = build_call(fname, d, {"X": X, **extra})
    with pytest.raises(ValueError, match=_row_pattern(4)):
        getattr(sf, fname)(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# Other API misuse
# ---------------------------------------------------------------------------------------------


def test_options_are_keyword_only():
    d = base_data()
    Z, y, X, W, b = d["Z"], d["y"], d["X"], d["W"], d["b"]
    with pytest.raises(TypeError):
        sf.softmax(Z, np.empty_like(Z))
    with pytest.raises(TypeError):
        sf.log_softmax(Z, np.empty_like(Z))
    with pytest.raises(TypeError):
        sf.logsumexp(Z, 1)
    with pytest.raises(TypeError):
        sf.cross_entropy(Z, y, d["w"])
    with pytest.raises(TypeError):
        sf.cross_entropy_grad(Z, y, d["w"])
    with pytest.raises(TypeError):
        sf.loss_and_grad(X, y, W, b, 0.1)
    with pytest.raises(TypeError):
        sf.predict_proba(X, W, b, 1)
    with pytest.raises(TypeError):
        sf.predict(X, W, b, 1)


def test_in_place_on_read_only_z_is_refused():
    Z = base_data()["Z"].copy()
    Z.flags.writeable = False
    before = Z.copy()
    for fname in OUT_FUNCS:
        with pytest.raises(ValueError, match=names_pattern("out")):
            getattr(sf, fname)(Z, out=Z)
    np.testing.assert_array_equal(Z, before)


def test_target_rows_within_tolerance_are_accepted():
    d = base_data()
    Z, Y = d["Z"], d["Y"].copy()
    # float64: sqrt(eps) ~ 1.5e-8; a relative error of 1e-10 in the row sums is fine.
    Y *= 1 + 1e-10
    assert np.isfinite(sf.cross_entropy(Z, Y))
    # float32 logits: the tolerance is sqrt(eps32) ~ 3.5e-4; float32-rounded rows are fine.
    assert np.isfinite(sf.cross_entropy(Z.astype(np.float32), Y.astype(np.float32)))


def test_errors_do_not_break_later_calls():
    # A failing call must leave the module usable (no leaked state, no crash).
    d = base_data()
    Z = d["Z"].copy()
    Z[1, 1] = np.nan
    for _ in range(3):
        with pytest.raises(ValueError):
            sf.softmax(Z, n_threads=2)
        with pytest.raises(ValueError):
            sf.loss_and_grad(d["X"], np.full(M, K), d["W"], d["b"], n_threads=2)
    P = sf.softmax(d["Z"], n_threads=2)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Sparse X
# ---------------------------------------------------------------------------------------------


def sparse_x(dtype=np.float64, index_dtype=np.int32, m=M, container=sp.csr_matrix):
    """base_data's X with the entry (i, i mod N) of every row i zeroed, as a fresh CSR with
    sorted indices of ``index_dtype``: row i stores exactly two entries, at positions 2i and
    2i + 1 of data and indices (indptr = 0, 2, 4, ...)."""
    X = base_data(dtype, m)["X"].copy()
    X[np.arange(m), np.arange(m) % N] = 0
    A = container(X)
    A.indices = A.indices.astype(index_dtype)
    A.indptr = A.indptr.astype(index_dtype)
    assert A.nnz == 2 * m and np.array_equal(A.indptr, 2 * np.arange(m + 1))
    return A


def _with(X, **arrays):
    """X with some of its arrays replaced (assigned after construction: scipy checks nothing)."""
    for name, value in arrays.items():
        setattr(X, name, value)
    return X


def _data_with(X, positions, values):
    data = X.data.copy()
    data[positions] = values
    return _with(X, data=data)


def _indices_with(X, position, value):
    indices = X.indices.copy()
    indices[position] = value
    return _with(X, indices=indices)


def _indptr_with(X, position, value):
    indptr = X.indptr.copy()
    indptr[position] = value
    return _with(X, indptr=indptr)


def _huge_int32_csr():
    """(1, 2**31) CSR with int32 indices: scipy's constructor upcasts the index arrays to int64
    for that shape, so the int32 ones are assigned afterwards (scipy lets that through)."""
    data, indices, indptr = np.ones(1), np.array([5], np.int32), np.array([0, 1], np.int32)
    X = sp.csr_matrix((data, indices, indptr), shape=(1, 2**31))
    assert X.indices.dtype == np.int64  # scipy's own choice for 2**31 columns
    return _with(X, indices=indices, indptr=indptr)


def _sparse_of_dtype(dtype):
    X = sparse_x()
    if dtype is object:  # scipy.sparse refuses object data at construction: assigned after
        return _with(X, data=X.data.astype(object))
    return X.astype(dtype)


OTHER_FORMATS = {
    "lil_matrix": lambda X: sp.lil_matrix(X),
    "lil_array": lambda X: sp.lil_array(X),
    "dok_matrix": lambda X: sp.dok_matrix(X),
    "dok_array": lambda X: sp.dok_array(X),
    "bsr_matrix": lambda X: sp.bsr_matrix(X),
    "bsr_array": lambda X: sp.bsr_array(X),
    "dia_matrix": lambda X: sp.dia_matrix(X),
    "dia_array": lambda X: sp.dia_array(X),
}


def _sparse_cases():
    """(case id, make the bad X (and other overrides), exception, names, message regex)."""
    W = base_data()["W"]
    cases = [
        # ---- non-finite stored values: the message names the first bad row --------------
        (
            "nan-row3",
            lambda: {"X": _data_with(sparse_x(), 6, np.nan)},
            ValueError,
            ("X",),
            r"\bX: row 3 contains NaN or infinity",
        ),
        (
            "inf-row3",
            lambda: {"X": _data_with(sparse_x(), 7, np.inf)},
            ValueError,
            ("X",),
            r"\bX: row 3 contains NaN or infinity",
        ),
        (
            "-inf-row3",
            lambda: {"X": _data_with(sparse_x(), 6, -np.inf)},
            ValueError,
            ("X",),
            r"\bX: row 3 contains NaN or infinity",
        ),
        (
            "nan-rows-4-and-2",
            lambda: {"X": _data_with(sparse_x(), [9, 5], np.nan)},
            ValueError,
            ("X",),
            r"\bX: row 2 contains",
        ),
        (
            "nan-float32-row5",
            lambda: {"X": _data_with(sparse_x(np.float32), 10, np.nan)},
            ValueError,
            ("X",),
            r"\bX: row 5 contains",
        ),
        (
            "inf-int64-indices-row1",
            lambda: {"X": _data_with(sparse_x(index_dtype=np.int64), 3, np.inf)},
            ValueError,
            ("X",),
            r"\bX: row 1 contains",
        ),
        (
            "nan-csr_array-row0",
            lambda: {"X": _data_with(sparse_x(container=sp.csr_array), 0, np.nan)},
            ValueError,
            ("X",),
            r"\bX: row 0 contains",
        ),
        # ---- column indices outside [0, n) --------------------------------------------------
        (
            "index-n-row2",
            lambda: {"X": _indices_with(sparse_x(), 4, N)},
            ValueError,
            ("X",),
            rf"\bX: column index {N} in row 2 is outside \[0, {N}\)",
        ),
        (
            "index-negative-row4",
            lambda: {"X": _indices_with(sparse_x(), 9, -1)},
            ValueError,
            ("X",),
            r"\bX: column index -1 in row 4 is outside",
        ),
        (
            "index-2**40-int64-row1",
            lambda: {"X": _indices_with(sparse_x(index_dtype=np.int64), 3, 2**40)},
            ValueError,
            ("X",),
            rf"\bX: column index {2**40} in row 1\b",
        ),
        (
            "index-int64-min-row0",
            lambda: {"X": _indices_with(sparse_x(index_dtype=np.int64), 0, np.iinfo(np.int64).min)},
            ValueError,
            ("X",),
            r"\bX: column index -\d+ in row 0\b",
        ),
        # ---- indptr --------------------------------------------------------------------------
        (
            "indptr-decreasing",
            lambda: {"X": _indptr_with(sparse_x(), 2, 1)},
            ValueError,
            ("X",),
            r"\bX: indptr is not non-decreasing \(row 1 ends before it starts\)",
        ),
        (
            "indptr-start-1",
            lambda: {"X": _indptr_with(sparse_x(), 0, 1)},
            ValueError,
            ("X",),
            r"start at 0 and end at the number of stored entries \(12\); got 1 and 12",
        ),
        (
            "indptr-end-short",
            lambda: {"X": _indptr_with(sparse_x(), -1, 11)},
            ValueError,
            ("X",),
            r"end at the number of stored entries \(12\); got 0 and 11",
        ),
        (
            "indptr-end-long",
            lambda: {"X": _indptr_with(sparse_x(), -1, 13)},
            ValueError,
            ("X",),
            r"end at the number of stored entries \(12\); got 0 and 13",
        ),
        (
            "indptr-length",
            lambda: {
                "X": (lambda X: _with(X, indptr=np.append(X.indptr, X.indptr[-1])))(sparse_x())
            },
            ValueError,
            ("X",),
            rf"indptr has {M + 2} entries; a matrix of {M} rows needs",
        ),
        (
            "indptr-float",
            lambda: {"X": (lambda X: _with(X, indptr=X.indptr.astype(np.float64)))(sparse_x())},
            TypeError,
            ("X",),
            r"\bX: indptr must be a 1-D integer array",
        ),
        (
            "indices-float",
            lambda: {"X": (lambda X: _with(X, indices=X.indices.astype(np.float64)))(sparse_x())},
            TypeError,
            ("X",),
            r"\bX: indices must be a 1-D integer array",
        ),
        (
            "data-short",
            lambda: {"X": (lambda X: _with(X, data=X.data[:-1].copy()))(sparse_x())},
            ValueError,
            ("X",),
            r"data has 11 entries but indices has 12",
        ),
        (
            "indices-short",
            lambda: {"X": (lambda X: _with(X, indices=X.indices[:-1].copy()))(sparse_x())},
            ValueError,
            ("X",),
            r"data has 12 entries but indices has 11",
        ),
        # ---- shapes ---------------------------------------------------------------------------
        (
            "W-more-columns",
            lambda: {"X": sparse_x(), "W": np.ones((K, N + 1))},
            ValueError,
            ("X", "W"),
            rf"\bW: has {N + 1} columns \(features\) but X has {N}\b",
        ),
        (
            "W-fewer-columns",
            lambda: {"X": sparse_x(), "W": np.ones((K, N - 1))},
            ValueError,
            ("X", "W"),
            rf"\bW: has {N - 1} columns \(features\) but X has {N}\b",
        ),
        (
            "W-K0",
            lambda: {"X": sparse_x(), "W": np.zeros((0, N)), "b": None},
            ValueError,
            ("W",),
            r"no classes",
        ),
        (
            "1-D-coo_array",
            lambda: {"X": _one_d_coo_array()},
            ValueError,
            ("X",),
            r"expected a 2-D sparse matrix, got 1-D",
        ),
        # ---- more than 2**31 - 1 columns with int32 indices ----------------------------------
        (
            "int32-indices-2**31-columns",
            lambda: {"X": _huge_int32_csr()},
            ValueError,
            ("X",),
            r"\bX: 2147483648 columns need int64 indices",
        ),
        # ---- logits that overflow (finite X and W) ---------------------------------------------
        (
            "overflow-row3",
            lambda: {"X": _data_with(sparse_x(), [6, 7], 1e308), "W": np.abs(W) + 1.0},
            ValueError,
            ("X",),
            r"\bX: the logits X @ W\.T \+ b of row 3 are not finite: the row contains \+inf",
        ),
        (
            "overflow-all-neginf-row3",
            lambda: {"X": _data_with(sparse_x(), [6, 7], -1e308), "W": np.abs(W) + 1.0},
            ValueError,
            ("X",),
            r"\bX: the logits .* of row 3 .* no finite logit",
        ),
        (
            "overflow-float64-b-row3",
            lambda: {
                "X": _data_with(sparse_x(), [6, 7], 1e308),
                "W": np.abs(W) + 1.0,
                "b": np.full(K, 1e308),
            },
            ValueError,
            ("X",),
            r"\bof row 3\b",
        ),
    ]
    # W huge: row 3 (values 1) overflows, the other rows (values 0.1) do not
    cases.append(
        (
            "overflow-W-huge-row3",
            lambda: {
                "X": _data_with(_with(sparse_x(), data=np.full(2 * M, 0.1)), [6, 7], 1.0),
                "W": np.full((K, N), 1e308),
                "b": None,
            },
            ValueError,
            ("X",),
            r"\bX: the logits X @ W\.T \+ b of row 3 are not finite",
        )
    )
    # ---- other scipy.sparse formats: a TypeError that says which ones are accepted ----------
    for fmt, make in OTHER_FORMATS.items():
        cases.append(
            (
                fmt,
                (lambda make=make: {"X": make(sparse_x())}),
                TypeError,
                ("X",),
                r"format '\w+' is not supported; pass CSR .*CSC or COO",
            )
        )
    # ---- dtypes that are not real numbers ----------------------------------------------------
    # Boolean data is refused as for dense X (a TypeError, not float64 0/1): scipy adds the
    # duplicates of a boolean matrix as a logical or (True + True = True) while a float64 copy
    # would hold 2.0, so what such a matrix means is ambiguous.  Integer data is accepted and
    # computed in float64 (test_sparse_kernels.py).
    for dt_id, dtype, word in (
        ("complex128", np.complex128, "complex"),
        ("complex64", np.complex64, "complex"),
        ("bool", np.bool_, "boolean"),
        ("object", object, "object"),
    ):
        cases.append(
            (
                f"dtype-{dt_id}",
                (lambda dtype=dtype: {"X": _sparse_of_dtype(dtype)}),
                TypeError,
                ("X",),
                rf"\bX: {word} arrays are not supported",
            )
        )
    return cases


SPARSE_BAD = _sparse_cases()


def check_sparse_raises(fname, exc, names, overrides, message):
    """As check_raises, for a sparse X: the caller's matrix unchanged after the failing call
    (sparse_inputs.snapshot: arrays, dtypes, attributes, cached flags), and no NaN result."""
    d = base_data()
    X = overrides["X"]
    m = X.shape[0] if X.ndim == 2 else M
    if m != M and fname == "loss_and_grad":
        overrides = {"y": np.zeros(m, dtype=np.int64), **overrides}
    args, kwargs = build_call(fname, d, overrides)
    sparse_snap = snapshot(X)
    snap = Snapshot(**{k: v for k, v in overrides.items() if k != "X"})
    with pytest.raises(exc, match=names_pattern(*names)) as info:
        getattr(sf, fname)(*args, **kwargs)
    assert_unchanged(X, sparse_snap)
    snap.assert_unchanged()
    if message is not None:
        assert re.search(message, str(info.value)), str(info.value)
    return info


def _one_d_coo_array():
    X = sp.coo_array(np.ones(N))
    if X.ndim != 1:
        pytest.skip("this SciPy (< 1.13) has no 1-D sparse arrays: coo_array(1-D) is 2-D")
    return X


@pytest.mark.parametrize("fname", X_FUNCS)
@pytest.mark.parametrize(
    ("case_id", "make", "exc", "names", "message"), SPARSE_BAD, ids=[c[0] for c in SPARSE_BAD]
)
def test_bad_sparse_x(fname, case_id, make, exc, names, message):
    check_sparse_raises(fname, exc, names, make(), message)


@pytest.mark.parametrize("fname", X_FUNCS)
def test_sparse_x_without_columns_for_huge_shape_with_int64_indices(fname):
    # int64 indices may name 2**31 columns; then W must have as many (and the kernels take at
    # most 2**31 - 1 features): the message names W and X's column count.
    X = _huge_int32_csr()
    X = _with(X, indices=X.indices.astype(np.int64), indptr=X.indptr.astype(np.int64))
    overrides = {"X": X, "y": np.zeros(1, np.int64)} if fname == "loss_and_grad" else {"X": X}
    check_sparse_raises(
        fname,
        ValueError,
        ("W",),
        overrides,
        rf"\bW: has {N} columns \(features\) but X has {2**31}\b",
    )


def test_sparse_x_without_rows_has_no_loss():
    X = sp.csr_matrix((0, N))
    check_sparse_raises(
        "loss_and_grad",
        ValueError,
        ("X",),
        {"X": X, "y": np.zeros(0, dtype=np.int64)},
        r"\bX: has no rows",
    )


@pytest.mark.parametrize(
    ("fname", "arg"),
    [
        ("predict", "W"),
        ("predict", "b"),
        ("loss_and_grad", "y"),
        ("loss_and_grad", "sample_weight"),
        ("softmax", "Z"),
        ("cross_entropy", "Z"),
    ],
)
def test_sparse_arguments_other_than_x_are_refused(fname, arg):
    d = base_data()
    good = {"W": d["W"], "b": d["b"], "y": np.eye(K)[d["y"]], "sample_weight": d["w"], "Z": d["Z"]}
    value = sp.csr_matrix(np.atleast_2d(good[arg]))
    overrides = {arg: value}
    if fname == "loss_and_grad" and arg != "y":
        overrides["y"] = d["y"]
    args, kwargs = build_call(fname, d, overrides)
    with pytest.raises((TypeError, ValueError), match=names_pattern(arg)):
        getattr(sf, fname)(*args, **kwargs)


@pytest.mark.parametrize("n_threads", [1, 2, 4])
@pytest.mark.parametrize("kind", ["nan", "overflow"])
@pytest.mark.parametrize("fname", X_FUNCS)
def test_first_offending_sparse_row_with_threads(fname, kind, n_threads):
    # Many rows, several bad ones spread over what each thread would get; row 2400 is first:
    # NaN is caught by the validation, overflowing logits by the kernel's row chunks.
    m = 5000
    X = sparse_x(m=m)
    bad_rows = np.array([4700, 2600, 2400, 4999])
    positions = np.concatenate([2 * bad_rows, 2 * bad_rows + 1])
    X = _data_with(X, positions, np.nan if kind == "nan" else 1e308)
    overrides = {"X": X, "n_threads": n_threads, "W": np.abs(base_data()["W"]) + 1.0}
    if fname == "loss_and_grad":
        overrides["y"] = np.zeros(m, dtype=np.int64)
    info = check_sparse_raises(fname, ValueError, ("X",), overrides, _row_pattern(2400))
    assert not re.search(r"\brow (?:2600|4700|4999)\b", str(info.value)), str(info.value)


def test_sparse_errors_do_not_break_later_calls():
    good = sparse_x()
    d = base_data()
    for _ in range(3):
        with pytest.raises(ValueError):
            sf.loss_and_grad(_data_with(sparse_x(), 3, np.nan), d["y"], d["W"], n_threads=2)
        with pytest.raises(ValueError):
            sf.predict(_indices_with(sparse_x(), 3, -5), d["W"], n_threads=2)
    P = sf.predict_proba(good, d["W"], d["b"], n_threads=2)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)


# CSC and COO input with a bad structure, each call in a forked child of one fresh interpreter
# (it imports softmax_fast once and runs no OpenMP region itself), so that a crash (segfault,
# heap corruption) shows as a failed case and not as a dead test run.
_CONVERTED_CASES = {
    # CSC: row indices outside [0, m) -- scipy's tocsr() writes outside its arrays
    "csc-row-index-m": "X = sp.csc_matrix(D); X.indices[2] = D.shape[0]",
    "csc-row-index-huge": "X = sp.csc_matrix(D); X.indices[2] = 10**9",
    "csc-row-index-negative": "X = sp.csc_matrix(D); X.indices[2] = -1",
    "csc-indptr-beyond-nnz": "X = sp.csc_matrix(D); X.indptr[1] = 10**6",
    "csc-indptr-decreasing": "X = sp.csc_matrix(D); X.indptr[1] = X.indptr[2] + 1",
    # COO: row or column indices outside the shape
    "coo-row-huge": "X = sp.coo_matrix(D); X.row[2] = 10**9",
    "coo-row-negative": "X = sp.coo_matrix(D); X.row[2] = -1",
    "coo-col-huge": "X = sp.coo_matrix(D); X.col[2] = 10**9",
    "coo-col-negative": "X = sp.coo_matrix(D); X.col[2] = -1",
    # non-finite values (converted first, then checked: the row is X's row)
    "csc-nan-row1": "X = sp.csc_matrix(D); X.data[5] = np.nan",
    "coo-inf-row2": "X = sp.coo_matrix(D); X.data[7] = np.inf",
}
_CONVERTED_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import numpy as np, scipy.sparse as sp
    import softmax_fast as sf

    D = np.arange(1.0, 13.0).reshape(4, 3)
    W = np.ones((2, 3))
    CASES = {cases!r}
    for case, build in CASES.items():
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            try:
                exec(build)
                sf.predict_proba(X, W)
                print(case, "RETURNED", flush=True)
            except BaseException as exc:
                print(case, "RAISED", type(exc).__name__, str(exc).replace(chr(10), " "),
                      flush=True)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print(case, "STATUS", status, flush=True)
    """
)


@pytest.fixture(scope="module")
def converted_results():
    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork")
    script = _CONVERTED_SCRIPT.format(cases=_CONVERTED_CASES)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = {}
    for line in result.stdout.splitlines():
        case, what, rest = (line.split(" ", 2) + [""])[:3]
        outcome.setdefault(case, {})[what] = rest
    return outcome


# Each is refused before any scipy conversion (which trusts the arrays: a row index outside
# [0, m) or an indptr past nnz would make it write outside its buffers).
_CONVERTED_EXPECTED = {
    "csc-row-index-m": r"^ValueError X: row index 4 in column \d+ is outside \[0, 4\)",
    "csc-row-index-huge": r"^ValueError X: row index 1000000000 in column \d+ is outside",
    "csc-row-index-negative": r"^ValueError X: row index -1 in column \d+ is outside",
    "csc-indptr-beyond-nnz": r"^ValueError X: indptr ",
    "csc-indptr-decreasing": r"^ValueError X: indptr is not non-decreasing",
    "coo-row-huge": r"^ValueError X: row index 1000000000 of stored entry \d+ is outside",
    "coo-row-negative": r"^ValueError X: row index -1 of stored entry \d+ is outside",
    "coo-col-huge": r"^ValueError X: column index 1000000000 in row 0 is outside",
    "coo-col-negative": r"^ValueError X: column index -1 in row 0 is outside",
    "csc-nan-row1": r"^ValueError X: row 1 contains NaN or infinity",
    "coo-inf-row2": r"^ValueError X: row 2 contains NaN or infinity",
}


@pytest.mark.parametrize("case", list(_CONVERTED_EXPECTED))
def test_bad_csc_and_coo_structure(case, converted_results):
    got = converted_results.get(case, {})
    assert got.get("STATUS") == "0", f"{case}: the child died (wait status {got.get('STATUS')})"
    assert "RAISED" in got, f"{case}: returned a result instead of raising ({got})"
    assert re.search(_CONVERTED_EXPECTED[case], got["RAISED"]), got["RAISED"]

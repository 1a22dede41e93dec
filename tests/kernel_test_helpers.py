"""Shared helpers of the softmax_fast test suite (the ``rng`` fixture is in conftest.py).

Nothing here imports ``softmax_fast``: the reference tests must be collectable even when the
compiled extension is not built.  The test modules import these plain functions with
``from kernel_test_helpers import ...``; the module has its own name because ``conftest`` is
ambiguous when ``pytest tests benchmarks`` collects both folders (each has a conftest.py).
"""

import numpy as np

FLOATS = (np.float32, np.float64)

# Memory layouts every kernel must accept.  "sliced" and "negstride" are non-contiguous views
# whose hidden neighbours hold poison values (NaN for floats, -1 for integers), so a kernel
# that ignores the strides reads garbage and fails loudly instead of silently passing.
LAYOUTS = ("C", "F", "sliced", "negstride", "readonly")

# Relative tolerances, applied against a float64 truth (the reference evaluated on the exact
# input values upcast to float64) and scaled by the magnitude of the result (see assert_close).
# float64: kernels and reference differ only in summation order and exp() rounding (~1e-15).
# float32: the float32 reference itself is off from the float64 truth by up to ~3e-6 of the
# result's max for the X @ W.T paths (measured), so 1e-5 leaves a ~4x margin.
_RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def tol(dtype):
    """Relative tolerance for results computed in ``dtype`` (float32 or float64)."""
    return _RTOL[np.dtype(dtype)]


EPS64 = float(np.finfo(np.float64).eps)


def logit_rounding(X64, W64, b64=None, eps=EPS64):
    """Per-row bound on the rounding of one evaluation of the logits X W^T + b in a dtype of
    unit ``eps``, in any summation order (a BLAS GEMM, whichever kernels the CPU gets, or the
    kernels' micro-kernels): (n + 1) eps max_j (|x_i| . |w_j| + |b_j|), shape (m,)."""
    magnitude = np.abs(X64) @ np.abs(W64).T
    if b64 is not None:
        magnitude = magnitude + np.abs(b64)
    return (X64.shape[1] + 1) * eps * magnitude.max(axis=1, initial=0.0)


def _softmax(Z):
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def gemm_allowances(X64, y, W64, b64, w):
    """First-order bounds on how far the float64 rounding of the logits (a GEMM in the kernel
    and in the reference: 2 logit_rounding per row, dz_i, whichever BLAS kernels the CPU gets)
    moves the results: dp_j/dz_k = p_j (delta_jk - p_k), so a probability by 2 p (1 - p) dz_i,
    dZ_ij by omega_i 2 p (1 - p) dz_i, dW and db by its sums (times |x_ik|), and a row's loss
    (gradient p - y) by |p - y|_1 dz_i.  Returns (loss, max dW, max db) allowances.
    """
    Z = X64 @ W64.T + (0.0 if b64 is None else b64)
    dz = 2 * logit_rounding(X64, W64, b64)
    wn = np.ones(Z.shape[0]) if w is None else np.asarray(w, dtype=np.float64)
    omega_dz = wn / wn.sum() * dz
    P = _softmax(Z)
    y = np.asarray(y)
    Y = one_hot(y, Z.shape[1]) if y.ndim == 1 else y.astype(np.float64)
    loss = float(omega_dz @ np.abs(P - Y).sum(axis=1))
    S = 2 * P * (1 - P) * omega_dz[:, None]
    return loss, float(np.max(S.T @ np.abs(X64), initial=0.0)), float(np.max(S, initial=0.0))


def proba_allowance(X64, W64, b64):
    """Relative bound on how far the float64 rounding of the logits in the kernel and the
    reference moves a probability: 2 (1 - p) dz_i (gemm_allowances), its max."""
    if X64.size == 0 or W64.size == 0:
        return 0.0
    Z = X64 @ W64.T + (0.0 if b64 is None else b64)
    return float((2 * (1 - _softmax(Z)) * 2 * logit_rounding(X64, W64, b64)[:, None]).max())


def proba_gemm_factor(X64, W64, b64, dtype):
    """Factor on tol(dtype) for probabilities that adds proba_allowance.  float32 results: the
    kernel's own float32 GEMM rounding is part of what tol(float32) measures (its worst case,
    n eps32 |logit|, would be ~1e-3 and useless)."""
    return 1.0 + proba_allowance(X64, W64, b64) / tol(dtype)


def compute_dtype(dtype):
    """The dtype the contract says a kernel computes in for an input of ``dtype``."""
    dtype = np.dtype(dtype)
    return dtype if dtype in (np.dtype(np.float32), np.dtype(np.float64)) else np.dtype(np.float64)


def _poison(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind in "fc":
        return np.nan
    if dtype.kind in "iu":
        return -1 if dtype.kind == "i" else np.iinfo(dtype).max
    return 0


def make_layout(a, kind):
    """A fresh array with the values of ``a`` in memory layout ``kind`` (see LAYOUTS).

    * "C": C-contiguous copy.           * "F": Fortran-ordered copy (not C-contiguous if 2-D).
    * "sliced": a strided view (every other row, every other column starting at 1) of a bigger
      array whose other entries are poison.
    * "negstride": a view with negative strides on every axis.
    * "readonly": C-contiguous copy with ``flags.writeable = False``.
    """
    a = np.asarray(a)
    if kind == "C":
        return np.array(a, order="C", copy=True)
    if kind == "F":
        return np.array(a, order="F", copy=True)
    if kind == "sliced":
        if a.ndim == 1:
            big = np.full(2 * a.shape[0] + 1, _poison(a.dtype), dtype=a.dtype)
            view = big[1::2]
        elif a.ndim == 2:
            big = np.full((2 * a.shape[0], 2 * a.shape[1] + 1), _poison(a.dtype), dtype=a.dtype)
            view = big[::2, 1::2]
        else:
            raise ValueError("make_layout: 1-D or 2-D only")
        view[...] = a
        assert a.size <= 1 or not view.flags.c_contiguous
        return view
    if kind == "negstride":
        idx = (slice(None, None, -1),) * a.ndim
        return a[idx].copy()[idx]
    if kind == "readonly":
        c = np.array(a, order="C", copy=True)
        c.flags.writeable = False
        return c
    raise ValueError(f"unknown layout {kind!r}")


def random_logits(rng, m, K, dtype=np.float64, scale=3.0, spread=50.0):
    """(m, K) logits: N(0, scale^2) plus a random per-row offset (so the max shift matters)."""
    Z = scale * rng.standard_normal((m, K)) + rng.uniform(-spread, spread, (m, 1))
    return Z.astype(dtype)


def random_labels(rng, m, K, dtype=np.int64):
    return rng.integers(0, K, size=m).astype(dtype)


def soft_targets(rng, m, K, dtype=np.float64, concentration=0.5):
    """(m, K) rows drawn from a Dirichlet distribution: non-negative, summing to 1."""
    if K == 1:
        return np.ones((m, 1), dtype=dtype)
    return rng.dirichlet(np.full(K, concentration), size=m).astype(dtype)


def one_hot(y, K, dtype=np.float64):
    Y = np.zeros((len(y), K), dtype=dtype)
    Y[np.arange(len(y)), np.asarray(y, dtype=np.intp)] = 1
    return Y


def random_weights(rng, m, zeros=True):
    """Positive sample weights in [0.1, 3); a few exact zeros when ``zeros`` (sum stays > 0)."""
    w = rng.uniform(0.1, 3.0, size=m)
    if zeros and m > 2:
        w[rng.choice(m, size=max(1, m // 5), replace=False)] = 0.0
        w[rng.integers(m)] = 1.0
    return w


def random_problem(rng, m, K, n, dtype=np.float64, logit_scale=3.0):
    """X (m, n), W (K, n), b (K,) in ``dtype`` with logits X @ W.T + b of size ~logit_scale."""
    X = rng.standard_normal((m, n))
    W = rng.standard_normal((K, n)) * (logit_scale / np.sqrt(n))
    b = rng.standard_normal(K)
    return X.astype(dtype), W.astype(dtype), b.astype(dtype)


def as64(a):
    """Exact float64 copy of an array (or None)."""
    return None if a is None else np.asarray(a).astype(np.float64)


def assert_close(actual, desired, dtype, *, scale=None, elementwise=False, factor=1.0, what=""):
    """Compare a kernel result with a float64 truth.

    Infinite entries must match exactly (same positions, same sign).  On finite entries the
    check is |actual - desired| <= t * scale with t = factor * tol(dtype) and ``scale`` the
    largest |desired| (or a caller-given conditioning scale), i.e. a norm-relative check.
    With ``elementwise`` it is additionally |actual - desired| <= t * |desired| (+ a tiny
    absolute slack for underflowed values), which is the right test for probabilities.
    """
    actual = np.asarray(actual)
    desired = np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, f"{what}: shape {actual.shape} != {desired.shape}"
    a = actual.astype(np.float64)
    assert not np.isnan(a).any() or np.array_equal(np.isnan(a), np.isnan(desired)), (
        f"{what}: unexpected NaN at {np.argwhere(np.isnan(a) & ~np.isnan(desired))[:5].tolist()}"
    )
    inf_d = np.isinf(desired)
    inf_a = np.isinf(a)
    assert np.array_equal(inf_a, inf_d), (
        f"{what}: infinities differ at {np.argwhere(inf_a != inf_d)[:5].tolist()}"
    )
    assert np.array_equal(a[inf_d], desired[inf_d]), f"{what}: infinities of the wrong sign"
    fin = np.isfinite(desired)
    if not fin.any():
        return
    t = factor * tol(dtype)
    d, x = desired[fin], a[fin]
    if scale is None:
        scale = float(np.max(np.abs(d)))
    scale = max(scale, np.finfo(np.float64).tiny)
    err = np.abs(x - d)
    worst = int(np.argmax(err))
    assert err[worst] <= t * scale, (
        f"{what}: max abs error {err[worst]:.3e} > {t:.1e} * {scale:.3e} "
        f"(got {x[worst]!r}, expected {d[worst]!r})"
    )
    if elementwise:
        tiny = 1e-300 if np.dtype(dtype) == np.float64 else 1e-35
        rel = err / (np.abs(d) + tiny / t)
        worst = int(np.argmax(rel))
        assert rel[worst] <= t, (
            f"{what}: elementwise relative error {rel[worst]:.3e} > {t:.1e} "
            f"(got {x[worst]!r}, expected {d[worst]!r})"
        )


def assert_scalar_close(actual, desired, dtype, *, factor=1.0, what=""):
    """A Python-float loss against its float64 truth, relative tolerance tol(dtype)."""
    assert isinstance(actual, float), f"{what}: expected a Python float, got {type(actual)}"
    if np.isinf(desired):
        assert actual == desired, f"{what}: got {actual!r}, expected {desired!r}"
        return
    t = factor * tol(dtype)
    assert abs(actual - desired) <= t * max(abs(desired), 1e-300), (
        f"{what}: got {actual!r}, expected {desired!r} (rtol {t:.1e})"
    )


class Snapshot:
    """Copies of arrays taken before a call, to check afterwards that nothing was modified."""

    def __init__(self, **arrays):
        self._items = {}
        for name, value in arrays.items():
            if isinstance(value, np.ndarray):
                self._items[name] = (value, value.copy(), value.flags.writeable, value.strides)
            elif isinstance(value, (list, dict)):
                self._items[name] = (value, _deepcopy(value), None, None)
            # Scalars, strings and None are immutable: nothing to check.

    def assert_unchanged(self):
        for name, (value, copy, writeable, strides) in self._items.items():
            if isinstance(value, np.ndarray):
                assert value.dtype == copy.dtype, f"{name}: dtype changed"
                assert value.strides == strides, f"{name}: strides changed"
                assert value.flags.writeable == writeable, f"{name}: writeable flag changed"
                equal_nan = value.dtype.kind in "fc"
                assert np.array_equal(value, copy, equal_nan=equal_nan), f"{name} was modified"
            else:
                assert value == copy, f"{name} was modified"


def _deepcopy(value):
    import copy

    return copy.deepcopy(value)


def central_diff(f, x, h=1e-6):
    """Central finite differences of the scalar f() with respect to every entry of x (in place,
    restored)."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + h
        fp = f()
        x[idx] = old - h
        fm = f()
        x[idx] = old
        g[idx] = (fp - fm) / (2 * h)
    return g


# The array arguments of each public kernel function, in call order (sample_weight: a keyword):
# the one table of the public signatures that the bad-input and odd-input tests walk.
PUBLIC_ARRAY_ARGS = {
    "softmax": ("Z",),
    "log_softmax": ("Z",),
    "logsumexp": ("Z",),
    "cross_entropy": ("Z", "y", "sample_weight"),
    "cross_entropy_grad": ("Z", "y", "sample_weight"),
    "loss_and_grad": ("X", "y", "W", "b", "sample_weight"),
    "predict_proba": ("X", "W", "b"),
    "predict": ("X", "W", "b"),
}

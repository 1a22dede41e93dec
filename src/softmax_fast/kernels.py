"""Public kernel functions: validate, apply the dtype policy, resolve n_threads, allocate outputs,
call the compiled kernels (``_kernels``) and turn their status codes into exceptions.

Shapes: ``Z`` (m, K) logits, rows are samples and columns classes; ``X`` (m, n); ``W`` (K, n) like
scikit-learn's ``coef_``; ``b`` (K,).  ``y`` is either integer class indices (m,) in [0, K) or
target probabilities (m, K).  float32 data stays float32; other real dtypes become float64.
All kernels release the GIL and run on ``n_threads`` OpenMP threads (None: all available cores).
"""

import itertools
import threading
from contextlib import contextmanager, nullcontext

import numpy as np
from threadpoolctl import ThreadpoolController

from . import _kernels
from ._validation import (
    as_float_array,
    check_alpha,
    check_finite,
    check_n_classes,
    check_out,
    check_rows,
    check_sample_weight,
    check_targets,
    effective_n_threads,
    scaled_weights,
    threads_for_rows,
)

__all__ = [
    "softmax",
    "log_softmax",
    "logsumexp",
    "cross_entropy",
    "cross_entropy_grad",
    "loss_and_grad",
    "predict_proba",
    "predict",
]

_SOFTMAX, _LOG_SOFTMAX, _LOGSUMEXP = 0, 1, 2
_REDUCTIONS = ("mean", "sum", "none")

# Bytes of one row tile (X rows plus their logits) that a thread keeps in cache between the
# logits GEMM and the gradient GEMM; see benchmarks/RESULTS.md for how it was chosen.
_TILE_BYTES = 256 * 1024
_MIN_TILE_ROWS, _MAX_TILE_ROWS = 64, 1024

# The tile products use the AVX2+FMA micro-kernels where the CPU has them and K is small; tests
# set this to False to check the BLAS path on the same inputs.
_USE_SMALL_GEMM = True

_blas_lock = threading.Lock()
_blas_libs = None  # [(get_num_threads, set_num_threads)] of the loaded BLAS libraries
_blas_users = 0  # calls now on the BLAS tile path (under _blas_lock)
_blas_saved = []  # [(set_num_threads, thread count before the first of those calls)]


def _uses_small_gemm(n, K, dtype):
    return (
        _USE_SMALL_GEMM
        and n > 0
        and _kernels.small_gemm_available()
        and K <= _kernels.small_gemm_max_k(dtype == np.float32)
    )


def _blas_threads_for(n, K, dtype):
    """Context keeping BLAS to one thread while the kernel calls it on tiles (nothing to do when
    the micro-kernels, not BLAS, do the tile products).

    Always one BLAS thread, whatever ``n_threads``: several OpenMP threads each running a
    multi-threaded BLAS would oversubscribe the cores, and OpenBLAS's sgemm/dgemm round
    differently with 1 and 2 threads (they split the product differently), so a result must
    not depend on which BLAS thread count happened to be in effect.  With one OpenMP thread the
    tiles (at most 1024 rows) are too small for BLAS threads to pay off anyway.
    """
    if _uses_small_gemm(n, K, dtype):
        return nullcontext()
    return _one_blas_thread()


def _openblas_functions(lib):
    """openblas_get/set_num_threads of a threadpoolctl OpenBLAS controller, called directly."""
    for prefix, suffix in itertools.product(("", "scipy_"), ("", "64_", "_64")):
        get = getattr(lib.dynlib, f"{prefix}openblas_get_num_threads{suffix}", None)
        set_ = getattr(lib.dynlib, f"{prefix}openblas_set_num_threads{suffix}", None)
        if get is not None and set_ is not None:
            return get, set_
    return None


def _find_blas_libs():
    libs = []
    for lib in ThreadpoolController().select(user_api="blas").lib_controllers:
        functions = None
        # internal_api is "openblas" (scipy's build may be "scipy_openblas" in some versions)
        if "openblas" in lib.internal_api and getattr(lib, "threading_layer", "") == "pthreads":
            # threadpoolctl >= 3.8 lets only one Python thread (the first to set a limit, usually
            # the main thread) change the limit of an OpenBLAS with its own pthreads pool and
            # silently ignores the others; the pool is process-wide, so any thread may set it.
            functions = _openblas_functions(lib)
        libs.append(functions or (lib.get_num_threads, lib.set_num_threads))
    return libs


@contextmanager
def _one_blas_thread():
    """BLAS limited to one thread for as long as any call is on the BLAS tile path.

    The BLAS thread count is process-wide (OpenBLAS with pthreads: one shared pool).  A plain
    ``with threadpoolctl.threadpool_limits(1)`` around every call is not enough when calls run
    in several Python threads at once: the first to finish restores multi-threaded BLAS under
    the others (whose tile products then round differently from a serial call's), and recent
    threadpoolctl ignores limits set from any thread but one.  So a counter under a lock: the
    first call in sets every BLAS library to one thread, the last one out restores the previous
    counts.  (A limit another thread sets meanwhile is overwritten by that restore.)
    """
    global _blas_libs, _blas_users, _blas_saved
    with _blas_lock:
        if _blas_users == 0:
            if _blas_libs is None:
                _blas_libs = _find_blas_libs()
            _blas_saved = [(set_, get()) for get, set_ in _blas_libs]
            for set_, _ in _blas_saved:
                set_(1)
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                for set_, n in _blas_saved:
                    if n is not None:
                        set_(n)
                _blas_saved = []


def _tile_rows(n, K, itemsize):
    rows = _TILE_BYTES // max(1, (n + K) * itemsize)
    return int(min(_MAX_TILE_ROWS, max(_MIN_TILE_ROWS, rows - rows % 8)))


# ----------------------------------------------------------------------------- error reporting


def _describe_bad_logits(z):
    if np.isnan(z).any():
        return "contains NaN"
    if np.isposinf(z).any():
        return "contains +inf"
    return "has no finite logit (all -inf)"


def _raise_bad_row(Z, row, name="Z"):
    raise ValueError(
        f"{name}: row {row} {_describe_bad_logits(Z[row])}; logits must be finite or -inf"
    )


def _raise_bad_linear_row(X, W, b, row):
    if not np.all(np.isfinite(X[row])):
        raise ValueError(f"X: row {row} contains NaN or infinity")
    with np.errstate(over="ignore", invalid="ignore"):  # describing the overflow, not causing it
        z = X[row].astype(np.float64) @ W.T.astype(np.float64)
        if b is not None:
            z = z + b
    raise ValueError(
        f"X: the logits X @ W.T + b of row {row} are not finite: the row {_describe_bad_logits(z)}"
    )


# ----------------------------------------------------------------------------- softmax family


def _rowwise(Z, out, n_threads, mode):
    Zc = as_float_array(Z, "Z", ndim=2)
    m, K = Zc.shape
    check_n_classes(K, "Z")
    nt = threads_for_rows(effective_n_threads(n_threads), m)
    shape = (m,) if mode == _LOGSUMEXP else (m, K)
    direct = None
    if out is not None:
        check_out(out, shape, Zc.dtype)
        # Write straight into `out` when it is C-contiguous and either is Zc itself (in place:
        # the kernel reads every element before writing it) or does not overlap Zc.
        in_place = out.ctypes.data == Zc.ctypes.data and mode != _LOGSUMEXP
        if (
            out.flags.c_contiguous
            and out.flags.aligned
            and (in_place or not np.may_share_memory(out, Zc))
        ):
            direct = out
    result = direct if direct is not None else np.empty(shape, dtype=Zc.dtype)
    # np.asarray: a subclass `out` (np.matrix) would stay 2-D under reshape(-1)
    bad = _kernels.softmax_rows(Zc, np.asarray(result).reshape(-1), mode, nt)
    if bad >= 0:
        _raise_bad_row(Zc, bad)
    if out is not None and direct is None:
        out[...] = result
        return out
    return result


def softmax(Z, *, out=None, n_threads=None):
    """Row-wise softmax, ``exp(z - max z) / sum(exp(z - max z))``.

    Parameters
    ----------
    Z : array_like of shape (m, K)
        Logits.  Entries may be -inf (probability 0) if each row keeps one finite logit.
    out : ndarray of shape (m, K), optional
        Where to write the result (the result's dtype); ``out=Z`` works in place.
    n_threads : int or None
        OpenMP threads; None uses all available cores.

    Returns
    -------
    ndarray of shape (m, K)
    """
    return _rowwise(Z, out, n_threads, _SOFTMAX)


def log_softmax(Z, *, out=None, n_threads=None):
    """Row-wise log-softmax ``z - max z - log(sum(exp(z - max z)))`` (never ``log(softmax)``).

    Parameters and result as for :func:`softmax`.
    """
    return _rowwise(Z, out, n_threads, _LOG_SOFTMAX)


def logsumexp(Z, *, n_threads=None):
    """Row-wise ``log(sum(exp(z)))`` computed as ``max z + log(sum(exp(z - max z)))``.

    Returns
    -------
    ndarray of shape (m,)
    """
    return _rowwise(Z, None, n_threads, _LOGSUMEXP)


# ----------------------------------------------------------------------------- cross-entropy


def _cross_entropy_inputs(Z, y, sample_weight):
    Zc = as_float_array(Z, "Z", ndim=2)
    m, K = Zc.shape
    check_n_classes(K, "Z")
    check_rows(m, "Z")
    labels, Y = check_targets(y, m, K, Zc.dtype)
    w, w_total = check_sample_weight(sample_weight, m)
    return Zc, labels, Y, w, w_total


def _weighted_sum_without_zero_weight_rows(Zc, labels, Y, w, nt):
    """``sum_i w_i l_i`` with the rows of weight 0 counting 0.

    The kernels compute ``w_i * l_i``, which is 0 * inf = NaN for a row of weight 0 whose loss
    is +inf (a -inf logit on its target class).  Such a row must not count; this slow path
    (one more pass, with per-row losses) runs only when the kernel's sum came back NaN.
    """
    row_loss = np.empty(Zc.shape[0])
    _kernels.cross_entropy(Zc, labels, Y, w, 0.0, row_loss, None, nt)
    row_loss[w == 0] = 0.0
    return float(row_loss.sum())


def cross_entropy(Z, y, *, sample_weight=None, reduction="mean", n_threads=None):
    """Cross-entropy ``l_i = -sum_k y_ik log softmax(z_i)_k`` of logits against targets.

    Parameters
    ----------
    Z : array_like of shape (m, K)
        Logits.
    y : array_like of shape (m,) or (m, K)
        Integer class indices in [0, K), or target probabilities (one-hot or soft rows).
    sample_weight : array_like of shape (m,), optional
        Non-negative row weights w_i (default 1).
    reduction : {"mean", "sum", "none"}
        "mean": ``sum(w_i l_i) / sum(w_i)``; "sum": ``sum(w_i l_i)``; "none": ``w_i l_i``.
    n_threads : int or None

    Returns
    -------
    float, or ndarray of shape (m,) (float64) for ``reduction="none"``
    """
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"reduction: must be one of {_REDUCTIONS}, got {reduction!r}")
    Zc, labels, Y, w, w_total = _cross_entropy_inputs(Z, y, sample_weight)
    nt = threads_for_rows(effective_n_threads(n_threads), Zc.shape[0])
    if reduction == "mean" and w is not None:
        w, w_total = scaled_weights(w)  # the same mean, without overflow of sum(w)
    row_loss = np.empty(Zc.shape[0]) if reduction == "none" else None
    bad, total = _kernels.cross_entropy(Zc, labels, Y, w, 0.0, row_loss, None, nt)
    if bad >= 0:
        _raise_bad_row(Zc, bad)
    if reduction == "none":
        if w is not None:
            row_loss[w == 0] = 0.0  # not 0 * inf = NaN (see the helper above)
        return row_loss
    if w is not None and np.isnan(total):
        total = _weighted_sum_without_zero_weight_rows(Zc, labels, Y, w, nt)
    return total / w_total if reduction == "mean" else total


def cross_entropy_grad(Z, y, *, sample_weight=None, n_threads=None):
    """Mean cross-entropy and its gradient with respect to the logits.

    ``dZ = (softmax(Z) - Y) * w_i / sum(w)``: the piece to chain through any differentiable
    model f(x; theta) whose outputs are the logits.

    Returns
    -------
    loss : float
        ``sum(w_i l_i) / sum(w_i)``.
    dZ : ndarray of shape (m, K), Z's dtype
    """
    Zc, labels, Y, w, w_total = _cross_entropy_inputs(Z, y, sample_weight)
    nt = threads_for_rows(effective_n_threads(n_threads), Zc.shape[0])
    if w is not None:
        w, w_total = scaled_weights(w)  # 1 / sum(w) neither overflows nor is 0
    dZ = np.empty_like(Zc)
    bad, total = _kernels.cross_entropy(Zc, labels, Y, w, 1.0 / w_total, None, dZ, nt)
    if bad >= 0:
        _raise_bad_row(Zc, bad)
    if w is not None and np.isnan(total):
        total = _weighted_sum_without_zero_weight_rows(Zc, labels, Y, w, nt)
    return total / w_total, dZ


# ----------------------------------------------------------------------------- linear model


def _linear_inputs(X, W, b):
    Xc = as_float_array(X, "X", ndim=2)
    Wc = as_float_array(W, "W", ndim=2, dtype=Xc.dtype)
    K, n = Wc.shape
    check_n_classes(K, "W")
    if n != Xc.shape[1]:
        raise ValueError(f"W: has {n} columns (features) but X has {Xc.shape[1]}")
    check_finite(Wc, "W")
    bc = None
    if b is not None:
        bc = as_float_array(b, "b", ndim=1, dtype=Xc.dtype)
        if bc.shape[0] != K:
            raise ValueError(f"b: has {bc.shape[0]} entries but W has {K} rows (classes)")
        check_finite(bc, "b")
    if max(n, K) >= 2**31:
        raise ValueError("W: more than 2**31 - 1 features or classes is not supported")
    return Xc, Wc, bc


def loss_and_grad(X, y, W, b=None, *, alpha=0.0, sample_weight=None, n_threads=None):
    """Softmax-regression objective and its gradient, fused in one pass over X.

    ``J = sum_i w_i CE(softmax(W x_i + b), y_i) / sum_i w_i + (alpha / 2) ||W||_F^2``

    Parameters
    ----------
    X : array_like of shape (m, n)
    y : array_like of shape (m,) or (m, K)
        Integer class indices, or target probabilities.
    W : array_like of shape (K, n)
        Coefficients (cast to X's dtype).
    b : array_like of shape (K,), optional
        Intercepts (not penalized).  None: no intercept.
    alpha : float
        L2 penalty strength, >= 0.
    sample_weight : array_like of shape (m,), optional
    n_threads : int or None

    Returns
    -------
    loss : float
    dW : ndarray of shape (K, n)
        ``(A - Y)^T diag(w) X / sum(w) + alpha W``, X's dtype.
    db : ndarray of shape (K,) or None
        ``sum_i w_i (a_i - y_i) / sum(w)``, or None when ``b`` is None.
    """
    alpha = check_alpha(alpha)
    Xc, Wc, bc = _linear_inputs(X, W, b)
    m = Xc.shape[0]
    check_rows(m, "X")
    labels, Y = check_targets(y, m, Wc.shape[0], Xc.dtype)
    w, w_total = check_sample_weight(sample_weight, m)
    if w is not None:
        w, w_total = scaled_weights(w)  # 1 / sum(w) neither overflows nor is 0
    nt = threads_for_rows(effective_n_threads(n_threads), m)
    tile = _tile_rows(Xc.shape[1], Wc.shape[0], Xc.itemsize)
    n, K = Wc.shape[1], Wc.shape[0]
    with _blas_threads_for(n, K, Xc.dtype):
        bad, total, dW, db = _kernels.loss_and_grad(
            Xc, labels, Y, Wc, bc, w, 1.0 / w_total, tile, nt, _USE_SMALL_GEMM
        )
    if bad >= 0:
        _raise_bad_linear_row(Xc, Wc, bc, bad)
    if w is not None and np.isnan(total):
        # rows of weight 0 with an infinite loss gave 0 * inf = NaN: the sum without them
        keep = w > 0
        args = (Xc[keep], None if labels is None else labels[keep], None if Y is None else Y[keep])
        with _blas_threads_for(n, K, Xc.dtype):
            _, total, _, _ = _kernels.loss_and_grad(
                *args, Wc, bc, w[keep], 1.0 / w_total, tile, nt, _USE_SMALL_GEMM
            )
    loss = total / w_total
    if alpha:
        W64 = Wc.astype(np.float64, copy=False)
        loss += 0.5 * alpha * float(np.dot(W64.ravel(), W64.ravel()))
        dW += alpha * W64
    return loss, dW.astype(Xc.dtype, copy=False), None if db is None else db.astype(Xc.dtype)


def _linear_predict(X, W, b, n_threads, want_proba):
    Xc, Wc, bc = _linear_inputs(X, W, b)
    m, K = Xc.shape[0], Wc.shape[0]
    nt = threads_for_rows(effective_n_threads(n_threads), m)
    tile = _tile_rows(Xc.shape[1], K, Xc.itemsize)
    proba = np.empty((m, K), dtype=Xc.dtype) if want_proba else None
    labels = None if want_proba else np.empty(m, dtype=np.intp)
    with _blas_threads_for(Xc.shape[1], K, Xc.dtype):
        bad = _kernels.predict(Xc, Wc, bc, proba, labels, tile, nt, _USE_SMALL_GEMM)
    if bad >= 0:
        _raise_bad_linear_row(Xc, Wc, bc, bad)
    return proba if want_proba else labels


def predict_proba(X, W, b=None, *, n_threads=None):
    """Class probabilities ``softmax(X W^T + b)``, shape (m, K), X's dtype."""
    return _linear_predict(X, W, b, n_threads, want_proba=True)


def predict(X, W, b=None, *, n_threads=None):
    """Most probable class ``argmax_k (X W^T + b)_k`` per row (ties: lowest index), shape (m,).

    No (m, K) temporary: logits live in per-thread tiles.
    """
    return _linear_predict(X, W, b, n_threads, want_proba=False)

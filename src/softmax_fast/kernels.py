"""Public kernel functions: validate, apply the dtype policy, resolve n_threads, allocate outputs,
call the compiled kernels (``_native``) and turn their status codes into exceptions.

Shapes: ``Z`` (m, K) logits, rows are samples and columns classes; ``X`` (m, n); ``W`` (K, n) like
scikit-learn's ``coef_``; ``b`` (K,).  ``y`` is either integer class indices (m,) in [0, K) or
target probabilities (m, K).  float32 data stays float32; other real dtypes become float64.
The linear kernels (``loss_and_grad``, ``predict_proba``, ``predict``) also take ``X`` as a
``scipy.sparse`` CSR matrix or array (CSC and COO are converted once to CSR), never densified.
All kernels release the GIL and run on ``n_threads`` OpenMP threads (None: all available cores).
"""

from typing import Literal

import numpy as np
import numpy.typing as npt

from ._design import CSRDesign, DenseDesign, raise_bad_row
from ._native import rowwise as _native_rowwise
from ._native.rowwise import RowwiseMode
from ._objective import add_l2_penalty
from ._threads import ROWWISE_WORK_PER_LOGIT, effective_n_threads, team_for_work
from ._validation import (
    as_csr_arrays,
    as_float_array,
    check_alpha,
    check_finite,
    check_n_classes,
    check_out,
    check_rows,
    check_sample_weight,
    check_targets,
    is_sparse,
    scaled_weights,
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

_REDUCTIONS = ("mean", "sum", "none")

ArrayLike = npt.ArrayLike
NDArray = np.ndarray


def _rowwise_team(n_threads, m, K):
    return team_for_work(effective_n_threads(n_threads), m, m * K * ROWWISE_WORK_PER_LOGIT)


# ----------------------------------------------------------------------------- softmax family


def _rowwise(Z, out, n_threads, mode):
    Zc = as_float_array(Z, "Z", ndim=2)
    m, K = Zc.shape
    check_n_classes(K, "Z")
    nt = _rowwise_team(n_threads, m, K)
    shape = (m,) if mode == RowwiseMode.LOGSUMEXP else (m, K)
    direct = None
    if out is not None:
        check_out(out, shape, Zc.dtype)
        # Write straight into `out` when it is C-contiguous and either is Zc itself (in place:
        # the kernel reads every element before writing it) or does not overlap Zc.
        in_place = out.ctypes.data == Zc.ctypes.data and mode != RowwiseMode.LOGSUMEXP
        if (
            out.flags.c_contiguous
            and out.flags.aligned
            and (in_place or not np.may_share_memory(out, Zc))
        ):
            direct = out
    result = direct if direct is not None else np.empty(shape, dtype=Zc.dtype)
    # np.asarray: a subclass `out` (np.matrix) would stay 2-D under reshape(-1)
    bad = _native_rowwise.softmax_rows(Zc, np.asarray(result).reshape(-1), mode, nt)
    if bad >= 0:
        raise_bad_row(Zc, bad)
    if out is not None and direct is None:
        out[...] = result
        return out
    return result


def softmax(Z: ArrayLike, *, out: NDArray | None = None, n_threads: int | None = None) -> NDArray:
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
    return _rowwise(Z, out, n_threads, RowwiseMode.SOFTMAX)


def log_softmax(
    Z: ArrayLike, *, out: NDArray | None = None, n_threads: int | None = None
) -> NDArray:
    """Row-wise log-softmax ``z - max z - log(sum(exp(z - max z)))`` (never ``log(softmax)``).

    Parameters and result as for :func:`softmax`.
    """
    return _rowwise(Z, out, n_threads, RowwiseMode.LOG_SOFTMAX)


def logsumexp(Z: ArrayLike, *, n_threads: int | None = None) -> NDArray:
    """Row-wise ``log(sum(exp(z)))`` computed as ``max z + log(sum(exp(z - max z)))``.

    Returns
    -------
    ndarray of shape (m,)
    """
    return _rowwise(Z, None, n_threads, RowwiseMode.LOGSUMEXP)


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
    _native_rowwise.cross_entropy(Zc, labels, Y, w, 0.0, row_loss, None, nt)
    row_loss[w == 0] = 0.0
    return float(row_loss.sum())


def cross_entropy(
    Z: ArrayLike,
    y: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Literal["mean", "sum", "none"] = "mean",
    n_threads: int | None = None,
) -> float | NDArray:
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
    nt = _rowwise_team(n_threads, *Zc.shape)
    if reduction == "mean" and w is not None:
        w, w_total = scaled_weights(w)  # the same mean, without overflow of sum(w)
    row_loss = np.empty(Zc.shape[0]) if reduction == "none" else None
    bad, total = _native_rowwise.cross_entropy(Zc, labels, Y, w, 0.0, row_loss, None, nt)
    if bad >= 0:
        raise_bad_row(Zc, bad)
    if row_loss is not None:  # reduction == "none"
        if w is not None:
            row_loss[w == 0] = 0.0  # not 0 * inf = NaN (see the helper above)
        return row_loss
    if w is not None and np.isnan(total):
        total = _weighted_sum_without_zero_weight_rows(Zc, labels, Y, w, nt)
    return total / w_total if reduction == "mean" else total


def cross_entropy_grad(
    Z: ArrayLike,
    y: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    n_threads: int | None = None,
) -> tuple[float, NDArray]:
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
    nt = _rowwise_team(n_threads, *Zc.shape)
    if w is not None:
        w, w_total = scaled_weights(w)  # 1 / sum(w) neither overflows nor is 0
    dZ = np.empty_like(Zc)
    bad, total = _native_rowwise.cross_entropy(Zc, labels, Y, w, 1.0 / w_total, None, dZ, nt)
    if bad >= 0:
        raise_bad_row(Zc, bad)
    if w is not None and np.isnan(total):
        total = _weighted_sum_without_zero_weight_rows(Zc, labels, Y, w, nt)
    return total / w_total, dZ


# ----------------------------------------------------------------------------- linear model


def _linear_inputs(X, W, b, n_threads):
    """(design, W, b) of a linear kernel call: dense X as a C-contiguous float array, sparse X
    as validated CSR arrays (never densified); W and b in X's dtype."""
    if is_sparse(X):
        Xc = as_csr_arrays(X, "X")
        design: DenseDesign | CSRDesign = CSRDesign(Xc, effective_n_threads(n_threads))
        n_columns = Xc.shape[1]
    else:
        Xd = as_float_array(X, "X", ndim=2)
        design = DenseDesign(Xd, effective_n_threads(n_threads))
        n_columns = Xd.shape[1]
    Wc = as_float_array(W, "W", ndim=2, dtype=design.dtype)
    K, n = Wc.shape
    check_n_classes(K, "W")
    if n != n_columns:
        raise ValueError(f"W: has {n} columns (features) but X has {n_columns}")
    check_finite(Wc, "W")
    bc = None
    if b is not None:
        bc = as_float_array(b, "b", ndim=1, dtype=design.dtype)
        if bc.shape[0] != K:
            raise ValueError(f"b: has {bc.shape[0]} entries but W has {K} rows (classes)")
        check_finite(bc, "b")
    if max(n, K) >= 2**31:
        raise ValueError("W: more than 2**31 - 1 features or classes is not supported")
    return design, Wc, bc


def loss_and_grad(
    X: ArrayLike,
    y: ArrayLike,
    W: ArrayLike,
    b: ArrayLike | None = None,
    *,
    alpha: float = 0.0,
    sample_weight: ArrayLike | None = None,
    n_threads: int | None = None,
) -> tuple[float, NDArray, NDArray | None]:
    """Softmax-regression objective and its gradient, fused in one pass over X.

    ``J = sum_i w_i CE(softmax(W x_i + b), y_i) / sum_i w_i + (alpha / 2) ||W||_F^2``

    Parameters
    ----------
    X : array_like or scipy.sparse matrix/array of shape (m, n)
        Dense, or sparse: CSR as it is (int32 or int64 indices; unsorted or repeated column
        indices and explicit zeros are fine, repeats add up); CSC and COO are converted once to
        CSR; other sparse formats are a TypeError.  Sparse X is never densified and never
        modified.
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
    design, Wc, bc = _linear_inputs(X, W, b, n_threads)
    m = design.n_samples
    check_rows(m, "X")
    labels, Y = check_targets(y, m, Wc.shape[0], design.dtype)
    w, w_total = check_sample_weight(sample_weight, m)
    if w is not None:
        w, w_total = scaled_weights(w)  # 1 / sum(w) neither overflows nor is 0
    total, dW, db = design.class_major_loss_grad(Wc, bc, labels, Y, w, 1.0 / w_total)
    loss = total / w_total + add_l2_penalty(dW, Wc, alpha, design.n_threads)
    dW = np.ascontiguousarray(dW, dtype=design.dtype)
    return loss, dW, None if db is None else db.astype(design.dtype)


def _linear_predict(X, W, b, n_threads, want_proba):
    design, Wc, bc = _linear_inputs(X, W, b, n_threads)
    return design.predict_proba(Wc, bc) if want_proba else design.predict(Wc, bc)


def predict_proba(
    X: ArrayLike, W: ArrayLike, b: ArrayLike | None = None, *, n_threads: int | None = None
) -> NDArray:
    """Class probabilities ``softmax(X W^T + b)``, shape (m, K), X's dtype.

    ``X`` dense (m, n), or scipy.sparse as for :func:`loss_and_grad`.
    """
    return _linear_predict(X, W, b, n_threads, want_proba=True)


def predict(
    X: ArrayLike, W: ArrayLike, b: ArrayLike | None = None, *, n_threads: int | None = None
) -> NDArray:
    """Most probable class ``argmax_k (X W^T + b)_k`` per row (ties: lowest index), shape (m,).

    ``X`` dense (m, n), or scipy.sparse as for :func:`loss_and_grad`.  No (m, K) temporary:
    logits live in per-thread tiles (dense) or row blocks (CSR).
    """
    return _linear_predict(X, W, b, n_threads, want_proba=False)

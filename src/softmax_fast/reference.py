"""Plain NumPy reference for every softmax_fast kernel.

Written straight from the formulas, vectorized as anyone would write it (matrix products through
BLAS, or scipy.sparse's for a sparse X; no Python loops over rows).  It is the independent truth
that the tests and benchmarks compare the compiled kernels against, so it imports nothing else
from the package and does no input validation beyond what NumPy and SciPy themselves do.

Conventions (the same as the compiled kernels):

* ``Z`` has shape (m, K): rows are samples, columns are classes.
* ``y`` is either integer class indices of shape (m,) or target probabilities of shape (m, K).
* ``W`` has shape (K, n) (like scikit-learn's ``coef_``), ``b`` shape (K,), ``X`` shape (m, n).
* ``X`` (of ``loss_and_grad``, ``predict_proba`` and ``predict``) is dense, or a ``scipy.sparse``
  matrix or array of any format (CSR, CSC, COO, ...).  A sparse ``X`` is converted to CSR on a
  copy (the caller's object is never modified: no ``sum_duplicates``/``sort_indices`` on it) and
  used only through scipy.sparse's products, ``X @ W.T`` and ``(X.T @ G).T``: it is never
  densified.  Duplicate entries count as their sum, explicit zeros as zeros, and unsorted
  indices are fine, as scipy.sparse means them.
* Dtypes: float32 and float64 inputs are computed in their own dtype, and so is ``np.longdouble``
  (an extended-precision truth for the tests; scipy.sparse supports it too); any other dtype
  (integers, booleans) is computed in float64.  The same holds for a sparse ``X``'s data, which
  is converted before its duplicates are summed (two duplicate ``True`` entries count 2).
* Sample weights ``w`` (shape (m,)) weight each row's loss; the mean is sum(w * loss) / sum(w).
  A row of weight 0 counts 0, even when its loss is +inf.

The maths::

    softmax(z)_k      = exp(z_k - max z) / sum_j exp(z_j - max z)
    logsumexp(z)      = max z + log sum_j exp(z_j - max z)
    log_softmax(z)_k  = z_k - logsumexp(z)
    CE(z, y)          = -sum_k y_k log_softmax(z)_k          (y one-hot, soft, or an index)
    dCE/dz            = softmax(z) - y
    J(W, b)           = sum_i w_i CE(W x_i + b, y_i) / sum_i w_i + alpha/2 ||W||_F^2
    dJ/dW             = (A - Y)^T diag(w) X / sum(w) + alpha W
    dJ/db             = sum_i w_i (a_i - y_i) / sum(w)
    d2J/dz_i dz_i^T   = w_i (diag(a_i) - a_i a_i^T) / sum(w)       (targets summing to 1)
    H (V, c)          = D^T X + alpha V, D^T 1,  D = w (A * (R - rowsum(A * R))) / sum(w),
                        R = X V^T + c                               (Hessian-vector product)
"""

import numpy as np
from scipy.sparse import issparse

__all__ = [
    "softmax",
    "log_softmax",
    "logsumexp",
    "cross_entropy",
    "cross_entropy_grad",
    "loss_and_grad",
    "predict_proba",
    "predict",
    "hess_vec",
    "hessian",
    "one_hot",
]


_FLOATS = (np.float32, np.float64, np.longdouble)


def _as_float(a):
    """float32 and float64 stay as they are; so does ``np.longdouble``, in which the tests
    evaluate the reference as an extended-precision truth; anything else becomes float64."""
    a = np.asarray(a)
    return a if a.dtype in _FLOATS else a.astype(np.float64)


def _as_float_X(X):
    """A design matrix: dense as in ``_as_float``; a scipy.sparse one (any format) as a new CSR
    matrix or array of our own (``tocsr(copy=True)``: for a CSR input, ``tocsr()`` alone would
    return the caller's object), its data dtype chosen as in ``_as_float``."""
    if not issparse(X):
        return _as_float(X)
    X = X.tocsr(copy=True)
    return X if X.dtype in _FLOATS else X.astype(np.float64)


def _logits(X, W, b):
    """Z = X W^T + b, shape (m, K), in X's dtype; a dense ndarray for a sparse X too (scipy.sparse's
    sparse @ dense product)."""
    Z = np.asarray(X @ W.T)
    if b is not None:
        Z = Z + np.asarray(b, dtype=X.dtype)
    return Z


def one_hot(y, n_classes, dtype=np.float64):
    """Integer labels (m,) -> one-hot matrix (m, n_classes)."""
    y = np.asarray(y)
    Y = np.zeros((y.shape[0], n_classes), dtype=dtype)
    Y[np.arange(y.shape[0]), y] = 1
    return Y


def _targets(y, n_classes, dtype):
    """Labels or probabilities -> probability matrix (m, K)."""
    y = np.asarray(y)
    if y.ndim == 1:
        return one_hot(y, n_classes, dtype)
    return y.astype(dtype, copy=False)


def _weights(sample_weight, m, dtype=np.float64):
    """Row weights in float64, or in ``dtype`` when that is wider (long double)."""
    dtype = np.promote_types(np.float64, dtype)
    if sample_weight is None:
        return np.ones(m, dtype=dtype)
    return np.asarray(sample_weight, dtype=dtype)


def _weighted(w, losses):
    """w_i * l_i, with 0 for a row of weight 0 even when its loss is +inf (not 0 * inf = NaN):
    a row of weight 0 is left out of the objective."""
    return w * np.where(w > 0, losses, 0.0)


def logsumexp(Z):
    """Row-wise log(sum(exp(Z))), shape (m,), computed on max-shifted logits."""
    Z = _as_float(Z)
    zmax = Z.max(axis=1, keepdims=True)
    return (zmax + np.log(np.exp(Z - zmax).sum(axis=1, keepdims=True)))[:, 0]


def softmax(Z):
    """Row-wise softmax, shape (m, K): exp(Z - max) / sum(exp(Z - max))."""
    Z = _as_float(Z)
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def log_softmax(Z):
    """Row-wise log-softmax, shape (m, K): Z - max - log(sum(exp(Z - max)))."""
    Z = _as_float(Z)
    shifted = Z - Z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _row_cross_entropy(Z, y):
    """Per-row cross-entropy -sum_k y_k log_softmax(z)_k, shape (m,), with 0 * log 0 = 0."""
    logp = log_softmax(Z)
    y = np.asarray(y)
    if y.ndim == 1:
        return -logp[np.arange(Z.shape[0]), y]
    Y = y.astype(logp.dtype, copy=False)
    # Classes with zero target contribute nothing, even where log p = -inf (masked logits).
    return -np.where(Y > 0, Y * logp, 0.0).sum(axis=1)


def cross_entropy(Z, y, sample_weight=None, reduction="mean"):
    """Cross-entropy of logits Z against labels or target probabilities y.

    reduction: "mean" -> sum(w * l) / sum(w); "sum" -> sum(w * l); "none" -> w * l, shape (m,).
    """
    Z = _as_float(Z)
    losses = _row_cross_entropy(Z, y)
    w = _weights(sample_weight, Z.shape[0], Z.dtype)
    if reduction == "none":
        return losses if sample_weight is None else _weighted(w, losses)
    total = float(np.sum(_weighted(w, losses)))
    return total / float(w.sum()) if reduction == "mean" else total


def cross_entropy_grad(Z, y, sample_weight=None):
    """Mean cross-entropy and its gradient w.r.t. Z: dZ = (softmax(Z) - Y) * w_i / sum(w)."""
    Z = _as_float(Z)
    w = _weights(sample_weight, Z.shape[0], Z.dtype)
    loss = cross_entropy(Z, y, sample_weight)
    dZ = (softmax(Z) - _targets(y, Z.shape[1], Z.dtype)) * (w / w.sum())[:, None]
    return loss, dZ.astype(Z.dtype, copy=False)


def loss_and_grad(X, y, W, b=None, alpha=0.0, sample_weight=None):
    """Softmax-regression objective and gradients (loss, dW (K, n), db (K,) or None)."""
    X = _as_float_X(X)
    W = np.asarray(W, dtype=X.dtype)
    Z = _logits(X, W, b)
    w = _weights(sample_weight, X.shape[0], X.dtype)
    # No penalty term at all when alpha = 0 (0 * ||W||^2 would be NaN if ||W||^2 overflows).
    penalty = 0.5 * alpha * float(np.sum(W.astype(np.float64) ** 2)) if alpha else 0.0
    loss = cross_entropy(Z, y, sample_weight) + penalty
    G = (softmax(Z) - _targets(y, W.shape[0], X.dtype)) * (w / w.sum())[:, None].astype(X.dtype)
    # G^T X; for a sparse X as (X^T G)^T, a sparse (CSC) @ dense product.
    dW = (X.T @ G).T + alpha * W if issparse(X) else G.T @ X + alpha * W
    db = G.sum(axis=0) if b is not None else None
    return loss, dW, db


def predict_proba(X, W, b=None):
    """Class probabilities softmax(X W^T + b), shape (m, K)."""
    X = _as_float_X(X)
    Z = _logits(X, np.asarray(W, dtype=X.dtype), b)
    return softmax(Z)


def predict(X, W, b=None):
    """Most probable class index per row, shape (m,)."""
    X = _as_float_X(X)
    Z = _logits(X, np.asarray(W, dtype=X.dtype), b)
    return np.argmax(Z, axis=1)


def hess_vec(X, W, b, V, c=None, alpha=0.0, sample_weight=None):
    """The Hessian of ``loss_and_grad``'s objective at (W, b) applied to the direction (V, c)
    (V shape (K, n), c (K,) or None when the model has no intercepts): ``(HV (K, n), Hc (K,)
    or None)``.  For targets that sum to 1 per row (labels, probabilities), where the
    Hessian does not depend on y."""
    X = _as_float_X(X)
    A = softmax(_logits(X, np.asarray(W, dtype=X.dtype), b))
    R = _logits(X, np.asarray(V, dtype=X.dtype), c)
    w = _weights(sample_weight, X.shape[0], X.dtype)
    D = (w / w.sum())[:, None].astype(X.dtype) * A * (R - np.sum(A * R, axis=1, keepdims=True))
    HV = (X.T @ D).T if issparse(X) else D.T @ X
    return HV + alpha * np.asarray(V, dtype=X.dtype), (D.sum(axis=0) if c is not None else None)


def hessian(X, W, b=None, alpha=0.0, sample_weight=None):
    """The full Hessian of ``loss_and_grad``'s objective at (W, b), shape (K d, K d) with
    ``d = n + (b is not None)``, class-major: parameter (k, j) (class k's weight j, then its
    intercept at j = n) at index ``k d + j``.  Built block by block from its definition,
    ``H[k, l] = Xa^T diag(w (delta_kl a_k - a_k a_l)) Xa / sum(w) + alpha delta_kl I`` (the
    penalty on the weights only), with ``Xa = [X, 1]``; a sparse X is densified (the
    reference is for small problems).  Targets summing to 1 per row."""
    X = _as_float_X(X)
    A = softmax(_logits(X, np.asarray(W, dtype=X.dtype), b)).astype(np.float64)
    Xa = np.asarray(X.toarray() if issparse(X) else X, dtype=np.float64)
    if b is not None:
        Xa = np.hstack([Xa, np.ones((Xa.shape[0], 1))])
    w = _weights(sample_weight, X.shape[0], np.float64)
    w = w / w.sum()
    K, d, n = A.shape[1], Xa.shape[1], X.shape[1]
    H = np.empty((K * d, K * d))
    for k in range(K):
        for k2 in range(K):
            coef = w * A[:, k] * ((k == k2) - A[:, k2])
            H[k * d : (k + 1) * d, k2 * d : (k2 + 1) * d] = (Xa * coef[:, None]).T @ Xa
    for k in range(K):
        H[np.arange(k * d, k * d + n), np.arange(k * d, k * d + n)] += alpha
    return H

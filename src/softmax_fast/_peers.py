"""Other libraries' versions of softmax_fast's computations: the peers of the demo, the bench
command and the benchmark suites (``benchmarks/peers.py`` wraps these for pytest).

Each ``*_loss_and_grad``, ``*_softmax`` and ``*_cross_entropy_grad`` returns a zero-argument
callable doing the whole computation (results ready, not queued).  A peer whose library is not
installed raises :class:`PeerUnavailable` when it is made, never when it is called.  The
``*_fit`` functions fit the demo's peers of ``SoftmaxRegression`` on the same objective.
"""

import importlib

import numpy as np

__all__ = [
    "PeerUnavailable",
    "jax_loss_and_grad",
    "jax_softmax",
    "reference_lbfgs_fit",
    "scipy_softmax",
    "sklearn_cross_entropy_grad",
    "sklearn_logistic_regression_fit",
    "sklearn_loss_and_grad",
    "torch_cross_entropy_grad",
    "torch_loss_and_grad",
    "torch_softmax",
]


class PeerUnavailable(Exception):
    """The library a peer needs is not installed (the message names it)."""


def _require(module):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise PeerUnavailable(f"{module} is not installed") from None


def _jax(dtype):
    jax = _require("jax")
    if np.dtype(dtype) == np.float64:
        jax.config.update("jax_enable_x64", True)
    return jax


# --------------------------------------------------------------------------- loss_and_grad


def sklearn_loss_and_grad(X, y, W, b, n_threads=1):
    """scikit-learn's own objective of LogisticRegression (multinomial loss and gradient)."""
    try:
        from sklearn._loss.loss import HalfMultinomialLoss
        from sklearn.linear_model._linear_loss import LinearModelLoss
    except ImportError:
        raise PeerUnavailable("scikit-learn's LinearModelLoss is not available") from None
    loss = LinearModelLoss(base_loss=HalfMultinomialLoss(n_classes=W.shape[0]), fit_intercept=True)
    coef = np.hstack([W, b[:, None]])
    y_float = y.astype(X.dtype)
    return lambda: loss.loss_gradient(coef, X, y_float, n_threads=n_threads)


def torch_loss_and_grad(X, y, W, b):
    """PyTorch CPU: F.cross_entropy of X W^T + b, then backward for dW and db."""
    torch = _require("torch")
    tX, ty = torch.from_numpy(X), torch.from_numpy(y)

    def step():
        tW = torch.tensor(W, requires_grad=True)
        tb = torch.tensor(b, requires_grad=True)
        loss = torch.nn.functional.cross_entropy(tX @ tW.T + tb, ty)
        loss.backward()
        return loss.item(), tW.grad, tb.grad

    return step


def jax_loss_and_grad(X, y, W, b):
    """JAX: jit(value_and_grad) of the same objective."""
    jax = _jax(X.dtype)
    jnp = jax.numpy

    def objective(W, b, X, y):
        logp = jax.nn.log_softmax(X @ W.T + b, axis=1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    value_and_grad = jax.jit(jax.value_and_grad(objective, argnums=(0, 1)))
    args = [jnp.asarray(a) for a in (W, b, X, y)]
    return lambda: jax.block_until_ready(value_and_grad(*args))


# --------------------------------------------------------------------------- row-wise kernels


def scipy_softmax(Z):
    """scipy.special.softmax along the rows."""
    special = _require("scipy.special")
    return lambda: special.softmax(Z, axis=1)


def torch_softmax(Z):
    torch = _require("torch")
    tZ = torch.from_numpy(Z)
    return lambda: torch.softmax(tZ, dim=1)


def jax_softmax(Z):
    jax = _jax(Z.dtype)
    f = jax.jit(lambda z: jax.nn.softmax(z, axis=1))
    jZ = jax.numpy.asarray(Z)
    return lambda: jax.block_until_ready(f(jZ))


def sklearn_cross_entropy_grad(Z, y, n_threads=1):
    """scikit-learn's multinomial loss: per-row losses and gradient w.r.t. the raw predictions."""
    try:
        from sklearn._loss.loss import HalfMultinomialLoss
    except ImportError:
        raise PeerUnavailable("scikit-learn's HalfMultinomialLoss is not available") from None
    loss = HalfMultinomialLoss(n_classes=Z.shape[1])
    y_float = y.astype(Z.dtype)
    return lambda: loss.loss_gradient(y_true=y_float, raw_prediction=Z, n_threads=n_threads)


def torch_cross_entropy_grad(Z, y):
    torch = _require("torch")
    ty = torch.from_numpy(y)

    def step():
        tZ = torch.tensor(Z, requires_grad=True)
        loss = torch.nn.functional.cross_entropy(tZ, ty)
        loss.backward()
        return loss.item(), tZ.grad

    return step


# --------------------------------------------------------------------------- whole fits


def reference_lbfgs_fit(X, y, K, alpha, max_iter):
    """SoftmaxRegression(solver="lbfgs")'s objective on NumPy's reference, with SciPy's L-BFGS.

    Returns ``(W, b, result)``, ``result`` being SciPy's ``OptimizeResult``.
    """
    from scipy.optimize import minimize

    from . import reference

    n = X.shape[1]

    def fun(theta):
        W, b = theta[: K * n].reshape(K, n), theta[K * n :]
        loss, dW, db = reference.loss_and_grad(X, y, W, b, alpha=alpha)
        return loss, np.concatenate([dW.ravel(), db])

    res = minimize(
        fun, np.zeros(K * (n + 1)), jac=True, method="L-BFGS-B", options={"maxiter": max_iter}
    )
    return res.x[: K * n].reshape(K, n), res.x[K * n :], res


def sklearn_logistic_regression_fit(X, y, alpha, max_iter, tol):
    """scikit-learn's LogisticRegression on the same objective, fitted.

    scikit-learn minimizes sum of losses / (C m) + 1/2 ||W||^2, so ``C = 1 / (alpha m)``.
    """
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise PeerUnavailable("scikit-learn is not installed") from None
    return LogisticRegression(C=1.0 / (alpha * len(y)), max_iter=max_iter, tol=tol).fit(X, y)

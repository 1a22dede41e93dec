"""Other libraries' versions of the benchmarked computations, for the benchmark suites.

Each ``make_*`` returns a zero-argument callable doing the whole computation (results ready, not
queued), or raises ``pytest.skip`` when the library is not installed, so that a suite lists
every installed peer beside softmax_fast and skips the others cleanly.
"""

import numpy as np
import pytest


def _torch():
    return pytest.importorskip("torch")


def _jax(dtype):
    jax = pytest.importorskip("jax")
    if np.dtype(dtype) == np.float64:
        jax.config.update("jax_enable_x64", True)
    return jax


# --------------------------------------------------------------------------- loss_and_grad


def sklearn_loss_and_grad(X, y, W, b, n_threads):
    """scikit-learn's own objective of LogisticRegression (multinomial loss and gradient)."""
    try:
        from sklearn._loss.loss import HalfMultinomialLoss
        from sklearn.linear_model._linear_loss import LinearModelLoss
    except ImportError:
        pytest.skip("scikit-learn's LinearModelLoss is not available")
    loss = LinearModelLoss(base_loss=HalfMultinomialLoss(n_classes=W.shape[0]), fit_intercept=True)
    coef = np.hstack([W, b[:, None]])
    y_float = y.astype(X.dtype)
    return lambda: loss.loss_gradient(coef, X, y_float, n_threads=n_threads)


def torch_loss_and_grad(X, y, W, b):
    """PyTorch CPU: F.cross_entropy of X W^T + b, then backward for dW and db."""
    torch = _torch()
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


def torch_softmax(Z):
    torch = _torch()
    tZ = torch.from_numpy(Z)
    return lambda: torch.softmax(tZ, dim=1)


def jax_softmax(Z):
    jax = _jax(Z.dtype)
    f = jax.jit(lambda z: jax.nn.softmax(z, axis=1))
    jZ = jax.numpy.asarray(Z)
    return lambda: jax.block_until_ready(f(jZ))


def sklearn_cross_entropy_grad(Z, y, n_threads):
    """scikit-learn's multinomial loss: per-row losses and gradient w.r.t. the raw predictions."""
    try:
        from sklearn._loss.loss import HalfMultinomialLoss
    except ImportError:
        pytest.skip("scikit-learn's HalfMultinomialLoss is not available")
    loss = HalfMultinomialLoss(n_classes=Z.shape[1])
    y_float = y.astype(Z.dtype)
    return lambda: loss.loss_gradient(y_true=y_float, raw_prediction=Z, n_threads=n_threads)


def torch_cross_entropy_grad(Z, y):
    torch = _torch()
    ty = torch.from_numpy(y)

    def step():
        tZ = torch.tensor(Z, requires_grad=True)
        loss = torch.nn.functional.cross_entropy(tZ, ty)
        loss.backward()
        return loss.item(), tZ.grad

    return step

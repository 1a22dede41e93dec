"""Synthetic classification data shared by the estimator and solver tests."""

import numpy as np


def softmax_problem(m, n, K, seed, scale=0.7):
    """Gaussian features (m, n) and labels (m,) drawn from a true softmax model with K classes
    (not separable): coefficients ``scale * N(0, 1)``, intercepts N(0, 1)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, n))
    W = scale * rng.standard_normal((K, n))
    Z = X @ W.T + rng.standard_normal(K)
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    y = (P.cumsum(axis=1) > rng.random((m, 1))).argmax(axis=1)
    return X, y

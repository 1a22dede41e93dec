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


def survey_problem(m=944, K=7, seed=3):
    """Survey-like regressors on their natural, unscaled scales (income in thousands, age in
    years, years of education, two 0/1 dummies: columns whose scales differ by two orders of
    magnitude, an ill-conditioned Hessian) and K outcome classes from a true softmax model of
    moderate effects: every class is frequent in every dummy cell (no separation), so the
    unpenalized maximum-likelihood estimate exists."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(3.5, 0.6, m)
    age = rng.integers(18, 90, m).astype(np.float64)
    education = rng.integers(8, 20, m).astype(np.float64)
    dummies = (rng.random((m, 2)) < [0.5, 0.4]).astype(np.float64)
    X = np.column_stack([income, age, education, dummies])
    B = rng.standard_normal((K, 5)) * np.array([0.01, 0.01, 0.05, 0.3, 0.3])
    B[0] = 0.0
    Z = (X - X.mean(axis=0)) @ B.T
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    y = (P.cumsum(axis=1) > rng.random((m, 1))).argmax(axis=1)
    return X, y

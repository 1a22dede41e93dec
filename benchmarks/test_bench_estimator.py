"""Estimator benchmarks: SoftmaxRegression.fit against scikit-learn, same data, same objective.

Groups: the digits (bundled with scikit-learn) and a synthetic 10-class problem.  Competitors:
SoftmaxRegression (lbfgs), scikit-learn's LogisticRegression (lbfgs, C = 1 / (alpha m), so the
same optimum) and SGDClassifier(loss="log_loss") (one-vs-rest, a different model: timing only).
"""

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression, SGDClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from softmax_fast import SoftmaxRegression  # noqa: E402

ALPHA = 1e-4


def _problem(name, quick, rng):
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        return StandardScaler().fit_transform(X), y
    m = 2_000 if quick else 100_000
    X = rng.standard_normal((m, 50))
    W = rng.standard_normal((10, 50)) * 0.5
    y = np.argmax(X @ W.T + rng.gumbel(size=(m, 10)), axis=1)
    return X, y


@pytest.mark.parametrize("problem", ["digits", "synthetic 100000x50 K=10"])
@pytest.mark.parametrize("impl", ["softmax_fast", "sklearn-lbfgs", "sklearn-sgd"])
def test_fit(benchmark, quick, rng, problem, impl):
    X, y = _problem("digits" if problem == "digits" else "synthetic", quick, rng)
    benchmark.group = f"fit {problem}"
    max_iter = 5 if quick else 300
    if impl == "softmax_fast":
        model = SoftmaxRegression(alpha=ALPHA, max_iter=max_iter, tol=1e-6)
    elif impl == "sklearn-lbfgs":
        model = LogisticRegression(C=1.0 / (ALPHA * len(y)), max_iter=max_iter, tol=1e-6)
    else:
        model = SGDClassifier(
            loss="log_loss", alpha=ALPHA, max_iter=max_iter, tol=1e-6, random_state=0
        )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning in the smoke run's few iterations
        fitted = benchmark.pedantic(model.fit, args=(X, y), rounds=1 if quick else 3, iterations=1)
    assert fitted.score(X, y) > (0.0 if quick else 0.5)

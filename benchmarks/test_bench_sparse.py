"""Sparse (CSR) benchmarks: ``loss_and_grad`` on the 20-newsgroups-shaped tf-idf corpus against
the ``scipy.sparse`` reference, and the estimator's fit against scikit-learn's on it.  The
figures of RESULTS.md ("Sparse input") come from ``benchmarks/sparse_text.py``, which pairs
the runs and measures memory in child processes; this suite keeps the same cases runnable under
pytest-benchmark.  With ``--benchmark-disable`` (the CI smoke run) the corpus shrinks.
"""

import warnings

import numpy as np
import pytest

import softmax_fast as sf
from softmax_fast import reference
from softmax_fast._synthetic import text_corpus

K = 20


@pytest.fixture(scope="module")
def corpus(quick):
    if quick:
        return text_corpus(n_docs=300, n_terms=3_000, tokens_per_doc=60, n_classes=K)
    return text_corpus()


@pytest.mark.parametrize("impl", ["softmax_fast-2t", "softmax_fast-1t", "reference"])
def test_sparse_loss_and_grad(benchmark, corpus, impl):
    X, y = corpus
    rng = np.random.default_rng(1)
    W = rng.standard_normal((K, X.shape[1])) * 0.1
    b = rng.standard_normal(K) * 0.1
    benchmark.group = f"sparse loss_and_grad {X.shape[0]}x{X.shape[1]} nnz={X.nnz} K={K}"
    if impl == "reference":
        fn = lambda: reference.loss_and_grad(X, y, W, b, alpha=1e-4)  # noqa: E731
    else:
        threads = int(impl.rsplit("-", 1)[1][:-1])
        fn = lambda: sf.loss_and_grad(X, y, W, b, alpha=1e-4, n_threads=threads)  # noqa: E731
    loss, dW, db = benchmark(fn)
    assert np.isfinite(loss) and dW.shape == (K, X.shape[1])


@pytest.mark.parametrize("impl", ["softmax_fast", "scikit-learn"])
def test_sparse_fit(benchmark, quick, corpus, impl):
    X, y = corpus
    alpha = 1e-4
    if impl == "softmax_fast":
        model = sf.SoftmaxRegression(alpha=alpha, tol=1e-4, max_iter=20 if quick else 10_000)
    else:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(
            C=1.0 / (alpha * X.shape[0]), tol=1e-4, max_iter=20 if quick else 10_000
        )
    benchmark.group = f"sparse fit {X.shape[0]}x{X.shape[1]} K={K}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the smoke run stops at max_iter
        benchmark.pedantic(model.fit, args=(X, y), rounds=1, iterations=1)
    assert model.coef_.shape == (K, X.shape[1])

"""Dask benchmarks: one objective evaluation and one lbfgs fit of DaskSoftmaxRegression on a
LocalCluster of 2 single-threaded workers against the in-memory kernel and fit on 2 threads, on
the same 2,000,000 x 100, K = 10 data.  The figures of RESULTS.md ("Dask") come from
``benchmarks/dask_fit.py``, which alternates the contenders in one run; this suite keeps the
cases runnable under pytest-benchmark.  With ``--benchmark-disable`` (the CI smoke run) the
data shrink to 4,000 rows.
"""

import numpy as np
import pytest

pytest.importorskip("distributed")
pytest.importorskip("dask.array")

from dask_fit import N_FEATURES, K, _cluster, _dask_problem  # noqa: E402

import softmax_fast as sf  # noqa: E402
from softmax_fast._design import DenseDesign  # noqa: E402
from softmax_fast.dask import DaskDesign, DaskSoftmaxRegression, _block_state, _place  # noqa: E402


@pytest.fixture(scope="module")
def problem(quick):
    import dask

    cluster, client = _cluster()
    with client:
        rows = 4_000 if quick else 2_000_000
        X, y = _dask_problem(rows, 8)
        X_local, y_local = dask.compute(X, y)
        yield X, y, X_local, y_local
    cluster.close()


@pytest.mark.parametrize("impl", ["dask", "in-memory"])
def test_dask_evaluation(benchmark, problem, impl):
    import dask

    X, y, X_local, y_local = problem
    m = X.shape[0]
    classes = np.arange(K)
    W, b = np.full((K, N_FEATURES), 0.01), np.zeros(K)
    benchmark.group = f"one evaluation {m}x{N_FEATURES} K={K}"
    if impl == "dask":
        state = dask.delayed(_block_state, pure=True)
        states = [
            state(xb, yb, None, classes, None, 1.0, 1)
            for xb, yb in zip(X.to_delayed().ravel(), y.to_delayed().ravel(), strict=True)
        ]
        design = DaskDesign(_place(states), m, N_FEATURES, np.float64, False, 2)
        fn = lambda: design.loss_grad(W, b, None, None, None, 1 / m)  # noqa: E731
    else:
        design = DenseDesign(X_local, 2)
        y_idx = y_local.astype(np.intp)
        fn = lambda: design.loss_grad(W, b, y_idx, None, None, 1 / m)  # noqa: E731
    total, dW, db = benchmark(fn)
    assert np.isfinite(total) and dW.shape == (K, N_FEATURES)


@pytest.mark.parametrize("impl", ["dask", "in-memory"])
def test_dask_fit(benchmark, problem, impl):
    X, y, X_local, y_local = problem
    benchmark.group = f"lbfgs fit {X.shape[0]}x{N_FEATURES} K={K}"
    params = dict(alpha=1e-4, tol=1e-6, max_iter=200)
    if impl == "dask":
        fn = lambda: DaskSoftmaxRegression(**params).fit(X, y)  # noqa: E731
    else:
        fn = lambda: sf.SoftmaxRegression(**params, n_threads=2).fit(X_local, y_local)  # noqa: E731
    model = benchmark.pedantic(fn, rounds=1, iterations=1)
    assert model.coef_.shape == (K, N_FEATURES)

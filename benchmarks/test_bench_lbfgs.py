"""L-BFGS benchmarks: our solver (``softmax_fast._lbfgs``, ``solver="lbfgs"``) against SciPy's
L-BFGS-B, run for a fixed number of iterations on a cheap quadratic of 1,000 and of 2.6 million
parameters (so that the solver's own cost shows), and the estimator's fit of a 2,000 x 20,
K = 3 problem with each.  ``benchmarks/lbfgs_solver.py`` reports the per-iteration overheads
(time outside the objective) from paired runs.  With ``--benchmark-disable`` (the CI smoke run)
the sizes shrink.
"""

import warnings

import numpy as np
import pytest
from fit_sizes import problem
from lbfgs_solver import quadratic, run_ours, run_scipy

from softmax_fast import SoftmaxRegression, _solvers
from softmax_fast._threads import one_blas_thread

_RUNS = {"ours": run_ours, "scipy": run_scipy}


@pytest.mark.parametrize("size", [1_000, 2_600_000], ids=["1000", "2600000"])
@pytest.mark.parametrize("impl", ["ours", "scipy"])
def test_quadratic(benchmark, quick, impl, size):
    n = min(size, 2_600) if quick else size
    n_iter = 5 if quick else (200 if size < 100_000 else 30)
    fun = quadratic(n)
    benchmark.group = f"lbfgs quadratic {size:,} parameters, {n_iter} iterations"
    with one_blas_thread():  # as during a fit
        iterations = benchmark.pedantic(
            _RUNS[impl], args=(fun, np.zeros(n), n_iter), rounds=1 if quick else 3, iterations=1
        )
    assert iterations == n_iter


@pytest.mark.parametrize("impl", ["ours", "scipy"])
def test_fit(benchmark, quick, impl, monkeypatch):
    m = 200 if quick else 2_000
    X, y = problem(m, 20, 3)
    if impl == "scipy":
        monkeypatch.setattr(_solvers, "lbfgs", _solvers._scipy_lbfgs)
    model = SoftmaxRegression(alpha=1.0 / m, tol=1e-6)
    benchmark.group = f"lbfgs fit {m}x20 K=3"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = benchmark.pedantic(model.fit, args=(X, y), rounds=1 if quick else 20, iterations=1)
    assert fitted.n_iter_ >= 1

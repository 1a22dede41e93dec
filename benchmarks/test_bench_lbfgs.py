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


def _filled_memory(kind, n, n_threads):
    """A history of 10 pairs, wrapped around once (the general case), and a gradient."""
    from softmax_fast import _lbfgs

    rng = np.random.default_rng(0)
    if kind == "BLAS float64":
        memory = _lbfgs._CompactMemory(n, _lbfgs.HISTORY)
    else:
        memory = _lbfgs._NativeMemory(n, _lbfgs.HISTORY, np.float32, n_threads)
    d = np.empty(n)
    g = rng.standard_normal(n)
    memory.g[:] = g
    for _ in range(_lbfgs.HISTORY + 3):
        if memory.k:
            memory.direction(d)
        s = rng.standard_normal(n)
        memory.update(1.0, s, g + 1.5 * s, 1.5 * float(s @ s))
        g = g + 1.5 * s
    return memory, d


@pytest.mark.parametrize(
    "kind, n_threads",
    [("BLAS float64", 1), ("native float32", 1), ("native float32", 2)],
    ids=["blas-f64", "native-f32-1", "native-f32-2"],
)
def test_direction(benchmark, quick, kind, n_threads):
    """One L-BFGS direction with a full history at 2.6 million parameters: the two passes over
    the history of the small models (float64, BLAS on one thread, as in a fit) and of the large
    ones (float32 blocks, native, on the fit's threads)."""
    n = 26_000 if quick else 2_600_000
    memory, d = _filled_memory(kind, n, n_threads)
    benchmark.group = f"lbfgs direction, 10 pairs, {n:,} parameters"
    with one_blas_thread():
        gd = benchmark.pedantic(memory.direction, args=(d,), rounds=3 if quick else 15)
    assert gd < 0  # a descent direction

"""Solver benchmarks: one SoftmaxRegression fit per solver on a small dense and a small CSR case.

The cases are those of ``benchmarks/solvers.py`` (correlated Gaussian features; one-hot
categorical columns in CSR), smaller; that script compares the solvers with scikit-learn's at
equal objective, in child processes.  A solver name the installed estimator refuses
(ValueError) is skipped.  With ``--benchmark-disable`` (the CI smoke run) the cases shrink.
"""

import warnings

import numpy as np
import pytest
from solvers import SOFTMAX_FAST_SOLVERS, dense_case, onehot_case

from softmax_fast import SoftmaxRegression, kernels

ALPHA = 1e-4


@pytest.fixture(scope="module")
def cases(quick):
    if quick:
        return {
            "dense": dense_case(m=1_000, n=20, K=5),
            "csr": onehot_case(m=1_000, n_columns=5, levels=10, K=4),
        }
    return {"dense": dense_case(m=20_000, n=100, K=10), "csr": onehot_case(m=10_000)}


@pytest.mark.parametrize("case", ["dense", "csr"])
@pytest.mark.parametrize("solver", SOFTMAX_FAST_SOLVERS.split(","))
def test_solver_fit(benchmark, quick, cases, case, solver):
    X, y = cases[case]
    K = int(np.unique(y).size)
    benchmark.group = f"solvers {case} {X.shape[0]}x{X.shape[1]} K={K}"
    model = SoftmaxRegression(alpha=ALPHA, solver=solver, tol=1e-5, max_iter=200 if quick else 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning (saga's epochs, a smoke run's sizes)
        try:
            model.fit(X, y)  # (untimed: refusals show here; the first fit warms up)
        except ValueError as exc:
            pytest.skip(f"solver {solver!r}: {exc}")
        fitted = benchmark.pedantic(model.fit, args=(X, y), rounds=1 if quick else 3, iterations=1)
    J = kernels.loss_and_grad(X, y, fitted.coef_, fitted.intercept_, alpha=ALPHA)[0]
    assert np.isfinite(J)
    assert fitted.score(X, y) > 1.0 / K


def test_newton_cg_forcing_script_counts_passes(capsys):
    """benchmarks/newton_cg_forcing.py (the forcing table of RESULTS.md) on its smoke case: one
    row per forcing term, passes = products + gradients + 2 per iteration, and newton-cg's
    forcing term as it was afterwards."""
    import newton_cg_forcing

    from softmax_fast import _solvers

    before = _solvers.NEWTON_CG_FORCING
    newton_cg_forcing.main(["--quick", "--cases", "onehot", "--forcing", "0.3,0.1"])
    lines = capsys.readouterr().out.splitlines()[2:]
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines]
    assert [row[:2] for row in rows] == [["onehot", "0.3"], ["onehot", "0.1"]]
    for row in rows:
        products, gradients, iterations, passes = (int(cell) for cell in row[2:6])
        assert iterations >= 1 and products >= iterations
        assert passes == products + gradients + 2 * iterations
    assert _solvers.NEWTON_CG_FORCING == before

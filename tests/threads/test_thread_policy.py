"""The thread policy with its shipped threshold: each kernel call's team is sized from its work
(never more threads than asked, than rows, or than the work pays for), results depend only on
that team size, and a fit holds BLAS at one thread for its whole length, giving the user's
setting back afterwards."""

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController, threadpool_limits

import softmax_fast as sf
from softmax_fast import SoftmaxRegression, _design, _threads


@pytest.fixture(autouse=True)
def _shipped_threshold(real_thread_policy):
    """Every test here runs with the threshold the package ships."""


def test_team_for_work_bounds():
    unit = _threads.MIN_WORK_PER_THREAD
    assert _threads.team_for_work(8, 10**6, unit - 1) == 1  # too little work for a second thread
    assert _threads.team_for_work(8, 10**6, 2 * unit) == 2
    assert _threads.team_for_work(8, 10**6, 100 * unit) == 8  # never more than asked
    assert _threads.team_for_work(8, 3, 100 * unit) == 3  # never more than rows
    assert _threads.team_for_work(1, 10**6, 100 * unit) == 1
    for n_threads, m, work in [(2, 1, 0), (4, 7, 10**9), (1024, 10**9, 10**12)]:
        team = _threads.team_for_work(n_threads, m, work)
        assert 1 <= team <= min(n_threads, m)


class _TeamSpy:
    """Stands in for the compiled dense module and records the team size of each call."""

    def __init__(self, real):
        self._real, self.teams = real, []

    def __getattr__(self, name):
        return getattr(self._real, name)

    def loss_and_grad(self, *args):
        self.teams.append(args[8])
        return self._real.loss_and_grad(*args)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_small_fit_runs_its_kernel_calls_on_one_thread(monkeypatch):
    """A fit's kernel calls get a second thread only when their work pays for it, whatever
    n_threads asks for."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 20))
    y = rng.integers(0, 3, 500)
    spy = _TeamSpy(_design._native_dense)
    monkeypatch.setattr(_design, "_native_dense", spy)
    SoftmaxRegression(n_threads=2, max_iter=5).fit(X, y)
    assert spy.teams and set(spy.teams) == {1}  # 500 * 21 * 3 = 31,500 units per call
    big = rng.standard_normal((8_000, 100))
    y_big = rng.integers(0, 10, 8_000)
    spy.teams.clear()
    SoftmaxRegression(n_threads=2, max_iter=3).fit(big, y_big)
    assert set(spy.teams) == {2}  # 8,000 * 101 * 10 = 8.1e6 units per call


def test_results_depend_on_the_team_size_only():
    """Below the threshold n_threads=1 and n_threads=2 run the same single-thread call: the same
    bits."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, 10))
    W = rng.standard_normal((4, 10))
    b = rng.standard_normal(4)
    y = rng.integers(0, 4, 300)
    one = sf.loss_and_grad(X, y, W, b, alpha=0.1, n_threads=1)
    two = sf.loss_and_grad(X, y, W, b, alpha=0.1, n_threads=2)
    assert one[0] == two[0]
    np.testing.assert_array_equal(one[1], two[1])
    np.testing.assert_array_equal(one[2], two[2])


def _blas_threads():
    return [
        lib.num_threads for lib in ThreadpoolController().select(user_api="blas").lib_controllers
    ]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fit_holds_blas_at_one_thread_and_restores_it(monkeypatch):
    if not _blas_threads():
        pytest.skip("threadpoolctl finds no BLAS library")
    seen = []
    real = _design.DenseDesign.loss_grad

    def spy(design, *args):
        seen.append(_blas_threads())
        return real(design, *args)

    monkeypatch.setattr(_design.DenseDesign, "loss_grad", spy)
    rng = np.random.default_rng(2)
    X = rng.standard_normal((400, 6))
    y = rng.integers(0, 3, 400)
    with threadpool_limits(limits=2, user_api="blas"):
        for solver in ("lbfgs", "gd", "sgd"):
            SoftmaxRegression(solver=solver, max_iter=3).fit(X, y)
        SoftmaxRegression().partial_fit(X, y, classes=[0, 1, 2])
        assert set(_blas_threads()) == {2}  # the user's setting is back
    assert seen and all(set(counts) == {1} for counts in seen)

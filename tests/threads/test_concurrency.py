"""Kernels and ``SoftmaxRegression.fit`` called from several Python threads at once (the kernels
release the GIL) give bit for bit what the same calls give alone, on shared read-only inputs and
on separate inputs, on both tile paths (softmax_fast's micro-kernels: K <= 16 float64, K <= 32
float32 on AVX2 CPUs; BLAS: larger K); more OpenMP threads than cores work; and on the BLAS path
BLAS runs on one thread while a kernel runs, so OpenMP threads x BLAS threads = n_threads.

Why the BLAS path needs care: OpenBLAS's sgemm/dgemm give different roundings with 1 and with 2
BLAS threads (they split the product differently; seen: 1 ulp in float32, also in float64 for
larger tiles).  Its thread count is process-wide.  A ``threadpoolctl`` limit taken and restored
around each call was therefore not enough under concurrency: the first call to finish restored
two BLAS threads under calls still running, calls with n_threads=1 (no limit) ran on whatever
another call had set, and threadpoolctl >= 3.8 ignores limits set from any Python thread but the
first one that set one.  ``_threads.one_blas_thread`` now holds BLAS at one thread from the first
call in to the last one out, setting OpenBLAS directly.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from optimum_bounds import assert_predictions_agree, compare, logit_rounding
from threadpoolctl import ThreadpoolController, threadpool_limits

import softmax_fast as sf
from softmax_fast import SoftmaxRegression, _design

N_PY_THREADS = 8


def _problem(seed, dtype, K=10):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((3000, 40)).astype(dtype)
    W = (rng.standard_normal((K, 40)) * 0.2).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    y = rng.integers(0, K, 3000)
    Z = rng.standard_normal((3000, K)).astype(dtype) * 3
    for a in (X, W, b, y, Z):
        a.flags.writeable = False
    return X, W, b, y, Z


def _calls(X, W, b, y, Z, n_threads):
    return {
        "softmax": lambda: sf.softmax(Z, n_threads=n_threads),
        "log_softmax": lambda: sf.log_softmax(Z, n_threads=n_threads),
        "logsumexp": lambda: sf.logsumexp(Z, n_threads=n_threads),
        "cross_entropy_grad": lambda: sf.cross_entropy_grad(Z, y, n_threads=n_threads),
        "loss_and_grad": lambda: sf.loss_and_grad(X, y, W, b, alpha=0.1, n_threads=n_threads),
        "predict_proba": lambda: sf.predict_proba(X, W, b, n_threads=n_threads),
        "predict": lambda: sf.predict(X, W, b, n_threads=n_threads),
    }


def _same(a, b, rtol=0.0):
    if isinstance(a, tuple):
        return all(_same(x, y, rtol) for x, y in zip(a, b, strict=True))
    if a is None:
        return b is None
    return np.allclose(a, b, rtol=rtol, atol=0) if rtol else np.array_equal(a, b)


@pytest.mark.parametrize("K", [10, 40], ids=["micro-kernel-tiles", "blas-tiles"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_concurrent_calls_on_shared_inputs_equal_serial_calls(dtype, n_threads, K):
    calls = _calls(*_problem(0, dtype, K), n_threads)
    expected = {name: fn() for name, fn in calls.items()}
    jobs = [name for name in calls for _ in range(4)]
    with ThreadPoolExecutor(N_PY_THREADS) as pool:
        results = list(pool.map(lambda name: (name, calls[name]()), jobs))
    for name, result in results:
        assert _same(result, expected[name]), name


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_concurrent_calls_with_different_thread_counts_equal_serial_calls(dtype):
    """Calls with n_threads = 1 and 2 interleaved on the BLAS path, while the main thread holds a
    BLAS limit of its own (as a user doing numpy work around them may): with the former per-call
    threadpoolctl limit, calls in the worker threads ran on two BLAS threads (their limit was
    ignored) and their float32 results differed from serial ones in the last bit."""
    X, W, b, y, _ = _problem(0, dtype, K=40)
    assert not _design.uses_small_gemm(40, 40, np.dtype(dtype))
    jobs = [1, 2] * 16
    with threadpool_limits(limits=2, user_api="blas"):
        expected = {nt: sf.loss_and_grad(X, y, W, b, n_threads=nt) for nt in (1, 2)}
        with ThreadPoolExecutor(N_PY_THREADS) as pool:
            results = list(pool.map(lambda nt: sf.loss_and_grad(X, y, W, b, n_threads=nt), jobs))
    for nt, got in zip(jobs, results, strict=True):
        assert _same(got, expected[nt]), nt


def test_concurrent_calls_on_separate_inputs_equal_serial_calls():
    problems = [_problem(seed, np.float64) for seed in range(N_PY_THREADS)]
    expected = [sf.loss_and_grad(X, y, W, b, n_threads=2) for X, W, b, y, _ in problems]
    with ThreadPoolExecutor(N_PY_THREADS) as pool:
        results = list(
            pool.map(lambda p: sf.loss_and_grad(p[0], p[3], p[1], p[2], n_threads=2), problems)
        )
    for got, want in zip(results, expected, strict=True):
        assert _same(got, want)


@pytest.mark.parametrize("K", [10, 40], ids=["micro-kernel-tiles", "blas-tiles"])
def test_more_threads_than_cores(K):
    """n_threads=16 (8x the cores of the CI machine) agrees with one thread within the contract's
    1e-10 relative (the chunks, hence the summation order, differ) and is reproducible."""
    X, W, b, y, Z = _problem(1, np.float64, K)
    calls16, calls1 = _calls(X, W, b, y, Z, 16), _calls(X, W, b, y, Z, 1)
    for name in calls16:
        got, want = calls16[name](), calls1[name]()
        assert _same(calls16[name](), got), name  # repeated calls: bit-identical
        for g, w in zip(
            got if isinstance(got, tuple) else (got,),
            want if isinstance(want, tuple) else (want,),
            strict=True,
        ):
            if isinstance(w, float):
                assert g == pytest.approx(w, rel=1e-10), name
            elif w.dtype == np.intp:
                np.testing.assert_array_equal(g, w, err_msg=name)
            else:
                np.testing.assert_allclose(
                    g, w, rtol=0, atol=1e-10 * np.max(np.abs(w)), err_msg=name
                )


# ----------------------------------------------------------------------------- estimator


def _fit_data(seed, K, dtype):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((1500, 20)).astype(dtype)
    y = np.argmax(X @ rng.standard_normal((20, K)) + rng.standard_normal((1500, K)), axis=1)
    X.flags.writeable = False
    return X, y


_FIT_CONFIGS = [
    dict(solver="lbfgs", n_threads=2),
    dict(solver="lbfgs", n_threads=1),
    dict(solver="gd", n_threads=2, learning_rate=0.5),
    dict(solver="sgd", n_threads=1, random_state=0, batch_size=500),
]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "K, dtype", [(5, np.float64), (40, np.float32)], ids=["micro-kernel-tiles", "blas-tiles"]
)
def test_concurrent_fits_equal_serial_fits(K, dtype):
    """8 fits at once: 4 solver settings on two data sets (each read-only array shared by 4
    threads); every fitted model equals the serial fit of the same job bit for bit."""
    data = [_fit_data(seed, K, dtype) for seed in range(2)]
    jobs = [(config, d) for config in _FIT_CONFIGS for d in (0, 1)]

    def fit(job):
        config, d = job
        return SoftmaxRegression(max_iter=15, alpha=1e-3, **config).fit(*data[d])

    serial = [fit(job) for job in jobs]
    with ThreadPoolExecutor(N_PY_THREADS) as pool:
        concurrent = list(pool.map(fit, jobs))
    for job, got, want in zip(jobs, concurrent, serial, strict=True):
        assert np.array_equal(got.coef_, want.coef_), job
        assert np.array_equal(got.intercept_, want.intercept_)
        assert got.n_iter_ == want.n_iter_ and got.loss_curve_ == want.loss_curve_


def test_fit_with_more_threads_than_cores():
    X, y = _fit_data(3, 40, np.float64)
    kw = dict(alpha=1e-4, tol=1e-8, max_iter=1000)
    fits = {nt: SoftmaxRegression(n_threads=nt, **kw).fit(X, y) for nt in (1, 16)}
    # The same optimum, from different summation orders (not bit for bit: the two runs stop at
    # different points, ~1e-5 apart here): the 1-thread fit's certificate, then strong convexity
    # and the local curvature bound the distance to the 16-thread fit (optimum_bounds.compare).
    one, many = (fits[1].coef_, fits[1].intercept_), (fits[16].coef_, fits[16].intercept_)
    comparison = compare(X, y, kw["alpha"], one, many)
    assert comparison.excess_a <= 1e-10 * comparison.loss_a, comparison
    assert comparison.gap >= 0, comparison
    assert comparison.w_dist <= comparison.w_radius, comparison
    assert comparison.dist <= comparison.radius, comparison
    # alike predictions wherever the two fits' logits decide
    rounding = logit_rounding(X, *one) + logit_rounding(X, *many)
    Z1, Z16 = fits[1].decision_function(X), fits[16].decision_function(X)
    assert_predictions_agree(fits[1].predict(X), fits[16].predict(X), Z1, Z16, rounding, 0.99)


# ----------------------------------------------------------------------------- oversubscription


class _BlasSpy:
    """Stands in for the compiled module in ``kernels``: records the BLAS thread counts in
    effect at the moment each linear-model kernel starts (inside the Python-side BLAS limit)."""

    def __init__(self, real, blas_libs):
        self._real, self._blas_libs = real, blas_libs
        self.seen = []

    def __getattr__(self, name):
        return getattr(self._real, name)

    def _record(self):
        self.seen.append([lib.num_threads for lib in self._blas_libs])

    def loss_and_grad(self, *args):
        self._record()
        return self._real.loss_and_grad(*args)

    def predict(self, *args):
        self._record()
        return self._real.predict(*args)


@pytest.fixture
def blas_spy(monkeypatch):
    libs = ThreadpoolController().select(user_api="blas").lib_controllers
    if not libs:
        pytest.skip("threadpoolctl finds no BLAS library")
    spy = _BlasSpy(_design._native_dense, libs)
    monkeypatch.setattr(_design, "_native_dense", spy)
    return spy


def _blas_threads():
    return [
        lib.num_threads for lib in ThreadpoolController().select(user_api="blas").lib_controllers
    ]


@pytest.mark.parametrize("n_threads", [1, 2, 16])
def test_blas_runs_on_one_thread_during_blas_tile_kernels(blas_spy, n_threads):
    """OpenMP threads x BLAS threads = n_threads (<= the cores for n_threads <= cores): each of
    the n_threads OpenMP threads calls a single-threaded BLAS.  BLAS is first given 2 threads, as
    a user could, so that a missing limit shows even on a 1-core machine; it gets them back."""
    X, W, b, y, _ = _problem(2, np.float32, K=40)
    X_nan = X.copy()
    X_nan[2500, 3] = np.nan
    with threadpool_limits(limits=2, user_api="blas"):
        assert set(_blas_threads()) == {2}
        sf.loss_and_grad(X, y, W, b, n_threads=n_threads)
        sf.predict_proba(X, W, b, n_threads=n_threads)
        sf.predict(X, W, b, n_threads=n_threads)
        with pytest.raises(ValueError, match="row 2500"):  # the error path restores it too
            sf.loss_and_grad(X_nan, y, W, b, n_threads=n_threads)
        assert set(_blas_threads()) == {2}  # restored after the calls
    assert len(blas_spy.seen) == 4
    assert all(set(counts) == {1} for counts in blas_spy.seen), blas_spy.seen


def test_blas_limit_holds_across_concurrent_calls(blas_spy):
    """With calls starting and ending in 8 Python threads, BLAS stays at one thread in every call
    (a call ending first does not give BLAS its threads back under the others), and the previous
    count is restored once the last call is over."""
    X, W, b, y, _ = _problem(3, np.float64, K=40)
    with threadpool_limits(limits=2, user_api="blas"):
        with ThreadPoolExecutor(N_PY_THREADS) as pool:
            list(pool.map(lambda nt: sf.loss_and_grad(X, y, W, b, n_threads=nt), [1, 2] * 12))
        assert set(_blas_threads()) == {2}
    assert len(blas_spy.seen) == 24
    assert all(set(counts) == {1} for counts in blas_spy.seen), blas_spy.seen


def test_micro_kernel_path_leaves_blas_alone(blas_spy):
    X, W, b, y, _ = _problem(4, np.float64, K=10)
    if not _design.uses_small_gemm(40, 10, np.dtype(np.float64)):
        pytest.skip("no AVX2+FMA micro-kernels on this CPU")
    with threadpool_limits(limits=2, user_api="blas"):
        sf.loss_and_grad(X, y, W, b, n_threads=2)
    assert blas_spy.seen == [[2] * len(blas_spy.seen[0])]

"""Thread behaviour of the kernels and of ``SoftmaxRegression.fit``.

* Results depend on the team size only: repeated calls are bit-identical (1, 2, 3 threads and
  the default), one and several threads agree within the contract's tolerance (1e-10 relative
  in float64, 1e-5 in float32), the default n_threads=None and more threads than cores (8, 16,
  64) agree with one thread, and so do calls with fewer rows than threads.
* Calls from several Python threads at once (the kernels release the GIL) give bit for bit what
  the same calls give alone: on shared read-only inputs and on separate inputs, with one and two
  OpenMP threads interleaved, on both tile paths (softmax_fast's micro-kernels: K <= 16 float64,
  K <= 32 float32 on AVX2 CPUs; BLAS: larger K); so do whole fits.
* On the BLAS tile path BLAS runs on one thread while a kernel runs, so that OpenMP threads x
  BLAS threads = n_threads, from the first of concurrent calls in to the last one out, whatever
  BLAS limit the caller holds; the caller's BLAS setting is restored afterwards, on the error
  path too, and the micro-kernel path leaves BLAS alone.  Bit-identity depends on it: OpenBLAS's
  sgemm/dgemm round differently with one and with two BLAS threads (they split the product
  differently: 1 ulp in float32, in float64 too for larger tiles), its thread count is
  process-wide, and threadpoolctl (>= 3.8) ignores limits set from any Python thread but the
  first one that set one, so ``_threads.one_blas_thread`` sets OpenBLAS directly.

Configuration and introspection (get_config, show_config, the OpenMP runtime, OMP_NUM_THREADS,
threadpoolctl's limit on the default thread count) are in test_config.py.
"""

import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from kernel_test_helpers import (
    random_labels,
    random_logits,
    random_problem,
    random_weights,
    soft_targets,
)
from optimum_bounds import assert_predictions_agree, compare, logit_rounding
from threadpoolctl import ThreadpoolController, threadpool_limits

import softmax_fast as sf
from softmax_fast import SoftmaxRegression, _design

# ---------------------------------------------------------------------------------------------
# One and several threads
# ---------------------------------------------------------------------------------------------

# Big enough that every kernel splits its rows over 2 threads (and over row tiles).
M, K, N = 20000, 10, 50
THREAD_TOL = {np.float32: 1e-5, np.float64: 1e-10}
IS_LINUX = sys.platform.startswith("linux")


def _data(dtype, seed=0):
    rng = np.random.default_rng(seed)
    Z = random_logits(rng, M, K, dtype)
    X, W, b = random_problem(rng, M, K, N, dtype)
    return {
        "Z": Z,
        "X": X,
        "W": W,
        "b": b,
        "y": random_labels(rng, M, K),
        "Y": soft_targets(rng, M, K, dtype),
        "w": random_weights(rng, M),
    }


def _calls(d):
    """name -> callable(n_threads) returning a tuple of results (arrays or floats)."""
    Z, X, W, b, y, Y, w = (d[k] for k in ("Z", "X", "W", "b", "y", "Y", "w"))
    return {
        "softmax": lambda t: (sf.softmax(Z, n_threads=t),),
        "log_softmax": lambda t: (sf.log_softmax(Z, n_threads=t),),
        "logsumexp": lambda t: (sf.logsumexp(Z, n_threads=t),),
        "cross_entropy-mean": lambda t: (sf.cross_entropy(Z, y, sample_weight=w, n_threads=t),),
        "cross_entropy-sum": lambda t: (sf.cross_entropy(Z, Y, reduction="sum", n_threads=t),),
        "cross_entropy-none": lambda t: (
            sf.cross_entropy(Z, y, sample_weight=w, reduction="none", n_threads=t),
        ),
        "cross_entropy_grad-labels": lambda t: sf.cross_entropy_grad(
            Z, y, sample_weight=w, n_threads=t
        ),
        "cross_entropy_grad-soft": lambda t: sf.cross_entropy_grad(Z, Y, n_threads=t),
        "loss_and_grad-labels": lambda t: sf.loss_and_grad(
            X, y, W, b, alpha=0.3, sample_weight=w, n_threads=t
        ),
        "loss_and_grad-soft": lambda t: sf.loss_and_grad(X, Y, W, None, n_threads=t)[:2],
        "predict_proba": lambda t: (sf.predict_proba(X, W, b, n_threads=t),),
        "predict": lambda t: (sf.predict(X, W, b, n_threads=t),),
    }


NAMES = [
    "softmax",
    "log_softmax",
    "logsumexp",
    "cross_entropy-mean",
    "cross_entropy-sum",
    "cross_entropy-none",
    "cross_entropy_grad-labels",
    "cross_entropy_grad-soft",
    "loss_and_grad-labels",
    "loss_and_grad-soft",
    "predict_proba",
    "predict",
]

_CACHE = {}


def data(dtype):
    if dtype not in _CACHE:
        _CACHE[dtype] = _data(dtype)
    return _CACHE[dtype]


def _clear_rows(d):
    """Rows of X W^T + b whose top two logits are well separated (argmax is unambiguous)."""
    Z = d["X"].astype(np.float64) @ d["W"].astype(np.float64).T + d["b"].astype(np.float64)
    top2 = np.sort(Z, axis=1)[:, -2:]
    return (top2[:, 1] - top2[:, 0]) > 1e-3


def assert_agree(name, r1, r2, dtype, d):
    assert len(r1) == len(r2)
    t = THREAD_TOL[dtype]
    for a, b in zip(r1, r2, strict=True):
        if name == "predict":
            clear = _clear_rows(d)
            assert clear.mean() > 0.99
            np.testing.assert_array_equal(a[clear], b[clear])
            continue
        if isinstance(a, float):
            assert isinstance(b, float)
            assert abs(a - b) <= t * abs(a), f"{name}: {a!r} vs {b!r}"
            continue
        a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
        assert a.shape == b.shape and a.dtype == b.dtype
        diff = np.linalg.norm(a64 - b64)
        norm = np.linalg.norm(a64)
        assert diff <= t * norm, f"{name}: ||1 thread - n threads|| = {diff:.3e} > {t} * {norm:.3e}"


def assert_identical(name, r1, r2):
    for a, b in zip(r1, r2, strict=True):
        if isinstance(a, float):
            assert a == b or (np.isnan(a) and np.isnan(b)), f"{name}: {a!r} != {b!r}"
        else:
            assert a.dtype == b.dtype
            assert np.array_equal(a, b), f"{name}: repeated calls differ"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_one_vs_two_threads(name, dtype):
    d = data(dtype)
    call = _calls(d)[name]
    assert_agree(name, call(1), call(2), dtype, d)


@pytest.mark.parametrize("n_threads", [1, 2, 3, None])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_repeated_calls_are_bit_identical(name, dtype, n_threads):
    call = _calls(data(dtype))[name]
    first = call(n_threads)
    for _ in range(2):
        assert_identical(name, first, call(n_threads))


@pytest.mark.parametrize("n_threads", [None, 8, 64])
@pytest.mark.parametrize("name", NAMES)
def test_default_and_oversubscribed_thread_counts(name, n_threads):
    d = data(np.float64)
    call = _calls(d)[name]
    assert_agree(name, call(1), call(n_threads), np.float64, d)


def test_in_place_softmax_with_threads():
    Z = data(np.float64)["Z"]
    expected = sf.softmax(Z, n_threads=1)
    for t in (2, 8):
        buf = Z.copy()
        assert sf.softmax(buf, out=buf, n_threads=t) is buf
        assert np.linalg.norm(buf - expected) <= 1e-10 * np.linalg.norm(expected)


def test_fewer_rows_than_threads():
    rng = np.random.default_rng(1)
    Z = random_logits(rng, 3, 5)
    X, W, b = random_problem(rng, 3, 5, 4)
    y = random_labels(rng, 3, 5)
    for t in (1, 2, 8):
        np.testing.assert_allclose(sf.softmax(Z, n_threads=t), sf.softmax(Z, n_threads=1))
        l1, dW1, db1 = sf.loss_and_grad(X, y, W, b, n_threads=1)
        lt, dWt, dbt = sf.loss_and_grad(X, y, W, b, n_threads=t)
        assert abs(l1 - lt) <= 1e-12 * abs(l1)
        np.testing.assert_allclose(dWt, dW1, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(dbt, db1, rtol=1e-10, atol=1e-14)


@pytest.mark.skipif(not IS_LINUX, reason="threadpoolctl controls the OpenMP runtime on Linux")
def test_default_thread_count_under_a_threadpoolctl_limit():
    """n_threads=None under a threadpoolctl OpenMP limit of one thread gives the one-thread
    result (that the limit caps get_config()['max_threads'] is in test_config.py)."""
    if not sf.get_config()["openmp"]:
        pytest.skip("built without OpenMP")
    d = data(np.float64)
    with threadpool_limits(limits=1, user_api="openmp"):
        res = sf.softmax(d["Z"])
    assert np.linalg.norm(res - sf.softmax(d["Z"], n_threads=1)) <= 1e-10 * np.linalg.norm(res)


# ---------------------------------------------------------------------------------------------
# Several Python threads at once
# ---------------------------------------------------------------------------------------------

N_PY_THREADS = 8


def _shared_problem(seed, dtype, K=10):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((3000, 40)).astype(dtype)
    W = (rng.standard_normal((K, 40)) * 0.2).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    y = rng.integers(0, K, 3000)
    Z = rng.standard_normal((3000, K)).astype(dtype) * 3
    for a in (X, W, b, y, Z):
        a.flags.writeable = False
    return X, W, b, y, Z


def _shared_calls(X, W, b, y, Z, n_threads):
    return {
        "softmax": lambda: sf.softmax(Z, n_threads=n_threads),
        "log_softmax": lambda: sf.log_softmax(Z, n_threads=n_threads),
        "logsumexp": lambda: sf.logsumexp(Z, n_threads=n_threads),
        "cross_entropy_grad": lambda: sf.cross_entropy_grad(Z, y, n_threads=n_threads),
        "loss_and_grad": lambda: sf.loss_and_grad(X, y, W, b, alpha=0.1, n_threads=n_threads),
        "predict_proba": lambda: sf.predict_proba(X, W, b, n_threads=n_threads),
        "predict": lambda: sf.predict(X, W, b, n_threads=n_threads),
    }


def _shared_weights(seed):
    w = np.random.default_rng(seed).uniform(0.5, 2.0, 3000)
    w.flags.writeable = False
    return w


def _weighted_calls(X, W, b, y, Z, w, n_threads):
    return {
        "cross_entropy_grad-weighted": lambda: sf.cross_entropy_grad(
            Z, y, sample_weight=w, n_threads=n_threads
        ),
        "loss_and_grad-weighted": lambda: sf.loss_and_grad(
            X, y, W, b, alpha=0.3, sample_weight=w, n_threads=n_threads
        ),
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
    problem = _shared_problem(0, dtype, K)
    calls = _shared_calls(*problem, n_threads)
    calls.update(_weighted_calls(*problem, _shared_weights(0), n_threads))
    expected = {name: fn() for name, fn in calls.items()}
    jobs = [name for name in calls for _ in range(4)]
    with ThreadPoolExecutor(N_PY_THREADS) as pool:
        results = list(pool.map(lambda name: (name, calls[name]()), jobs))
    for name, result in results:
        assert _same(result, expected[name]), name


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_concurrent_calls_with_different_thread_counts_equal_serial_calls(dtype):
    """Calls with n_threads = 1 and 2 interleaved on the BLAS path, while the main thread holds a
    BLAS limit of its own (as a user doing numpy work around them may), equal the serial calls
    bit for bit: every call's BLAS runs on one thread, whatever limit another Python thread set
    (a limit of the worker threads' own would be ignored there, and two BLAS threads change the
    float32 results in the last bit)."""
    X, W, b, y, _ = _shared_problem(0, dtype, K=40)
    assert not _design.uses_small_gemm(40, 40, np.dtype(dtype))
    jobs = [1, 2] * 16
    with threadpool_limits(limits=2, user_api="blas"):
        expected = {nt: sf.loss_and_grad(X, y, W, b, n_threads=nt) for nt in (1, 2)}
        with ThreadPoolExecutor(N_PY_THREADS) as pool:
            results = list(pool.map(lambda nt: sf.loss_and_grad(X, y, W, b, n_threads=nt), jobs))
    for nt, got in zip(jobs, results, strict=True):
        assert _same(got, expected[nt]), nt


def test_concurrent_calls_on_separate_inputs_equal_serial_calls():
    problems = [_shared_problem(seed, np.float64) for seed in range(N_PY_THREADS)]
    expected = [sf.loss_and_grad(X, y, W, b, n_threads=2) for X, W, b, y, _ in problems]
    with ThreadPoolExecutor(N_PY_THREADS) as pool:
        results = list(
            pool.map(lambda p: sf.loss_and_grad(p[0], p[3], p[1], p[2], n_threads=2), problems)
        )
    for got, want in zip(results, expected, strict=True):
        assert _same(got, want)


@pytest.mark.parametrize("K", [10, 40], ids=["micro-kernel-tiles", "blas-tiles"])
def test_more_threads_than_cores(K):
    """n_threads=16 (8x the cores of a 2-core machine) agrees with one thread within the contract's
    1e-10 relative (the chunks, hence the summation order, differ) and is reproducible."""
    X, W, b, y, Z = _shared_problem(1, np.float64, K)
    calls16, calls1 = _shared_calls(X, W, b, y, Z, 16), _shared_calls(X, W, b, y, Z, 1)
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


# ---------------------------------------------------------------------------------------------
# Fits: concurrent, and with more threads than cores
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# BLAS held at one thread while a BLAS-tile kernel runs (no OpenMP x BLAS oversubscription)
# ---------------------------------------------------------------------------------------------


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
    X, W, b, y, _ = _shared_problem(2, np.float32, K=40)
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
    X, W, b, y, _ = _shared_problem(3, np.float64, K=40)
    with threadpool_limits(limits=2, user_api="blas"):
        with ThreadPoolExecutor(N_PY_THREADS) as pool:
            list(pool.map(lambda nt: sf.loss_and_grad(X, y, W, b, n_threads=nt), [1, 2] * 12))
        assert set(_blas_threads()) == {2}
    assert len(blas_spy.seen) == 24
    assert all(set(counts) == {1} for counts in blas_spy.seen), blas_spy.seen


def test_micro_kernel_path_leaves_blas_alone(blas_spy):
    X, W, b, y, _ = _shared_problem(4, np.float64, K=10)
    if not _design.uses_small_gemm(40, 10, np.dtype(np.float64)):
        pytest.skip("no AVX2+FMA micro-kernels on this CPU")
    with threadpool_limits(limits=2, user_api="blas"):
        sf.loss_and_grad(X, y, W, b, n_threads=2)
    assert blas_spy.seen == [[2] * len(blas_spy.seen[0])]

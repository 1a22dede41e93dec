"""Thread-count behaviour: 1 vs several threads agree, repeated calls are bit-identical,
n_threads=None / oversubscription work, OpenMP is compiled in on Linux, and the kernels are safe
to call from several Python threads at once."""

import os
import subprocess
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

import softmax_fast as sf
from softmax_fast._native import testing as hooks

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


def test_concurrent_python_threads_give_the_same_results():
    # The kernels release the GIL; calling them from several Python threads at once must be safe.
    d = data(np.float64)
    calls = _calls(d)
    names = ["softmax", "cross_entropy_grad-labels", "loss_and_grad-labels", "predict_proba"]
    expected = {name: calls[name](2) for name in names}
    jobs = [name for name in names for _ in range(3)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda name: calls[name](2), jobs))
    for name, res in zip(jobs, results, strict=True):
        assert_identical(name, expected[name], res)


# ---------------------------------------------------------------------------------------------
# Configuration / OpenMP
# ---------------------------------------------------------------------------------------------


def test_get_config_keys():
    cfg = sf.get_config()
    assert isinstance(cfg["version"], str) and cfg["version"]
    assert isinstance(cfg["openmp"], bool)
    assert isinstance(cfg["max_threads"], int) and cfg["max_threads"] >= 1
    assert isinstance(cfg["simd_exp"], str)


def test_show_config_prints(capsys):
    sf.show_config()
    text = capsys.readouterr().out
    assert "openmp" in text.lower()
    assert sf.get_config()["version"] in text


@pytest.mark.skipif(not IS_LINUX, reason="OpenMP is required on Linux builds only")
def test_openmp_is_compiled_in_on_linux():
    assert sf.get_config()["openmp"] is True
    assert hooks.openmp_team_size(2) == 2
    assert hooks.openmp_team_size(1) == 1


def test_team_size_without_openmp_is_one():
    if sf.get_config()["openmp"]:
        pytest.skip("built with OpenMP")
    assert hooks.openmp_team_size(3) == 1


@pytest.mark.skipif(not IS_LINUX, reason="threadpoolctl controls the OpenMP runtime on Linux")
def test_threadpoolctl_limits_are_respected():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not sf.get_config()["openmp"]:
        pytest.skip("built without OpenMP")
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert sf.get_config()["max_threads"] == 1
    # n_threads=None still gives the right answer under the limit.
    d = data(np.float64)
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        res = sf.softmax(d["Z"])
    assert np.linalg.norm(res - sf.softmax(d["Z"], n_threads=1)) <= 1e-10 * np.linalg.norm(res)


@pytest.mark.skipif(not IS_LINUX, reason="OMP_NUM_THREADS is read by the OpenMP runtime")
def test_omp_num_threads_is_respected():
    if not sf.get_config()["openmp"]:
        pytest.skip("built without OpenMP")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    code = "import softmax_fast as sf; print(sf.get_config()['max_threads'])"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "1"

"""Kernel benchmarks: softmax_fast against the NumPy reference and peers, in one run.

Each group holds one case; its members are the competitors, so
``pytest benchmarks --benchmark-only`` prints them together and ``report.py`` turns a saved run
into ratios (baseline: ``reference``).  The ``floor`` group measures, in the same run, what the
floors of RESULTS.md are computed from: reading X once, copying Z, and the machine's GEMM rate.

Workflow (see RESULTS.md):
    pytest benchmarks --benchmark-only --benchmark-autosave          # save a baseline
    pytest benchmarks --benchmark-only --benchmark-compare           # compare a later commit
    pytest benchmarks --benchmark-only --benchmark-json=run.json
    python benchmarks/report.py run.json
"""

import numpy as np
import peers
import pytest

import softmax_fast as sf
from softmax_fast import reference

THREADS = [1, 2]

# (m, n, K) of the fused loss-and-gradient cases: the compiled-core issue's two, and a wide
# MNIST-shaped one.
LOSS_GRAD_CASES = [(200_000, 100, 10), (20_000, 256, 1000), (60_000, 784, 10)]
LOSS_GRAD_IMPLS = [
    "softmax_fast-2t",
    "softmax_fast-1t",
    "reference",
    "scikit-learn",
    "torch",
    "jax",
]


def _linear_problem(rng, m, n, K, dtype):
    X = rng.standard_normal((m, n)).astype(dtype)
    W = (rng.standard_normal((K, n)) * 0.1).astype(dtype)
    b = (rng.standard_normal(K) * 0.1).astype(dtype)
    y = rng.integers(0, K, m)
    return X, y, W, b


# --------------------------------------------------------------------------- loss_and_grad


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", LOSS_GRAD_CASES, ids=lambda c: f"{c[0]}x{c[1]}-K{c[2]}")
@pytest.mark.parametrize("impl", LOSS_GRAD_IMPLS)
def test_loss_and_grad(benchmark, quick, scaled, rng, case, dtype, impl):
    m, n, K = case
    if K == 1000 and dtype == "float32" and not quick:
        pytest.skip("RESULTS.md tracks the K=1000 case in float64 only")
    X, y, W, b = _linear_problem(rng, scaled(m), n, K, dtype)
    benchmark.group = f"loss_and_grad {m}x{n} K={K} {dtype}"
    if impl == "reference":
        fn = lambda: reference.loss_and_grad(X, y, W, b)  # noqa: E731
    elif impl == "scikit-learn":
        fn = peers.sklearn_loss_and_grad(X, y, W, b, n_threads=2)
    elif impl == "torch":
        fn = peers.torch_loss_and_grad(X, y, W, b)
    elif impl == "jax":
        fn = peers.jax_loss_and_grad(X, y, W, b)
    else:
        threads = int(impl.rsplit("-", 1)[1][:-1])
        fn = lambda: sf.loss_and_grad(X, y, W, b, n_threads=threads)  # noqa: E731
    result = benchmark(fn)
    assert result is not None


# --------------------------------------------------------------------------- row-wise kernels

SOFTMAX_SIZES = [(1_000_000, 10)]
ROWWISE_IMPLS = ["softmax_fast-2t", "softmax_fast-1t", "reference"]


def _scipy_special():
    return pytest.importorskip("scipy.special")


def _logits(rng, scaled, dtype):
    m, K = SOFTMAX_SIZES[0]
    return rng.standard_normal((scaled(m), K)).astype(dtype), f"{m}x{K} {dtype}"


def _threads(impl):
    return int(impl.rsplit("-", 1)[1][:-1])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("impl", [*ROWWISE_IMPLS, "scipy", "torch", "jax"])
def test_softmax(benchmark, scaled, rng, dtype, impl):
    Z, case = _logits(rng, scaled, dtype)
    benchmark.group = f"softmax {case}"
    if impl == "scipy":
        out = benchmark(_scipy_special().softmax, Z, axis=1)
    elif impl == "reference":
        out = benchmark(reference.softmax, Z)
    elif impl == "torch":
        out = benchmark(peers.torch_softmax(Z)).numpy()
    elif impl == "jax":
        out = np.asarray(benchmark(peers.jax_softmax(Z)))
    else:
        out = benchmark(sf.softmax, Z, n_threads=_threads(impl))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("impl", [*ROWWISE_IMPLS, "scipy"])
def test_log_softmax(benchmark, scaled, rng, dtype, impl):
    Z, case = _logits(rng, scaled, dtype)
    benchmark.group = f"log_softmax {case}"
    if impl == "scipy":
        out = benchmark(_scipy_special().log_softmax, Z, axis=1)
    elif impl == "reference":
        out = benchmark(reference.log_softmax, Z)
    else:
        out = benchmark(sf.log_softmax, Z, n_threads=_threads(impl))
    assert np.all(out <= 0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("impl", ROWWISE_IMPLS)
def test_cross_entropy(benchmark, scaled, rng, dtype, impl):
    Z, case = _logits(rng, scaled, dtype)
    y = rng.integers(0, Z.shape[1], Z.shape[0])
    benchmark.group = f"cross_entropy {case}"
    if impl == "reference":
        loss = benchmark(reference.cross_entropy, Z, y)
    else:
        loss = benchmark(sf.cross_entropy, Z, y, n_threads=_threads(impl))
    assert loss > 0


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("impl", [*ROWWISE_IMPLS, "scikit-learn", "torch"])
def test_cross_entropy_grad(benchmark, scaled, rng, dtype, impl):
    Z, case = _logits(rng, scaled, dtype)
    y = rng.integers(0, Z.shape[1], Z.shape[0])
    benchmark.group = f"cross_entropy_grad {case}"
    if impl == "reference":
        fn = lambda: reference.cross_entropy_grad(Z, y)  # noqa: E731
    elif impl == "scikit-learn":
        fn = peers.sklearn_cross_entropy_grad(Z, y, n_threads=2)
    elif impl == "torch":
        fn = peers.torch_cross_entropy_grad(Z, y)
    else:
        fn = lambda: sf.cross_entropy_grad(Z, y, n_threads=_threads(impl))  # noqa: E731
    assert benchmark(fn) is not None


# --------------------------------------------------------------------------- floor probes


@pytest.mark.parametrize(
    "probe",
    [
        "read X 200000x100 float64",
        "read X 200000x100 float32",
        "copy Z 1000000x10",
        "gemm 2000^3 float64",
        "gemm 2000^3 float32",
    ],
)
def test_floor(benchmark, quick, scaled, rng, probe):
    """What the floors are computed from: memory traffic and the GEMM rate (all threads)."""
    benchmark.group = "floor probes"
    if probe.startswith("read X"):
        dtype = probe.rsplit(" ", 1)[1]
        X = rng.standard_normal((scaled(200_000), 100)).astype(dtype)
        benchmark(np.sum, X)
    elif probe.startswith("copy Z"):
        Z = rng.standard_normal((scaled(1_000_000), 10))
        out = np.empty_like(Z)
        benchmark(np.copyto, out, Z)
    else:
        size = 64 if quick else 2000
        dtype = probe.rsplit(" ", 1)[1]
        A = rng.standard_normal((size, size)).astype(dtype)
        benchmark(np.matmul, A, A)

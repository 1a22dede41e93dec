"""A buffer that cannot be allocated is a MemoryError, never a crash.

Every work-space buffer of the compiled kernels is a NumPy array allocated with the GIL held
before the parallel region (``_native._workspace._alloc``; there is no malloc in the kernels).
Two checks that a failing allocation leaves the process, the caller's arrays and later calls
intact:

* the extension's test hook ``_fail_allocation(n)`` makes the n-th allocation of a call fail;
  every allocation of every kernel is failed in turn (cheap and deterministic);
* child processes under ``RLIMIT_AS`` make NumPy itself run out: a fused loss whose per-thread
  gradients cannot fit, and outputs far larger than any memory.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import softmax_fast as sf
from softmax_fast import _design, reference
from softmax_fast._native import testing as hooks

_N_THREADS = 2  # several chunks: the parallel path


def _inputs(dtype, rng):
    m, n, K = 300, 7, 5
    X = rng.standard_normal((m, n)).astype(dtype)
    W = rng.standard_normal((K, n)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    L = (3 * rng.standard_normal((m, K))).astype(dtype)  # logits
    labels = rng.integers(0, K, m)
    soft = rng.dirichlet(np.ones(K), m).astype(dtype)
    weights = rng.uniform(0.5, 2.0, m)
    # Logits wide enough that a block holds one row; chunks then fill their scratch rows.
    Z = rng.standard_normal((6, 5000)).astype(dtype)
    return {"X": X, "L": L, "W": W, "b": b, "y": labels, "soft": soft, "w": weights, "Z": Z}


def _softmax_in_place(d):
    # out=Z: the kernel writes into the caller's array; a failed call must not have touched it.
    sf.softmax(d["Z"], out=d["Z"], n_threads=_N_THREADS)
    return d["Z"].copy()


# (name, call, least number of kernel allocations the call makes, reference)
CALLS = [
    (
        "softmax",
        lambda d: sf.softmax(d["X"], n_threads=_N_THREADS),
        3,
        lambda d: reference.softmax(d["X"]),
    ),
    ("softmax_out_is_Z", _softmax_in_place, 3, lambda d: reference.softmax(d["Z"])),
    (
        "log_softmax",
        lambda d: sf.log_softmax(d["Z"], n_threads=_N_THREADS),
        3,
        lambda d: reference.log_softmax(d["Z"]),
    ),
    (
        "logsumexp",
        lambda d: sf.logsumexp(d["X"], n_threads=_N_THREADS),
        3,
        lambda d: reference.logsumexp(d["X"]),
    ),
    (
        "cross_entropy_weighted_none",
        lambda d: sf.cross_entropy(
            d["L"], d["y"], sample_weight=d["w"], reduction="none", n_threads=_N_THREADS
        ),
        5,
        lambda d: reference.cross_entropy(d["L"], d["y"], sample_weight=d["w"], reduction="none"),
    ),
    (
        "cross_entropy_grad_soft",
        lambda d: sf.cross_entropy_grad(d["L"], d["soft"], n_threads=_N_THREADS),
        5,
        lambda d: reference.cross_entropy_grad(d["L"], d["soft"]),
    ),
    (
        "loss_and_grad_labels",
        lambda d: sf.loss_and_grad(
            d["X"], d["y"], d["W"], d["b"], alpha=0.5, sample_weight=d["w"], n_threads=_N_THREADS
        ),
        9,
        lambda d: reference.loss_and_grad(
            d["X"], d["y"], d["W"], d["b"], alpha=0.5, sample_weight=d["w"]
        ),
    ),
    (
        "loss_and_grad_soft_no_b",
        lambda d: sf.loss_and_grad(d["X"], d["soft"], d["W"], n_threads=_N_THREADS),
        9,
        lambda d: reference.loss_and_grad(d["X"], d["soft"], d["W"]),
    ),
    (
        "predict_proba",
        lambda d: sf.predict_proba(d["X"], d["W"], d["b"], n_threads=_N_THREADS),
        4,
        lambda d: reference.predict_proba(d["X"], d["W"], d["b"]),
    ),
    (
        "predict",
        lambda d: sf.predict(d["X"], d["W"], d["b"], n_threads=_N_THREADS),
        4,
        lambda d: reference.predict(d["X"], d["W"], d["b"]),
    ),
]


def _flat(result):
    """The arrays and floats of a result, in order (tuples, None and scalars included)."""
    if isinstance(result, tuple):
        return [x for r in result for x in _flat(r)]
    return [result]


def _assert_same(a, b):
    for x, y in zip(_flat(a), _flat(b), strict=True):
        if x is None or y is None:
            assert x is None and y is None
        else:
            np.testing.assert_array_equal(x, y)


def _assert_close(a, b, rtol):
    for x, y in zip(_flat(a), _flat(b), strict=True):
        if x is None or y is None:
            assert x is None and y is None
        else:
            np.testing.assert_allclose(np.asarray(x, dtype=np.float64), y, rtol=rtol, atol=rtol)


@pytest.fixture(autouse=True)
def _hook_off():
    hooks._fail_allocation(0)
    yield
    hooks._fail_allocation(0)


def _cases():
    for name, call, least, ref in CALLS:
        # The linear-model kernels have two tile paths (AVX2 micro-kernels and BLAS).
        paths = [True, False] if name.startswith(("loss", "predict")) else [True]
        for small_gemm in paths:
            for dtype in (np.float32, np.float64):
                suffix = ("-micro" if small_gemm else "-blas") if len(paths) > 1 else ""
                yield pytest.param(
                    call, least, ref, small_gemm, dtype, id=f"{name}{suffix}-{np.dtype(dtype)}"
                )


@pytest.mark.parametrize(("call", "least", "ref", "small_gemm", "dtype"), list(_cases()))
def test_each_failed_allocation_is_a_memoryerror(
    call, least, ref, small_gemm, dtype, rng, monkeypatch
):
    monkeypatch.setattr(_design, "_USE_SMALL_GEMM", small_gemm)
    inputs = _inputs(dtype, rng)
    original = {k: v.copy() for k, v in inputs.items()}
    expected = call(inputs)
    inputs["Z"][...] = original["Z"]  # the in-place case wrote its result there
    _assert_close(expected, ref(original), rtol=1e-4 if dtype == np.float32 else 1e-10)

    failed = 0
    for nth in range(1, 100):
        hooks._fail_allocation(nth)
        try:
            result = call(inputs)
        except MemoryError as exc:
            assert "injected" in str(exc)
            failed += 1
            for key, value in original.items():  # inputs (and out=Z) untouched
                np.testing.assert_array_equal(inputs[key], value, err_msg=key)
            continue
        # The call made fewer than nth allocations: each one has failed once.
        assert hooks._fail_allocation(0) > 0
        break
    else:
        pytest.fail("the call kept allocating")
    assert failed >= least
    # The process and the module are fine: the same result, bit for bit, as before.
    _assert_same(result, expected)


def test_hook_is_off_by_default_and_reports_what_was_left():
    assert hooks._fail_allocation(0) == 0
    hooks._fail_allocation(1000)
    sf.softmax(np.ones((3, 4)), n_threads=1)  # three allocations
    assert hooks._fail_allocation(0) == 997


def _run_child(code):
    """Run ``code`` in a child Python that has ``cap(extra)``: cap the address space (soft limit)
    at ``extra`` bytes above what the process uses then.  Return the child's stdout words."""
    script = textwrap.dedent(
        """
        import resource, sys
        import numpy as np
        import softmax_fast as sf
        from softmax_fast import reference

        def cap(extra):
            with open("/proc/self/statm") as f:
                used = int(f.read().split()[0]) * resource.getpagesize()
            hard = resource.getrlimit(resource.RLIMIT_AS)[1]
            resource.setrlimit(resource.RLIMIT_AS, (used + extra, hard))
        """
    ) + textwrap.dedent(code)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.split()


needs_proc = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc/self/statm: Linux"
)


@needs_proc
def test_scratch_that_cannot_fit_is_a_memoryerror_in_a_child_process():
    # With n_threads=256 the fused kernel runs 256 chunks of 64-row tiles, each with its own
    # (K, n) gradient sums: about 0.8 GiB of scratch for 33 MiB of inputs, under a cap of
    # 256 MiB (the inputs are made before the cap).
    code = """
    rng = np.random.default_rng(0)
    m, n, K = 256 * 64, 512, 512
    X = rng.standard_normal((m, n), dtype=np.float32)
    W = rng.standard_normal((K, n), dtype=np.float32)
    y = rng.integers(0, K, m)
    X0, W0, y0 = X.copy(), W.copy(), y.copy()
    cap(256 * 2**20)
    try:
        sf.loss_and_grad(X, y, W, n_threads=256)
    except MemoryError:
        print("MemoryError")
    assert np.array_equal(X, X0) and np.array_equal(W, W0) and np.array_equal(y, y0)
    loss, dW, _ = sf.loss_and_grad(X[:500], y[:500], W, n_threads=2)
    ref_loss, ref_dW, _ = reference.loss_and_grad(X[:500], y[:500], W)
    assert abs(loss - ref_loss) <= 1e-4 * abs(ref_loss), (loss, ref_loss)
    assert np.allclose(dW, ref_dW, rtol=1e-3, atol=1e-5)
    print("recovered")
    """
    assert _run_child(code) == ["MemoryError", "recovered"]


@needs_proc
def test_outputs_larger_than_memory_are_numpys_memoryerror():
    # Zero features make X empty whatever its row count, so only the outputs are huge; the
    # address-space cap makes the failure certain even where the kernel overcommits memory.
    code = """
    cap(256 * 2**20)
    X, W = np.empty((2**40, 0)), np.empty((3, 0))
    for f in (sf.predict_proba, sf.predict):
        try:
            f(X, W, n_threads=2)
        except MemoryError:
            print("MemoryError")
    Z = np.broadcast_to(np.arange(3.0), (2**40, 3))  # a view: no memory until copied
    for f in (sf.softmax, sf.logsumexp):
        try:
            f(Z, n_threads=2)
        except MemoryError:
            print("MemoryError")
    p = sf.softmax(Z[:4], n_threads=2)
    assert np.allclose(p, reference.softmax(np.asarray(Z[:4])), rtol=1e-12, atol=0)
    print("recovered")
    """
    assert _run_child(code) == ["MemoryError"] * 4 + ["recovered"]

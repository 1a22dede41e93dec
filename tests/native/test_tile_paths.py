"""The fused kernel's two ways of doing the tile products -- the AVX2+FMA micro-kernels and
BLAS -- each against the reference, on the shapes where their code paths branch: K around the
vector widths (4 doubles, 8 floats) and the micro-kernels' limits, n with and without a tail,
row counts that leave partial row blocks and partial tiles, with several threads."""

import numpy as np
import pytest
from kernel_test_helpers import gemm_allowances, logit_rounding, proba_allowance

import softmax_fast as sf
from softmax_fast import _design, reference

K_VALUES = [1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 16, 17, 24, 32, 33]
N_VALUES = [1, 3, 8, 13, 100]


@pytest.fixture(params=[True, False], ids=["micro-kernels", "blas"])
def tile_path(request, monkeypatch):
    monkeypatch.setattr(_design, "_USE_SMALL_GEMM", request.param)
    return request.param


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return 0.0 if a.size == 0 else float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("K", K_VALUES)
@pytest.mark.parametrize("n", N_VALUES)
def test_loss_and_grad_and_predict_on_both_tile_paths(tile_path, dtype, K, n):
    rng = np.random.default_rng(K * 1000 + n)
    m = 203  # several row blocks and a partial one, more than one tile with 2 threads
    X = rng.standard_normal((m, n)).astype(dtype)
    W = (rng.standard_normal((K, n)) * 0.5).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    y = rng.integers(0, K, m)
    w = rng.random(m) + 0.1
    X64, W64, b64 = X.astype(np.float64), W.astype(np.float64), b.astype(np.float64)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    loss, dW, db = sf.loss_and_grad(X, y, W, b, alpha=0.1, sample_weight=w, n_threads=2)
    r_loss, r_dW, r_db = reference.loss_and_grad(X64, y, W64, b64, alpha=0.1, sample_weight=w)
    # plus the float64 rounding of the logits (a GEMM here and in the reference, whichever
    # kernels the CPU's BLAS picks), carried to each result (kernel_test_helpers)
    a_loss, a_dW, a_db = gemm_allowances(X64, y, W64, b64, w)
    assert abs(loss - r_loss) <= tol * max(1.0, abs(r_loss)) + a_loss
    assert _rel(dW, r_dW) <= tol + a_dW / np.abs(r_dW).max()
    assert _rel(db, r_db) <= tol + a_db / max(np.abs(r_db).max(), 1e-300)
    proba = sf.predict_proba(X, W, b, n_threads=2)
    proba_tol = tol + proba_allowance(X64, W64, b64)
    assert _rel(proba, reference.predict_proba(X64, W64, b64)) <= proba_tol
    if dtype == np.float64:
        # alike where the top-two gap exceeds twice the two logits' rounding (+ the gap's own)
        clear = np.ones(m, dtype=bool)
        if K > 1:
            top2 = np.sort(X64 @ W64.T + b64, axis=1)[:, -2:]
            clear = top2[:, 1] - top2[:, 0] > 6 * logit_rounding(X64, W64, b64)
        assert clear.mean() >= 0.99
        expected = reference.predict(X64, W64, b64)
        np.testing.assert_array_equal(sf.predict(X, W, b, n_threads=2)[clear], expected[clear])


def test_micro_kernels_really_run_where_the_cpu_has_avx2():
    """On an AVX2+FMA machine the default path must be the micro-kernels (not silently BLAS)."""
    if not sf.get_config()["small_gemm"]:
        pytest.skip("CPU or compiler without AVX2+FMA micro-kernels")
    assert _design.uses_small_gemm(100, 10, np.dtype(np.float64))
    assert not _design.uses_small_gemm(100, 17, np.dtype(np.float64))
    assert _design.uses_small_gemm(100, 32, np.dtype(np.float32))

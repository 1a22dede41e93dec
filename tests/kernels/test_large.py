"""Large data: ``loss_and_grad`` on a float32 X of more than 2**31 elements (8.6 GB) agrees with a
float64 reference evaluated over row chunks, on both tile paths, and names a bad row beyond the
2**31st element exactly.

Every index and every product like ``row * n`` in the kernels is a ``Py_ssize_t`` (64-bit); a
32-bit ``int`` anywhere on that path would wrap past element 2**31 and read the wrong rows (wrong
results) or outside X (a crash).  X has n = 16 columns, so elements past 2**31 start at row
2**27 = 134,217,728 (the last 1,000 rows), and byte offsets pass 2**32 from row 2**26 on.

The rows repeat with a period of P = 1,000,003 rows (a prime: row i and row i - 2**k never hold
the same data, so no wrapped 32-bit index can read a copy of the right row), and the rows past
element 2**31 are scaled by 4 and all labelled K - 1, so the float64 reference needs only the
period, the last partial period and that tail, each counted as many times as it occurs.

Marked ``slow`` (not run in CI): it needs ~10.5 GB of free memory.  Run it with::

    python -m pytest tests/kernels/test_large.py -m slow -q

Measured on the 2-core development machine (busy): 97 s in all (40 s to build X, 15 s and 30 s
for the two tile paths, 9 s for the bad row), peak RSS 10.2 GiB (X 8.0 GiB, labels 1.0 GiB).
"""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import softmax_fast as sf
from softmax_fast import _design, reference

pytestmark = pytest.mark.slow

N_FEATURES = 16
N_ROWS = 2**31 // N_FEATURES + 1000  # 2**31 + 16,000 elements
TAIL = 2**31 // N_FEATURES  # first row with elements past 2**31
PERIOD = 1_000_003


def _available_bytes():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


@pytest.fixture(scope="module")
def big():
    need = N_ROWS * N_FEATURES * 4 + N_ROWS * 8 + (1 << 30)  # X, labels, 1 GiB of work space
    available = _available_bytes()
    if available is not None and available < need:
        pytest.skip(
            f"needs {need / 2**30:.1f} GiB of free memory, {available / 2**30:.1f} GiB free"
        )
    rng = np.random.default_rng(20240531)
    base = rng.standard_normal((PERIOD, N_FEATURES), dtype=np.float32)
    y_base = rng.integers(0, 10, PERIOD)
    X = np.empty((N_ROWS, N_FEATURES), dtype=np.float32)
    y = np.empty(N_ROWS, dtype=np.intp)
    for r in range(0, N_ROWS, PERIOD):  # in place: no full-size temporary
        rows = min(PERIOD, N_ROWS - r)
        X[r : r + rows] = base[:rows]
        y[r : r + rows] = y_base[:rows]
    assert X.size > 2**31
    return X, y


def _reference_sums(X, y, W, b):
    """(sum_i l_i, sum_i g_i x_i^T, sum_i g_i) over the rows of X in float64, g_i = softmax - y_i
    (the maths of ``softmax_fast.reference.loss_and_grad``, as sums instead of means)."""
    Xc = X.astype(np.float64)
    rows = np.arange(Xc.shape[0])
    Z = Xc @ W.T + b
    Z -= Z.max(axis=1, keepdims=True)
    E = np.exp(Z)
    s = E.sum(axis=1)
    G = E / s[:, None]
    G[rows, y] -= 1.0
    return np.array([np.sum(np.log(s) - Z[rows, y])]), G.T @ Xc, G.sum(axis=0)


def _periodic_reference(X, y, W, b):
    """(loss, dW, db) of the whole (periodic + tail) data: whole periods x their sums, plus the
    partial last period, plus the tail, divided by m."""
    full, rest = divmod(TAIL, PERIOD)
    with threadpool_limits(limits=1, user_api="blas"):  # steady on a busy machine
        parts = [
            (full, _reference_sums(X[:PERIOD], y[:PERIOD], W, b)),
            (1, _reference_sums(X[:rest], y[:rest], W, b)),
            (1, _reference_sums(X[TAIL:], y[TAIL:], W, b)),
        ]
    loss, dW, db = (sum(count * part[j] for count, part in parts) / N_ROWS for j in range(3))
    return float(loss[0]), dW, db


def test_periodic_reference_is_the_reference():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 4)).astype(np.float32)
    y = rng.integers(0, 3, 50)
    W, b = rng.standard_normal((3, 4)), rng.standard_normal(3)
    got = [a / 50 for a in _reference_sums(X, y, W, b)]
    want = reference.loss_and_grad(X.astype(np.float64), y, W, b)
    assert got[0][0] == pytest.approx(want[0], rel=1e-12)
    for g, w in zip(got[1:], want[1:], strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("K", [10, 40], ids=["micro-kernel-tiles", "blas-tiles"])
def test_loss_and_grad_beyond_2_31_elements(big, K):
    X, y = big
    rng = np.random.default_rng(K)
    W = rng.standard_normal((K, N_FEATURES)) * 0.3
    b = rng.standard_normal(K) * 0.1
    # the rows past element 2**31 get their own, very different, data: were they read wrongly
    # (an index wrapping to other rows), the gradient would show it
    y_tail = y[TAIL:].copy()
    X[TAIL:] *= 4
    y[TAIL:] = K - 1
    try:
        loss, dW, db = sf.loss_and_grad(X, y, W, b)
        ref_loss, ref_dW, ref_db = _periodic_reference(X, y, W, b)
    finally:  # the fixture's data again for the next case (/ 4 is exact)
        X[TAIL:] /= 4
        y[TAIL:] = y_tail
    assert _design.uses_small_gemm(N_FEATURES, K, np.dtype(np.float32)) == (K == 10)
    assert dW.dtype == np.float32 and db.dtype == np.float32
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    np.testing.assert_allclose(dW, ref_dW, rtol=0, atol=1e-5 * np.max(np.abs(ref_dW)))
    np.testing.assert_allclose(db, ref_db, rtol=0, atol=1e-5 * np.max(np.abs(ref_db)))


def test_bad_row_beyond_2_31_elements_is_named(big):
    X, y = big
    W = np.ones((10, N_FEATURES), dtype=np.float32)
    bad = N_ROWS - 7  # element index > 2**31
    saved = X[bad, 5]
    X[bad, 5] = np.nan
    try:
        with pytest.raises(ValueError, match=f"row {bad} "):
            sf.loss_and_grad(X, y, W)
    finally:
        X[bad, 5] = saved

"""Memory: repeated kernel calls do not leak, and the extra memory of ``loss_and_grad`` does not
grow with the number of rows.

Both are measured as resident memory (RSS, from ``/proc/self``) in a fresh child process, so that
pytest's own allocations do not blur the figures, and so that every allocation counts: the
kernels' per-chunk work space, NumPy temporaries of the validation layer and anything a C library
mallocs (``tracemalloc`` would only see the first two).

Peak extra memory of one call: after the inputs are allocated the child resets the kernel's
"peak RSS" counter (writing 5 to ``/proc/self/clear_refs``, Linux >= 4.0), records RSS, calls
``loss_and_grad`` and reads the peak (``VmHWM``).  glibc's malloc is told (``mallopt``) to serve
every block of 64 KiB or more by ``mmap`` and to give it back on ``free``: otherwise a temporary
can reuse heap pages that an earlier, freed array left resident and would not show in the peak.

Measured on the development machine (2 threads, n = 20 features, K = 10 classes; int64 labels, no
sample weights): 1.39 MiB extra for m = 10,000 rows and 1.39 MiB for m = 1,000,000 rows in
float64 (1.02 / 1.05 MiB in float32): the per-chunk tiles (8 chunks of ~210 KiB).  The label
range check makes no temporaries of a row each (boolean ones would add 0.9 MiB at
m = 1,000,000).  Inputs that must be converted are copied once (an O(m) cost of the input, not
of the kernel): int32 labels (to intp, 8 bytes a row) and sample weights
(rescaled by a power of two, 8 bytes a row) -- 9.6 MiB extra at m = 1,000,000.
"""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc/self (Linux)"
)

_MEASURE = r"""
import ctypes, json, os, sys
import numpy as np

PAGE = os.sysconf("SC_PAGE_SIZE")

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE

def peak():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024

def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
"""

_PEAK_CHILD = (
    _MEASURE
    + r"""
libc = ctypes.CDLL(None)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
if not (libc.mallopt(M_MMAP_THRESHOLD, 64 * 1024) and libc.mallopt(M_TRIM_THRESHOLD, 128 * 1024)):
    raise SystemExit("no mallopt")
reset_peak()

import softmax_fast as sf

n, K = 20, 10
rng = np.random.default_rng(0)
W = rng.standard_normal((K, n)) * 0.1
b = rng.standard_normal(K)
out = {}
for dtype in ("float64", "float32"):
    for m in (10_000, 1_000_000):
        X = np.empty((m, n), dtype=dtype)
        for r in range(0, m, 50_000):  # in place: no full-size float64 temporary
            X[r : r + 50_000] = rng.standard_normal((min(50_000, m - r), n))
        y = rng.integers(0, K, m)
        sf.loss_and_grad(X[:2000], y[:2000], W, b, alpha=0.1, n_threads=2)  # warm up
        reset_peak()
        before = rss()
        loss, dW, db = sf.loss_and_grad(X, y, W, b, alpha=0.1, n_threads=2)
        out[f"{dtype} {m}"] = (peak() - before) / 2**20
        assert np.isfinite(loss) and dW.shape == (K, n)
        del X, y, loss, dW, db
print(json.dumps(out))
"""
)


def _child(code, timeout=300):
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0 and "no mallopt" in proc.stderr:
        pytest.skip("needs glibc's mallopt to measure peak memory")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_loss_and_grad_extra_memory_does_not_grow_with_rows():
    extra = _child(_PEAK_CHILD)
    for dtype in ("float64", "float32"):
        small, large = extra[f"{dtype} 10000"], extra[f"{dtype} 1000000"]
        # Per-chunk work space only: a few MiB whatever m (the inputs of m = 1e6 rows are 160 MB
        # in float64, the logits (m, K) would be 80 MB, one float64 per row 7.6 MiB).
        assert small < 8.0, extra
        # 100 times more rows: the same extra memory (measured: 0.01 MiB more in float64, 0.03
        # in float32; a temporary of one byte a row would add 0.94 MiB).
        assert large - small < 0.25, extra


# ----------------------------------------------------------------------------- leaks

_LEAK_CHILD = (
    _MEASURE
    + r"""
import softmax_fast as sf

rng = np.random.default_rng(0)
m, n, K = 64, 8, 10
Z = rng.standard_normal((m, K))
Z32 = Z.astype(np.float32)
y = rng.integers(0, K, m)
Y = rng.dirichlet(np.ones(K), m)
w = rng.random(m) + 0.1
X = rng.standard_normal((m, n))
W = rng.standard_normal((K, n))
b = rng.standard_normal(K)
out = np.empty_like(Z)
Z_nan = Z.copy(); Z_nan[m // 2, 3] = np.nan
X_nan = X.copy(); X_nan[m // 2, 1] = np.nan
y_bad = y.copy(); y_bad[5] = K

ONE = {"n_threads": 1}
# (name, call, times): every kernel N_CALLS (10,000) times on one thread; variants and error paths
# 2,000 times, with two OpenMP threads 200 times (a fork/join costs milliseconds on a loaded 2-core
# machine): even then a leaked (64, 10) result (5 KiB) a call would add 1 MiB.
VARIANT, THREADED = N_CALLS // 5, N_CALLS // 50
calls = [
    ("softmax", lambda: sf.softmax(Z, **ONE), N_CALLS),
    ("softmax out= float32", lambda: sf.softmax(Z32, out=Z32.copy(), **ONE), VARIANT),
    ("log_softmax", lambda: sf.log_softmax(Z, out=out, **ONE), N_CALLS),
    ("logsumexp", lambda: sf.logsumexp(Z32, **ONE), N_CALLS),
    ("cross_entropy", lambda: sf.cross_entropy(Z, y, sample_weight=w, reduction="none", **ONE),
     N_CALLS),
    ("cross_entropy targets", lambda: sf.cross_entropy(Z, Y, **ONE), VARIANT),
    ("cross_entropy_grad", lambda: sf.cross_entropy_grad(Z, y, **ONE), N_CALLS),
    ("loss_and_grad", lambda: sf.loss_and_grad(X, y, W, b, alpha=0.1, sample_weight=w, **ONE),
     N_CALLS),
    ("loss_and_grad targets", lambda: sf.loss_and_grad(X.astype(np.float32), Y, W, **ONE),
     VARIANT),
    ("predict_proba", lambda: sf.predict_proba(X, W, b, **ONE), N_CALLS),
    ("predict", lambda: sf.predict(X, W, b, **ONE), N_CALLS),
    # error paths: found by the kernel (a NaN row) and by the validation (a label out of range)
    ("softmax NaN", lambda: sf.softmax(Z_nan, **ONE), VARIANT),
    ("cross_entropy_grad NaN", lambda: sf.cross_entropy_grad(Z_nan, y, **ONE), VARIANT),
    ("cross_entropy bad label", lambda: sf.cross_entropy(Z, y_bad, **ONE), VARIANT),
    ("loss_and_grad NaN", lambda: sf.loss_and_grad(X_nan, y, W, b, **ONE), VARIANT),
    ("predict NaN", lambda: sf.predict(X_nan, W, b, **ONE), VARIANT),
    # two threads
    ("softmax 2 threads", lambda: sf.softmax(Z, n_threads=2), THREADED),
    ("loss_and_grad 2 threads", lambda: sf.loss_and_grad(X, y, W, b, n_threads=2), THREADED),
    ("predict NaN 2 threads", lambda: sf.predict(X_nan, W, b, n_threads=2), THREADED),
]

def run(fn, times):
    for _ in range(times):
        try:
            fn()
        except ValueError:
            pass

for _, fn, times in calls:
    run(fn, 50)  # warm up: thread pools, caches, allocator arenas
start = rss()
growth = {}
for name, fn, times in calls:
    before = rss()
    run(fn, times)
    growth[name] = (rss() - before) / 2**20
growth["total"] = (rss() - start) / 2**20
print(json.dumps(growth))
"""
)


def test_repeated_calls_do_not_leak():
    """10,000 calls of every kernel (and of error paths) leave resident memory flat.

    A leak of the smallest object a call creates -- its (64, 10) float64 result, 5 KiB -- would
    add 50 MiB over 10,000 calls; a leaked Python object header (~100 bytes) 1 MiB.  Measured:
    0.0 MiB for every call (RSS is counted in 4 KiB pages).
    """
    growth = _child(_LEAK_CHILD.replace("N_CALLS", "10_000"))
    assert growth.pop("total") < 1.0, growth
    for name, mib in growth.items():
        assert mib < 0.5, (name, growth)

"""Thread policy: how many OpenMP threads a kernel call runs on, and BLAS's thread count meanwhile.

* :func:`effective_n_threads` resolves the user's ``n_threads`` (None: the available cores,
  capped by ``OMP_NUM_THREADS`` / threadpoolctl) once per public call or per fit.
* :func:`team_for_work` picks the team size of one kernel call from its work: a call too small to
  pay for waking a thread runs on one (no parallel region worth the name), and never more threads
  than rows.  The threshold is measured (``benchmarks/thread_threshold.py``; the figures are in
  ``benchmarks/RESULTS.md``).  Results depend only on the team size (the kernels split the rows
  into chunks by it), so they are a function of the inputs and ``n_threads``: repeated calls
  stay bit-identical.
* :func:`one_blas_thread` holds every loaded BLAS at one thread while a kernel runs BLAS on row
  tiles (several OpenMP threads each calling a multi-threaded BLAS would oversubscribe the cores,
  and a result must not depend on BLAS's thread count), and for the whole of a fit, whose own
  BLAS calls (the solver's vector operations on theta) are far too small to pay for BLAS threads
  that would otherwise spin against the kernels' OpenMP threads.
"""

import itertools
import numbers
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from threadpoolctl import ThreadpoolController

from ._native import info as _info

__all__ = [
    "MAX_THREADS",
    "available_cpus",
    "effective_n_threads",
    "team_for_work",
    "CSR_WORK_PER_NONZERO",
    "one_blas_thread",
    "blas_guard",
]

# The most threads a kernel call asks OpenMP for.  Far more than any machine has cores; a much
# larger request (10**5) makes libgomp abort or crash the interpreter while creating threads.
MAX_THREADS = 1024

# A kernel call gets one more thread per this much work (multiply-adds of its two tile products,
# m * (n + 1) * K, or the logits of a row-wise call, m * K * ROWWISE_WORK_PER_LOGIT).  Measured
# with benchmarks/thread_threshold.py (benchmarks/RESULTS.md): on an idle 2-core machine a second
# thread gains at most 1.16x below 1e6 units of fused work and 1.27-1.66x above, while a second
# core that is busy with another process can make a 2-thread call 3-25x slower; below the
# threshold the small gain is not worth that risk.
SHIPPED_MIN_WORK_PER_THREAD = 1_000_000
# (tests lower it, to exercise the threaded code paths on small data)
MIN_WORK_PER_THREAD = SHIPPED_MIN_WORK_PER_THREAD
# The row-wise kernels gain more from a second thread per unit of work (1.66x at 32,000 logits):
# a logit counts as this many units.
ROWWISE_WORK_PER_LOGIT = 32
# A CSR kernel call's work is (nnz * CSR_WORK_PER_NONZERO + m) * K: each stored entry costs a
# logit update and a gradient update of K classes, each a gather from a (n, K) table.
CSR_WORK_PER_NONZERO = 4


def available_cpus() -> int:
    """CPUs this process may run on (affinity-aware where the OS tells)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def effective_n_threads(n_threads: int | None, name: str = "n_threads") -> int:
    """None -> all available cores, capped by OMP_NUM_THREADS / threadpoolctl; int -> itself.

    Raises ``TypeError``/``ValueError`` (naming ``name``) for anything but None or an int >= 1.
    """
    if n_threads is None:
        return max(1, min(_info.openmp_max_threads(), available_cpus()))
    if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(f"{name}: expected None or a positive int, got {type(n_threads).__name__}")
    if n_threads < 1:
        raise ValueError(f"{name}: must be None or a positive int, got {n_threads}")
    return min(int(n_threads), MAX_THREADS)


def team_for_work(n_threads: int, m: int, work: int) -> int:
    """Threads worth starting for a call of ``m`` rows and ``work`` units of work.

    At most ``n_threads``, at most ``m`` (the kernels split rows into at most
    ``min(n_threads * c, m)`` chunks, c >= 1: threads beyond ``m`` would sit idle), and one more
    thread only per :data:`MIN_WORK_PER_THREAD` of work.
    """
    by_work = max(1, work // MIN_WORK_PER_THREAD)
    return int(max(1, min(n_threads, m, by_work)))


# ----------------------------------------------------------------------------- BLAS threads

_blas_lock = threading.Lock()
_blas_libs = None  # [(get_num_threads, set_num_threads)] of the loaded BLAS libraries
_blas_users = 0  # calls now holding BLAS at one thread (under _blas_lock)
_blas_saved: list = []  # [(set_num_threads, thread count before the first of those calls)]


def _openblas_functions(lib):
    """openblas_get/set_num_threads of a threadpoolctl OpenBLAS controller, called directly."""
    for prefix, suffix in itertools.product(("", "scipy_"), ("", "64_", "_64")):
        get = getattr(lib.dynlib, f"{prefix}openblas_get_num_threads{suffix}", None)
        set_ = getattr(lib.dynlib, f"{prefix}openblas_set_num_threads{suffix}", None)
        if get is not None and set_ is not None:
            return get, set_
    return None


def _find_blas_libs():
    libs = []
    for lib in ThreadpoolController().select(user_api="blas").lib_controllers:
        functions = None
        # internal_api is "openblas" (scipy's build may be "scipy_openblas" in some versions)
        if "openblas" in lib.internal_api and getattr(lib, "threading_layer", "") == "pthreads":
            # threadpoolctl >= 3.8 lets only one Python thread (the first to set a limit, usually
            # the main thread) change the limit of an OpenBLAS with its own pthreads pool and
            # silently ignores the others; the pool is process-wide, so any thread may set it.
            functions = _openblas_functions(lib)
        libs.append(functions or (lib.get_num_threads, lib.set_num_threads))
    return libs


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS limited to one thread for as long as any holder is inside.

    The BLAS thread count is process-wide (OpenBLAS with pthreads: one shared pool).  A plain
    ``with threadpoolctl.threadpool_limits(1)`` around every call is not enough when calls run
    in several Python threads at once: the first to finish restores multi-threaded BLAS under
    the others (whose tile products then round differently from a serial call's), and recent
    threadpoolctl ignores limits set from any thread but one.  So a counter under a lock: the
    first holder in sets every BLAS library to one thread, the last one out restores the
    previous counts.  (A limit another thread sets meanwhile is overwritten by that restore.)
    """
    global _blas_libs, _blas_users, _blas_saved
    with _blas_lock:
        if _blas_users == 0:
            if _blas_libs is None:
                _blas_libs = _find_blas_libs()
            _blas_saved = [(set_, get()) for get, set_ in _blas_libs]
            for set_, _ in _blas_saved:
                set_(1)
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                for set_, n in _blas_saved:
                    if n is not None:
                        set_(n)
                _blas_saved = []


def blas_guard(uses_blas: bool) -> AbstractContextManager[None]:
    """:func:`one_blas_thread` when the kernel call runs BLAS on its tiles, else nothing.

    Always one BLAS thread, whatever ``n_threads``: OpenBLAS's sgemm/dgemm round differently
    with 1 and 2 threads (they split the product differently), so a result must not depend on
    which BLAS thread count happened to be in effect; the tiles (at most 1024 rows) are too
    small for BLAS threads to pay off anyway.
    """
    return one_blas_thread() if uses_blas else nullcontext()

"""Test hooks of the compiled layer: used by the test suite only, never by the library.

``_fail_allocation(nth)``
    The ``nth`` next kernel work-space allocation (in any kernel module: they share one
    countdown, ``_workspace._alloc``) raises MemoryError, as NumPy does when memory runs out;
    0 turns it off.  Returns what the previous setting still had to go.
    Used by tests/native/test_alloc_failure.py.
``vexp(x)``, ``vlog_ge1(x, out)``
    The kernels' vectorized exp (float32 / float64, in place) and log for x >= 1 (float64), for
    the accuracy tests of tests/native/test_exp.py.
``openmp_team_size(n_threads)``
    How many threads an OpenMP parallel region asked for ``n_threads`` really runs with (1
    without OpenMP): a diagnostic for tests/threads/test_config.py and
    tests/packaging/test_build.py (the serial build).
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport parallel

from ._common cimport sf_omp_get_num_threads, sf_omp_get_thread_num, sf_vlog_ge1_d
from ._rows cimport _vexp
from ._workspace cimport _swap_alloc_countdown


def _fail_allocation(Py_ssize_t nth):
    """Test hook: the ``nth`` next kernel work-space allocation raises MemoryError (0: off).

    Returns how many allocations the previous setting still had to go (0: it fired or was off).
    """
    return _swap_alloc_countdown(nth)


def vexp(floating[::1] x):
    """In place x = exp(x) with the kernels' vectorized exp (exposed for accuracy tests)."""
    if x.shape[0] == 0:
        return
    with nogil:
        _vexp(&x[0], x.shape[0])


def vlog_ge1(const double[::1] x, double[::1] out):
    """out = log(x) for x >= 1 with the kernels' vectorized log (exposed for accuracy tests)."""
    if x.shape[0] == 0:
        return
    with nogil:
        sf_vlog_ge1_d(&x[0], &out[0], x.shape[0])


def openmp_team_size(int n_threads):
    """Number of threads an OpenMP parallel region asked for ``n_threads`` really runs with
    (a diagnostic for the tests; ``n_threads`` in [1, 1024], the kernels' own cap)."""
    if not 1 <= n_threads <= 1024:
        raise ValueError(f"n_threads: must be in [1, 1024], got {n_threads}")
    cdef int[::1] seen = np.zeros(n_threads, dtype=np.intc)
    cdef int t = 0
    with nogil, parallel(num_threads=n_threads):
        t = sf_omp_get_thread_num()
        seen[t] = sf_omp_get_num_threads()
    return int(np.max(seen))

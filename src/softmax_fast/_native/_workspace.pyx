"""Work space of the kernel modules: allocation, per-chunk buffers, chunking, ordered sums.

Every buffer of a kernel comes from ``_alloc`` here (NumPy, with the GIL held, before any
parallel region: there is no malloc in the kernels), so that one countdown
(``_swap_alloc_countdown``, set by ``testing._fail_allocation``) covers the allocations of every
kernel module.  Partial results are added in chunk order after the parallel region, so results
depend only on (m, n_chunks), not on which thread ran which chunk.
"""

import numpy as np

cimport cython
cimport numpy as cnp

from ._common cimport SF_ASAN, intp_t, sf_asan_poison, sf_asan_unpoison

cnp.import_array()

cdef enum:
    # Row chunks a thread with several threads (dynamic schedule; see _n_chunks).
    CHUNKS_PER_THREAD = 4


# While > 0, each kernel allocation counts it down and the one that brings it to 0 raises
# MemoryError, as NumPy does when memory runs out (tests/native/test_alloc_failure.py).
cdef Py_ssize_t _alloc_countdown = 0


cdef Py_ssize_t _swap_alloc_countdown(Py_ssize_t nth):
    """Set the countdown to ``max(nth, 0)``; return what the previous setting still had to go."""
    global _alloc_countdown
    cdef Py_ssize_t previous = _alloc_countdown
    _alloc_countdown = max(nth, 0)
    return previous


cdef object _alloc(shape, dtype, fill=None):
    """Every buffer of a kernel comes from here: NumPy, with the GIL held, before any parallel
    region (there is no malloc in the kernels).  When memory runs out NumPy raises MemoryError,
    which propagates before anything is computed or written to an output."""
    global _alloc_countdown
    if _alloc_countdown > 0:
        _alloc_countdown -= 1
        if _alloc_countdown == 0:
            raise MemoryError("softmax_fast: allocation failure injected by _fail_allocation")
    if fill is None:
        return np.empty(shape, dtype=dtype)
    if fill == 0:
        return np.zeros(shape, dtype=dtype)  # (calloc: a third of np.full's cost)
    return np.full(shape, fill, dtype=dtype)


@cython.auto_pickle(False)  # no pickling methods (they would need a place in _workspace.pyi)
cdef class _Workspace:
    """The per-chunk buffers of one kernel call: (n_chunks, size + pad) arrays, one row a chunk
    (thread); the padding keeps the rows' used parts on different cache lines (no false sharing
    between threads).

    In an AddressSanitizer build (``SF_ASAN``) ``poison_padding(True)`` marks every row's padding
    unaddressable for the length of a parallel region, so that a chunk running past its own part
    is reported even though it stays inside one allocation; ``poison_padding(False)`` undoes it
    before the buffers go back to NumPy (which may reuse small ones without malloc).
    """

    def __cinit__(self, Py_ssize_t n_chunks):
        self.n_chunks = n_chunks
        self.guarded = []

    cdef object rows(self, Py_ssize_t size, dtype, bint zero=False):
        cdef Py_ssize_t pad = 128 // np.dtype(dtype).itemsize
        buf = _alloc((self.n_chunks, size + pad), dtype, 0 if zero else None)
        if SF_ASAN:
            self.guarded.append((buf, size * buf.itemsize))
        return buf

    cdef void poison_padding(self, bint poison):
        cdef char *base
        cdef Py_ssize_t used, stride, c
        if not SF_ASAN:
            return
        for buf, used in self.guarded:
            base = <char *>cnp.PyArray_DATA(<cnp.ndarray>buf)
            stride = buf.strides[0]
            for c in range(self.n_chunks):
                if poison:
                    sf_asan_poison(base + c * stride + used, stride - used)
                else:
                    sf_asan_unpoison(base + c * stride + used, stride - used)


cdef Py_ssize_t _n_chunks(Py_ssize_t m, Py_ssize_t rows_per_step, int n_threads,
                          Py_ssize_t accumulator_size):
    """How many row chunks a call splits m rows into: a function of the arguments only, so that
    results are reproducible for a given thread count whichever thread runs which chunk.

    One thread: one chunk.  Several: CHUNKS_PER_THREAD chunks a thread, handed out dynamically,
    so that a thread slowed down by the machine (a busy core, a noisy neighbour) does not hold
    the whole call back -- unless each chunk would carry a large accumulator (K * n of the fused
    gradient), where one chunk a thread keeps the extra memory small.  Never more chunks than
    steps of ``rows_per_step`` rows.
    """
    cdef Py_ssize_t per_thread = CHUNKS_PER_THREAD if accumulator_size <= 65536 else 1
    cdef Py_ssize_t wanted = 1 if n_threads <= 1 else n_threads * per_thread
    return max(1, min(wanted, (m + rows_per_step - 1) // rows_per_step))


cdef Py_ssize_t _first_bad(intp_t[::1] bad):
    """The first row a chunk reported (chunks in row order: the smallest bad row), else -1."""
    cdef Py_ssize_t c
    for c in range(bad.shape[0]):
        if bad[c] >= 0:
            return bad[c]
    return -1


cdef double _ordered_sum(double[:, ::1] parts):
    """parts[0, 0] + parts[1, 0] + ... in chunk order (deterministic)."""
    cdef double total = 0.0
    cdef Py_ssize_t c
    for c in range(parts.shape[0]):
        total += parts[c, 0]
    return total


cdef object _ordered_rows_sum(object parts):
    """parts[0] + parts[1] + ... in this order (deterministic for a given chunk count)."""
    total = _alloc(parts.shape[1:], parts.dtype)
    total[...] = parts[0]
    for c in range(1, parts.shape[0]):
        total += parts[c]
    return total

"""Work space of the kernel modules (implemented in _workspace.pyx; cimported, so that every kernel
module allocates through the one ``_alloc`` and its one allocation-failure countdown)."""

from ._common cimport intp_t


cdef Py_ssize_t _swap_alloc_countdown(Py_ssize_t nth)
cdef object _alloc(shape, dtype, fill=*)


cdef class _Workspace:
    cdef Py_ssize_t n_chunks
    cdef list guarded  # (array, used bytes of a row), ASan builds only

    cdef object rows(self, Py_ssize_t size, dtype, bint zero=*)
    cdef void poison_padding(self, bint poison)


cdef Py_ssize_t _n_chunks(Py_ssize_t m, Py_ssize_t rows_per_step, int n_threads,
                          Py_ssize_t accumulator_size)
cdef Py_ssize_t _first_bad(intp_t[::1] bad)
cdef double _ordered_sum(double[:, ::1] parts)
cdef object _ordered_rows_sum(object parts)

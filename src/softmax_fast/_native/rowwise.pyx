"""Row-wise kernels on a matrix of logits Z (m, K), read row-major: softmax, log-softmax and
logsumexp (``softmax_rows``, chosen by ``RowwiseMode``) and cross-entropy with its gradient
(``cross_entropy``).  No validation here: softmax_fast.kernels validates and calls these.

Design note
-----------
* Threads split the rows into ``n_chunks`` contiguous chunks (``prange`` over chunks, a few a
  thread, scheduled dynamically so that a slowed-down core does not hold the call back).  Every
  chunk owns its scratch buffers and its partial sums, allocated by NumPy before the GIL is
  released (``_workspace``), so the extra memory never depends on m and results depend only on
  (m, n_chunks): repeated calls with the same thread count are bit-identical.
* Rows are processed in blocks: shifted logits z - max of a whole block go into a flat scratch
  buffer, one vectorized ``exp`` runs over it (``_sfmath.h``: branch-free, ~1 ulp), then per-row
  sums (in float64, also for float32 data) normalize it.  One ``exp`` per logit, no ``log`` per
  logit: log-softmax is z - max - log(sum), the loss is log(sum) - (z_y - max).
* Bad rows are detected in the passes that already exist: for a row, s = sum exp(z - max) is >= 1
  exactly when the row has no NaN, no +inf and at least one finite logit (a NaN or +inf anywhere
  makes s NaN; an all -inf row gives max = -inf and s NaN).  A chunk stops at its first bad row
  and reports it; the Python layer raises ValueError naming the smallest such row.
* A transposed layout for these kernels was measured slower (benchmarks/RESULTS.md).
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport log

from ._common cimport intp_t
from ._rows cimport (
    _chunk_start, _row_grad, _row_loss, _row_loss_terms, _row_sum, _shift_rows, _team_size, _vexp,
)
from ._workspace cimport _Workspace, _alloc, _first_bad, _n_chunks, _ordered_sum


cpdef enum RowwiseMode:
    # What softmax_rows writes: softmax -> out (m * K), log-softmax -> out (m * K),
    # logsumexp -> out[i] (m).
    SOFTMAX
    LOG_SOFTMAX
    LOGSUMEXP


cdef enum:
    # Rows of a block whose shifted logits share one flat exp call: about 4096 values (32 KiB f64).
    BLOCK_VALUES = 4096


# ----------------------------------------------------------------------------- softmax family

cdef Py_ssize_t _softmax_chunk(const floating *Z, floating *out, floating *scratch,
                               floating *row_max, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t K,
                               Py_ssize_t block, RowwiseMode mode) noexcept nogil:
    """Rows [r0, r1): SOFTMAX -> out, LOG_SOFTMAX -> out, LOGSUMEXP -> out[i].

    ``out`` may be ``Z`` itself (in place): every element is read before it is written.
    Returns -1, or the first row whose logits are invalid.
    """
    cdef Py_ssize_t b0, nb, i, k
    cdef double s, log_s
    cdef floating inv
    b0 = r0
    while b0 < r1:
        nb = min(block, r1 - b0)
        _shift_rows(Z + b0 * K, scratch, row_max, nb, K)
        _vexp(scratch, nb * K)
        for i in range(nb):
            s = _row_sum(scratch + i * K, K)
            if not s >= 1.0:
                return b0 + i
            if mode == SOFTMAX:
                inv = <floating>(1.0 / s)
                for k in range(K):
                    out[(b0 + i) * K + k] = scratch[i * K + k] * inv
            elif mode == LOG_SOFTMAX:
                log_s = log(s)
                for k in range(K):
                    out[(b0 + i) * K + k] = <floating>((Z[(b0 + i) * K + k] - row_max[i]) - log_s)
            else:
                out[b0 + i] = <floating>(row_max[i] + log(s))
        b0 = b0 + block
    return -1


def softmax_rows(const floating[:, ::1] Z, floating[::1] out, RowwiseMode mode, int n_threads):
    """Softmax (``SOFTMAX``), log-softmax (``LOG_SOFTMAX``) or logsumexp (``LOGSUMEXP``) of each
    row of Z into ``out`` (flat).

    Returns -1, or the first row with NaN / +inf logits or no finite logit.
    """
    cdef Py_ssize_t m = Z.shape[0], K = Z.shape[1]
    if m == 0 or K == 0:
        return -1
    cdef Py_ssize_t block = max(1, BLOCK_VALUES // K)
    cdef Py_ssize_t n_chunks = _n_chunks(m, block, n_threads, 0)
    dtype = np.float64 if floating is double else np.float32
    cdef _Workspace work = _Workspace(n_chunks)
    cdef floating[:, ::1] scratch = work.rows(block * K, dtype)
    cdef floating[:, ::1] row_max = work.rows(block, dtype)
    cdef intp_t[::1] bad = _alloc(n_chunks, np.intp, -1)
    cdef Py_ssize_t c
    work.poison_padding(True)
    cdef int team = _team_size(n_threads, n_chunks)
    for c in prange(n_chunks, nogil=True, schedule="dynamic", chunksize=1, num_threads=team):
        bad[c] = _softmax_chunk(&Z[0, 0], &out[0], &scratch[c, 0], &row_max[c, 0],
                                _chunk_start(m, n_chunks, c), _chunk_start(m, n_chunks, c + 1),
                                K, block, mode)
    work.poison_padding(False)
    return _first_bad(bad)


# ----------------------------------------------------------------------------- cross-entropy

cdef Py_ssize_t _cross_entropy_chunk(
    const floating *Z, const intp_t *labels, const floating *Y, const double *sw,
    double grad_scale, double *row_loss, floating *dZ, floating *scratch, floating *row_max,
    double *loss_term, double *loss_sum, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t K,
    Py_ssize_t block,
) noexcept nogil:
    """Cross-entropy of rows [r0, r1) of logits Z against labels or target rows Y.

    loss_sum[0] = sum_i w_i l_i;  row_loss[i] = w_i l_i (if not NULL);
    dZ[i] = (softmax(z_i) - y_i) * w_i * grad_scale (if not NULL).  sw NULL means w_i = 1.
    Returns -1 or the first invalid row.
    """
    cdef Py_ssize_t b0, nb, i, row
    cdef double s, w, loss, total = 0.0
    cdef bint has_labels = labels != NULL
    b0 = r0
    while b0 < r1:
        nb = min(block, r1 - b0)
        _shift_rows(Z + b0 * K, scratch, row_max, nb, K)
        _row_loss_terms(Z + b0 * K, row_max, labels, Y, loss_term, b0, nb, K)
        _vexp(scratch, nb * K)
        for i in range(nb):
            row = b0 + i
            s = _row_sum(scratch + i * K, K)
            if not s >= 1.0:
                return row
            w = sw[row] if sw != NULL else 1.0
            loss = w * _row_loss(log(s), loss_term, i, nb, has_labels)
            total = total + loss
            if row_loss != NULL:
                row_loss[row] = loss
            if dZ != NULL:
                _row_grad(scratch + i * K, s, labels, Y + row * K if Y != NULL else NULL, row,
                          w * grad_scale, dZ + row * K, K)
        b0 = b0 + block
    loss_sum[0] = total
    return -1


def cross_entropy(const floating[:, ::1] Z, const intp_t[::1] labels, const floating[:, ::1] Y,
                  const double[::1] sample_weight, double grad_scale, double[::1] row_loss,
                  floating[:, ::1] dZ, int n_threads):
    """Cross-entropy of the rows of Z against ``labels`` (or target rows ``Y`` when labels is None).

    Returns (first_bad_row or -1, sum_i w_i l_i).  Optional outputs: row_loss (w_i l_i) and
    dZ = (softmax(Z) - Y) * w_i * grad_scale.  sample_weight None means unit weights.
    """
    cdef Py_ssize_t m = Z.shape[0], K = Z.shape[1]
    cdef Py_ssize_t block = max(1, BLOCK_VALUES // K)
    cdef Py_ssize_t n_chunks = _n_chunks(m, block, n_threads, 0)
    dtype = np.float64 if floating is double else np.float32
    cdef _Workspace work = _Workspace(n_chunks)
    cdef floating[:, ::1] scratch = work.rows(block * K, dtype)
    cdef floating[:, ::1] row_max = work.rows(block, dtype)
    cdef double[:, ::1] loss_term = work.rows(2 * block, np.float64)
    cdef double[:, ::1] loss_sums = work.rows(1, np.float64, zero=True)
    cdef intp_t[::1] bad = _alloc(n_chunks, np.intp, -1)
    cdef const intp_t *p_labels = &labels[0] if labels is not None else NULL
    cdef const floating *p_Y = &Y[0, 0] if Y is not None else NULL
    cdef const double *p_sw = &sample_weight[0] if sample_weight is not None else NULL
    cdef double *p_row_loss = &row_loss[0] if row_loss is not None else NULL
    cdef floating *p_dZ = &dZ[0, 0] if dZ is not None else NULL
    cdef Py_ssize_t c
    work.poison_padding(True)
    cdef int team = _team_size(n_threads, n_chunks)
    for c in prange(n_chunks, nogil=True, schedule="dynamic", chunksize=1, num_threads=team):
        bad[c] = _cross_entropy_chunk(
            &Z[0, 0], p_labels, p_Y, p_sw, grad_scale, p_row_loss, p_dZ, &scratch[c, 0],
            &row_max[c, 0], &loss_term[c, 0], &loss_sums[c, 0],
            _chunk_start(m, n_chunks, c), _chunk_start(m, n_chunks, c + 1), K, block)
    work.poison_padding(False)
    return _first_bad(bad), _ordered_sum(loss_sums)

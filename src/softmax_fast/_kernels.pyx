# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Compiled kernels of softmax_fast.  No validation here: kernels.py validates and calls these.

Design note
-----------
* Threads split the rows into ``n_chunks`` contiguous chunks (``prange`` over chunks, one chunk a
  thread).  Every chunk owns its scratch buffers and its partial sums, allocated by NumPy before
  the GIL is released, so the extra memory never depends on m, and results depend only on
  (m, n_chunks): repeated calls with the same thread count are bit-identical.  Partial sums are
  added in chunk order after the parallel region.
* Rows are processed in blocks: shifted logits z - max of a whole block go into a flat scratch
  buffer, one vectorized ``exp`` runs over it (``_sfmath.h``: branch-free, ~1 ulp), then per-row
  sums (in float64, also for float32 data) normalize it.  One ``exp`` per logit, no ``log`` per
  logit: log-softmax is z - max - log(sum), the loss is log(sum) - (z_y - max).
* Bad rows are detected in the passes that already exist: for a row, s = sum exp(z - max) is >= 1
  exactly when the row has no NaN, no +inf and at least one finite logit (a NaN or +inf anywhere
  makes s NaN; an all -inf row gives max = -inf and s NaN).  A chunk stops at its first bad row
  and reports it; the Python layer raises ValueError naming the smallest such row.
* Fused softmax regression (``loss_and_grad``): a chunk walks its rows in tiles of ``tile_rows``
  rows that stay in cache.  Per tile: Z = X_t W^T (+ b) by BLAS gemm, softmax and loss in place,
  G = (A - Y) * w_i / sum(w) in place, then dW_c += G^T X_t by a second gemm on the same cached
  X_t: X is read from memory once.  The tile GEMMs call scipy's BLAS; the caller keeps BLAS to one
  thread while several chunks run.  float32 tiles accumulate into float64 per-chunk sums.
"""

import numpy as np

cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY, log
from libc.string cimport memset
from scipy.linalg.cython_blas cimport dgemm, sgemm

cnp.import_array()

cdef extern from "_sfmath.h" nogil:
    int sf_openmp_enabled()
    int sf_omp_get_max_threads()
    int sf_omp_get_thread_num()
    int sf_omp_get_num_threads()
    void sf_vexp_d(double *x, Py_ssize_t n)
    void sf_vexp_f(float *x, Py_ssize_t n)
    double sf_exp_d(double x)
    float sf_exp_f(float x)
    int SF_MULTIVERSIONED

ctypedef cnp.intp_t intp_t

cdef enum:
    # Rows of a block whose shifted logits share one flat exp call: about 4096 values (32 KiB f64).
    BLOCK_VALUES = 4096


# ----------------------------------------------------------------------------- introspection

def openmp_enabled():
    """True when the extension was compiled with OpenMP."""
    return bool(sf_openmp_enabled())


def openmp_max_threads():
    """omp_get_max_threads(): honours OMP_NUM_THREADS and threadpoolctl limits (1 without OpenMP)."""
    return sf_omp_get_max_threads()


def openmp_team_size(int n_threads):
    """Number of threads an OpenMP parallel region asked for ``n_threads`` really runs with."""
    cdef int[::1] seen = np.zeros(max(n_threads, 1), dtype=np.intc)
    cdef int t
    with nogil, parallel(num_threads=n_threads):
        t = sf_omp_get_thread_num()
        seen[t] = sf_omp_get_num_threads()
    return int(np.max(seen))


def simd_exp_dispatch():
    """How the vectorized exp is compiled ('baseline' or 'baseline+x86-64-v3 clone')."""
    return "baseline+x86-64-v3 clone" if SF_MULTIVERSIONED else "baseline"


def vexp(floating[::1] x):
    """In place x = exp(x) with the kernels' vectorized exp (exposed for accuracy tests)."""
    if x.shape[0] == 0:
        return
    with nogil:
        _vexp(&x[0], x.shape[0])


# ----------------------------------------------------------------------------- per-row helpers

cdef inline void _vexp(floating *x, Py_ssize_t n) noexcept nogil:
    if floating is double:
        sf_vexp_d(x, n)
    else:
        sf_vexp_f(x, n)


cdef inline floating _row_max(const floating *z, Py_ssize_t K) noexcept nogil:
    """Max of a row; NaN entries are skipped here and caught by the sum test later."""
    cdef floating mx = -INFINITY
    cdef Py_ssize_t k
    for k in range(K):
        mx = z[k] if z[k] > mx else mx
    return mx


cdef inline double _row_sum(const floating *x, Py_ssize_t K) noexcept nogil:
    """Sum in float64 with four independent accumulators (fixed order: deterministic)."""
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    cdef Py_ssize_t k = 0
    while k + 4 <= K:
        s0 = s0 + x[k]
        s1 = s1 + x[k + 1]
        s2 = s2 + x[k + 2]
        s3 = s3 + x[k + 3]
        k = k + 4
    while k < K:
        s0 = s0 + x[k]
        k = k + 1
    return (s0 + s1) + (s2 + s3)


cdef inline void _shift_rows(const floating *z, floating *dst, floating *row_max,
                             Py_ssize_t rows, Py_ssize_t K) noexcept nogil:
    """dst[i, k] = z[i, k] - max_k z[i, :] for a block of rows; row_max[i] keeps the max."""
    cdef Py_ssize_t i, k
    cdef floating mx
    for i in range(rows):
        mx = _row_max(z + i * K, K)
        row_max[i] = mx
        for k in range(K):
            dst[i * K + k] = z[i * K + k] - mx


cdef inline double _target_dot(const floating *y, const floating *shifted, Py_ssize_t K,
                               double *y_sum) noexcept nogil:
    """sum_k y_k * shifted_k over classes with y_k > 0 (so 0 * -inf counts as 0); y_sum = sum y."""
    cdef double acc = 0.0, ys = 0.0
    cdef Py_ssize_t k
    for k in range(K):
        if y[k] > 0:
            acc = acc + <double>y[k] * shifted[k]
            ys = ys + y[k]
    y_sum[0] = ys
    return acc


cdef inline Py_ssize_t _chunk_start(Py_ssize_t m, Py_ssize_t n_chunks, Py_ssize_t c) noexcept nogil:
    return (m * c) // n_chunks


# ----------------------------------------------------------------------------- softmax family

cdef Py_ssize_t _softmax_chunk(const floating *Z, floating *out, floating *scratch,
                               floating *row_max, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t K,
                               Py_ssize_t block, int mode) noexcept nogil:
    """Rows [r0, r1): mode 0 softmax -> out, 1 log_softmax -> out, 2 logsumexp -> out[i].

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
            if mode == 0:
                inv = <floating>(1.0 / s)
                for k in range(K):
                    out[(b0 + i) * K + k] = scratch[i * K + k] * inv
            elif mode == 1:
                log_s = log(s)
                for k in range(K):
                    out[(b0 + i) * K + k] = <floating>((Z[(b0 + i) * K + k] - row_max[i]) - log_s)
            else:
                out[b0 + i] = <floating>(row_max[i] + log(s))
        b0 = b0 + block
    return -1


def softmax_rows(const floating[:, ::1] Z, floating[::1] out, int mode, int n_threads):
    """Softmax (mode 0), log-softmax (1) or logsumexp (2) of each row of Z into ``out`` (flat).

    Returns -1, or the first row with NaN / +inf logits or no finite logit.
    """
    cdef Py_ssize_t m = Z.shape[0], K = Z.shape[1]
    if m == 0 or K == 0:
        return -1
    cdef Py_ssize_t block = max(1, BLOCK_VALUES // K)
    cdef Py_ssize_t n_chunks = max(1, min(<Py_ssize_t>n_threads, (m + block - 1) // block))
    dtype = np.float64 if floating is double else np.float32
    cdef floating[:, ::1] scratch = np.empty((n_chunks, block * K), dtype=dtype)
    cdef floating[:, ::1] row_max = np.empty((n_chunks, block), dtype=dtype)
    cdef intp_t[::1] bad = np.full(n_chunks, -1, dtype=np.intp)
    cdef Py_ssize_t c
    for c in prange(n_chunks, nogil=True, schedule="static", chunksize=1, num_threads=n_threads):
        bad[c] = _softmax_chunk(&Z[0, 0], &out[0], &scratch[c, 0], &row_max[c, 0],
                                _chunk_start(m, n_chunks, c), _chunk_start(m, n_chunks, c + 1),
                                K, block, mode)
    return _first_bad(bad)


cdef Py_ssize_t _first_bad(intp_t[::1] bad):
    cdef Py_ssize_t c
    for c in range(bad.shape[0]):
        if bad[c] >= 0:
            return bad[c]
    return -1


# ----------------------------------------------------------------------------- cross-entropy

cdef inline void _row_loss_terms(const floating *shifted, const intp_t *labels, const floating *Y,
                                 double *loss_term, Py_ssize_t r, Py_ssize_t nb,
                                 Py_ssize_t K) noexcept nogil:
    """Before exp overwrites the shifted logits of a block, keep what the loss needs.

    loss_term[i] = (labels) shifted_{y_i};  (targets) sum_k y_ik shifted_ik and, in
    loss_term[nb + i], sum_k y_ik, so that l_i = log(s_i) * sum_k y_ik - sum_k y_ik shifted_ik.
    """
    cdef Py_ssize_t i
    cdef double y_sum
    for i in range(nb):
        if labels != NULL:
            loss_term[i] = shifted[i * K + labels[r + i]]
        else:
            loss_term[i] = _target_dot(Y + (r + i) * K, shifted + i * K, K, &y_sum)
            loss_term[nb + i] = y_sum


cdef inline double _row_loss(double log_s, double *loss_term, Py_ssize_t i, Py_ssize_t nb,
                             bint has_labels) noexcept nogil:
    if has_labels:
        return log_s - loss_term[i]
    return log_s * loss_term[nb + i] - loss_term[i]


cdef inline void _row_grad(const floating *e, double s, const intp_t *labels, const floating *y,
                           Py_ssize_t row, double scale, floating *g, Py_ssize_t K) noexcept nogil:
    """g_k = (softmax_k - y_k) * scale, from e_k = exp(z_k - max) and s = sum_k e_k."""
    cdef Py_ssize_t k
    cdef floating inv = <floating>(1.0 / s)
    cdef floating fscale = <floating>scale
    if labels != NULL:
        for k in range(K):
            g[k] = e[k] * inv
        g[labels[row]] -= 1
        for k in range(K):
            g[k] = g[k] * fscale
    else:
        for k in range(K):
            g[k] = (e[k] * inv - y[k]) * fscale


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
        _row_loss_terms(scratch, labels, Y, loss_term, b0, nb, K)
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
    cdef Py_ssize_t n_chunks = max(1, min(<Py_ssize_t>n_threads, (m + block - 1) // block))
    dtype = np.float64 if floating is double else np.float32
    cdef floating[:, ::1] scratch = np.empty((n_chunks, block * K), dtype=dtype)
    cdef floating[:, ::1] row_max = np.empty((n_chunks, block), dtype=dtype)
    cdef double[:, ::1] loss_term = np.empty((n_chunks, 2 * block), dtype=np.float64)
    cdef double[::1] loss_sums = np.zeros(n_chunks, dtype=np.float64)
    cdef intp_t[::1] bad = np.full(n_chunks, -1, dtype=np.intp)
    cdef const intp_t *p_labels = &labels[0] if labels is not None else NULL
    cdef const floating *p_Y = &Y[0, 0] if Y is not None else NULL
    cdef const double *p_sw = &sample_weight[0] if sample_weight is not None else NULL
    cdef double *p_row_loss = &row_loss[0] if row_loss is not None else NULL
    cdef floating *p_dZ = &dZ[0, 0] if dZ is not None else NULL
    cdef Py_ssize_t c
    for c in prange(n_chunks, nogil=True, schedule="static", chunksize=1, num_threads=n_threads):
        bad[c] = _cross_entropy_chunk(
            &Z[0, 0], p_labels, p_Y, p_sw, grad_scale, p_row_loss, p_dZ, &scratch[c, 0],
            &row_max[c, 0], &loss_term[c, 0], &loss_sums[c],
            _chunk_start(m, n_chunks, c), _chunk_start(m, n_chunks, c + 1), K, block)
    return _first_bad(bad), _ordered_sum(loss_sums)


cdef double _ordered_sum(double[::1] parts):
    cdef double total = 0.0
    cdef Py_ssize_t c
    for c in range(parts.shape[0]):
        total += parts[c]
    return total


# ----------------------------------------------------------------------------- tiles of X W^T

cdef inline void _gemm_rows_by_wt(const floating *X, const floating *W, floating *Z,
                                  Py_ssize_t rows, Py_ssize_t n, Py_ssize_t K) noexcept nogil:
    """Z (rows x K, row-major) = X (rows x n, row-major) @ W^T (W: K x n, row-major).

    In BLAS (column-major) terms Z^T (K x rows) = W^T' (K x n) X^T (n x rows), i.e.
    gemm('T', 'N', K, rows, n, 1, W, n, X, n, 0, Z, K).
    """
    cdef int bm = <int>K, bn = <int>rows, bk = <int>n, ldw = <int>n, ldx = <int>n, ldz = <int>K
    cdef floating one = 1, zero = 0
    if n == 0:
        memset(Z, 0, rows * K * sizeof(floating))
        return
    if floating is double:
        dgemm("T", "N", &bm, &bn, &bk, &one, <double *>W, &ldw, <double *>X, &ldx, &zero, Z, &ldz)
    else:
        sgemm("T", "N", &bm, &bn, &bk, &one, <float *>W, &ldw, <float *>X, &ldx, &zero, Z, &ldz)


cdef inline void _gemm_acc_gt_x(const floating *G, const floating *X, floating *acc,
                                Py_ssize_t rows, Py_ssize_t n, Py_ssize_t K,
                                floating beta) noexcept nogil:
    """acc (K x n, row-major) = beta * acc + G^T (K x rows) @ X (rows x n).

    Column-major view: acc^T (n x K) = X^T (n x rows) G (rows x K):
    gemm('N', 'T', n, K, rows, 1, X, n, G, K, beta, acc, n).
    """
    cdef int bm = <int>n, bn = <int>K, bk = <int>rows, ldx = <int>n, ldg = <int>K, lda = <int>n
    cdef floating one = 1
    if n == 0:
        return
    if floating is double:
        dgemm("N", "T", &bm, &bn, &bk, &one, <double *>X, &ldx, <double *>G, &ldg, &beta, acc, &lda)
    else:
        sgemm("N", "T", &bm, &bn, &bk, &one, <float *>X, &ldx, <float *>G, &ldg, &beta, acc, &lda)


cdef inline void _add_intercept(floating *Z, const floating *b, Py_ssize_t rows,
                                Py_ssize_t K) noexcept nogil:
    cdef Py_ssize_t i, k
    if b == NULL:
        return
    for i in range(rows):
        for k in range(K):
            Z[i * K + k] = Z[i * K + k] + b[k]


# ----------------------------------------------------------------------------- fused loss + grad

cdef Py_ssize_t _loss_grad_chunk(
    const floating *X, const intp_t *labels, const floating *Y, const floating *W,
    const floating *b, const double *sw, double grad_scale, floating *Zt, floating *row_max,
    double *loss_term, floating *tile_acc, double *dW, double *db, double *loss_sum,
    Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t n, Py_ssize_t K, Py_ssize_t tile,
) noexcept nogil:
    """Softmax-regression loss and gradient over rows [r0, r1), tile by tile.

    Per tile t: Z_t = X_t W^T + b; G_t = (softmax(Z_t) - Y_t) * w * grad_scale (in place in Zt);
    dW += G_t^T X_t (float64 directly; float32 through ``tile_acc`` then added in float64);
    db += column sums of G_t; loss_sum += sum w_i l_i.  Returns -1 or the first invalid row.
    """
    cdef Py_ssize_t t0, nt, i, k, row
    cdef double s, w, total = 0.0
    cdef bint has_labels = labels != NULL
    cdef floating *g
    t0 = r0
    while t0 < r1:
        nt = min(tile, r1 - t0)
        _gemm_rows_by_wt(X + t0 * n, W, Zt, nt, n, K)
        _add_intercept(Zt, b, nt, K)
        _shift_rows(Zt, Zt, row_max, nt, K)
        _row_loss_terms(Zt, labels, Y, loss_term, t0, nt, K)
        _vexp(Zt, nt * K)
        for i in range(nt):
            row = t0 + i
            g = Zt + i * K
            s = _row_sum(g, K)
            if not s >= 1.0:
                return row
            w = sw[row] if sw != NULL else 1.0
            total = total + w * _row_loss(log(s), loss_term, i, nt, has_labels)
            _row_grad(g, s, labels, Y + row * K if Y != NULL else NULL, row, w * grad_scale, g, K)
            if db != NULL:
                for k in range(K):
                    db[k] = db[k] + g[k]
        if floating is double:
            _gemm_acc_gt_x(Zt, X + t0 * n, dW, nt, n, K, 1.0)
        else:
            _gemm_acc_gt_x(Zt, X + t0 * n, tile_acc, nt, n, K, 0.0)
            for k in range(n * K):
                dW[k] = dW[k] + tile_acc[k]
        t0 = t0 + tile
    loss_sum[0] = total
    return -1


def loss_and_grad(const floating[:, ::1] X, const intp_t[::1] labels, const floating[:, ::1] Y,
                  const floating[:, ::1] W, const floating[::1] b,
                  const double[::1] sample_weight, double grad_scale, Py_ssize_t tile_rows,
                  int n_threads):
    """Fused softmax-regression loss and gradient (no regularization: added by the caller).

    Returns (first_bad_row or -1, sum_i w_i l_i, dW (K, n) float64, db (K,) float64 or None),
    with dW = G^T X and db = sum_i g_i where g_i = (softmax(W x_i + b) - y_i) * w_i * grad_scale.
    """
    cdef Py_ssize_t m = X.shape[0], n = X.shape[1], K = W.shape[0]
    cdef Py_ssize_t tile = max(1, tile_rows)
    cdef Py_ssize_t n_chunks = max(1, min(<Py_ssize_t>n_threads, (m + tile - 1) // tile))
    dtype = np.float64 if floating is double else np.float32
    cdef floating[:, ::1] Zt = np.empty((n_chunks, tile * K), dtype=dtype)
    cdef floating[:, ::1] row_max = np.empty((n_chunks, tile), dtype=dtype)
    cdef double[:, ::1] loss_term = np.empty((n_chunks, 2 * tile), dtype=np.float64)
    cdef floating[:, ::1] tile_acc = np.empty(
        (n_chunks, 0 if floating is double else K * n + 1), dtype=dtype)
    # One (K, n) row-major gradient per chunk, flat (+1 keeps &dW_parts[c, 0] valid when n == 0).
    cdef double[:, ::1] dW_parts = np.zeros((n_chunks, K * n + 1), dtype=np.float64)
    cdef double[:, ::1] db_parts = np.zeros((n_chunks, K + 1), dtype=np.float64)
    cdef double[::1] loss_sums = np.zeros(n_chunks, dtype=np.float64)
    cdef intp_t[::1] bad = np.full(n_chunks, -1, dtype=np.intp)
    cdef const intp_t *p_labels = &labels[0] if labels is not None else NULL
    cdef const floating *p_Y = &Y[0, 0] if Y is not None else NULL
    cdef const floating *p_b = &b[0] if b is not None else NULL
    cdef const double *p_sw = &sample_weight[0] if sample_weight is not None else NULL
    cdef bint with_db = b is not None
    cdef Py_ssize_t c
    if m == 0 or K == 0:
        raise ValueError("loss_and_grad needs m > 0 and K > 0")
    for c in prange(n_chunks, nogil=True, schedule="static", chunksize=1, num_threads=n_threads):
        bad[c] = _loss_grad_chunk(
            &X[0, 0], p_labels, p_Y, &W[0, 0], p_b, p_sw, grad_scale, &Zt[c, 0],
            &row_max[c, 0], &loss_term[c, 0],
            &tile_acc[c, 0] if floating is float else NULL,
            &dW_parts[c, 0], &db_parts[c, 0] if with_db else NULL, &loss_sums[c],
            _chunk_start(m, n_chunks, c), _chunk_start(m, n_chunks, c + 1), n, K, tile)
    first_bad = _first_bad(bad)
    dW = _ordered_rows_sum(np.asarray(dW_parts)[:, :K * n]).reshape(K, n)
    db = _ordered_rows_sum(np.asarray(db_parts)[:, :K]) if with_db else None
    return first_bad, _ordered_sum(loss_sums), dW, db


def _ordered_rows_sum(parts):
    """parts[0] + parts[1] + ... in this order (deterministic for a given chunk count)."""
    total = parts[0].copy()
    for c in range(1, parts.shape[0]):
        total += parts[c]
    return total


# ----------------------------------------------------------------------------- prediction

cdef Py_ssize_t _predict_chunk(const floating *X, const floating *W, const floating *b,
                               floating *out, intp_t *labels_out, floating *Zt,
                               floating *row_max, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t n,
                               Py_ssize_t K, Py_ssize_t tile) noexcept nogil:
    """Rows [r0, r1): probabilities into ``out`` (if not NULL) or argmax into ``labels_out``."""
    cdef Py_ssize_t t0, nt, i, k, best
    cdef floating *z
    cdef floating mx
    cdef double s, inv
    t0 = r0
    while t0 < r1:
        nt = min(tile, r1 - t0)
        z = out + t0 * K if out != NULL else Zt
        _gemm_rows_by_wt(X + t0 * n, W, z, nt, n, K)
        _add_intercept(z, b, nt, K)
        if out != NULL:
            _shift_rows(z, z, row_max, nt, K)
            _vexp(z, nt * K)
            for i in range(nt):
                s = _row_sum(z + i * K, K)
                if not s >= 1.0:
                    return t0 + i
                inv = 1.0 / s
                for k in range(K):
                    z[i * K + k] = <floating>(z[i * K + k] * inv)
        else:
            for i in range(nt):
                # A NaN anywhere, or +inf and -inf together, makes the sum NaN.
                mx = _row_max(z + i * K, K)
                s = _row_sum(z + i * K, K)
                if mx == INFINITY or mx == -INFINITY or s != s:
                    return t0 + i
                best = 0
                for k in range(1, K):
                    if z[i * K + k] > z[i * K + best]:
                        best = k
                labels_out[t0 + i] = best
        t0 = t0 + tile
    return -1


def predict(const floating[:, ::1] X, const floating[:, ::1] W, const floating[::1] b,
            floating[:, ::1] proba, intp_t[::1] labels, Py_ssize_t tile_rows, int n_threads):
    """softmax(X W^T + b) into ``proba`` or argmax_k (X W^T + b) into ``labels`` (one of them).

    Returns -1 or the first row with invalid logits.
    """
    cdef Py_ssize_t m = X.shape[0], n = X.shape[1], K = W.shape[0]
    if m == 0 or K == 0:
        return -1
    cdef Py_ssize_t tile = max(1, tile_rows)
    cdef Py_ssize_t n_chunks = max(1, min(<Py_ssize_t>n_threads, (m + tile - 1) // tile))
    dtype = np.float64 if floating is double else np.float32
    cdef floating[:, ::1] Zt = np.empty((n_chunks, tile * K), dtype=dtype)
    cdef floating[:, ::1] row_max = np.empty((n_chunks, tile), dtype=dtype)
    cdef intp_t[::1] bad = np.full(n_chunks, -1, dtype=np.intp)
    cdef const floating *p_b = &b[0] if b is not None else NULL
    cdef floating *p_proba = &proba[0, 0] if proba is not None else NULL
    cdef intp_t *p_labels = &labels[0] if labels is not None else NULL
    cdef Py_ssize_t c
    for c in prange(n_chunks, nogil=True, schedule="static", chunksize=1, num_threads=n_threads):
        bad[c] = _predict_chunk(&X[0, 0], &W[0, 0], p_b, p_proba, p_labels, &Zt[c, 0],
                                &row_max[c, 0], _chunk_start(m, n_chunks, c),
                                _chunk_start(m, n_chunks, c + 1), n, K, tile)
    return _first_bad(bad)

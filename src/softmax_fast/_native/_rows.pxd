"""Inline row and tile helpers shared by the kernel modules (``cdef inline ... noexcept nogil``:
compiled into every module that cimports them, so a kernel loop calls no function across modules).

Row-major helpers work on rows of K logits; the transposed-tile helpers on a tile of ``nt`` rows
held as Zt (K x nt): class k of row i at Zt[k * nt + i].  Every softmax step then runs along rows
over contiguous memory and vectorizes whatever K is (with K = 10 a row-major row is too short for
SIMD).
"""

from cython cimport floating
from libc.math cimport INFINITY
from libc.string cimport memset
from scipy.linalg.cython_blas cimport dgemm, sgemm

from ._common cimport (
    intp_t, sf_small_gtx_d, sf_small_gtx_f, sf_small_xwt_d, sf_small_xwt_f, sf_tile_add_to_d,
    sf_tile_add_to_f, sf_tile_bias_d, sf_tile_bias_f, sf_tile_max_d, sf_tile_max_f,
    sf_tile_scale_d, sf_tile_scale_f, sf_tile_subtract_d, sf_tile_subtract_f, sf_tile_sums_d,
    sf_tile_sums_f, sf_vexp_d, sf_vexp_f,
)


# ----------------------------------------------------------------------------- chunks

cdef inline Py_ssize_t _chunk_start(Py_ssize_t m, Py_ssize_t n_chunks, Py_ssize_t c) noexcept nogil:
    return (m * c) // n_chunks


cdef inline int _team_size(int n_threads, Py_ssize_t n_chunks) noexcept nogil:
    """Threads to start for n_chunks chunks: never more threads than chunks (an idle thread still
    costs a wake-up, milliseconds on a busy machine).  Results depend on the chunks only."""
    return <int>n_chunks if n_chunks < n_threads else n_threads


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


cdef inline double _target_dot(const floating *y, const floating *z, double mx, Py_ssize_t K,
                               double *y_sum) noexcept nogil:
    """sum_k y_k * (z_k - mx) over classes with y_k > 0 (so 0 * -inf counts as 0); y_sum = sum y.

    The shift is taken in float64: float32 logits further apart than the float32 range would
    overflow z - mx to -inf in float32 (for float64 this is the same arithmetic as the shift)."""
    cdef double acc = 0.0, ys = 0.0
    cdef Py_ssize_t k
    for k in range(K):
        if y[k] > 0:
            acc = acc + <double>y[k] * (<double>z[k] - mx)
            ys = ys + y[k]
    y_sum[0] = ys
    return acc


cdef inline void _row_loss_terms(const floating *z, const floating *row_max, const intp_t *labels,
                                 const floating *Y, double *loss_term, Py_ssize_t r,
                                 Py_ssize_t nb, Py_ssize_t K) noexcept nogil:
    """What the loss needs of a block's shifted logits, taken from the logits z and row maxima.

    loss_term[i] = (labels) shifted_{y_i};  (targets) sum_k y_ik shifted_ik and, in
    loss_term[nb + i], sum_k y_ik, so that l_i = log(s_i) * sum_k y_ik - sum_k y_ik shifted_ik.
    shifted = z - max is formed in float64 here (see _target_dot).
    """
    cdef Py_ssize_t i
    cdef double y_sum
    for i in range(nb):
        if labels != NULL:
            loss_term[i] = <double>z[i * K + labels[r + i]] - <double>row_max[i]
        else:
            loss_term[i] = _target_dot(Y + (r + i) * K, z + i * K, row_max[i], K, &y_sum)
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


# ----------------------------------------------------------------------------- transposed tiles

cdef inline void _tile_logits(const floating *X, const floating *W, const floating *Wt,
                              const floating *b, floating *Zt, Py_ssize_t nt, Py_ssize_t n,
                              Py_ssize_t K) noexcept nogil:
    """Zt (K x nt) = (X_t W^T + b)^T for the nt rows of X_t (row-major, nt x n).

    ``Wt`` (W^T zero-padded, from _small_gemm_wt) selects the AVX2 micro-kernel; otherwise BLAS,
    column-major: Zt = C (nt x K, ld nt) = X_t (n x nt)^T W (n x K):
    gemm('T', 'N', nt, K, n, 1, X, n, W, n, 0, Zt, nt).
    """
    cdef int bm = <int>nt, bn = <int>K, bk = <int>n, ldx = <int>n, ldw = <int>n, ldz = <int>nt
    cdef floating one = 1, zero = 0
    if n == 0:
        memset(Zt, 0, nt * K * sizeof(floating))
    elif Wt != NULL:
        if floating is double:
            sf_small_xwt_d(X, Wt, Zt, nt, n, K)
        else:
            sf_small_xwt_f(X, Wt, Zt, nt, n, K)
    elif floating is double:
        dgemm("T", "N", &bm, &bn, &bk, &one, <double *>X, &ldx, <double *>W, &ldw, &zero, Zt, &ldz)
    else:
        sgemm("T", "N", &bm, &bn, &bk, &one, <float *>X, &ldx, <float *>W, &ldw, &zero, Zt, &ldz)
    if b != NULL:
        if floating is double:
            sf_tile_bias_d(Zt, b, nt, K)
        else:
            sf_tile_bias_f(Zt, b, nt, K)


cdef inline void _tile_grad_product(const floating *Gt, const floating *X, floating *acc,
                                    Py_ssize_t nt, Py_ssize_t n, Py_ssize_t K, bint accumulate,
                                    bint small) noexcept nogil:
    """acc (K x n, row-major) = [acc +] Gt X_t, with Gt (K x nt) and X_t (nt x n).

    ``small``: the AVX2 micro-kernel; otherwise BLAS, column-major acc^T (n x K) =
    X_t^T (n x nt) Gt^T (nt x K): gemm('N', 'N', n, K, nt, 1, X, n, Gt, nt, beta, acc, n).
    """
    cdef int bm = <int>n, bn = <int>K, bk = <int>nt, ldx = <int>n, ldg = <int>nt, lda = <int>n
    cdef floating one = 1
    cdef floating beta = 1 if accumulate else 0
    if n == 0:
        return
    if small:
        if floating is double:
            sf_small_gtx_d(Gt, X, acc, nt, n, K, accumulate)
        else:
            sf_small_gtx_f(Gt, X, acc, nt, n, K, accumulate)
    elif floating is double:
        dgemm("N", "N", &bm, &bn, &bk, &one, <double *>X, &ldx, <double *>Gt, &ldg, &beta, acc,
              &lda)
    else:
        sgemm("N", "N", &bm, &bn, &bk, &one, <float *>X, &ldx, <float *>Gt, &ldg, &beta, acc, &lda)


cdef inline void _tile_max(const floating *Zt, floating *mx, Py_ssize_t nt,
                           Py_ssize_t K) noexcept nogil:
    """mx[i] = max_k Zt[k, i].  NaN is skipped by the max (caught later)."""
    if floating is double:
        sf_tile_max_d(Zt, mx, nt, K)
    else:
        sf_tile_max_f(Zt, mx, nt, K)


cdef inline void _tile_subtract(floating *Zt, const floating *mx, Py_ssize_t nt,
                                Py_ssize_t K) noexcept nogil:
    """Zt[k, i] -= mx[i]."""
    if floating is double:
        sf_tile_subtract_d(Zt, mx, nt, K)
    else:
        sf_tile_subtract_f(Zt, mx, nt, K)


cdef inline void _tile_shift(floating *Zt, floating *mx, Py_ssize_t nt,
                             Py_ssize_t K) noexcept nogil:
    """mx[i] = max_k Zt[k, i];  Zt[k, i] -= mx[i]."""
    _tile_max(Zt, mx, nt, K)
    _tile_subtract(Zt, mx, nt, K)


cdef inline void _tile_sums(const floating *Et, double *s, Py_ssize_t nt,
                            Py_ssize_t K) noexcept nogil:
    """s[i] = sum_k Et[k, i] in float64 (classes in order: deterministic)."""
    if floating is double:
        sf_tile_sums_d(Et, s, nt, K)
    else:
        sf_tile_sums_f(Et, s, nt, K)


cdef inline Py_ssize_t _tile_first_bad(const double *s, Py_ssize_t nt) noexcept nogil:
    """First i with s[i] not >= 1 (NaN: a NaN or +inf logit, or no finite logit), else -1."""
    cdef Py_ssize_t i
    for i in range(nt):
        if not s[i] >= 1.0:
            return i
    return -1


cdef inline void _tile_scale(floating *Zt, const floating *c, Py_ssize_t nt,
                             Py_ssize_t K) noexcept nogil:
    """Zt[k, i] *= c[i]."""
    if floating is double:
        sf_tile_scale_d(Zt, c, nt, K)
    else:
        sf_tile_scale_f(Zt, c, nt, K)


cdef inline void _tile_add_to(const floating *Zt, double *acc, Py_ssize_t stride, Py_ssize_t nt,
                              Py_ssize_t K) noexcept nogil:
    """acc[k * stride + i] += Zt[k, i], in float64."""
    if floating is double:
        sf_tile_add_to_d(Zt, acc, stride, nt, K)
    else:
        sf_tile_add_to_f(Zt, acc, stride, nt, K)

# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Compiled kernels of softmax_fast.  No validation here: kernels.py validates and calls these.

Design note
-----------
* Threads split the rows into ``n_chunks`` contiguous chunks (``prange`` over chunks, a few a
  thread, scheduled dynamically so that a slowed-down core does not hold the call back).  Every
  chunk owns its scratch buffers and its partial sums, allocated by NumPy before the GIL is
  released (``_alloc``: no malloc in the kernels, so an allocation that fails is NumPy's
  MemoryError, raised before anything is computed or written), so the extra memory never
  depends on m, and results depend only on (m, n_chunks),
  not on which thread ran which chunk: repeated calls with the same thread count are
  bit-identical.  Partial sums are added in chunk order after the parallel region.
* Rows are processed in blocks: shifted logits z - max of a whole block go into a flat scratch
  buffer, one vectorized ``exp`` runs over it (``_sfmath.h``: branch-free, ~1 ulp), then per-row
  sums (in float64, also for float32 data) normalize it.  One ``exp`` per logit, no ``log`` per
  logit: log-softmax is z - max - log(sum), the loss is log(sum) - (z_y - max).
* Bad rows are detected in the passes that already exist: for a row, s = sum exp(z - max) is >= 1
  exactly when the row has no NaN, no +inf and at least one finite logit (a NaN or +inf anywhere
  makes s NaN; an all -inf row gives max = -inf and s NaN).  A chunk stops at its first bad row
  and reports it; the Python layer raises ValueError naming the smallest such row.
* Fused softmax regression (``loss_and_grad``): a chunk walks its rows in tiles of ``tile_rows``
  rows that stay in cache (256 KiB of X rows plus logits).  Per tile: Zt = (X_t W^T + b)^T,
  stored transposed (K x rows) so that every softmax step runs along rows and vectorizes for
  any K; softmax, loss and G = (A - Y) * w_i / sum(w) in place; then dW_c += G^T X_t on the same
  cached X_t: X is read from memory once.  The two tile products run on the AVX2+FMA
  micro-kernels of ``_sfgemm.h`` when the CPU has them and K is small (they prefetch X, which
  streams in there), else on scipy's BLAS, kept to one thread by the caller while several
  chunks run.  float32 tiles accumulate into float64 per-chunk sums.
* The row-wise kernels (softmax, log_softmax, logsumexp, cross-entropy) read user logits
  row-major; a transposed layout for them was measured slower (benchmarks/RESULTS.md).
"""

import numpy as np

cimport cython
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
    void sf_vlog_ge1_d(const double *x, double *y, Py_ssize_t n)
    double sf_exp_d(double x)
    float sf_exp_f(float x)
    int SF_MULTIVERSIONED
    int SF_ASAN
    void sf_asan_poison(const void *p, size_t n)
    void sf_asan_unpoison(const void *p, size_t n)

cdef extern from "_sfgemm.h" nogil:
    int SF_HAVE_SMALL_GEMM
    int SF_SMALL_GEMM_MAX_K_D
    int SF_SMALL_GEMM_MAX_K_F
    int sf_cpu_has_avx2_fma()
    void sf_small_xwt_d(const double *X, const double *Wt, double *Z, Py_ssize_t rows,
                        Py_ssize_t n, Py_ssize_t K)
    void sf_small_xwt_f(const float *X, const float *Wt, float *Z, Py_ssize_t rows,
                        Py_ssize_t n, Py_ssize_t K)
    void sf_small_gtx_d(const double *G, const double *X, double *acc, Py_ssize_t rows,
                        Py_ssize_t n, Py_ssize_t K, int accumulate)
    void sf_small_gtx_f(const float *G, const float *X, float *acc, Py_ssize_t rows,
                        Py_ssize_t n, Py_ssize_t K, int accumulate)

ctypedef cnp.intp_t intp_t

# The AVX2+FMA micro-kernels of _sfgemm.h are used only when this CPU has both.
cdef bint _CPU_SMALL_GEMM = SF_HAVE_SMALL_GEMM and sf_cpu_has_avx2_fma()

cdef enum:
    # Rows of a block whose shifted logits share one flat exp call: about 4096 values (32 KiB f64).
    BLOCK_VALUES = 4096
    # Row chunks a thread with several threads (dynamic schedule; see _n_chunks).
    CHUNKS_PER_THREAD = 4


# ----------------------------------------------------------------------------- introspection

def openmp_enabled():
    """True when the extension was compiled with OpenMP."""
    return bool(sf_openmp_enabled())


def openmp_max_threads():
    """omp_get_max_threads(): honours OMP_NUM_THREADS and threadpoolctl (1 without OpenMP)."""
    return sf_omp_get_max_threads()


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


def simd_exp_dispatch():
    """How the vectorized exp is compiled ('baseline' or 'baseline+x86-64-v3 clone')."""
    return "baseline+x86-64-v3 clone" if SF_MULTIVERSIONED else "baseline"


def small_gemm_available():
    """True when the AVX2+FMA small-K GEMM micro-kernels are compiled in and this CPU runs them."""
    return bool(_CPU_SMALL_GEMM)


def small_gemm_max_k(bint single_precision):
    """Largest number of classes the micro-kernels take (float32 or float64)."""
    return SF_SMALL_GEMM_MAX_K_F if single_precision else SF_SMALL_GEMM_MAX_K_D


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


# ----------------------------------------------------------------------------- work space

# Test hook (tests/test_alloc_failure.py): while > 0, each kernel allocation counts it down and
# the one that brings it to 0 raises MemoryError, as NumPy does when memory runs out.
cdef Py_ssize_t _alloc_countdown = 0


def _fail_allocation(Py_ssize_t nth):
    """Test hook: the ``nth`` next kernel work-space allocation raises MemoryError (0: off).

    Returns how many allocations the previous setting still had to go (0: it fired or was off).
    """
    global _alloc_countdown
    previous = _alloc_countdown
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
    return np.full(shape, fill, dtype=dtype)


@cython.auto_pickle(False)  # no pickling methods (they would need a place in _kernels.pyi)
cdef class _Workspace:
    """The per-chunk buffers of one kernel call: (n_chunks, size + pad) arrays, one row a chunk
    (thread); the padding keeps the rows' used parts on different cache lines (no false sharing
    between threads).

    In an AddressSanitizer build (``SF_ASAN``) ``poison_padding(True)`` marks every row's padding
    unaddressable for the length of a parallel region, so that a chunk running past its own part
    is reported even though it stays inside one allocation; ``poison_padding(False)`` undoes it
    before the buffers go back to NumPy (which may reuse small ones without malloc).
    """
    cdef Py_ssize_t n_chunks
    cdef list guarded  # (array, used bytes of a row), ASan builds only

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


cdef inline Py_ssize_t _chunk_start(Py_ssize_t m, Py_ssize_t n_chunks, Py_ssize_t c) noexcept nogil:
    return (m * c) // n_chunks


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


cdef inline int _team_size(int n_threads, Py_ssize_t n_chunks) noexcept nogil:
    """Threads to start for n_chunks chunks: never more threads than chunks (an idle thread still
    costs a wake-up, milliseconds on a busy machine).  Results depend on the chunks only."""
    return <int>n_chunks if n_chunks < n_threads else n_threads


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


cdef Py_ssize_t _first_bad(intp_t[::1] bad):
    cdef Py_ssize_t c
    for c in range(bad.shape[0]):
        if bad[c] >= 0:
            return bad[c]
    return -1


# ----------------------------------------------------------------------------- cross-entropy

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


cdef double _ordered_sum(double[:, ::1] parts):
    """parts[0, 0] + parts[1, 0] + ... in chunk order (deterministic)."""
    cdef double total = 0.0
    cdef Py_ssize_t c
    for c in range(parts.shape[0]):
        total += parts[c, 0]
    return total


# ----------------------------------------------------------------------------- transposed tiles
#
# The linear-model kernels hold a tile of ``nt`` rows as Zt (K x nt): class k of row i at
# Zt[k * nt + i].  Every softmax step then runs along rows over contiguous memory and
# vectorizes whatever K is (with K = 10 a row-major row is too short for SIMD).

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
    cdef Py_ssize_t i, k
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
        for k in range(K):
            for i in range(nt):
                Zt[k * nt + i] = Zt[k * nt + i] + b[k]


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
    cdef Py_ssize_t i, k
    cdef floating v
    for i in range(nt):
        mx[i] = Zt[i]
    for k in range(1, K):
        for i in range(nt):
            v = Zt[k * nt + i]
            mx[i] = v if v > mx[i] else mx[i]


cdef inline void _tile_subtract(floating *Zt, const floating *mx, Py_ssize_t nt,
                                Py_ssize_t K) noexcept nogil:
    """Zt[k, i] -= mx[i]."""
    cdef Py_ssize_t i, k
    for k in range(K):
        for i in range(nt):
            Zt[k * nt + i] = Zt[k * nt + i] - mx[i]


cdef inline void _tile_shift(floating *Zt, floating *mx, Py_ssize_t nt,
                             Py_ssize_t K) noexcept nogil:
    """mx[i] = max_k Zt[k, i];  Zt[k, i] -= mx[i]."""
    _tile_max(Zt, mx, nt, K)
    _tile_subtract(Zt, mx, nt, K)


cdef inline void _tile_sums(const floating *Et, double *s, Py_ssize_t nt,
                            Py_ssize_t K) noexcept nogil:
    """s[i] = sum_k Et[k, i] in float64 (classes in order: deterministic)."""
    cdef Py_ssize_t i, k
    for i in range(nt):
        s[i] = Et[i]
    for k in range(1, K):
        for i in range(nt):
            s[i] = s[i] + Et[k * nt + i]


cdef inline Py_ssize_t _tile_first_bad(const double *s, Py_ssize_t nt) noexcept nogil:
    """First i with s[i] not >= 1 (NaN: a NaN or +inf logit, or no finite logit), else -1."""
    cdef Py_ssize_t i
    for i in range(nt):
        if not s[i] >= 1.0:
            return i
    return -1


# ----------------------------------------------------------------------------- fused loss + grad

cdef struct TileScratch:
    # Per-chunk work space of the fused kernel; every array has room for one tile.
    double *target_dot     # shifted logit of the label / sum_k y_k shifted_k       (tile)
    double *target_sum     # sum_k y_k (1 for labels)                               (tile)
    double *row_sum        # sum_k exp(shifted)                                     (tile)
    double *log_sum        # log(row_sum)                                           (tile)
    double *db_acc         # running column sums of G, class k at [k * tile + i]   (K x tile)


cdef Py_ssize_t _loss_grad_chunk(
    const floating *X, const intp_t *labels, const floating *Y, const floating *W,
    const floating *Wt, const floating *b, const double *sw, double grad_scale, floating *Zt,
    floating *row_max, floating *row_coef, TileScratch ws, floating *tile_acc, double *dW,
    double *loss_sum, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t n, Py_ssize_t K,
    Py_ssize_t tile,
) noexcept nogil:
    """Softmax-regression loss and gradient over rows [r0, r1), tile by tile.

    Per tile: Zt = (X_t W^T + b)^T; shifted = Zt - max; E = exp(shifted); s = sum_k E;
    l_i = log(s_i) * sum_k y_ik - sum_k y_ik shifted_ik;  G = (E / s - Y) * w_i * grad_scale in
    place of Zt;  dW += G X_t (float64 directly, float32 through ``tile_acc`` then float64);
    db accumulates G along rows.  Returns -1 or the first invalid row.
    """
    cdef Py_ssize_t t0, nt, i, k, bad
    cdef double total = 0.0, w, y_ik
    t0 = r0
    while t0 < r1:
        nt = min(tile, r1 - t0)
        _tile_logits(X + t0 * n, W, Wt, b, Zt, nt, n, K)
        _tile_max(Zt, row_max, nt, K)
        # What the loss needs of the shifted logits z - max, formed in float64 before the
        # shift (float32 logits further apart than the float32 range would overflow it).
        if labels != NULL:
            for i in range(nt):
                ws.target_dot[i] = <double>Zt[labels[t0 + i] * nt + i] - <double>row_max[i]
                ws.target_sum[i] = 1.0
        else:
            for i in range(nt):
                ws.target_dot[i] = 0.0
                ws.target_sum[i] = 0.0
            for k in range(K):
                for i in range(nt):
                    y_ik = Y[(t0 + i) * K + k]
                    ws.target_dot[i] = ws.target_dot[i] + y_ik * (
                        <double>Zt[k * nt + i] - <double>row_max[i])
                    ws.target_sum[i] = ws.target_sum[i] + y_ik
        _tile_subtract(Zt, row_max, nt, K)
        _vexp(Zt, nt * K)
        _tile_sums(Zt, ws.row_sum, nt, K)
        bad = _tile_first_bad(ws.row_sum, nt)
        if bad >= 0:
            return t0 + bad
        sf_vlog_ge1_d(ws.row_sum, ws.log_sum, nt)
        for i in range(nt):
            w = sw[t0 + i] if sw != NULL else 1.0
            total = total + w * (ws.log_sum[i] * ws.target_sum[i] - ws.target_dot[i])
            row_coef[i] = <floating>(w * grad_scale / ws.row_sum[i])
        # G = E * (w grad_scale / s) - Y * (w grad_scale), in place.
        for k in range(K):
            for i in range(nt):
                Zt[k * nt + i] = Zt[k * nt + i] * row_coef[i]
        if labels != NULL:
            for i in range(nt):
                w = sw[t0 + i] if sw != NULL else 1.0
                Zt[labels[t0 + i] * nt + i] -= <floating>(w * grad_scale)
        else:
            for k in range(K):
                for i in range(nt):
                    w = sw[t0 + i] if sw != NULL else 1.0
                    Zt[k * nt + i] -= <floating>(Y[(t0 + i) * K + k] * (w * grad_scale))
        for k in range(K):
            for i in range(nt):
                ws.db_acc[k * tile + i] = ws.db_acc[k * tile + i] + Zt[k * nt + i]
        if floating is double:
            _tile_grad_product(Zt, X + t0 * n, dW, nt, n, K, True, Wt != NULL)
        else:
            _tile_grad_product(Zt, X + t0 * n, tile_acc, nt, n, K, False, Wt != NULL)
            for k in range(n * K):
                dW[k] = dW[k] + tile_acc[k]
        t0 = t0 + tile
    loss_sum[0] = total
    return -1


def loss_and_grad(const floating[:, ::1] X, const intp_t[::1] labels, const floating[:, ::1] Y,
                  const floating[:, ::1] W, const floating[::1] b,
                  const double[::1] sample_weight, double grad_scale, Py_ssize_t tile_rows,
                  int n_threads, bint small_gemm=True):
    """Fused softmax-regression loss and gradient (no regularization: added by the caller).

    Returns (first_bad_row or -1, sum_i w_i l_i, dW (K, n) float64, db (K,) float64 or None),
    with dW = G^T X and db = sum_i g_i where g_i = (softmax(W x_i + b) - y_i) * w_i * grad_scale.
    ``small_gemm=False`` forces BLAS for the tile products.
    """
    cdef Py_ssize_t m = X.shape[0], n = X.shape[1], K = W.shape[0]
    if m == 0 or K == 0:
        raise ValueError("loss_and_grad needs m > 0 and K > 0")
    cdef Py_ssize_t tile = max(1, min(tile_rows, m))  # a tile never taller than the data
    cdef Py_ssize_t n_chunks = _n_chunks(m, tile, n_threads, K * n)
    dtype = np.float64 if floating is double else np.float32
    cdef _Workspace work = _Workspace(n_chunks)
    cdef floating[:, ::1] Zt = work.rows(tile * K, dtype)
    cdef floating[:, ::1] row_max = work.rows(tile, dtype)
    cdef floating[:, ::1] row_coef = work.rows(tile, dtype)
    cdef double[:, ::1] per_row = work.rows(4 * tile, np.float64)
    cdef double[:, ::1] db_acc = work.rows(K * tile, np.float64, zero=True)
    cdef floating[:, ::1] tile_acc = work.rows(0 if floating is double else K * n, dtype)
    # One (K, n) row-major gradient per chunk, flat (the padding keeps &dW_parts[c, 0] valid
    # when n == 0).
    cdef double[:, ::1] dW_parts = work.rows(K * n, np.float64, zero=True)
    cdef double[:, ::1] loss_sums = work.rows(1, np.float64, zero=True)
    cdef intp_t[::1] bad = _alloc(n_chunks, np.intp, -1)
    cdef const intp_t *p_labels = &labels[0] if labels is not None else NULL
    cdef const floating *p_Y = &Y[0, 0] if Y is not None else NULL
    cdef const floating *p_b = &b[0] if b is not None else NULL
    cdef const double *p_sw = &sample_weight[0] if sample_weight is not None else NULL
    cdef floating[:, ::1] Wt = _small_gemm_wt(W, small_gemm)
    cdef const floating *p_Wt = &Wt[0, 0] if Wt is not None else NULL
    cdef TileScratch ws
    cdef Py_ssize_t c
    work.poison_padding(True)
    cdef int team = _team_size(n_threads, n_chunks)
    for c in prange(n_chunks, nogil=True, schedule="dynamic", chunksize=1, num_threads=team):
        ws.target_dot = &per_row[c, 0]
        ws.target_sum = &per_row[c, tile]
        ws.row_sum = &per_row[c, 2 * tile]
        ws.log_sum = &per_row[c, 3 * tile]
        ws.db_acc = &db_acc[c, 0]
        bad[c] = _loss_grad_chunk(
            &X[0, 0], p_labels, p_Y, &W[0, 0], p_Wt, p_b, p_sw, grad_scale, &Zt[c, 0],
            &row_max[c, 0], &row_coef[c, 0], ws, &tile_acc[c, 0], &dW_parts[c, 0],
            &loss_sums[c, 0], _chunk_start(m, n_chunks, c), _chunk_start(m, n_chunks, c + 1),
            n, K, tile)
    work.poison_padding(False)
    first_bad = _first_bad(bad)
    dW = _ordered_rows_sum(np.asarray(dW_parts)[:, :K * n]).reshape(K, n)
    db = None
    if b is not None:
        # Each chunk's db is the sum of its K x tile running sums along the tile (fixed order).
        db = _ordered_rows_sum(
            np.asarray(db_acc)[:, :K * tile].reshape(n_chunks, K, tile).sum(axis=2))
    return first_bad, _ordered_sum(loss_sums), dW, db


cdef object _small_gemm_wt(const floating[:, ::1] W, bint wanted):
    """W^T zero-padded to n x (ceil(K / lanes) * lanes) for the micro-kernels, or None for BLAS."""
    cdef Py_ssize_t K = W.shape[0], n = W.shape[1]
    cdef int lanes = 4 if floating is double else 8
    cdef int max_k = SF_SMALL_GEMM_MAX_K_D if floating is double else SF_SMALL_GEMM_MAX_K_F
    if not (wanted and _CPU_SMALL_GEMM and K <= max_k and n > 0):
        return None
    Wt = _alloc((n, ((K + lanes - 1) // lanes) * lanes),
                np.float64 if floating is double else np.float32, 0)
    Wt[:, :K] = np.asarray(W).T
    return Wt


cdef object _ordered_rows_sum(object parts):
    """parts[0] + parts[1] + ... in this order (deterministic for a given chunk count)."""
    total = _alloc(parts.shape[1:], parts.dtype)
    total[...] = parts[0]
    for c in range(1, parts.shape[0]):
        total += parts[c]
    return total


# ----------------------------------------------------------------------------- prediction

cdef Py_ssize_t _predict_chunk(const floating *X, const floating *W, const floating *Wt,
                               const floating *b, floating *proba, intp_t *labels_out,
                               floating *Zt, floating *row_max, double *row_sum,
                               Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t n, Py_ssize_t K,
                               Py_ssize_t tile) noexcept nogil:
    """Rows [r0, r1): softmax(X W^T + b) into ``proba`` (if not NULL), else argmax into
    ``labels_out``.  Returns -1 or the first row with invalid logits."""
    cdef Py_ssize_t t0, nt, i, k, bad
    cdef floating v
    t0 = r0
    while t0 < r1:
        nt = min(tile, r1 - t0)
        _tile_logits(X + t0 * n, W, Wt, b, Zt, nt, n, K)
        if proba != NULL:
            _tile_shift(Zt, row_max, nt, K)
            _vexp(Zt, nt * K)
            _tile_sums(Zt, row_sum, nt, K)
            bad = _tile_first_bad(row_sum, nt)
            if bad >= 0:
                return t0 + bad
            for i in range(nt):
                row_max[i] = <floating>(1.0 / row_sum[i])
            for i in range(nt):
                for k in range(K):
                    proba[(t0 + i) * K + k] = Zt[k * nt + i] * row_max[i]
        else:
            # Valid rows: no NaN and no +inf (the sum of the logits is then not NaN and their
            # max is finite) -- the same rule as the softmax kernels.
            _tile_sums(Zt, row_sum, nt, K)
            for i in range(nt):
                row_max[i] = Zt[i]
                labels_out[t0 + i] = 0
            for k in range(1, K):
                for i in range(nt):
                    v = Zt[k * nt + i]
                    if v > row_max[i]:
                        row_max[i] = v
                        labels_out[t0 + i] = k
            for i in range(nt):
                if row_sum[i] != row_sum[i] or row_max[i] == INFINITY or row_max[i] == -INFINITY:
                    return t0 + i
        t0 = t0 + tile
    return -1


def predict(const floating[:, ::1] X, const floating[:, ::1] W, const floating[::1] b,
            floating[:, ::1] proba, intp_t[::1] labels, Py_ssize_t tile_rows, int n_threads,
            bint small_gemm=True):
    """softmax(X W^T + b) into ``proba`` or argmax_k (X W^T + b) into ``labels`` (one of them).

    Returns -1 or the first row with invalid logits.
    """
    cdef Py_ssize_t m = X.shape[0], n = X.shape[1], K = W.shape[0]
    if m == 0 or K == 0:
        return -1
    cdef Py_ssize_t tile = max(1, min(tile_rows, m))  # a tile never taller than the data
    cdef Py_ssize_t n_chunks = _n_chunks(m, tile, n_threads, 0)
    dtype = np.float64 if floating is double else np.float32
    cdef _Workspace work = _Workspace(n_chunks)
    cdef floating[:, ::1] Zt = work.rows(tile * K, dtype)
    cdef floating[:, ::1] row_max = work.rows(tile, dtype)
    cdef double[:, ::1] row_sum = work.rows(tile, np.float64)
    cdef intp_t[::1] bad = _alloc(n_chunks, np.intp, -1)
    cdef const floating *p_b = &b[0] if b is not None else NULL
    cdef floating *p_proba = &proba[0, 0] if proba is not None else NULL
    cdef intp_t *p_labels = &labels[0] if labels is not None else NULL
    cdef floating[:, ::1] Wt = _small_gemm_wt(W, small_gemm)
    cdef const floating *p_Wt = &Wt[0, 0] if Wt is not None else NULL
    cdef Py_ssize_t c
    work.poison_padding(True)
    cdef int team = _team_size(n_threads, n_chunks)
    for c in prange(n_chunks, nogil=True, schedule="dynamic", chunksize=1, num_threads=team):
        bad[c] = _predict_chunk(&X[0, 0], &W[0, 0], p_Wt, p_b, p_proba, p_labels, &Zt[c, 0],
                                &row_max[c, 0], &row_sum[c, 0], _chunk_start(m, n_chunks, c),
                                _chunk_start(m, n_chunks, c + 1), n, K, tile)
    work.poison_padding(False)
    return _first_bad(bad)

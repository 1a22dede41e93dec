"""Fused softmax regression on a dense X (m, n): ``loss_and_grad``, ``hess_vec`` and
``predict``.  No validation here: softmax_fast.kernels and softmax_fast._design call these.

Design note
-----------
* Threads split the rows into ``n_chunks`` contiguous chunks (``prange`` over chunks, scheduled
  dynamically); every chunk owns its scratch buffers and partial sums (``_workspace``), added in
  chunk order after the parallel region: results depend only on (m, n_chunks).
* A chunk walks its rows in tiles of ``tile_rows`` rows that stay in cache (256 KiB of X rows
  plus logits).  Per tile: Zt = (X_t W^T + b)^T, stored transposed (K x rows) so that every
  softmax step runs along rows and vectorizes for any K; softmax, loss and
  G = (A - Y) * w_i / sum(w) in place; then dW_c += G^T X_t on the same cached X_t: X is read
  from memory once.  The two tile products run on the AVX2+FMA micro-kernels of ``_sfgemm.h``
  when the CPU has them and K is small (they prefetch X, which streams in there), else on
  scipy's BLAS, kept to one thread by the caller while several chunks run.  float32 tiles
  accumulate into float64 per-chunk sums.
* A row is bad when its logits hold a NaN or +inf or no finite value (the row-wise kernels'
  rule); a chunk stops at its first bad row and reports it.
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY

from ._common cimport (
    SF_SMALL_GEMM_MAX_K_D, SF_SMALL_GEMM_MAX_K_F, _cpu_runs_small_gemm, intp_t, sf_vlog_ge1_d,
)
from ._rows cimport (
    _chunk_start, _team_size, _tile_add_to, _tile_first_bad, _tile_grad_product, _tile_logits,
    _tile_max, _tile_scale, _tile_shift, _tile_subtract, _tile_sums, _vexp,
)
from ._workspace cimport (
    _Workspace, _alloc, _first_bad, _n_chunks, _ordered_rows_sum, _ordered_sum,
)

# The AVX2+FMA micro-kernels of _sfgemm.h are used only when this CPU has both.
cdef bint _CPU_SMALL_GEMM = _cpu_runs_small_gemm()


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
    floating *row_max, floating *row_coef, double *per_row, double *db_acc, floating *tile_acc,
    double *dW, double *loss_sum, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t n, Py_ssize_t K,
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
    # the chunk's scratch, laid out in its own rows of per_row (a local: private to the thread)
    cdef TileScratch ws
    ws.target_dot = per_row
    ws.target_sum = per_row + tile
    ws.row_sum = per_row + 2 * tile
    ws.log_sum = per_row + 3 * tile
    ws.db_acc = db_acc
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
        _tile_scale(Zt, row_coef, nt, K)
        if labels != NULL:
            for i in range(nt):
                w = sw[t0 + i] if sw != NULL else 1.0
                Zt[labels[t0 + i] * nt + i] -= <floating>(w * grad_scale)
        else:
            for k in range(K):
                for i in range(nt):
                    w = sw[t0 + i] if sw != NULL else 1.0
                    Zt[k * nt + i] -= <floating>(Y[(t0 + i) * K + k] * (w * grad_scale))
        _tile_add_to(Zt, ws.db_acc, tile, nt, K)
        if floating is double:
            _tile_grad_product(Zt, X + t0 * n, dW, nt, n, K, True, Wt != NULL)
        else:
            _tile_grad_product(Zt, X + t0 * n, tile_acc, nt, n, K, False, Wt != NULL)
            _tile_add_to(tile_acc, dW, 0, n * K, 1)
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
    cdef Py_ssize_t c
    work.poison_padding(True)
    cdef int team = _team_size(n_threads, n_chunks)
    # (every per-chunk pointer is formed in the call: a variable assigned field by field in a
    # prange body is shared between the threads, not private to each)
    for c in prange(n_chunks, nogil=True, schedule="dynamic", chunksize=1, num_threads=team):
        bad[c] = _loss_grad_chunk(
            &X[0, 0], p_labels, p_Y, &W[0, 0], p_Wt, p_b, p_sw, grad_scale, &Zt[c, 0],
            &row_max[c, 0], &row_coef[c, 0], &per_row[c, 0], &db_acc[c, 0], &tile_acc[c, 0],
            &dW_parts[c, 0],
            &loss_sums[c, 0], _chunk_start(m, n_chunks, c), _chunk_start(m, n_chunks, c + 1),
            n, K, tile)
    work.poison_padding(False)
    first_bad = _first_bad(bad)
    if n_chunks == 1:  # the one chunk's sums are the result (a view of its row)
        dW = np.asarray(dW_parts)[0, :K * n].reshape(K, n)
    else:
        dW = _ordered_rows_sum(np.asarray(dW_parts)[:, :K * n]).reshape(K, n)
    db = None
    if b is not None:
        # Each chunk's db is the sum of its K x tile running sums along the tile (fixed order).
        db = _ordered_rows_sum(
            np.asarray(db_acc)[:, :K * tile].reshape(n_chunks, K, tile).sum(axis=2))
    return first_bad, _ordered_sum(loss_sums), dW, db


cdef object _small_gemm_wt(const floating[:, ::1] W, bint wanted):
    """W^T zero-padded to n x (ceil(K / lanes) * lanes) for the micro-kernels, or None for BLAS."""
    cdef Py_ssize_t K = W.shape[0], n = W.shape[1], width, j, k
    cdef int lanes = 4 if floating is double else 8
    cdef int max_k = SF_SMALL_GEMM_MAX_K_D if floating is double else SF_SMALL_GEMM_MAX_K_F
    if not (wanted and _CPU_SMALL_GEMM and K <= max_k and n > 0):
        return None
    width = ((K + lanes - 1) // lanes) * lanes
    Wt = _alloc((n, width), np.float64 if floating is double else np.float32)
    cdef floating[:, ::1] out = Wt
    with nogil:  # the transpose and the zero padding in one pass (a NumPy copy costs more here)
        for j in range(n):
            for k in range(K):
                out[j, k] = W[k, j]
            for k in range(K, width):
                out[j, k] = 0
    return Wt


# ----------------------------------------------------------------------------- Hessian-vector

cdef void _hess_vec_chunk(
    const floating *X, const floating *P, const floating *V, const floating *Vt,
    const floating *c, const double *sw, double scale, floating *Rt, double *row_dot,
    double *dc_acc, floating *tile_acc, double *dV, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t n,
    Py_ssize_t K, Py_ssize_t tile,
) noexcept nogil:
    """The Hessian of the data term applied to (V, c), over rows [r0, r1), tile by tile.

    Per tile: Rt = (X_t V^T + c)^T (the directional derivative of the logits);
    D = w_i scale P_ik (R_ik - sum_j P_ij R_ij) in place of Rt (the Jacobian of softmax,
    diag(p) - p p^T, applied to r_i); dV += D^T X_t on the same cached X_t; dc accumulates D
    along rows.  P (m x K, row-major) is the softmax at the current coefficients.
    """
    cdef Py_ssize_t t0, nt, i, k
    cdef double w, p_ik
    t0 = r0
    while t0 < r1:
        nt = min(tile, r1 - t0)
        _tile_logits(X + t0 * n, V, Vt, c, Rt, nt, n, K)
        for i in range(nt):
            row_dot[i] = 0.0
        for k in range(K):
            for i in range(nt):
                row_dot[i] = row_dot[i] + <double>P[(t0 + i) * K + k] * <double>Rt[k * nt + i]
        for i in range(nt):
            w = sw[t0 + i] if sw != NULL else 1.0
            row_dot[nt + i] = w * scale
        for k in range(K):
            for i in range(nt):
                p_ik = P[(t0 + i) * K + k]
                # rows of weight 0 give exactly 0 (their P R may be anything finite)
                Rt[k * nt + i] = <floating>(
                    row_dot[nt + i] * p_ik * (<double>Rt[k * nt + i] - row_dot[i]))
        if dc_acc != NULL:
            _tile_add_to(Rt, dc_acc, tile, nt, K)
        if floating is double:
            _tile_grad_product(Rt, X + t0 * n, dV, nt, n, K, True, Vt != NULL)
        else:
            _tile_grad_product(Rt, X + t0 * n, tile_acc, nt, n, K, False, Vt != NULL)
            _tile_add_to(tile_acc, dV, 0, n * K, 1)
        t0 = t0 + tile


def hess_vec(const floating[:, ::1] X, const floating[:, ::1] P, const floating[:, ::1] V,
             const floating[::1] c, const double[::1] sample_weight, double scale,
             Py_ssize_t tile_rows, int n_threads, bint small_gemm=True):
    """The Hessian of the softmax-regression data term applied to a direction, one pass over X.

    With R = X V^T + c (m, K) and P (m, K) the probabilities softmax(X W^T + b) at the point,
    ``D_ik = w_i * scale * P_ik * (R_ik - sum_j P_ij R_ij)``; returns
    ``(dV, dc)``: dV = D^T X, shape (K, n) float64, and dc = sum_i D_i, shape (K,) float64 (None
    when ``c`` is None).  No penalty (added by the caller).  Same chunking, and so the same
    determinism, as :func:`loss_and_grad`.
    """
    cdef Py_ssize_t m = X.shape[0], n = X.shape[1], K = V.shape[0]
    if m == 0 or K == 0:
        raise ValueError("hess_vec needs m > 0 and K > 0")
    if P.shape[0] != m or P.shape[1] != K or V.shape[1] != n:
        raise ValueError("hess_vec: P must be (m, K) and V (K, n)")
    cdef Py_ssize_t tile = max(1, min(tile_rows, m))
    cdef Py_ssize_t n_chunks = _n_chunks(m, tile, n_threads, K * n)
    dtype = np.float64 if floating is double else np.float32
    cdef _Workspace work = _Workspace(n_chunks)
    cdef floating[:, ::1] Rt = work.rows(tile * K, dtype)
    cdef double[:, ::1] row_dot = work.rows(2 * tile, np.float64)
    cdef double[:, ::1] dc_acc = work.rows(K * tile, np.float64, zero=True)
    cdef floating[:, ::1] tile_acc = work.rows(0 if floating is double else K * n, dtype)
    cdef double[:, ::1] dV_parts = work.rows(K * n, np.float64, zero=True)
    cdef const floating *p_c = &c[0] if c is not None else NULL
    cdef const double *p_sw = &sample_weight[0] if sample_weight is not None else NULL
    cdef floating[:, ::1] Vt = _small_gemm_wt(V, small_gemm)
    cdef const floating *p_Vt = &Vt[0, 0] if Vt is not None else NULL
    cdef bint want_dc = c is not None
    cdef Py_ssize_t ch
    work.poison_padding(True)
    cdef int team = _team_size(n_threads, n_chunks)
    for ch in prange(n_chunks, nogil=True, schedule="dynamic", chunksize=1, num_threads=team):
        _hess_vec_chunk(
            &X[0, 0], &P[0, 0], &V[0, 0], p_Vt, p_c, p_sw, scale, &Rt[ch, 0], &row_dot[ch, 0],
            &dc_acc[ch, 0] if want_dc else NULL, &tile_acc[ch, 0], &dV_parts[ch, 0],
            _chunk_start(m, n_chunks, ch), _chunk_start(m, n_chunks, ch + 1), n, K, tile)
    work.poison_padding(False)
    if n_chunks == 1:
        dV = np.asarray(dV_parts)[0, :K * n].reshape(K, n)
    else:
        dV = _ordered_rows_sum(np.asarray(dV_parts)[:, :K * n]).reshape(K, n)
    dc = None
    if want_dc:
        dc = _ordered_rows_sum(
            np.asarray(dc_acc)[:, :K * tile].reshape(n_chunks, K, tile).sum(axis=2))
    return dV, dc


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
            # Valid rows: no NaN, no +inf and a finite logit -- the same rule as the softmax
            # kernels.  row_sum[i] flags a NaN or +inf (``not v < inf``) in row i.
            for i in range(nt):
                row_max[i] = Zt[i]
                labels_out[t0 + i] = 0
                row_sum[i] = 0.0 if Zt[i] < INFINITY else 1.0
            for k in range(1, K):
                for i in range(nt):
                    v = Zt[k * nt + i]
                    if not v < INFINITY:
                        row_sum[i] = 1.0
                    if v > row_max[i]:
                        row_max[i] = v
                        labels_out[t0 + i] = k
            for i in range(nt):
                if row_sum[i] != 0.0 or row_max[i] == -INFINITY:
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

"""Fused softmax regression on a CSR X (m, n): ``loss_and_grad`` (by rows),
``loss_and_grad_columns`` (by the columns of the CSC copy), the Hessian-vector products
``hess_vec`` and ``hess_vec_columns`` (the same two forms), the Hessian's diagonal
``hess_diag``, ``predict`` and ``to_csc``.  No
validation here: softmax_fast._design validates the matrix once (the structure, indices in
range, finite values), picks the strategy and calls these.

Design note
-----------
* X comes as its three CSR arrays (``data``, ``indices``, ``indptr``: float32/float64 values,
  int32/int64 indices, one index dtype for both).  The kernels take the coefficients
  feature-major, as ``Wt`` = W^T of shape (n, K), and the loss kernels return the gradient the
  same way, as ``dWt`` (n, K) float64: the K values of one feature are contiguous, so the logits
  of a row are ``z = b + sum_p x_p Wt[j_p, :]`` over its non-zeros, each a contiguous run of K,
  and a column pass reads Wt and writes dWt as one stream over the features.
  ``loss_and_grad_columns`` also takes W (K, n) and returns dW (K, n) (``class_major``), the
  same sums, for a one-off call given that layout (no transposed copies).
* Threads split the rows into chunks of about equal non-zeros (``row_bounds``, from the caller);
  a chunk walks its rows in blocks of ``ROW_BLOCK`` rows: logits from the non-zeros, the shift by
  the row max, one vectorized exp over the block, the loss and G = (A - Y) * w_i * grad_scale in
  place, all in float64 whatever the data's dtype.
* ``loss_and_grad``'s gradient dWt = X^T G has two forms, chosen by the caller from the memory
  they need:
  - row accumulators (``csc_* is None``): each chunk adds its rows' x_p * G[i, :] into its own
    (n, K) float64 accumulator in the same pass over the non-zeros, summed in chunk order after
    the parallel region: one pass over X, extra memory n_chunks * n * K * 8 bytes;
  - a column pass (``csc_*`` given: the CSC form of the same X, built once by the caller): the
    first pass stores G (m, K) float64; a second pass, threaded over column chunks, forms each
    feature's K sums (held in registers) from its column's entries.  Extra memory m * K * 8
    bytes plus the CSC copy, whatever the thread count; each sum runs in row order, so the
    result does not depend on the threads at all.
* ``loss_and_grad_columns`` (X with fewer rows than columns) runs both products over the CSC
  copy: column chunks scatter x_ij Wt[j, :] into their own m x K logits part, row chunks sum the
  parts and form the loss and G, column chunks gather dWt[j, :] from G.
* ``hess_vec`` / ``hess_vec_columns`` apply the data term's Hessian at the probabilities P to a
  direction (V, c) with the same chunks and the same two products: R = X Vt + c (the logits
  step, on Vt and c), D_i = w_i scale P_i * (R_i - P_i . R_i) per row (``_hv_row``, in place of
  the softmax step), then dVt = X^T D by row accumulators, or by the column pass from D (m, K),
  exactly as the gradient is formed from G; dc = sum_i D_i in chunk order.
* ``hess_diag`` forms the Hessian's diagonal with the same chunks and the same two forms:
  d_i = w_i scale P_i (1 - P_i) per row in place of D_i, and X's entries squared (the
  caller's cached ``data * data``) in place of X's.
* Results depend only on the inputs and the chunk bounds: bit-identical between repeated calls.
* A row is bad when its logits hold a NaN or +inf or no finite value (the dense kernels' rule);
  a chunk stops at its first bad row and reports it.  Rows of weight 0 add nothing to the loss,
  even where their loss is infinite.
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.string cimport memcpy

cimport numpy as cnp

from ._common cimport (
    csr_index, intp_t, sf_csc_grad_d_i32, sf_csc_grad_d_i64, sf_csc_grad_f_i32, sf_csc_grad_f_i64,
    sf_csc_logits_d_i32, sf_csc_logits_d_i64, sf_csc_logits_f_i32, sf_csc_logits_f_i64,
    sf_csr_logits_d_i32, sf_csr_logits_d_i64, sf_csr_logits_f_i32, sf_csr_logits_f_i64,
    sf_csr_scatter_d_i32, sf_csr_scatter_d_i64, sf_csr_scatter_f_i32, sf_csr_scatter_f_i64,
    sf_vexp_d, sf_vlog_ge1_d,
)
from ._rows cimport _team_size
from ._workspace cimport _Workspace, _alloc, _first_bad, _ordered_rows_sum, _ordered_sum

cdef enum:
    # Rows a chunk takes through the softmax at once (one vectorized exp over ROW_BLOCK * K).
    ROW_BLOCK = 32


cdef struct RowScratch:
    # Per-chunk work space; every array has room for one block of rows.
    double *Z              # logits, then exp(shifted), then G, row-major      (ROW_BLOCK x K)
    double *row_sum        # sum_k exp(shifted)                                (ROW_BLOCK)
    double *log_sum        # log(row_sum)                                      (ROW_BLOCK)
    double *target         # shifted logit of the label / sum_k y_k shifted_k  (ROW_BLOCK)
    double *target_sum     # sum_k y_k (1 for labels)                          (ROW_BLOCK)


cdef inline void _csr_logits(const floating *data, const csr_index *indices,
                             const csr_index *indptr, const floating *Wt, const floating *b,
                             double *Z, Py_ssize_t r0, Py_ssize_t r1,
                             Py_ssize_t K) noexcept nogil:
    """Z[r - r0, :] = b + sum_p data[p] * Wt[indices[p], :] for rows [r0, r1), in float64."""
    if floating is double:
        if csr_index is cnp.int32_t:
            sf_csr_logits_d_i32(data, indices, indptr, Wt, b, Z, r0, r1, K)
        else:
            sf_csr_logits_d_i64(data, indices, indptr, Wt, b, Z, r0, r1, K)
    else:
        if csr_index is cnp.int32_t:
            sf_csr_logits_f_i32(data, indices, indptr, Wt, b, Z, r0, r1, K)
        else:
            sf_csr_logits_f_i64(data, indices, indptr, Wt, b, Z, r0, r1, K)


cdef inline void _csr_scatter(const floating *data, const csr_index *indices, Py_ssize_t p0,
                              Py_ssize_t p1, const double *g, double *acc,
                              Py_ssize_t K) noexcept nogil:
    """acc[indices[p], :] += data[p] * g for p in [p0, p1)."""
    if floating is double:
        if csr_index is cnp.int32_t:
            sf_csr_scatter_d_i32(data, indices, p0, p1, g, acc, K)
        else:
            sf_csr_scatter_d_i64(data, indices, p0, p1, g, acc, K)
    else:
        if csr_index is cnp.int32_t:
            sf_csr_scatter_f_i32(data, indices, p0, p1, g, acc, K)
        else:
            sf_csr_scatter_f_i64(data, indices, p0, p1, g, acc, K)


cdef inline void _csc_logits(const floating *data, const csr_index *rows,
                             const csr_index *colptr, const floating *W, Py_ssize_t ldf,
                             Py_ssize_t ldc, double *Z, Py_ssize_t j0, Py_ssize_t j1,
                             Py_ssize_t K) noexcept nogil:
    """Z[rows[p], k] += data[p] * W[j ldf + k ldc] over the entries of columns [j0, j1): W is
    Wt (n, K) with (ldf, ldc) = (K, 1), or W (K, n) with (1, n)."""
    if floating is double:
        if csr_index is cnp.int32_t:
            sf_csc_logits_d_i32(data, rows, colptr, W, ldf, ldc, Z, j0, j1, K)
        else:
            sf_csc_logits_d_i64(data, rows, colptr, W, ldf, ldc, Z, j0, j1, K)
    else:
        if csr_index is cnp.int32_t:
            sf_csc_logits_f_i32(data, rows, colptr, W, ldf, ldc, Z, j0, j1, K)
        else:
            sf_csc_logits_f_i64(data, rows, colptr, W, ldf, ldc, Z, j0, j1, K)


cdef inline void _csc_grad(const floating *data, const csr_index *rows,
                           const csr_index *colptr, const double *G, double *dW,
                           Py_ssize_t ldf, Py_ssize_t ldc, Py_ssize_t j0, Py_ssize_t j1,
                           Py_ssize_t K) noexcept nogil:
    """dW[j ldf + k ldc] = sum over column j's entries (in order) of data[p] * G[rows[p], k]
    (the layouts of _csc_logits)."""
    if floating is double:
        if csr_index is cnp.int32_t:
            sf_csc_grad_d_i32(data, rows, colptr, G, dW, ldf, ldc, j0, j1, K)
        else:
            sf_csc_grad_d_i64(data, rows, colptr, G, dW, ldf, ldc, j0, j1, K)
    else:
        if csr_index is cnp.int32_t:
            sf_csc_grad_f_i32(data, rows, colptr, G, dW, ldf, ldc, j0, j1, K)
        else:
            sf_csc_grad_f_i64(data, rows, colptr, G, dW, ldf, ldc, j0, j1, K)


cdef inline double _shift_row(double *z, Py_ssize_t K) noexcept nogil:
    """z -= max(z) (NaN skipped by the max, caught by the row-sum test later); returns the max."""
    cdef double mx = -INFINITY
    cdef Py_ssize_t k
    for k in range(K):
        mx = z[k] if z[k] > mx else mx
    for k in range(K):
        z[k] = z[k] - mx
    return mx


cdef inline double _sum_row(const double *e, Py_ssize_t K) noexcept nogil:
    """sum_k e[k], classes in order (deterministic)."""
    cdef double s = 0.0
    cdef Py_ssize_t k
    for k in range(K):
        s = s + e[k]
    return s


cdef Py_ssize_t _loss_grad_rows(
    const floating *data, const csr_index *indices, const csr_index *indptr,
    const double *Z_parts, Py_ssize_t n_parts, Py_ssize_t part_stride,
    const intp_t *labels, const floating *Y, const floating *Wt, const floating *b,
    const double *sw, double grad_scale, double *block, double *per_row, double *acc,
    double *G, double *db,
    double *loss_sum, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t K,
) noexcept nogil:
    """Loss and gradient terms of rows [r0, r1), block by block.

    The logits come from the CSR arrays, or (``Z_parts`` not NULL) are the sum, in part order,
    of ``n_parts`` (m x K) partial products ``part_stride`` apart, plus b.  Per row:
    l_i = log(s_i) * sum_k y_ik - sum_k y_ik shifted_ik, G_i = (E_i / s_i - y_i) * w_i *
    grad_scale; db += G_i; then either ``acc`` (n x K) += x_i^T G_i over the row's non-zeros, or
    G_i stored in row i of ``G`` (m x K; it may be the first part: row i is read before it is
    written) for a column pass.  Returns -1 or the first bad row.
    """
    cdef Py_ssize_t r, nb, i, k, row, c
    cdef double total = 0.0, w, coef, y_ik
    cdef double *z
    cdef const double *part
    # the chunk's scratch: ``block`` (ROW_BLOCK x K) and the rows of ``per_row`` (a local
    # struct: private to the thread)
    cdef RowScratch ws
    ws.Z = block
    ws.row_sum = per_row
    ws.log_sum = per_row + <Py_ssize_t>ROW_BLOCK
    ws.target = per_row + 2 * <Py_ssize_t>ROW_BLOCK
    ws.target_sum = per_row + 3 * <Py_ssize_t>ROW_BLOCK
    r = r0
    while r < r1:
        nb = min(<Py_ssize_t>ROW_BLOCK, r1 - r)
        if Z_parts == NULL:
            _csr_logits(data, indices, indptr, Wt, b, ws.Z, r, r + nb, K)
        for i in range(nb):
            row = r + i
            z = ws.Z + i * K
            if Z_parts != NULL:
                for k in range(K):
                    z[k] = Z_parts[row * K + k]
                for c in range(1, n_parts):
                    part = Z_parts + c * part_stride + row * K
                    for k in range(K):
                        z[k] = z[k] + part[k]
                if b != NULL:
                    for k in range(K):
                        z[k] = z[k] + b[k]
            _shift_row(z, K)
            # What the loss needs of the shifted logits; y_k = 0 terms are left out, so that a
            # -inf shifted logit of a class with no target mass counts 0, not NaN.
            if labels != NULL:
                ws.target[i] = z[labels[row]]
                ws.target_sum[i] = 1.0
            else:
                ws.target[i] = 0.0
                ws.target_sum[i] = 0.0
                for k in range(K):
                    y_ik = Y[row * K + k]
                    if y_ik > 0:
                        ws.target[i] = ws.target[i] + y_ik * z[k]
                        ws.target_sum[i] = ws.target_sum[i] + y_ik
        sf_vexp_d(ws.Z, nb * K)
        for i in range(nb):
            ws.row_sum[i] = _sum_row(ws.Z + i * K, K)
            # s >= 1 unless a logit was NaN or +inf, or none was finite
            if not ws.row_sum[i] >= 1.0:
                return r + i
        sf_vlog_ge1_d(ws.row_sum, ws.log_sum, nb)
        for i in range(nb):
            row = r + i
            w = sw[row] if sw != NULL else 1.0
            if w != 0.0:
                total = total + w * (ws.log_sum[i] * ws.target_sum[i] - ws.target[i])
            z = ws.Z + i * K
            coef = w * grad_scale / ws.row_sum[i]
            for k in range(K):
                z[k] = z[k] * coef
            if labels != NULL:
                z[labels[row]] = z[labels[row]] - w * grad_scale
            else:
                for k in range(K):
                    z[k] = z[k] - Y[row * K + k] * (w * grad_scale)
            for k in range(K):
                db[k] = db[k] + z[k]
            if acc != NULL:
                _csr_scatter(data, indices, indptr[row], indptr[row + 1], z, acc, K)
            else:
                memcpy(G + row * K, z, K * sizeof(double))
        r = r + nb
    loss_sum[0] = total
    return -1


def loss_and_grad(const floating[::1] data, const csr_index[::1] indices,
                  const csr_index[::1] indptr, Py_ssize_t n_features,
                  const intp_t[::1] row_bounds, const intp_t[::1] labels,
                  const floating[:, ::1] Y, const floating[:, ::1] Wt, const floating[::1] b,
                  const double[::1] sample_weight, double grad_scale,
                  const floating[::1] csc_data, const csr_index[::1] csc_indices,
                  const csr_index[::1] csc_indptr, const intp_t[::1] col_bounds, int n_threads):
    """Fused softmax-regression loss and gradient on CSR X (no regularization).

    ``row_bounds`` (n_chunks + 1,): the chunks' first rows, 0 first and m last.  With ``csc_*``
    and ``col_bounds`` (the CSC arrays of X and the column chunks' first columns) the gradient
    takes the column pass, else per-chunk row accumulators.

    Returns (first_bad_row or -1, sum_i w_i l_i, dWt (n, K) float64, db (K,) float64 or None),
    with dWt = X^T G and db = sum_i g_i where g_i = (softmax(W x_i + b) - y_i) * w_i * grad_scale.
    """
    cdef Py_ssize_t m = indptr.shape[0] - 1, n = n_features, K = Wt.shape[1]
    cdef Py_ssize_t n_chunks = row_bounds.shape[0] - 1
    cdef bint column_pass = csc_indptr is not None
    if m <= 0 or K == 0 or n_chunks < 1:
        raise ValueError("loss_and_grad needs m > 0, K > 0 and at least one row chunk")
    cdef _Workspace work = _Workspace(n_chunks)
    cdef double[:, ::1] Z = work.rows(<Py_ssize_t>ROW_BLOCK * K, np.float64)
    cdef double[:, ::1] per_row = work.rows(4 * <Py_ssize_t>ROW_BLOCK, np.float64)
    cdef double[:, ::1] db_parts = work.rows(K, np.float64, zero=True)
    cdef double[:, ::1] loss_sums = work.rows(1, np.float64, zero=True)
    # One (n, K) accumulator per chunk (row accumulators), or G (m, K) for the column pass; the
    # padding keeps &acc[c, 0] valid when n == 0.
    cdef double[:, ::1] acc = work.rows(0 if column_pass else n * K, np.float64,
                                        zero=not column_pass)
    cdef double[:, ::1] G = _alloc((m if column_pass else 0, K), np.float64)
    cdef intp_t[::1] bad = _alloc(n_chunks, np.intp, -1)
    cdef const floating *p_data = &data[0] if data.shape[0] > 0 else NULL
    cdef const csr_index *p_indices = &indices[0] if indices.shape[0] > 0 else NULL
    cdef const intp_t *p_labels = &labels[0] if labels is not None else NULL
    cdef const floating *p_Y = &Y[0, 0] if Y is not None else NULL
    cdef const floating *p_Wt = &Wt[0, 0] if Wt.shape[0] > 0 else NULL
    cdef const floating *p_b = &b[0] if b is not None else NULL
    cdef const double *p_sw = &sample_weight[0] if sample_weight is not None else NULL
    cdef double *p_G = &G[0, 0] if column_pass else NULL
    cdef Py_ssize_t c
    work.poison_padding(True)
    cdef int team = _team_size(n_threads, n_chunks)
    # (every per-chunk pointer is formed in the call: a variable assigned field by field in a
    # prange body is shared between the threads, not private to each)
    for c in prange(n_chunks, nogil=True, schedule="dynamic", chunksize=1, num_threads=team):
        bad[c] = _loss_grad_rows(
            p_data, p_indices, &indptr[0], NULL, 0, 0, p_labels, p_Y, p_Wt, p_b, p_sw,
            grad_scale, &Z[c, 0], &per_row[c, 0],
            NULL if column_pass else &acc[c, 0], p_G, &db_parts[c, 0], &loss_sums[c, 0],
            row_bounds[c], row_bounds[c + 1], K)
    work.poison_padding(False)
    first_bad = _first_bad(bad)
    dWt = _feature_sums(csc_data, csc_indices, csc_indptr, col_bounds, G, acc, n, K,
                        first_bad >= 0, n_threads)
    db = _ordered_rows_sum(np.asarray(db_parts)[:, :K]) if b is not None else None
    return first_bad, _ordered_sum(loss_sums), dWt, db


cdef void _column_pass(const floating[::1] csc_data, const csr_index[::1] csc_indices,
                       const csr_index[::1] csc_indptr, const intp_t[::1] col_bounds,
                       const double[:, ::1] G, double[:, ::1] out, bint class_major,
                       int n_threads):
    """X^T G for every column, threaded over ``col_bounds``: into ``out`` (n, K) as dWt, or
    (``class_major``) into ``out`` (K, n) as dW."""
    cdef Py_ssize_t K = G.shape[1], n_col_chunks = col_bounds.shape[0] - 1, c
    cdef Py_ssize_t ldf = 1 if class_major else K, ldc = out.shape[1] if class_major else 1
    cdef const floating *p_data = &csc_data[0] if csc_data.shape[0] > 0 else NULL
    cdef const csr_index *p_rows = &csc_indices[0] if csc_indices.shape[0] > 0 else NULL
    cdef const double *p_G = &G[0, 0] if G.shape[0] > 0 else NULL
    cdef int team = _team_size(n_threads, n_col_chunks)
    for c in prange(n_col_chunks, nogil=True, schedule="dynamic", chunksize=1, num_threads=team):
        _csc_grad(p_data, p_rows, &csc_indptr[0], p_G, &out[0, 0], ldf, ldc,
                  col_bounds[c], col_bounds[c + 1], K)


cdef _feature_sums(const floating[::1] csc_data, const csr_index[::1] csc_rows,
                   const csr_index[::1] colptr, const intp_t[::1] col_bounds,
                   const double[:, ::1] D, const double[:, ::1] acc, Py_ssize_t n,
                   Py_ssize_t K, bint skip, int n_threads):
    """The (n, K) float64 result X^T D of a row pass: with the CSC copy (``colptr`` not None)
    the column pass from D (m, K); else the chunks' (n, K) accumulators (``acc``, one row a
    chunk, n * K values used) summed in chunk order.  ``skip``: zeros (a pass that stopped at
    a bad row)."""
    cdef double[:, ::1] out_view
    if colptr is not None:
        out = _alloc((n, K), np.float64, 0 if skip else None)
        out_view = out
        if not skip and n > 0:
            _column_pass(csc_data, csc_rows, colptr, col_bounds, D, out_view, False, n_threads)
        return out
    if acc.shape[0] == 1:
        return np.asarray(acc)[0, :n * K].reshape(n, K)
    return _ordered_rows_sum(np.asarray(acc)[:, :n * K]).reshape(n, K)


def loss_and_grad_columns(const floating[::1] csc_data, const csr_index[::1] csc_indices,
                          const csr_index[::1] csc_indptr, Py_ssize_t n_samples,
                          const intp_t[::1] col_bounds, const intp_t[::1] row_bounds,
                          const intp_t[::1] labels, const floating[:, ::1] Y,
                          const floating[:, ::1] W, const floating[::1] b,
                          const double[::1] sample_weight, double grad_scale, int n_threads,
                          bint class_major=False):
    """The fused loss and gradient from the CSC form of X alone, for X with fewer rows than
    columns (then the logits table, m x K, is the smaller one to scatter into and gather from).

    1. Column chunks (``col_bounds``) each add their columns' x_ij W_j into their own (m, K)
       logits part;  2. row chunks (``row_bounds``) sum the parts in order (+ b), take the
       softmax, loss and G into the first part;  3. column chunks form dW_j = sum_i x_ij G_i.
    ``W`` is Wt (n, K) and the gradient dWt (n, K), or (``class_major``) W (K, n) and dW
    (K, n): the same sums, the class-major layout reading and writing each column's K values
    n apart (slower; it saves a one-off call the two transposed copies).
    Extra memory: n_col_chunks * m * K * 8 bytes.  Returns what ``loss_and_grad`` returns.
    """
    cdef Py_ssize_t m = n_samples, n = csc_indptr.shape[0] - 1
    cdef Py_ssize_t K = W.shape[0] if class_major else W.shape[1]
    cdef Py_ssize_t ldf = 1 if class_major else K, ldc = n if class_major else 1
    cdef Py_ssize_t n_col_chunks = col_bounds.shape[0] - 1, n_chunks = row_bounds.shape[0] - 1
    if m <= 0 or K == 0 or n_chunks < 1 or n_col_chunks < 1:
        raise ValueError("loss_and_grad_columns needs m > 0, K > 0 and non-empty chunk bounds")
    cdef _Workspace work = _Workspace(n_chunks)
    cdef double[:, ::1] Zs = work.rows(<Py_ssize_t>ROW_BLOCK * K, np.float64)
    cdef double[:, ::1] per_row = work.rows(4 * <Py_ssize_t>ROW_BLOCK, np.float64)
    cdef double[:, ::1] db_parts = work.rows(K, np.float64, zero=True)
    cdef double[:, ::1] loss_sums = work.rows(1, np.float64, zero=True)
    cdef double[:, ::1] Z_parts = _alloc((n_col_chunks, m * K), np.float64, 0)
    cdef intp_t[::1] bad = _alloc(n_chunks, np.intp, -1)
    cdef const floating *p_data = &csc_data[0] if csc_data.shape[0] > 0 else NULL
    cdef const csr_index *p_rows = &csc_indices[0] if csc_indices.shape[0] > 0 else NULL
    cdef const intp_t *p_labels = &labels[0] if labels is not None else NULL
    cdef const floating *p_Y = &Y[0, 0] if Y is not None else NULL
    cdef const floating *p_W = &W[0, 0] if n > 0 else NULL
    cdef const floating *p_b = &b[0] if b is not None else NULL
    cdef const double *p_sw = &sample_weight[0] if sample_weight is not None else NULL
    cdef double *p_Z = &Z_parts[0, 0]
    cdef Py_ssize_t c
    cdef int team = _team_size(n_threads, n_col_chunks)
    if n > 0:
        for c in prange(n_col_chunks, nogil=True, schedule="dynamic", chunksize=1,
                        num_threads=team):
            _csc_logits(p_data, p_rows, &csc_indptr[0], p_W, ldf, ldc, p_Z + c * m * K,
                        col_bounds[c], col_bounds[c + 1], K)
    work.poison_padding(True)
    team = _team_size(n_threads, n_chunks)
    for c in prange(n_chunks, nogil=True, schedule="dynamic", chunksize=1, num_threads=team):
        bad[c] = _loss_grad_rows(
            p_data, p_rows, <const csr_index *>NULL, p_Z, n_col_chunks, m * K, p_labels, p_Y,
            NULL, p_b, p_sw, grad_scale, &Zs[c, 0], &per_row[c, 0], NULL, p_Z, &db_parts[c, 0],
            &loss_sums[c, 0], row_bounds[c], row_bounds[c + 1], K)
    work.poison_padding(False)
    first_bad = _first_bad(bad)
    dW = _alloc((K, n) if class_major else (n, K), np.float64, 0 if first_bad >= 0 else None)
    cdef double[:, ::1] dW_view = dW
    cdef double[:, ::1] G = np.asarray(Z_parts)[0].reshape(m, K)  # G went into the first part
    if first_bad < 0 and n > 0:
        _column_pass(csc_data, csc_indices, csc_indptr, col_bounds, G, dW_view, class_major,
                     n_threads)
    db = _ordered_rows_sum(np.asarray(db_parts)[:, :K]) if b is not None else None
    return first_bad, _ordered_sum(loss_sums), dW, db


# ----------------------------------------------------------------------------- Hessian-vector

cdef inline void _hv_row(const floating *p, double *z, double ws, Py_ssize_t K) noexcept nogil:
    """One row of D from its row of R, in place: z_k = ws * p_k * (z_k - sum_j p_j z_j), the
    dot in class order (deterministic); ws = 0 (a row of weight 0) gives exact zeros."""
    cdef double s = 0.0
    cdef Py_ssize_t k
    if ws == 0.0:
        for k in range(K):
            z[k] = 0.0
        return
    for k in range(K):
        s = s + <double>p[k] * z[k]
    for k in range(K):
        z[k] = ws * (<double>p[k] * (z[k] - s))


cdef inline void _emit_row(const floating *data, const csr_index *indices,
                           const csr_index *indptr, Py_ssize_t row, const double *z, double ws,
                           double *acc, double *D, double *dc, Py_ssize_t K) noexcept nogil:
    """A curvature row z (K) of row ``row`` into its sums: dc += z (``dc`` not NULL); then
    ``acc`` (n x K) += data_p z over the row's entries (``acc`` not NULL; skipped for a row of
    weight ``ws`` 0), or z stored in row ``row`` of ``D`` (m x K; ``D`` not NULL)."""
    cdef Py_ssize_t k
    if dc != NULL:
        for k in range(K):
            dc[k] = dc[k] + z[k]
    if acc != NULL:
        if ws != 0.0:
            _csr_scatter(data, indices, indptr[row], indptr[row + 1], z, acc, K)
    elif D != NULL:
        memcpy(D + row * K, z, K * sizeof(double))


cdef void _hess_vec_rows(
    const floating *data, const csr_index *indices, const csr_index *indptr,
    double *Z_parts, Py_ssize_t n_parts, Py_ssize_t part_stride,
    const floating *P, const floating *Vt, const floating *c, const double *sw, double scale,
    double *block, double *acc, double *D, double *dc, Py_ssize_t r0, Py_ssize_t r1,
    Py_ssize_t K,
) noexcept nogil:
    """The rows [r0, r1) of D = w * scale * P * (R - rowsum(P * R)), block by block.

    R comes from the CSR arrays (R_i = c + sum_p x_p Vt[j_p, :], into ``block``), or (``Z_parts``
    not NULL) is the sum, in part order, of ``n_parts`` (m x K) partial products
    ``part_stride`` apart, plus c: then D_i is formed in place in row i of the first part.
    Per row: dc += D_i (``dc`` not NULL); then ``acc`` (n x K) += x_i^T D_i over the row's
    non-zeros (``acc`` not NULL; skipped for a row of D = 0), or D_i stored in row i of ``D``
    (m x K; ``D`` not NULL) for a column pass.
    """
    cdef Py_ssize_t r, nb, i, k, row, q
    cdef double ws
    cdef double *z
    cdef const double *part
    r = r0
    while r < r1:
        nb = min(<Py_ssize_t>ROW_BLOCK, r1 - r)
        if Z_parts == NULL:
            _csr_logits(data, indices, indptr, Vt, c, block, r, r + nb, K)
        for i in range(nb):
            row = r + i
            if Z_parts == NULL:
                z = block + i * K
            else:
                z = Z_parts + row * K
                for q in range(1, n_parts):
                    part = Z_parts + q * part_stride + row * K
                    for k in range(K):
                        z[k] = z[k] + part[k]
                if c != NULL:
                    for k in range(K):
                        z[k] = z[k] + c[k]
            ws = sw[row] * scale if sw != NULL else scale
            _hv_row(P + row * K, z, ws, K)
            _emit_row(data, indices, indptr, row, z, ws, acc, D, dc, K)
        r = r + nb


cdef _check_curvature_shapes(Py_ssize_t m, Py_ssize_t n, Py_ssize_t K,
                             const floating[:, ::1] P, const double[::1] sample_weight,
                             const intp_t[::1] row_bounds, const intp_t[::1] col_bounds):
    """O(1) checks that keep the curvature kernels (``hess_vec``, ``hess_vec_columns``,
    ``hess_diag``) inside their arrays (no O(m) validation here)."""
    if m <= 0 or K == 0:
        raise ValueError("the curvature kernels need m > 0 and K > 0")
    if P.shape[0] != m or P.shape[1] != K:
        raise ValueError(f"P: shape ({P.shape[0]}, {P.shape[1]}), expected ({m}, {K})")
    if sample_weight is not None and sample_weight.shape[0] != m:
        raise ValueError(f"sample_weight: shape ({sample_weight.shape[0]},), expected ({m},)")
    if row_bounds.shape[0] < 2 or row_bounds[0] != 0 or row_bounds[row_bounds.shape[0] - 1] != m:
        raise ValueError(f"row_bounds: expected at least two bounds, 0 first and {m} last")
    if col_bounds is not None and (col_bounds.shape[0] < 2 or col_bounds[0] != 0
                                   or col_bounds[col_bounds.shape[0] - 1] != n):
        raise ValueError(f"col_bounds: expected at least two bounds, 0 first and {n} last")


cdef _check_hess_vec_shapes(Py_ssize_t m, Py_ssize_t n, Py_ssize_t K,
                            const floating[:, ::1] P, const floating[:, ::1] Vt,
                            const floating[::1] c, const double[::1] sample_weight,
                            const intp_t[::1] row_bounds, const intp_t[::1] col_bounds):
    """:func:`_check_curvature_shapes` and the direction's (Vt, c)."""
    _check_curvature_shapes(m, n, K, P, sample_weight, row_bounds, col_bounds)
    if Vt.shape[0] != n or Vt.shape[1] != K:
        raise ValueError(f"Vt: shape ({Vt.shape[0]}, {Vt.shape[1]}), expected ({n}, {K})")
    if c is not None and c.shape[0] != K:
        raise ValueError(f"c: shape ({c.shape[0]},), expected ({K},)")


def hess_vec(const floating[::1] data, const csr_index[::1] indices,
             const csr_index[::1] indptr, Py_ssize_t n_features,
             const intp_t[::1] row_bounds, const floating[:, ::1] P,
             const floating[:, ::1] Vt, const floating[::1] c,
             const double[::1] sample_weight, double scale,
             const floating[::1] csc_data, const csr_index[::1] csc_rows,
             const csr_index[::1] colptr, const intp_t[::1] col_bounds, int n_threads):
    """Hessian-vector product of the data term on CSR X (no regularization), by rows.

    The Hessian of J(W, b) = sum_i w_i CE(softmax(W x_i + b), y_i) * scale at the point of
    probabilities ``P``, applied to the direction (V, c):

        R = X Vt + c,  D_ik = w_i * scale * P_ik * (R_ik - sum_j P_ij R_ij),
        dVt = X^T D,   dc = sum_i D_i.

    Row chunks (``row_bounds``) form R and D block by block in float64.  Without ``csc_*``
    each chunk adds x_i^T D_i into its own (n, K) accumulator, summed in chunk order
    (``loss_and_grad``'s row accumulators); with them D (m, K) is stored and dVt formed column
    by column over the CSC copy, threaded over ``col_bounds`` (the column pass).  Results depend
    only on the inputs and the bounds: bit-identical between repeated calls.

    Parameters
    ----------
    data, indices, indptr : ndarray, shapes (nnz,), (nnz,), (m + 1,)
        The CSR arrays of X (m, n): float32/float64 values, int32/int64 indices.
    n_features : int
        n.
    row_bounds : ndarray of intp, shape (n_chunks + 1,)
        The row chunks' first rows, 0 first and m last.
    P : ndarray, shape (m, K)
        softmax(X Wt + b) at the current point, X's dtype.
    Vt : ndarray, shape (n, K)
        The direction's coefficients V^T (feature-major), X's dtype.
    c : ndarray of shape (K,) or None
        The direction's intercept part, X's dtype; None: no intercept.
    sample_weight : ndarray of float64, shape (m,), or None
        w_i (None: all 1); rows of weight 0 contribute exactly 0.
    scale : float
        The factor of every row (1 / sum_i w_i for the mean).
    csc_data, csc_rows, colptr : ndarray or None, shapes (nnz,), (nnz,), (n + 1,)
        The CSC arrays of the same X (``to_csc``), for the column pass; all None or all given
        with ``col_bounds``.
    col_bounds : ndarray of intp, shape (n_col_chunks + 1,), or None
        The column chunks' first columns, 0 first and n last.
    n_threads : int
        Threads (at most one a chunk).

    Returns
    -------
    dVt : ndarray of float64, shape (n, K)
        X^T D.
    dc : ndarray of float64, shape (K,), or None
        sum_i D_i; None when ``c`` is None.
    """
    cdef Py_ssize_t m = indptr.shape[0] - 1, n = n_features, K = P.shape[1]
    cdef Py_ssize_t n_chunks = row_bounds.shape[0] - 1
    cdef bint column_pass = colptr is not None
    if (column_pass != (csc_data is not None) or column_pass != (csc_rows is not None)
            or column_pass != (col_bounds is not None)):
        raise ValueError("hess_vec: csc_data, csc_rows, colptr and col_bounds: all or none")
    _check_hess_vec_shapes(m, n, K, P, Vt, c, sample_weight, row_bounds, col_bounds)
    if column_pass and colptr.shape[0] != n + 1:
        raise ValueError(f"colptr: length {colptr.shape[0]}, expected {n + 1}")
    cdef _Workspace work = _Workspace(n_chunks)
    cdef double[:, ::1] block = work.rows(<Py_ssize_t>ROW_BLOCK * K, np.float64)
    cdef double[:, ::1] dc_parts = work.rows(K, np.float64, zero=True)
    # One (n, K) accumulator per chunk (row accumulators), or D (m, K) for the column pass; the
    # padding keeps &acc[q, 0] valid when n == 0.
    cdef double[:, ::1] acc = work.rows(0 if column_pass else n * K, np.float64,
                                        zero=not column_pass)
    cdef double[:, ::1] D = _alloc((m if column_pass else 0, K), np.float64)
    cdef const floating *p_data = &data[0] if data.shape[0] > 0 else NULL
    cdef const csr_index *p_indices = &indices[0] if indices.shape[0] > 0 else NULL
    cdef const floating *p_Vt = &Vt[0, 0] if Vt.shape[0] > 0 else NULL
    cdef const floating *p_c = &c[0] if c is not None else NULL
    cdef const double *p_sw = &sample_weight[0] if sample_weight is not None else NULL
    cdef double *p_D = &D[0, 0] if column_pass else NULL
    cdef bint with_c = c is not None
    cdef Py_ssize_t q
    work.poison_padding(True)
    cdef int team = _team_size(n_threads, n_chunks)
    for q in prange(n_chunks, nogil=True, schedule="dynamic", chunksize=1, num_threads=team):
        _hess_vec_rows(
            p_data, p_indices, &indptr[0], NULL, 0, 0, &P[0, 0], p_Vt, p_c, p_sw, scale,
            &block[q, 0], NULL if column_pass else &acc[q, 0], p_D,
            &dc_parts[q, 0] if with_c else NULL, row_bounds[q], row_bounds[q + 1], K)
    work.poison_padding(False)
    dVt = _feature_sums(csc_data, csc_rows, colptr, col_bounds, D, acc, n, K, False, n_threads)
    dc = _ordered_rows_sum(np.asarray(dc_parts)[:, :K]) if with_c else None
    return dVt, dc


def hess_vec_columns(const floating[::1] csc_data, const csr_index[::1] csc_rows,
                     const csr_index[::1] colptr, Py_ssize_t n_rows,
                     const intp_t[::1] col_bounds, const intp_t[::1] row_bounds,
                     const floating[:, ::1] P, const floating[:, ::1] Vt,
                     const floating[::1] c, const double[::1] sample_weight, double scale,
                     int n_threads):
    """The Hessian-vector product of ``hess_vec`` from the CSC form of X alone, for X with
    fewer rows than columns (``loss_and_grad_columns``'s strategy, feature-major).

    1. Column chunks (``col_bounds``) each add their columns' x_ij Vt_j into their own (m, K)
       part of R;  2. row chunks (``row_bounds``) sum the parts in order (+ c) and form D and
       the chunk's part of dc, D into the first part;  3. column chunks form
       dVt_j = sum_i x_ij D_i.  Extra memory: n_col_chunks * m * K * 8 bytes.  Results depend
    only on the inputs and the bounds: bit-identical between repeated calls.

    Parameters
    ----------
    csc_data, csc_rows, colptr : ndarray, shapes (nnz,), (nnz,), (n + 1,)
        The CSC arrays of X (m, n): float32/float64 values, int32/int64 indices.
    n_rows : int
        m.
    col_bounds : ndarray of intp, shape (n_col_chunks + 1,)
        The column chunks' first columns, 0 first and n last.
    row_bounds : ndarray of intp, shape (n_chunks + 1,)
        The row chunks' first rows, 0 first and m last.
    P : ndarray, shape (m, K)
        softmax(X Wt + b) at the current point, X's dtype.
    Vt : ndarray, shape (n, K)
        The direction's coefficients V^T, X's dtype.
    c : ndarray of shape (K,) or None
        The direction's intercept part, X's dtype; None: no intercept.
    sample_weight : ndarray of float64, shape (m,), or None
        w_i (None: all 1); rows of weight 0 contribute exactly 0.
    scale : float
        The factor of every row.
    n_threads : int
        Threads (at most one a chunk).

    Returns
    -------
    dVt : ndarray of float64, shape (n, K)
        X^T D.
    dc : ndarray of float64, shape (K,), or None
        sum_i D_i; None when ``c`` is None.
    """
    cdef Py_ssize_t m = n_rows, n = colptr.shape[0] - 1, K = P.shape[1]
    cdef Py_ssize_t n_col_chunks = col_bounds.shape[0] - 1, n_chunks = row_bounds.shape[0] - 1
    _check_hess_vec_shapes(m, n, K, P, Vt, c, sample_weight, row_bounds, col_bounds)
    cdef _Workspace work = _Workspace(n_chunks)
    cdef double[:, ::1] dc_parts = work.rows(K, np.float64, zero=True)
    cdef double[:, ::1] Z_parts = _alloc((n_col_chunks, m * K), np.float64, 0)
    cdef const floating *p_data = &csc_data[0] if csc_data.shape[0] > 0 else NULL
    cdef const csr_index *p_rows = &csc_rows[0] if csc_rows.shape[0] > 0 else NULL
    cdef const floating *p_Vt = &Vt[0, 0] if n > 0 else NULL
    cdef const floating *p_c = &c[0] if c is not None else NULL
    cdef const double *p_sw = &sample_weight[0] if sample_weight is not None else NULL
    cdef double *p_Z = &Z_parts[0, 0]
    cdef bint with_c = c is not None
    cdef Py_ssize_t q
    cdef int team = _team_size(n_threads, n_col_chunks)
    if n > 0:
        for q in prange(n_col_chunks, nogil=True, schedule="dynamic", chunksize=1,
                        num_threads=team):
            _csc_logits(p_data, p_rows, &colptr[0], p_Vt, K, 1, p_Z + q * m * K,
                        col_bounds[q], col_bounds[q + 1], K)
    work.poison_padding(True)
    team = _team_size(n_threads, n_chunks)
    for q in prange(n_chunks, nogil=True, schedule="dynamic", chunksize=1, num_threads=team):
        _hess_vec_rows(
            p_data, p_rows, <const csr_index *>NULL, p_Z, n_col_chunks, m * K, &P[0, 0], NULL,
            p_c, p_sw, scale, NULL, NULL, NULL, &dc_parts[q, 0] if with_c else NULL,
            row_bounds[q], row_bounds[q + 1], K)
    work.poison_padding(False)
    dVt = _alloc((n, K), np.float64, 0 if n == 0 else None)
    cdef double[:, ::1] dVt_view = dVt
    cdef double[:, ::1] D = np.asarray(Z_parts)[0].reshape(m, K)  # D went into the first part
    if n > 0:
        _column_pass(csc_data, csc_rows, colptr, col_bounds, D, dVt_view, False, n_threads)
    dc = _ordered_rows_sum(np.asarray(dc_parts)[:, :K]) if with_c else None
    return dVt, dc


# ----------------------------------------------------------------------------- diagonal

cdef void _hess_diag_rows(
    const floating *data_sq, const csr_index *indices, const csr_index *indptr,
    const floating *P, const double *sw, double scale, double *z, double *acc, double *D,
    double *dc, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t K,
) noexcept nogil:
    """The rows [r0, r1) of d_i = w_i scale P_i (1 - P_i), into ``z`` (K) one at a time: dc +=
    d_i (``dc`` not NULL); then ``acc`` (n x K) += (x_i * x_i)^T d_i over the row's entries
    (``data_sq``: X's entries squared; ``acc`` not NULL; skipped for a row of weight 0), or
    d_i stored in row i of ``D`` (m x K) for a column pass."""
    cdef Py_ssize_t row, k
    cdef double ws, pk
    for row in range(r0, r1):
        ws = sw[row] * scale if sw != NULL else scale
        for k in range(K):
            pk = <double>P[row * K + k]
            z[k] = ws * (pk * (1.0 - pk)) if ws != 0.0 else 0.0
        _emit_row(data_sq, indices, indptr, row, z, ws, acc, D, dc, K)


def hess_diag(const floating[::1] data_sq, const csr_index[::1] indices,
              const csr_index[::1] indptr, Py_ssize_t n_features,
              const intp_t[::1] row_bounds, const floating[:, ::1] P,
              const double[::1] sample_weight, double scale, bint with_intercept,
              const floating[::1] csc_data_sq, const csr_index[::1] csc_rows,
              const csr_index[::1] colptr, const intp_t[::1] col_bounds, int n_threads):
    """The diagonal of ``hess_vec``'s Hessian (the data term's; no regularization), by rows.

    With d_ik = w_i * scale * P_ik (1 - P_ik), the diagonal of row i's softmax Jacobian:

        diag_W[j, k] = sum_i x_ij^2 d_ik,   diag_b[k] = sum_i d_ik.

    The chunks and the two forms of ``hess_vec``: without ``csc_*`` each row chunk adds its
    rows' (x_i * x_i)^T d_i into its own (n, K) accumulator, summed in chunk order; with them
    d (m, K) is stored and diag_W formed column by column over the CSC copy.  Results depend
    only on the inputs and the bounds: bit-identical between repeated calls.

    Parameters
    ----------
    data_sq, indices, indptr : ndarray, shapes (nnz,), (nnz,), (m + 1,)
        The CSR arrays of X (m, n), the values squared (``data * data``, X's dtype); with the
        column pass the row pass reads no values, and ``data_sq`` may be X's own.
    n_features : int
        n.
    row_bounds : ndarray of intp, shape (n_chunks + 1,)
        The row chunks' first rows, 0 first and m last.
    P : ndarray, shape (m, K)
        softmax(X Wt + b) at the current point, X's dtype.
    sample_weight : ndarray of float64, shape (m,), or None
        w_i (None: all 1); rows of weight 0 contribute exactly 0.
    scale : float
        The factor of every row (1 / sum_i w_i for the mean).
    with_intercept : bool
        Whether to return diag_b.
    csc_data_sq, csc_rows, colptr : ndarray or None, shapes (nnz,), (nnz,), (n + 1,)
        The CSC arrays of the same X (``to_csc``), the values squared, for the column pass;
        all None or all given with ``col_bounds``.
    col_bounds : ndarray of intp, shape (n_col_chunks + 1,), or None
        The column chunks' first columns, 0 first and n last.
    n_threads : int
        Threads (at most one a chunk).

    Returns
    -------
    diag_W : ndarray of float64, shape (n, K)
    diag_b : ndarray of float64, shape (K,), or None
        None unless ``with_intercept``.
    """
    cdef Py_ssize_t m = indptr.shape[0] - 1, n = n_features, K = P.shape[1]
    cdef Py_ssize_t n_chunks = row_bounds.shape[0] - 1
    cdef bint column_pass = colptr is not None
    if (column_pass != (csc_data_sq is not None) or column_pass != (csc_rows is not None)
            or column_pass != (col_bounds is not None)):
        raise ValueError("hess_diag: csc_data_sq, csc_rows, colptr and col_bounds: all or none")
    if data_sq.shape[0] != indices.shape[0]:
        raise ValueError(f"data_sq: length {data_sq.shape[0]}, expected {indices.shape[0]}")
    _check_curvature_shapes(m, n, K, P, sample_weight, row_bounds, col_bounds)
    if column_pass:
        if colptr.shape[0] != n + 1:
            raise ValueError(f"colptr: length {colptr.shape[0]}, expected {n + 1}")
        if csc_data_sq.shape[0] != data_sq.shape[0] or csc_rows.shape[0] != data_sq.shape[0]:
            raise ValueError("csc_data_sq, csc_rows: expected the length of data_sq")
    cdef _Workspace work = _Workspace(n_chunks)
    cdef double[:, ::1] z = work.rows(K, np.float64)
    cdef double[:, ::1] dc_parts = work.rows(K, np.float64, zero=True)
    cdef double[:, ::1] acc = work.rows(0 if column_pass else n * K, np.float64,
                                        zero=not column_pass)
    cdef double[:, ::1] D = _alloc((m if column_pass else 0, K), np.float64)
    cdef const floating *p_data = &data_sq[0] if data_sq.shape[0] > 0 else NULL
    cdef const csr_index *p_indices = &indices[0] if indices.shape[0] > 0 else NULL
    cdef const double *p_sw = &sample_weight[0] if sample_weight is not None else NULL
    cdef double *p_D = &D[0, 0] if column_pass else NULL
    cdef Py_ssize_t q
    work.poison_padding(True)
    cdef int team = _team_size(n_threads, n_chunks)
    for q in prange(n_chunks, nogil=True, schedule="dynamic", chunksize=1, num_threads=team):
        _hess_diag_rows(
            p_data, p_indices, &indptr[0], &P[0, 0], p_sw, scale, &z[q, 0],
            NULL if column_pass else &acc[q, 0], p_D,
            &dc_parts[q, 0] if with_intercept else NULL, row_bounds[q], row_bounds[q + 1], K)
    work.poison_padding(False)
    diag_W = _feature_sums(csc_data_sq, csc_rows, colptr, col_bounds, D, acc, n, K, False,
                           n_threads)
    diag_b = _ordered_rows_sum(np.asarray(dc_parts)[:, :K]) if with_intercept else None
    return diag_W, diag_b


# ----------------------------------------------------------------------------- prediction

cdef Py_ssize_t _predict_rows(const floating *data, const csr_index *indices,
                              const csr_index *indptr, const floating *Wt, const floating *b,
                              floating *proba, intp_t *labels_out, double *Z, double *row_sum,
                              Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t K) noexcept nogil:
    """Rows [r0, r1): softmax(x_i W^T + b) into ``proba`` (if not NULL), else the argmax (ties:
    lowest index) into ``labels_out``.  Returns -1 or the first row with invalid logits."""
    cdef Py_ssize_t r, nb, i, k, best
    cdef double inv, mx
    cdef bint invalid
    cdef double *z
    r = r0
    while r < r1:
        nb = min(<Py_ssize_t>ROW_BLOCK, r1 - r)
        _csr_logits(data, indices, indptr, Wt, b, Z, r, r + nb, K)
        for i in range(nb):
            z = Z + i * K
            if proba != NULL:
                _shift_row(z, K)
            else:
                # Valid rows: no NaN, no +inf and a finite logit -- the same rule as the
                # softmax kernels (``not z < inf`` holds for NaN and +inf).
                invalid = False
                best = 0
                mx = z[0]
                for k in range(K):
                    if not z[k] < INFINITY:
                        invalid = True
                    if z[k] > mx:
                        mx = z[k]
                        best = k
                if invalid or mx == -INFINITY:
                    return r + i
                labels_out[r + i] = best
        if proba != NULL:
            sf_vexp_d(Z, nb * K)
            for i in range(nb):
                row_sum[i] = _sum_row(Z + i * K, K)
                if not row_sum[i] >= 1.0:
                    return r + i
                inv = 1.0 / row_sum[i]
                for k in range(K):
                    proba[(r + i) * K + k] = <floating>(Z[i * K + k] * inv)
        r = r + nb
    return -1


def predict(const floating[::1] data, const csr_index[::1] indices, const csr_index[::1] indptr,
            const intp_t[::1] row_bounds, const floating[:, ::1] Wt, const floating[::1] b,
            floating[:, ::1] proba, intp_t[::1] labels, int n_threads):
    """softmax(X W^T + b) into ``proba`` or argmax_k (X W^T + b) into ``labels`` (one of them),
    X in CSR, ``Wt`` = W^T (n, K).  Returns -1 or the first row with invalid logits."""
    cdef Py_ssize_t m = indptr.shape[0] - 1, K = Wt.shape[1]
    cdef Py_ssize_t n_chunks = row_bounds.shape[0] - 1
    if m <= 0 or K == 0 or n_chunks < 1:
        return -1
    cdef _Workspace work = _Workspace(n_chunks)
    cdef double[:, ::1] Z = work.rows(<Py_ssize_t>ROW_BLOCK * K, np.float64)
    cdef double[:, ::1] row_sum = work.rows(<Py_ssize_t>ROW_BLOCK, np.float64)
    cdef intp_t[::1] bad = _alloc(n_chunks, np.intp, -1)
    cdef const floating *p_data = &data[0] if data.shape[0] > 0 else NULL
    cdef const csr_index *p_indices = &indices[0] if indices.shape[0] > 0 else NULL
    cdef const floating *p_Wt = &Wt[0, 0] if Wt.shape[0] > 0 else NULL
    cdef const floating *p_b = &b[0] if b is not None else NULL
    cdef floating *p_proba = &proba[0, 0] if proba is not None else NULL
    cdef intp_t *p_labels = &labels[0] if labels is not None else NULL
    cdef Py_ssize_t c
    work.poison_padding(True)
    cdef int team = _team_size(n_threads, n_chunks)
    for c in prange(n_chunks, nogil=True, schedule="dynamic", chunksize=1, num_threads=team):
        bad[c] = _predict_rows(p_data, p_indices, &indptr[0], p_Wt, p_b, p_proba, p_labels,
                               &Z[c, 0], &row_sum[c, 0], row_bounds[c], row_bounds[c + 1], K)
    work.poison_padding(False)
    return _first_bad(bad)


# ----------------------------------------------------------------------------- CSR -> CSC

cdef void _count_columns(const csr_index *indices, Py_ssize_t p0, Py_ssize_t p1,
                         csr_index *counts) noexcept nogil:
    cdef Py_ssize_t p
    for p in range(p0, p1):
        counts[indices[p]] += 1


cdef void _scatter_columns(const floating *data, const csr_index *indices,
                           const csr_index *indptr, Py_ssize_t r0, Py_ssize_t r1,
                           csr_index *next_slot, floating *csc_data,
                           csr_index *csc_rows) noexcept nogil:
    cdef Py_ssize_t r, p, slot
    for r in range(r0, r1):
        for p in range(indptr[r], indptr[r + 1]):
            slot = next_slot[indices[p]]
            next_slot[indices[p]] += 1
            csc_rows[slot] = <csr_index>r
            csc_data[slot] = data[p]


def to_csc(const floating[::1] data, const csr_index[::1] indices, const csr_index[::1] indptr,
           Py_ssize_t n_features, const intp_t[::1] row_bounds, int n_threads):
    """The CSC arrays (data, row indices, column pointers) of a CSR matrix, a counting sort
    threaded over the row chunks of ``row_bounds``: each chunk counts its entries per column,
    the counts' prefix sums give every chunk its slots in each column, and each chunk writes its
    entries there in row order.  Within a column the entries come in row order (chunks in order,
    rows in order), whatever the chunks: the result is the same for every thread count, and
    is scipy's ``tocsc()``.  Extra memory: n_chunks * (n + 1) indices."""
    cdef Py_ssize_t m = indptr.shape[0] - 1, n = n_features, nnz = indices.shape[0]
    cdef Py_ssize_t n_chunks = row_bounds.shape[0] - 1, c, j
    index_dtype = np.asarray(indices).dtype
    value_dtype = np.float64 if floating is double else np.float32
    csc_data = _alloc(nnz, value_dtype)
    csc_rows = _alloc(nnz, index_dtype)
    colptr = _alloc(n + 1, index_dtype, 0)
    cdef csr_index[:, ::1] slots = _alloc((n_chunks, n + 1), index_dtype, 0)
    cdef csr_index[::1] colptr_v = colptr
    cdef floating[::1] csc_data_v = csc_data
    cdef csr_index[::1] csc_rows_v = csc_rows
    cdef const floating *p_data = &data[0] if nnz > 0 else NULL
    cdef const csr_index *p_indices = &indices[0] if nnz > 0 else NULL
    cdef floating *p_out = &csc_data_v[0] if nnz > 0 else NULL
    cdef csr_index *p_rows = &csc_rows_v[0] if nnz > 0 else NULL
    cdef int team = _team_size(n_threads, n_chunks)
    cdef Py_ssize_t running = 0, count
    if nnz == 0 or m == 0:
        return csc_data, csc_rows, colptr
    for c in prange(n_chunks, nogil=True, schedule="static", num_threads=team):
        _count_columns(p_indices, indptr[row_bounds[c]], indptr[row_bounds[c + 1]],
                       &slots[c, 0])
    with nogil:
        # prefix sums: chunk c's first slot in column j follows every entry of columns < j and
        # those of column j in chunks before c
        for j in range(n):
            colptr_v[j] = <csr_index>running
            for c in range(n_chunks):
                count = slots[c, j]
                slots[c, j] = <csr_index>running
                running = running + count
        colptr_v[n] = <csr_index>running
    for c in prange(n_chunks, nogil=True, schedule="static", num_threads=team):
        _scatter_columns(p_data, p_indices, &indptr[0], row_bounds[c], row_bounds[c + 1],
                         &slots[c, 0], p_out, p_rows)
    return csc_data, csc_rows, colptr

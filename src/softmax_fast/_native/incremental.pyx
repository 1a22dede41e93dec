"""Incremental (per-row) solver kernels: one serial SAGA epoch over the rows of a dense or a CSR X
(``saga_epoch_dense``, ``saga_epoch_csr``).  No validation here: softmax_fast._saga checks and
calls these.

The objective is J = sum_i w_i CE_i / S + alpha/2 ||W||^2 with S = sum_i w_i.  Rows of weight 0
are left out altogether (they add nothing to J), so with m+ the number of rows of positive weight
J = (1/m+) sum_i f_i, f_i = (m+ w_i / S) CE_i + alpha/2 ||W||^2, and the data part of f_i has the
gradient (m+ / S) g_i (x) [x_i, 1], g_i = w_i (p_i - y_i) (K values: the gradient of a linear
model is an outer product, so the memory holds g_i, not a K x n matrix per row).

State (all float64, updated in place)
-------------------------------------
* W: the free classes' coefficients in the design's layout, the reference class not included:
  (K_free, n) row-major for dense X, feature-major (n, K_free) for CSR X (views of theta); b
  (K_free,) or None.  With a reference class its logit is fixed at 0 and nothing of it is stored.
* memory (m, K_free): g_i of the row's last visit (0 before the first); sum_W (W's layout) and
  sum_b (K_free,): the running sums sum_i g_i (x) x_i and sum_i g_i.
* seen (m,) uint8 and n_seen: rows visited so far.  While n_seen < m+ (the first epoch) the
  average gradient is the sum over the rows seen divided by n_seen, as SAG does; a caller that
  sets every row as seen (n_seen = m+) starts from a zero memory instead.

The step on row i (step size gamma; rf = m+ / S; d = g_i - memory_i):

    u_W = rf * (d (x) x_i + sum_W / n_seen),  u_b = rf * (d + sum_b / n_seen)
    W <- (W - gamma u_W) / (1 + gamma alpha)       (the L2 penalty's exact proximal step)
    b <- b - gamma u_b
    sum_W += d (x) x_i,  sum_b += d,  memory_i = g_i

(the sums in u are those before the row's update: SAGA's unbiased estimate).  The step is
gamma = 1 / (a (L + alpha) + min(c, L + alpha)) (a = 2, c = 2 m+ alpha: scikit-learn's SAGA
step; a = 3, c = 0: 1 / (3 L)) from a curvature L of the data part of the f_i, either fixed
(the bound from the largest row norm) or adapted row by row by SAG's line search
(:func:`_row_step`), never above that bound.

Dense X applies the step to all of W (O(n K) a row).  CSR X applies it just in time, so that a
row costs O(nnz_i K): W = scale * V, the penalty's factor 1 / (1 + gamma alpha) goes into
``scale``; a feature j missing from row i only receives -gamma sum_W[j] rf / n_seen, constant in
sum_W[j] until a row that has j updates it, so those terms are summed into one running scalar
``cum`` (their coefficients over scale) and feature j's lag is ``cum - cum_at[j]``, caught up
when a row that has j comes (and for all features at the end of the epoch, or when ``scale``
falls below RESCALE_BELOW, where V is multiplied by scale and scale reset to 1, so that it never
underflows).  Repeated column indices in a row add up, as in the other kernels.

Float32 X is read in float32; everything else is float64.  Each function returns the first row
whose logits are not finite (the iterates diverged), or -1.
"""

import numpy as np

cimport numpy as cnp
from cython cimport floating
from libc.math cimport INFINITY, log

from ._common cimport csr_index, intp_t, sf_exp_d


# CSR: the factor ``scale`` of W = scale * V is folded into V below this.
cdef double RESCALE_BELOW = 1e-9
# Adaptive step: the row's test runs where ||g_i||^2 is above this (below, rounding decides it).
cdef double TEST_ABOVE = 1e-8


cdef struct StepControl:
    # step = 1 / (a (L + alpha) + min(c, L + alpha)), L the curvature estimate of the data part
    double curvature
    double curvature_max
    double curvature_min
    double decay             # L *= decay before each row (1: a fixed step)
    double a
    double c
    double alpha
    double rf                # m+ / S
    const double *row_norms  # ||x_i||^2 + fit_intercept per row; NULL: no test (fixed step)


cdef inline double _trial_loss(const double *z, const double *g, double tau, Py_ssize_t K,
                               bint has_reference, intp_t col) noexcept nogil:
    """Cross-entropy of the logits z - tau g (the reference logit stays 0)."""
    cdef double mx = 0.0 if has_reference else -INFINITY
    cdef double s, v
    cdef Py_ssize_t k
    for k in range(K):
        v = z[k] - tau * g[k]
        mx = v if v > mx else mx
    s = sf_exp_d(-mx) if has_reference else 0.0
    for k in range(K):
        s = s + sf_exp_d((z[k] - tau * g[k]) - mx)
    return (mx + log(s)) - ((z[col] - tau * g[col]) if col >= 0 else 0.0)


cdef inline double _row_step(StepControl *ctl, const double *z, double *g, Py_ssize_t K,
                             bint has_reference, intp_t col, double w, Py_ssize_t i) noexcept nogil:
    """g = w (softmax(z) - e_col) from the K free logits z (with a reference class, the softmax
    also has its logit 0; col -1: the label is the reference), the row max subtracted; then the
    step for this row.  Returns the step, or -1 when the logits are not finite (NaN or +inf).

    Adaptive (``row_norms``): L decays by ``decay``, then doubles (up to ``curvature_max``)
    until the row's data term f_i = rf w CE decreases enough along its gradient:
    f_i(theta - grad f_i / L) <= f_i(theta) - ||grad f_i||^2 / (2 L), in the logits
    z - tau g with tau = rf ||x_i||^2 / L (Schmidt, Le Roux & Bach's line search for SAG).
    """
    cdef double mx = 0.0 if has_reference else -INFINITY
    cdef double s, inv, lse, loss, gsq, tau, L
    cdef Py_ssize_t k
    for k in range(K):
        mx = z[k] if z[k] > mx else mx
    s = sf_exp_d(-mx) if has_reference else 0.0
    for k in range(K):
        g[k] = sf_exp_d(z[k] - mx)
        s = s + g[k]
    if not s >= 1.0:  # the largest term is exp(0) = 1; NaN otherwise
        return -1.0
    inv = w / s
    for k in range(K):
        g[k] = g[k] * inv
    if col >= 0:
        g[col] = g[col] - w
    L = ctl.curvature
    if ctl.row_norms != NULL:
        L = L * ctl.decay
        if L < ctl.curvature_min:
            L = ctl.curvature_min
        gsq = 0.0
        for k in range(K):
            gsq = gsq + g[k] * g[k]
        if gsq > TEST_ABOVE and L < ctl.curvature_max:
            lse = mx + log(s)
            loss = w * (lse - (z[col] if col >= 0 else 0.0))
            while L < ctl.curvature_max:
                tau = ctl.rf * ctl.row_norms[i] / L
                if w * _trial_loss(z, g, tau, K, has_reference, col) <= loss - 0.5 * tau * gsq:
                    break
                L = 2.0 * L
            if L > ctl.curvature_max:
                L = ctl.curvature_max
        ctl.curvature = L
    L = L + ctl.alpha
    return 1.0 / (ctl.a * L + (ctl.c if ctl.c < L else L))


cdef inline void _init_control(StepControl *ctl, const double[::1] row_norms, double curvature,
                               double curvature_max, double curvature_min, double decay,
                               double step_a, double step_c, double alpha,
                               double rf) noexcept:
    ctl.curvature = curvature
    ctl.curvature_max = curvature_max
    ctl.curvature_min = curvature_min
    ctl.decay = decay
    ctl.a = step_a
    ctl.c = step_c
    ctl.alpha = alpha
    ctl.rf = rf
    ctl.row_norms = &row_norms[0] if row_norms is not None else NULL


# ----------------------------------------------------------------------------- dense X

cdef Py_ssize_t _dense_epoch(
    const floating *X, Py_ssize_t n, const intp_t *label_col, const double *sw,
    const intp_t *order, Py_ssize_t n_order, double *W, double *b, double *memory,
    double *sum_W, double *sum_b, unsigned char *seen, Py_ssize_t *n_seen, Py_ssize_t K,
    bint has_reference, StepControl *ctl, double *z, double *g,
) noexcept nogil:
    cdef double rf = ctl.rf
    cdef double w, acc, d, cd, ca, avg, xj, step, shrink
    cdef double *Wk
    cdef double *Ak
    cdef double *mem
    cdef const floating *x
    cdef Py_ssize_t t, i, k, j
    for t in range(n_order):
        i = order[t]
        w = sw[i] if sw != NULL else 1.0
        if not w > 0.0:
            continue
        if not seen[i]:
            seen[i] = 1
            n_seen[0] = n_seen[0] + 1
        x = X + i * n
        for k in range(K):
            Wk = W + k * n
            acc = b[k] if b != NULL else 0.0
            for j in range(n):
                acc = acc + Wk[j] * <double>x[j]
            z[k] = acc
        step = _row_step(ctl, z, g, K, has_reference, label_col[i], w, i)
        if step < 0.0:
            return i
        shrink = 1.0 / (1.0 + step * ctl.alpha)
        avg = rf / <double>n_seen[0]
        ca = step * avg
        mem = memory + i * K
        for k in range(K):
            d = g[k] - mem[k]
            mem[k] = g[k]
            cd = step * rf * d
            Wk = W + k * n
            Ak = sum_W + k * n
            for j in range(n):
                xj = <double>x[j]
                Wk[j] = shrink * (Wk[j] - (cd * xj + ca * Ak[j]))
                Ak[j] = Ak[j] + d * xj
            if b != NULL:
                b[k] = b[k] - (cd + ca * sum_b[k])
            sum_b[k] = sum_b[k] + d
    return -1


def saga_epoch_dense(const floating[:, ::1] X, const intp_t[::1] label_col,
                     const double[::1] sample_weight, const intp_t[::1] order, double[:, ::1] W,
                     double[::1] b, double[:, ::1] memory, double[:, ::1] sum_W,
                     double[::1] sum_b, unsigned char[::1] seen, Py_ssize_t n_seen,
                     bint has_reference, const double[::1] row_norms, double curvature,
                     double curvature_max, double curvature_min, double decay, double step_a,
                     double step_c, double alpha, double row_factor):
    """One SAGA pass over the rows ``order`` of dense X (m, n), in place on W (K_free, n), b,
    memory (m, K_free), sum_W (K_free, n), sum_b (K_free,) and seen (m,).

    ``label_col``: each row's label as a column of W (-1: the reference class);
    ``sample_weight`` None: unit weights; ``row_factor``: m+ / S.  The step of a row is
    ``1 / (step_a (L + alpha) + min(step_c, L + alpha))`` with L = ``curvature``, fixed when
    ``row_norms`` is None, else adapted per row (``decay``, the test, within
    [curvature_min, curvature_max]).
    Returns (first bad row or -1, n_seen, the final curvature).
    """
    cdef Py_ssize_t m = X.shape[0], n = X.shape[1], K = W.shape[0]
    if (W.shape[1] != n or memory.shape[0] != m or memory.shape[1] != K
            or sum_W.shape[0] != K or sum_W.shape[1] != n or sum_b.shape[0] != K
            or label_col.shape[0] != m or seen.shape[0] != m
            or (b is not None and b.shape[0] != K)
            or (row_norms is not None and row_norms.shape[0] != m)
            or (sample_weight is not None and sample_weight.shape[0] != m)):
        raise ValueError("saga_epoch_dense: inconsistent shapes")
    cdef Py_ssize_t n_order = order.shape[0]
    if m == 0 or K == 0 or n_order == 0:
        return -1, n_seen, curvature
    cdef StepControl ctl
    _init_control(&ctl, row_norms, curvature, curvature_max, curvature_min, decay, step_a,
                  step_c, alpha, row_factor)
    cdef double[::1] z = np.zeros(K, dtype=np.float64)
    cdef double[::1] g = np.zeros(K, dtype=np.float64)
    # (an empty dimension still has a buffer: these addresses are never NULL)
    cdef const floating *p_X = &X[0, 0]
    cdef double *p_W = &W[0, 0]
    cdef double *p_sum_W = &sum_W[0, 0]
    cdef double *p_b = &b[0] if b is not None else NULL
    cdef const double *p_sw = &sample_weight[0] if sample_weight is not None else NULL
    cdef Py_ssize_t bad
    with nogil:
        bad = _dense_epoch(p_X, n, &label_col[0], p_sw, &order[0], n_order, p_W, p_b,
                           &memory[0, 0], p_sum_W, &sum_b[0], &seen[0], &n_seen, K,
                           has_reference, &ctl, &z[0], &g[0])
    return bad, n_seen, ctl.curvature


# ----------------------------------------------------------------------------- CSR X

cdef inline void _catch_up_all(double *V, const double *sum_W, double *cum_at, double cum,
                               double scale, Py_ssize_t n, Py_ssize_t K) noexcept nogil:
    """W = scale * (V with every feature's lag applied), into V; cum_at reset to 0."""
    cdef Py_ssize_t j, k
    cdef double lag
    for j in range(n):
        lag = cum - cum_at[j]
        for k in range(K):
            V[j * K + k] = scale * (V[j * K + k] - lag * sum_W[j * K + k])
        cum_at[j] = 0.0


cdef extern from "_sfsaga.h" nogil:
    # SAGA's per-row CSR loops (see the header), per value type (d, f) and index type.
    void sf_saga_gather_d_i32(const double *data, const cnp.int32_t *indices, Py_ssize_t p0,
                              Py_ssize_t p1, double *V, const double *A, double *cum_at,
                              double cum, double *z, Py_ssize_t K)
    void sf_saga_gather_d_i64(const double *data, const cnp.int64_t *indices, Py_ssize_t p0,
                              Py_ssize_t p1, double *V, const double *A, double *cum_at,
                              double cum, double *z, Py_ssize_t K)
    void sf_saga_gather_f_i32(const float *data, const cnp.int32_t *indices, Py_ssize_t p0,
                              Py_ssize_t p1, double *V, const double *A, double *cum_at,
                              double cum, double *z, Py_ssize_t K)
    void sf_saga_gather_f_i64(const float *data, const cnp.int64_t *indices, Py_ssize_t p0,
                              Py_ssize_t p1, double *V, const double *A, double *cum_at,
                              double cum, double *z, Py_ssize_t K)
    void sf_saga_scatter_d_i32(const double *data, const cnp.int32_t *indices, Py_ssize_t p0,
                               Py_ssize_t p1, double *V, double *A, double *cum_at,
                               double cum_next, double ca, const double *cdg,
                               const double *dg, Py_ssize_t K)
    void sf_saga_scatter_d_i64(const double *data, const cnp.int64_t *indices, Py_ssize_t p0,
                               Py_ssize_t p1, double *V, double *A, double *cum_at,
                               double cum_next, double ca, const double *cdg,
                               const double *dg, Py_ssize_t K)
    void sf_saga_scatter_f_i32(const float *data, const cnp.int32_t *indices, Py_ssize_t p0,
                               Py_ssize_t p1, double *V, double *A, double *cum_at,
                               double cum_next, double ca, const double *cdg,
                               const double *dg, Py_ssize_t K)
    void sf_saga_scatter_f_i64(const float *data, const cnp.int64_t *indices, Py_ssize_t p0,
                               Py_ssize_t p1, double *V, double *A, double *cum_at,
                               double cum_next, double ca, const double *cdg,
                               const double *dg, Py_ssize_t K)
    void sf_saga_prefetch_i32(const cnp.int32_t *indices, Py_ssize_t p0, Py_ssize_t p1,
                              const double *V, const double *A, const double *cum_at,
                              Py_ssize_t K)
    void sf_saga_prefetch_i64(const cnp.int64_t *indices, Py_ssize_t p0, Py_ssize_t p1,
                              const double *V, const double *A, const double *cum_at,
                              Py_ssize_t K)


cdef inline void _gather(const floating *data, const csr_index *indices, Py_ssize_t p0,
                         Py_ssize_t p1, double *V, const double *A, double *cum_at, double cum,
                         double *z, Py_ssize_t K) noexcept nogil:
    if floating is double:
        if csr_index is cnp.int32_t:
            sf_saga_gather_d_i32(data, indices, p0, p1, V, A, cum_at, cum, z, K)
        else:
            sf_saga_gather_d_i64(data, indices, p0, p1, V, A, cum_at, cum, z, K)
    else:
        if csr_index is cnp.int32_t:
            sf_saga_gather_f_i32(data, indices, p0, p1, V, A, cum_at, cum, z, K)
        else:
            sf_saga_gather_f_i64(data, indices, p0, p1, V, A, cum_at, cum, z, K)


cdef inline void _scatter(const floating *data, const csr_index *indices, Py_ssize_t p0,
                          Py_ssize_t p1, double *V, double *A, double *cum_at, double cum_next,
                          double ca, const double *cdg, const double *dg,
                          Py_ssize_t K) noexcept nogil:
    if floating is double:
        if csr_index is cnp.int32_t:
            sf_saga_scatter_d_i32(data, indices, p0, p1, V, A, cum_at, cum_next, ca, cdg, dg, K)
        else:
            sf_saga_scatter_d_i64(data, indices, p0, p1, V, A, cum_at, cum_next, ca, cdg, dg, K)
    else:
        if csr_index is cnp.int32_t:
            sf_saga_scatter_f_i32(data, indices, p0, p1, V, A, cum_at, cum_next, ca, cdg, dg, K)
        else:
            sf_saga_scatter_f_i64(data, indices, p0, p1, V, A, cum_at, cum_next, ca, cdg, dg, K)


cdef inline void _prefetch_row(const csr_index *indices, const csr_index *indptr, Py_ssize_t i,
                               const double *V, const double *A, const double *cum_at,
                               Py_ssize_t K) noexcept nogil:
    """The tables' rows of row i's first entries (the row's index array is read here)."""
    if csr_index is cnp.int32_t:
        sf_saga_prefetch_i32(indices, <Py_ssize_t>indptr[i], <Py_ssize_t>indptr[i + 1], V, A,
                             cum_at, K)
    else:
        sf_saga_prefetch_i64(indices, <Py_ssize_t>indptr[i], <Py_ssize_t>indptr[i + 1], V, A,
                             cum_at, K)


cdef Py_ssize_t _csr_epoch(
    const floating *data, const csr_index *indices, const csr_index *indptr, Py_ssize_t n,
    const intp_t *label_col, const double *sw, const intp_t *order, Py_ssize_t n_order,
    double *V, double *b, double *memory, double *sum_W, double *sum_b, unsigned char *seen,
    Py_ssize_t *n_seen, Py_ssize_t K, bint has_reference, StepControl *ctl, double *z,
    double *g, double *dg, double *cdg, double *cum_at,
) noexcept nogil:
    """V holds W (n, K) on entry and on return; cum_at (n,) zeros on entry."""
    cdef double rf = ctl.rf
    cdef double scale = 1.0, cum = 0.0, cum_next
    cdef double w, cd, ca, avg, step
    cdef double *mem
    cdef Py_ssize_t t, i, k, p0, p1
    cdef Py_ssize_t bad = -1
    for t in range(n_order):
        i = order[t]
        w = sw[i] if sw != NULL else 1.0
        if not w > 0.0:
            continue
        if not seen[i]:
            seen[i] = 1
            n_seen[0] = n_seen[0] + 1
        p0 = <Py_ssize_t>indptr[i]
        p1 = <Py_ssize_t>indptr[i + 1]
        # the row's features: their pending average-gradient terms, then the logits
        _gather(data, indices, p0, p1, V, sum_W, cum_at, cum, z, K)
        for k in range(K):
            z[k] = scale * z[k] + (b[k] if b != NULL else 0.0)
        step = _row_step(ctl, z, g, K, has_reference, label_col[i], w, i)
        if step < 0.0:
            bad = i
            break
        if t + 1 < n_order:  # the next row's first features, while this one finishes
            _prefetch_row(indices, indptr, order[t + 1], V, sum_W, cum_at, K)
        avg = rf / <double>n_seen[0]
        mem = memory + i * K
        # V units: W = scale * V, so a change gamma * u of W is gamma * u / scale of V
        ca = step * avg / scale
        cd = step * rf / scale
        for k in range(K):
            dg[k] = g[k] - mem[k]
            mem[k] = g[k]
            cdg[k] = cd * dg[k]
        cum_next = cum + ca
        # this step's average-gradient term for the row's features, the correction term and
        # the running sums
        _scatter(data, indices, p0, p1, V, sum_W, cum_at, cum_next, ca, cdg, dg, K)
        for k in range(K):
            if b != NULL:
                b[k] = b[k] - step * (rf * dg[k] + avg * sum_b[k])
            sum_b[k] = sum_b[k] + dg[k]
        cum = cum_next
        scale = scale / (1.0 + step * ctl.alpha)
        if scale < RESCALE_BELOW:
            _catch_up_all(V, sum_W, cum_at, cum, scale, n, K)
            scale = 1.0
            cum = 0.0
    _catch_up_all(V, sum_W, cum_at, cum, scale, n, K)
    return bad


def saga_epoch_csr(const floating[::1] data, const csr_index[::1] indices,
                   const csr_index[::1] indptr, const intp_t[::1] label_col,
                   const double[::1] sample_weight, const intp_t[::1] order, double[:, ::1] Wt,
                   double[::1] b, double[:, ::1] memory, double[:, ::1] sum_Wt,
                   double[::1] sum_b, unsigned char[::1] seen, Py_ssize_t n_seen,
                   bint has_reference, const double[::1] row_norms, double curvature,
                   double curvature_max, double curvature_min, double decay, double step_a,
                   double step_c, double alpha, double row_factor):
    """One SAGA pass over the rows ``order`` of CSR X (m rows), with just-in-time updates, in
    place on Wt (n, K_free) (feature-major), b, memory (m, K_free), sum_Wt (n, K_free),
    sum_b (K_free,) and seen (m,).  Arguments as :func:`saga_epoch_dense`.

    Returns (first bad row or -1, n_seen, the final curvature); Wt is the true W^T on return
    either way.
    """
    cdef Py_ssize_t m = indptr.shape[0] - 1, n = Wt.shape[0], K = Wt.shape[1]
    if (m < 0 or memory.shape[0] != m or memory.shape[1] != K or sum_Wt.shape[0] != n
            or sum_Wt.shape[1] != K or sum_b.shape[0] != K or label_col.shape[0] != m
            or seen.shape[0] != m or data.shape[0] != indices.shape[0]
            or (b is not None and b.shape[0] != K)
            or (row_norms is not None and row_norms.shape[0] != m)
            or (sample_weight is not None and sample_weight.shape[0] != m)):
        raise ValueError("saga_epoch_csr: inconsistent shapes")
    cdef Py_ssize_t n_order = order.shape[0]
    if m == 0 or K == 0 or n_order == 0:
        return -1, n_seen, curvature
    cdef StepControl ctl
    _init_control(&ctl, row_norms, curvature, curvature_max, curvature_min, decay, step_a,
                  step_c, alpha, row_factor)
    cdef double[::1] z = np.zeros(K, dtype=np.float64)
    cdef double[::1] g = np.zeros(K, dtype=np.float64)
    cdef double[::1] dg = np.zeros(K, dtype=np.float64)
    cdef double[::1] cdg = np.zeros(K, dtype=np.float64)
    cdef double[::1] cum_at = np.zeros(max(n, 1), dtype=np.float64)
    # (an empty array still has a buffer: these addresses are never NULL)
    cdef const floating *p_data = &data[0]
    cdef const csr_index *p_indices = &indices[0]
    cdef double *p_W = &Wt[0, 0]
    cdef double *p_sum_W = &sum_Wt[0, 0]
    cdef double *p_b = &b[0] if b is not None else NULL
    cdef const double *p_sw = &sample_weight[0] if sample_weight is not None else NULL
    cdef Py_ssize_t bad
    with nogil:
        bad = _csr_epoch(p_data, p_indices, &indptr[0], n, &label_col[0], p_sw, &order[0],
                         n_order, p_W, p_b, &memory[0, 0], p_sum_W, &sum_b[0], &seen[0],
                         &n_seen, K, has_reference, &ctl, &z[0], &g[0], &dg[0], &cdg[0],
                         &cum_at[0])
    return bad, n_seen, ctl.curvature

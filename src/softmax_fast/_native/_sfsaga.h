/*
 * softmax_fast: the per-row loops of SAGA's CSR epoch (softmax_fast._native.incremental), one
 * per (value type, index type), over the stored entries [p0, p1) of one row.
 *
 * V (n x K, feature-major) holds W / scale, A (n x K) the running sum of g_i (x) x_i, cum_at
 * (n) each feature's position in the running sum of the average-gradient coefficients (see
 * incremental.pyx for the update these implement).  A row's features are scattered over
 * tables larger than the cache, and they are known in advance: each loop prefetches the rows
 * of V, A and cum_at SF_SPARSE_PREFETCH entries ahead, so that the misses of successive
 * entries overlap (the epoch is bound by those misses, not by arithmetic).  The K loops run
 * four classes a step (the vector type of _sfsparse.h); the operations, and their order per
 * value, are those of the scalar loops, so sums run in entry order: results depend on the
 * inputs only.
 *
 *   saga_gather   V[j] -= (cum - cum_at[j]) A[j] where that is not 0, cum_at[j] = cum;
 *                 then z = sum_p x_p V[j_p]                 (the row's lagged terms, logits)
 *   saga_scatter  once per feature j of the row: V[j] -= ca A[j], cum_at[j] = cum_next; then
 *                 per entry: V[j] -= (cd dg) x_p, A[j] += dg x_p  (this step's update)
 *   saga_prefetch the first entries' rows of V, A and cum_at (the next row's, ahead of it)
 */
#ifndef SOFTMAX_FAST_SFSAGA_H
#define SOFTMAX_FAST_SFSAGA_H

#include "_sfsparse.h"

/* How many entries ahead the loops prefetch. */
#ifndef SF_SAGA_AHEAD
#define SF_SAGA_AHEAD 16
#endif

static inline void sf_prefetch_row_w(const void *row, Py_ssize_t bytes)
{
    for (Py_ssize_t o = 0; o < bytes; o += 64) SF_PREFETCH((const char *)row + o, 1);
    SF_PREFETCH((const char *)row + bytes - 1, 1);
}

/* The tables' rows of the feature at entry q. */
static inline void sf_saga_prefetch_entry(Py_ssize_t j, const double *V, const double *A,
                                          const double *cum_at, Py_ssize_t K)
{
    sf_prefetch_row_w(V + j * K, K * (Py_ssize_t)sizeof(double));
    sf_prefetch_row_w(A + j * K, K * (Py_ssize_t)sizeof(double));
    SF_PREFETCH(cum_at + j, 1);
}

/* y[0:K] -= c[0:K] * x (c precomputed per row), and a[0:K] += d[0:K] * x. */
#if defined(__GNUC__) || defined(__clang__)
static inline void sf_saga_update(double *restrict y, double *restrict a,
                                  const double *restrict c, const double *restrict d, double x,
                                  Py_ssize_t K)
{
    const sf_v4d xv = {x, x, x, x};
    Py_ssize_t k = 0;
    for (; k + 4 <= K; k += 4) {
        *(sf_v4d *)(y + k) = *(const sf_v4d *)(y + k) - *(const sf_v4d *)(c + k) * xv;
        *(sf_v4d *)(a + k) = *(const sf_v4d *)(a + k) + *(const sf_v4d *)(d + k) * xv;
    }
    for (; k < K; k++) {
        y[k] = y[k] - c[k] * x;
        a[k] = a[k] + d[k] * x;
    }
}
/* y[0:K] -= s * v[0:K] */
static inline void sf_saga_sub(double *restrict y, double s, const double *restrict v,
                               Py_ssize_t K)
{
    const sf_v4d sv = {s, s, s, s};
    Py_ssize_t k = 0;
    for (; k + 4 <= K; k += 4)
        *(sf_v4d *)(y + k) = *(const sf_v4d *)(y + k) - sv * *(const sf_v4d *)(v + k);
    for (; k < K; k++) y[k] = y[k] - s * v[k];
}
#else
static inline void sf_saga_update(double *restrict y, double *restrict a,
                                  const double *restrict c, const double *restrict d, double x,
                                  Py_ssize_t K)
{
    for (Py_ssize_t k = 0; k < K; k++) {
        y[k] = y[k] - c[k] * x;
        a[k] = a[k] + d[k] * x;
    }
}
static inline void sf_saga_sub(double *restrict y, double s, const double *restrict v,
                               Py_ssize_t K)
{
    for (Py_ssize_t k = 0; k < K; k++) y[k] = y[k] - s * v[k];
}
#endif

#define SF_SAGA_LOOPS(SUFFIX, T, I)                                                            \
SF_MULTIVERSION SF_MAYBE_UNUSED static void sf_saga_gather_##SUFFIX(                           \
    const T *restrict data, const I *restrict indices, Py_ssize_t p0, Py_ssize_t p1,          \
    double *restrict V, const double *restrict A, double *restrict cum_at, double cum,       \
    double *restrict z, Py_ssize_t K)                                                          \
{                                                                                              \
    for (Py_ssize_t k = 0; k < K; k++) z[k] = 0.0;                                             \
    for (Py_ssize_t p = p0; p < p1; p++) {                                                     \
        if (p + SF_SAGA_AHEAD < p1)                                                       \
            sf_saga_prefetch_entry((Py_ssize_t)indices[p + SF_SAGA_AHEAD], V, A, cum_at,  \
                                   K);                                                         \
        const Py_ssize_t j = (Py_ssize_t)indices[p];                                           \
        double *restrict Vj = V + j * K;                                                       \
        const double lag = cum - cum_at[j];                                                    \
        if (lag != 0.0) {                                                                      \
            sf_saga_sub(Vj, lag, A + j * K, K);                                                \
            cum_at[j] = cum;                                                                   \
        }                                                                                      \
        sf_axpy_d(z, (double)data[p], Vj, K);                                                  \
    }                                                                                          \
}                                                                                              \
SF_MULTIVERSION SF_MAYBE_UNUSED static void sf_saga_scatter_##SUFFIX(                          \
    const T *restrict data, const I *restrict indices, Py_ssize_t p0, Py_ssize_t p1,          \
    double *restrict V, double *restrict A, double *restrict cum_at, double cum_next,        \
    double ca, const double *restrict cdg, const double *restrict dg, Py_ssize_t K)           \
{                                                                                              \
    for (Py_ssize_t p = p0; p < p1; p++) {                                                     \
        const Py_ssize_t j = (Py_ssize_t)indices[p];                                           \
        double *restrict Vj = V + j * K;                                                       \
        double *restrict Aj = A + j * K;                                                       \
        /* the average-gradient term once per feature (columns may repeat), from the sums     \
           before this row's update: a repeated column's A[j] changes only after it */         \
        if (cum_at[j] != cum_next) {                                                           \
            sf_saga_sub(Vj, ca, Aj, K);                                                        \
            cum_at[j] = cum_next;                                                              \
        }                                                                                      \
        sf_saga_update(Vj, Aj, cdg, dg, (double)data[p], K);                                   \
    }                                                                                          \
}

SF_SAGA_LOOPS(d_i32, double, int32_t)
SF_SAGA_LOOPS(d_i64, double, int64_t)
SF_SAGA_LOOPS(f_i32, float, int32_t)
SF_SAGA_LOOPS(f_i64, float, int64_t)

#undef SF_SAGA_LOOPS

#define SF_SAGA_PREFETCH(SUFFIX, I)                                                            \
SF_MAYBE_UNUSED static void sf_saga_prefetch_##SUFFIX(                                         \
    const I *restrict indices, Py_ssize_t p0, Py_ssize_t p1, const double *V, const double *A, \
    const double *cum_at, Py_ssize_t K)                                                        \
{                                                                                              \
    for (Py_ssize_t p = p0; p < p1 && p < p0 + SF_SAGA_AHEAD; p++)                        \
        sf_saga_prefetch_entry((Py_ssize_t)indices[p], V, A, cum_at, K);                       \
}

SF_SAGA_PREFETCH(i32, int32_t)
SF_SAGA_PREFETCH(i64, int64_t)

#undef SF_SAGA_PREFETCH

#endif

/*
 * softmax_fast: the inner loops of the CSR kernels (softmax_fast._native.csr), one per
 * (value type, index type): double/float values x int32/int64 indices.
 *
 * Each loop runs over the stored entries of a range of rows (CSR) or columns (the CSC copy)
 * and moves K contiguous float64 values per entry: a row of logits, of G or of an accumulator.
 * They are written in C with `restrict` (the tables never overlap) so that the K loop
 * vectorizes without run-time alias checks, and compiled twice (SF_MULTIVERSION: baseline and
 * AVX2+FMA, picked at load time), as the flat loops of _sfmath.h.  Sums run in entry order:
 * results depend on the inputs only.
 *
 *   csr_logits   z[i, :]  = b + sum_p x_p Wt[j_p, :]        rows [r0, r1) of a block, into Z
 *                (a row's sums in registers)
 *   csr_scatter  acc[j_p, :] += x_p g                        one row's entries
 *   csc_logits   Z[i_p, k] += x_p W[j ldf + k ldc]           columns [j0, j1)
 *   csc_grad     dW[j ldf + k ldc] = sum_p x_p G[i_p, k]     columns [j0, j1)
 * (W and dW feature-major, (n x K) with ldf = K and ldc = 1: a feature's K values contiguous,
 * one stream over the features, as a fit keeps them; or class-major, (K x n) with ldf = 1 and
 * ldc = n, as a one-off call is given them: K lines n apart, prefetched ahead)
 */
#ifndef SOFTMAX_FAST_SFSPARSE_H
#define SOFTMAX_FAST_SFSPARSE_H

#include <stdint.h>
#include "_sfmath.h"

/* y[0:K] += x * v[0:K], v double (_d) or float (_f), in float64: four classes a step as one
   vector (GCC/clang vector extensions; plain loops elsewhere), the rest one by one.  Every class
   is one multiply-add per call, so sums over calls run in call order, whatever the vector
   width. */
#if defined(__GNUC__) || defined(__clang__)
typedef double sf_v4d __attribute__((vector_size(32), aligned(8)));  /* unaligned access */
typedef float sf_v4f __attribute__((vector_size(16), aligned(4)));
static inline void sf_axpy_d(double *restrict y, double x, const double *restrict v,
                             Py_ssize_t K)
{
    const sf_v4d xv = {x, x, x, x};
    Py_ssize_t k = 0;
    for (; k + 4 <= K; k += 4)
        *(sf_v4d *)(y + k) = *(const sf_v4d *)(y + k) + xv * *(const sf_v4d *)(v + k);
    for (; k < K; k++) y[k] += x * v[k];
}
static inline void sf_axpy_f(double *restrict y, double x, const float *restrict v,
                             Py_ssize_t K)
{
    const sf_v4d xv = {x, x, x, x};
    Py_ssize_t k = 0;
    for (; k + 4 <= K; k += 4)
        *(sf_v4d *)(y + k) = *(const sf_v4d *)(y + k)
                             + xv * __builtin_convertvector(*(const sf_v4f *)(v + k), sf_v4d);
    for (; k < K; k++) y[k] += x * (double)v[k];
}
#else
static inline void sf_axpy_d(double *restrict y, double x, const double *restrict v,
                             Py_ssize_t K)
{
    for (Py_ssize_t k = 0; k < K; k++) y[k] += x * v[k];
}
static inline void sf_axpy_f(double *restrict y, double x, const float *restrict v,
                             Py_ssize_t K)
{
    for (Py_ssize_t k = 0; k < K; k++) y[k] += x * (double)v[k];
}
#endif

/* Rows of the gathered/scattered table are prefetched this many entries ahead: the table
   (n x K or m x K float64) is usually larger than L2, and the entries' rows are known in
   advance, so the misses of successive entries overlap. */
#ifndef SF_SPARSE_PREFETCH
#define SF_SPARSE_PREFETCH 8
#endif
#if defined(__GNUC__) || defined(__clang__)
#define SF_PREFETCH(p, rw) __builtin_prefetch((p), (rw))
#else
#define SF_PREFETCH(p, rw) ((void)(p))
#endif
static inline void sf_prefetch_row(const void *row, Py_ssize_t bytes)
{
    for (Py_ssize_t o = 0; o < bytes; o += 64) SF_PREFETCH((const char *)row + o, 0);
}
/* The row of the table that entry p + SF_SPARSE_PREFETCH touches, when there is one. */
#define SF_PREFETCH_AHEAD(TABLE, IDX, P, END, K)                                               \
    if ((P) + SF_SPARSE_PREFETCH < (END))                                                      \
        sf_prefetch_row((TABLE) + (Py_ssize_t)(IDX)[(P) + SF_SPARSE_PREFETCH] * (K),           \
                        (K) * (Py_ssize_t)sizeof(*(TABLE)))

#define SF_SPARSE_LOOPS(SUFFIX, T, I, AXPY_T)                                                  \
SF_MULTIVERSION SF_MAYBE_UNUSED static void sf_csr_scatter_##SUFFIX(                           \
    const T *restrict data, const I *restrict indices, Py_ssize_t p0, Py_ssize_t p1,          \
    const double *restrict g, double *restrict acc, Py_ssize_t K)                              \
{                                                                                              \
    for (Py_ssize_t p = p0; p < p1; p++) {                                                     \
        SF_PREFETCH_AHEAD(acc, indices, p, p1, K);                                             \
        sf_axpy_d(acc + (Py_ssize_t)indices[p] * K, (double)data[p], g, K);                    \
    }                                                                                          \
}

SF_SPARSE_LOOPS(d_i32, double, int32_t, sf_axpy_d)
SF_SPARSE_LOOPS(d_i64, double, int64_t, sf_axpy_d)
SF_SPARSE_LOOPS(f_i32, float, int32_t, sf_axpy_f)
SF_SPARSE_LOOPS(f_i64, float, int64_t, sf_axpy_f)

#undef SF_SPARSE_LOOPS

/* The column kernels (csc_logits, csc_grad) hold one feature's K coefficients (or gradient
   sums) in registers over the feature's column of entries: K runs in blocks of NV four-wide
   vectors (NV <= 8, a literal in each inlined body, so the block unrolls into registers), then
   one class at a time for the K mod 4 left.  A class's sum is one multiply-add per entry in
   entry order whatever its block, as in sf_axpy_*. */
#if defined(__GNUC__) || defined(__clang__)
#define SF_SPARSE_INLINE static inline __attribute__((always_inline))

#define SF_COLUMN_BLOCKS(SUFFIX, T, I, LOAD_T)                                                 \
/* out[c ldc] = sum_p x_p G[rows[p], k0 + c] over entries [p0, p1), c < 4 NV */              \
SF_SPARSE_INLINE void sf_grad_block_##SUFFIX(                                                  \
    const T *restrict data, const I *restrict rows, Py_ssize_t p0, Py_ssize_t p1,             \
    Py_ssize_t pend, const double *restrict G, Py_ssize_t K, Py_ssize_t k0,                    \
    double *restrict out, Py_ssize_t ldc, const int NV)                                        \
{                                                                                              \
    sf_v4d a[8];                                                                               \
    for (int v = 0; v < NV; v++) a[v] = (sf_v4d){0.0, 0.0, 0.0, 0.0};                          \
    for (Py_ssize_t p = p0; p < p1; p++) {                                                     \
        SF_PREFETCH_AHEAD(G, rows, p, pend, K);                                                \
        const double x = (double)data[p];                                                      \
        const sf_v4d xv = {x, x, x, x};                                                        \
        const double *restrict g = G + (Py_ssize_t)rows[p] * K + k0;                           \
        for (int v = 0; v < NV; v++) a[v] += xv * *(const sf_v4d *)(g + 4 * v);                \
    }                                                                                          \
    if (ldc == 1)                                                                              \
        for (int v = 0; v < NV; v++) *(sf_v4d *)(out + 4 * v) = a[v];                          \
    else                                                                                       \
        for (int v = 0; v < NV; v++)                                                           \
            for (int l = 0; l < 4; l++) out[(4 * v + l) * ldc] = a[v][l];                      \
}                                                                                              \
/* Z[rows[p], k0 + c] += x_p w[c ldc] over entries [p0, p1), c < 4 NV */                     \
SF_SPARSE_INLINE void sf_logits_block_##SUFFIX(                                                \
    const T *restrict data, const I *restrict rows, Py_ssize_t p0, Py_ssize_t p1,             \
    Py_ssize_t pend, const T *restrict w, Py_ssize_t ldc, double *restrict Z, Py_ssize_t K,    \
    Py_ssize_t k0, const int NV)                                                               \
{                                                                                              \
    sf_v4d wv[8];                                                                              \
    if (ldc == 1)                                                                              \
        for (int v = 0; v < NV; v++) wv[v] = LOAD_T(w + 4 * v);                                \
    else                                                                                       \
        for (int v = 0; v < NV; v++)                                                           \
            wv[v] = (sf_v4d){(double)w[4 * v * ldc], (double)w[(4 * v + 1) * ldc],             \
                             (double)w[(4 * v + 2) * ldc], (double)w[(4 * v + 3) * ldc]};      \
    for (Py_ssize_t p = p0; p < p1; p++) {                                                     \
        SF_PREFETCH_AHEAD(Z, rows, p, pend, K);                                                \
        const double x = (double)data[p];                                                      \
        const sf_v4d xv = {x, x, x, x};                                                        \
        double *restrict z = Z + (Py_ssize_t)rows[p] * K + k0;                                 \
        for (int v = 0; v < NV; v++)                                                           \
            *(sf_v4d *)(z + 4 * v) = *(const sf_v4d *)(z + 4 * v) + xv * wv[v];                \
    }                                                                                          \
}

#define SF_LOAD4_d(p) (*(const sf_v4d *)(p))
#define SF_LOAD4_f(p) __builtin_convertvector(*(const sf_v4f *)(p), sf_v4d)
SF_COLUMN_BLOCKS(d_i32, double, int32_t, SF_LOAD4_d)
SF_COLUMN_BLOCKS(d_i64, double, int64_t, SF_LOAD4_d)
SF_COLUMN_BLOCKS(f_i32, float, int32_t, SF_LOAD4_f)
SF_COLUMN_BLOCKS(f_i64, float, int64_t, SF_LOAD4_f)
#undef SF_COLUMN_BLOCKS

/* The classes [k, K - K mod 4) in blocks of up to 8 vectors: CALL(NV) runs the block at k. */
#define SF_VECTOR_BLOCKS(CALL)                                                                 \
    for (; k + 4 <= K; ) {                                                                     \
        const Py_ssize_t left = (K - k) / 4;                                                   \
        switch (left < 8 ? (int)left : 8) {                                                    \
        case 1: CALL(1); break; case 2: CALL(2); break; case 3: CALL(3); break;                \
        case 4: CALL(4); break; case 5: CALL(5); break; case 6: CALL(6); break;                \
        case 7: CALL(7); break; default: CALL(8); break;                                       \
        }                                                                                      \
        k += 4 * (left < 8 ? left : 8);                                                        \
    }
#else
#define SF_VECTOR_BLOCKS(CALL)
#endif

/* csr_logits: a row's K logits are summed in registers over its entries (blocks of up to 8
   four-wide vectors, then the K mod 4 left as up to three scalars), not in memory: a sum kept
   in memory waits for its own store at every entry.  Each logit is b (or 0) then one
   multiply-add per entry in entry order, as with sf_axpy_*. */
#if defined(__GNUC__) || defined(__clang__)
#define SF_ROW_BLOCK(SUFFIX, T, I, LOAD_T)                                                     \
/* z[c] = b[c] (0 without b) + sum_p x_p Wt[indices[p], k0 + c], c < 4 NV (z, b at k0) */   \
SF_SPARSE_INLINE void sf_row_block_##SUFFIX(                                                   \
    const T *restrict data, const I *restrict indices, Py_ssize_t p0, Py_ssize_t p1,          \
    Py_ssize_t pend, const T *restrict Wt, const T *restrict b, double *restrict z,          \
    Py_ssize_t K, Py_ssize_t k0, const int NV)                                                 \
{                                                                                              \
    sf_v4d a[8];                                                                               \
    for (int v = 0; v < NV; v++)                                                               \
        a[v] = b ? LOAD_T(b + 4 * v) : (sf_v4d){0.0, 0.0, 0.0, 0.0};                           \
    for (Py_ssize_t p = p0; p < p1; p++) {                                                     \
        SF_PREFETCH_AHEAD(Wt, indices, p, pend, K);                                            \
        const double x = (double)data[p];                                                      \
        const sf_v4d xv = {x, x, x, x};                                                        \
        const T *restrict w = Wt + (Py_ssize_t)indices[p] * K + k0;                            \
        for (int v = 0; v < NV; v++) a[v] += xv * LOAD_T(w + 4 * v);                           \
    }                                                                                          \
    for (int v = 0; v < NV; v++) *(sf_v4d *)(z + 4 * v) = a[v];                                \
}
SF_ROW_BLOCK(d_i32, double, int32_t, SF_LOAD4_d)
SF_ROW_BLOCK(d_i64, double, int64_t, SF_LOAD4_d)
SF_ROW_BLOCK(f_i32, float, int32_t, SF_LOAD4_f)
SF_ROW_BLOCK(f_i64, float, int64_t, SF_LOAD4_f)
#undef SF_ROW_BLOCK
#endif

#define SF_ROW_LOOPS(SUFFIX, T, I)                                                             \
SF_MULTIVERSION SF_MAYBE_UNUSED static void sf_csr_logits_##SUFFIX(                            \
    const T *restrict data, const I *restrict indices, const I *restrict indptr,              \
    const T *restrict Wt, const T *restrict b, double *restrict Z, Py_ssize_t r0,            \
    Py_ssize_t r1, Py_ssize_t K)                                                               \
{                                                                                              \
    const Py_ssize_t pend = (Py_ssize_t)indptr[r1];                                            \
    for (Py_ssize_t r = r0; r < r1; r++) {                                                     \
        double *restrict z = Z + (r - r0) * K;                                                 \
        const Py_ssize_t p0 = (Py_ssize_t)indptr[r], p1 = (Py_ssize_t)indptr[r + 1];           \
        Py_ssize_t k = 0;                                                                      \
        SF_VECTOR_BLOCKS(SF_ROW_BLOCK_##SUFFIX)                                                \
        const Py_ssize_t left = K - k;                                                         \
        if (left > 0 && left < 4) {                                                            \
            double t0 = b ? (double)b[k] : 0.0;                                                \
            double t1 = (b && left > 1) ? (double)b[k + 1] : 0.0;                              \
            double t2 = (b && left > 2) ? (double)b[k + 2] : 0.0;                              \
            for (Py_ssize_t p = p0; p < p1; p++) {                                             \
                const double x = (double)data[p];                                              \
                const T *restrict w = Wt + (Py_ssize_t)indices[p] * K + k;                     \
                t0 += x * (double)w[0];                                                        \
                if (left > 1) t1 += x * (double)w[1];                                          \
                if (left > 2) t2 += x * (double)w[2];                                          \
            }                                                                                  \
            z[k] = t0;                                                                         \
            if (left > 1) z[k + 1] = t1;                                                       \
            if (left > 2) z[k + 2] = t2;                                                       \
        } else {                                                                               \
            for (; k < K; k++) {                                                               \
                double a = b ? (double)b[k] : 0.0;                                             \
                for (Py_ssize_t p = p0; p < p1; p++)                                           \
                    a += (double)data[p] * (double)Wt[(Py_ssize_t)indices[p] * K + k];         \
                z[k] = a;                                                                      \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
}
#define SF_ROW_BLOCK_d_i32(NV) sf_row_block_d_i32(data, indices, p0, p1, pend, Wt, b ? b + k : NULL, z + k, K, k, NV)
#define SF_ROW_BLOCK_d_i64(NV) sf_row_block_d_i64(data, indices, p0, p1, pend, Wt, b ? b + k : NULL, z + k, K, k, NV)
#define SF_ROW_BLOCK_f_i32(NV) sf_row_block_f_i32(data, indices, p0, p1, pend, Wt, b ? b + k : NULL, z + k, K, k, NV)
#define SF_ROW_BLOCK_f_i64(NV) sf_row_block_f_i64(data, indices, p0, p1, pend, Wt, b ? b + k : NULL, z + k, K, k, NV)
SF_ROW_LOOPS(d_i32, double, int32_t)
SF_ROW_LOOPS(d_i64, double, int64_t)
SF_ROW_LOOPS(f_i32, float, int32_t)
SF_ROW_LOOPS(f_i64, float, int64_t)
#undef SF_ROW_LOOPS

/* In the class-major layout (ldc = n, ldf = 1) a column's K values lie on K lines n apart,
   each line shared by 8 consecutive columns: every 8 columns, the lines 32 columns ahead are
   prefetched (for reading W, for writing dW). */
#define SF_CLASS_MAJOR_PREFETCH(A, j, j1, ldf, ldc, K, RW)                                    \
    if ((ldc) != 1 && ((j) & 7) == 0 && (j) + 32 < (j1))                                       \
        for (Py_ssize_t kk = 0; kk < (K); kk++) SF_PREFETCH((A) + kk * (ldc) + ((j) + 32) * (ldf), RW);

#define SF_COLUMN_LOOPS(SUFFIX, T, I)                                                          \
SF_MULTIVERSION SF_MAYBE_UNUSED static void sf_csc_logits_##SUFFIX(                            \
    const T *restrict data, const I *restrict rows, const I *restrict colptr,                 \
    const T *restrict W, Py_ssize_t ldf, Py_ssize_t ldc, double *restrict Z, Py_ssize_t j0,    \
    Py_ssize_t j1, Py_ssize_t K)                                                               \
{                                                                                              \
    const Py_ssize_t pend = (Py_ssize_t)colptr[j1];                                            \
    for (Py_ssize_t j = j0; j < j1; j++) {                                                     \
        const Py_ssize_t p0 = (Py_ssize_t)colptr[j], p1 = (Py_ssize_t)colptr[j + 1];           \
        SF_CLASS_MAJOR_PREFETCH(W, j, j1, ldf, ldc, K, 0)                                      \
        if (p0 == p1) continue;                                                                \
        const T *restrict w = W + j * ldf;                                                     \
        Py_ssize_t k = 0;                                                                      \
        SF_VECTOR_BLOCKS(SF_LOGITS_BLOCK_##SUFFIX)                                             \
        for (; k < K; k++) {                                                                   \
            const double wk = (double)w[k * ldc];                                              \
            for (Py_ssize_t p = p0; p < p1; p++)                                               \
                Z[(Py_ssize_t)rows[p] * K + k] += (double)data[p] * wk;                        \
        }                                                                                      \
    }                                                                                          \
}                                                                                              \
SF_MULTIVERSION SF_MAYBE_UNUSED static void sf_csc_grad_##SUFFIX(                              \
    const T *restrict data, const I *restrict rows, const I *restrict colptr,                 \
    const double *restrict G, double *restrict dW, Py_ssize_t ldf, Py_ssize_t ldc,             \
    Py_ssize_t j0, Py_ssize_t j1, Py_ssize_t K)                                                \
{                                                                                              \
    const Py_ssize_t pend = (Py_ssize_t)colptr[j1];                                            \
    for (Py_ssize_t j = j0; j < j1; j++) {                                                     \
        const Py_ssize_t p0 = (Py_ssize_t)colptr[j], p1 = (Py_ssize_t)colptr[j + 1];           \
        SF_CLASS_MAJOR_PREFETCH(dW, j, j1, ldf, ldc, K, 1)                                     \
        double *restrict out = dW + j * ldf;                                                   \
        Py_ssize_t k = 0;                                                                      \
        SF_VECTOR_BLOCKS(SF_GRAD_BLOCK_##SUFFIX)                                               \
        for (; k < K; k++) {                                                                   \
            double a = 0.0;                                                                    \
            for (Py_ssize_t p = p0; p < p1; p++)                                               \
                a += (double)data[p] * G[(Py_ssize_t)rows[p] * K + k];                         \
            out[k * ldc] = a;                                                                  \
        }                                                                                      \
    }                                                                                          \
}

/* (a block's call in each loop above, by its NV) */
#define SF_LOGITS_BLOCK_d_i32(NV) sf_logits_block_d_i32(data, rows, p0, p1, pend, w + k * ldc, ldc, Z, K, k, NV)
#define SF_LOGITS_BLOCK_d_i64(NV) sf_logits_block_d_i64(data, rows, p0, p1, pend, w + k * ldc, ldc, Z, K, k, NV)
#define SF_LOGITS_BLOCK_f_i32(NV) sf_logits_block_f_i32(data, rows, p0, p1, pend, w + k * ldc, ldc, Z, K, k, NV)
#define SF_LOGITS_BLOCK_f_i64(NV) sf_logits_block_f_i64(data, rows, p0, p1, pend, w + k * ldc, ldc, Z, K, k, NV)
#define SF_GRAD_BLOCK_d_i32(NV) sf_grad_block_d_i32(data, rows, p0, p1, pend, G, K, k, out + k * ldc, ldc, NV)
#define SF_GRAD_BLOCK_d_i64(NV) sf_grad_block_d_i64(data, rows, p0, p1, pend, G, K, k, out + k * ldc, ldc, NV)
#define SF_GRAD_BLOCK_f_i32(NV) sf_grad_block_f_i32(data, rows, p0, p1, pend, G, K, k, out + k * ldc, ldc, NV)
#define SF_GRAD_BLOCK_f_i64(NV) sf_grad_block_f_i64(data, rows, p0, p1, pend, G, K, k, out + k * ldc, ldc, NV)

SF_COLUMN_LOOPS(d_i32, double, int32_t)
SF_COLUMN_LOOPS(d_i64, double, int64_t)
SF_COLUMN_LOOPS(f_i32, float, int32_t)
SF_COLUMN_LOOPS(f_i64, float, int64_t)

#undef SF_COLUMN_LOOPS

#endif /* SOFTMAX_FAST_SFSPARSE_H */

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
 *   csr_scatter  acc[j_p, :] += x_p g                        one row's entries
 *   csc_logits   Z[i_p, :] += x_p W[:, j]                    columns [j0, j1), W (K x n)
 *   csc_grad     dW[:, j] = sum_p x_p G[i_p, :]              columns [j0, j1), dW (K x n)
 * (the column kernels read W and write dW in their (K, n) layout: a column's K values go
 * through a per-thread buffer of K doubles, so that no transposed copy is needed)
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
SF_MULTIVERSION SF_MAYBE_UNUSED static void sf_csr_logits_##SUFFIX(                            \
    const T *restrict data, const I *restrict indices, const I *restrict indptr,              \
    const T *restrict Wt, const T *restrict b, double *restrict Z, Py_ssize_t r0,            \
    Py_ssize_t r1, Py_ssize_t K)                                                               \
{                                                                                              \
    for (Py_ssize_t r = r0; r < r1; r++) {                                                     \
        double *restrict z = Z + (r - r0) * K;                                                 \
        for (Py_ssize_t k = 0; k < K; k++) z[k] = b ? (double)b[k] : 0.0;                      \
        for (Py_ssize_t p = (Py_ssize_t)indptr[r]; p < (Py_ssize_t)indptr[r + 1]; p++) {       \
            SF_PREFETCH_AHEAD(Wt, indices, p, (Py_ssize_t)indptr[r1], K);                      \
            AXPY_T(z, (double)data[p], Wt + (Py_ssize_t)indices[p] * K, K);                    \
        }                                                                                      \
    }                                                                                          \
}                                                                                              \
SF_MULTIVERSION SF_MAYBE_UNUSED static void sf_csr_scatter_##SUFFIX(                           \
    const T *restrict data, const I *restrict indices, Py_ssize_t p0, Py_ssize_t p1,          \
    const double *restrict g, double *restrict acc, Py_ssize_t K)                              \
{                                                                                              \
    for (Py_ssize_t p = p0; p < p1; p++) {                                                     \
        SF_PREFETCH_AHEAD(acc, indices, p, p1, K);                                             \
        sf_axpy_d(acc + (Py_ssize_t)indices[p] * K, (double)data[p], g, K);                    \
    }                                                                                          \
}                                                                                              \
SF_MULTIVERSION SF_MAYBE_UNUSED static void sf_csc_logits_##SUFFIX(                            \
    const T *restrict data, const I *restrict rows, const I *restrict colptr,                 \
    const T *restrict W, Py_ssize_t n, double *restrict Z, double *restrict w, Py_ssize_t j0,  \
    Py_ssize_t j1, Py_ssize_t K)                                                               \
{                                                                                              \
    for (Py_ssize_t j = j0; j < j1; j++) {                                                     \
        const Py_ssize_t p0 = (Py_ssize_t)colptr[j], p1 = (Py_ssize_t)colptr[j + 1];           \
        if ((j & 7) == 0 && j + 32 < n)  /* the next lines of W's K rows, 32 columns ahead */  \
            for (Py_ssize_t k = 0; k < K; k++) SF_PREFETCH(W + k * n + j + 32, 0);            \
        if (p0 == p1) continue;                                                                \
        for (Py_ssize_t k = 0; k < K; k++) w[k] = (double)W[k * n + j];                        \
        for (Py_ssize_t p = p0; p < p1; p++) {                                                 \
            SF_PREFETCH_AHEAD(Z, rows, p, (Py_ssize_t)colptr[j1], K);                          \
            sf_axpy_d(Z + (Py_ssize_t)rows[p] * K, (double)data[p], w, K);                     \
        }                                                                                      \
    }                                                                                          \
}                                                                                              \
SF_MULTIVERSION SF_MAYBE_UNUSED static void sf_csc_grad_##SUFFIX(                              \
    const T *restrict data, const I *restrict rows, const I *restrict colptr,                 \
    const double *restrict G, double *restrict dW, Py_ssize_t n, double *restrict acc,         \
    Py_ssize_t j0, Py_ssize_t j1, Py_ssize_t K)                                                \
{                                                                                              \
    for (Py_ssize_t j = j0; j < j1; j++) {                                                     \
        for (Py_ssize_t k = 0; k < K; k++) acc[k] = 0.0;                                       \
        for (Py_ssize_t p = (Py_ssize_t)colptr[j]; p < (Py_ssize_t)colptr[j + 1]; p++) {       \
            SF_PREFETCH_AHEAD(G, rows, p, (Py_ssize_t)colptr[j1], K);                          \
            sf_axpy_d(acc, (double)data[p], G + (Py_ssize_t)rows[p] * K, K);                   \
        }                                                                                      \
        if ((j & 7) == 0 && j + 32 < n)  /* the lines of dW's K rows it writes next */         \
            for (Py_ssize_t k = 0; k < K; k++) SF_PREFETCH(dW + k * n + j + 32, 1);           \
        for (Py_ssize_t k = 0; k < K; k++) dW[k * n + j] = acc[k];                             \
    }                                                                                          \
}

SF_SPARSE_LOOPS(d_i32, double, int32_t, sf_axpy_d)
SF_SPARSE_LOOPS(d_i64, double, int64_t, sf_axpy_d)
SF_SPARSE_LOOPS(f_i32, float, int32_t, sf_axpy_f)
SF_SPARSE_LOOPS(f_i64, float, int64_t, sf_axpy_f)

#undef SF_SPARSE_LOOPS

#endif /* SOFTMAX_FAST_SFSPARSE_H */

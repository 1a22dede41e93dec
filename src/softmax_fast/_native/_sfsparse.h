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
 *   csc_logits   Z[i_p, :] += x_p Wt[j, :]                   columns [j0, j1)
 *   csc_grad     dWt[j, :] = sum_p x_p G[i_p, :]             columns [j0, j1)
 */
#ifndef SOFTMAX_FAST_SFSPARSE_H
#define SOFTMAX_FAST_SFSPARSE_H

#include <stdint.h>
#include "_sfmath.h"

#define SF_SPARSE_LOOPS(SUFFIX, T, I)                                                          \
SF_MULTIVERSION SF_MAYBE_UNUSED static void sf_csr_logits_##SUFFIX(                            \
    const T *restrict data, const I *restrict indices, const I *restrict indptr,              \
    const T *restrict Wt, const T *restrict b, double *restrict Z, Py_ssize_t r0,            \
    Py_ssize_t r1, Py_ssize_t K)                                                               \
{                                                                                              \
    for (Py_ssize_t r = r0; r < r1; r++) {                                                     \
        double *restrict z = Z + (r - r0) * K;                                                 \
        if (b) { for (Py_ssize_t k = 0; k < K; k++) z[k] = (double)b[k]; }                    \
        else { for (Py_ssize_t k = 0; k < K; k++) z[k] = 0.0; }                                \
        for (Py_ssize_t p = (Py_ssize_t)indptr[r]; p < (Py_ssize_t)indptr[r + 1]; p++) {       \
            const double x = (double)data[p];                                                  \
            const T *restrict w = Wt + (Py_ssize_t)indices[p] * K;                             \
            for (Py_ssize_t k = 0; k < K; k++) z[k] += x * (double)w[k];                       \
        }                                                                                      \
    }                                                                                          \
}                                                                                              \
SF_MULTIVERSION SF_MAYBE_UNUSED static void sf_csr_scatter_##SUFFIX(                           \
    const T *restrict data, const I *restrict indices, Py_ssize_t p0, Py_ssize_t p1,          \
    const double *restrict g, double *restrict acc, Py_ssize_t K)                              \
{                                                                                              \
    for (Py_ssize_t p = p0; p < p1; p++) {                                                     \
        const double x = (double)data[p];                                                      \
        double *restrict a = acc + (Py_ssize_t)indices[p] * K;                                 \
        for (Py_ssize_t k = 0; k < K; k++) a[k] += x * g[k];                                   \
    }                                                                                          \
}                                                                                              \
SF_MULTIVERSION SF_MAYBE_UNUSED static void sf_csc_logits_##SUFFIX(                            \
    const T *restrict data, const I *restrict rows, const I *restrict colptr,                 \
    const T *restrict Wt, double *restrict Z, Py_ssize_t j0, Py_ssize_t j1, Py_ssize_t K)      \
{                                                                                              \
    for (Py_ssize_t j = j0; j < j1; j++) {                                                     \
        const T *restrict w = Wt + j * K;                                                      \
        for (Py_ssize_t p = (Py_ssize_t)colptr[j]; p < (Py_ssize_t)colptr[j + 1]; p++) {       \
            const double x = (double)data[p];                                                  \
            double *restrict z = Z + (Py_ssize_t)rows[p] * K;                                  \
            for (Py_ssize_t k = 0; k < K; k++) z[k] += x * (double)w[k];                       \
        }                                                                                      \
    }                                                                                          \
}                                                                                              \
SF_MULTIVERSION SF_MAYBE_UNUSED static void sf_csc_grad_##SUFFIX(                              \
    const T *restrict data, const I *restrict rows, const I *restrict colptr,                 \
    const double *restrict G, double *restrict dWt, Py_ssize_t j0, Py_ssize_t j1,             \
    Py_ssize_t K)                                                                              \
{                                                                                              \
    for (Py_ssize_t j = j0; j < j1; j++) {                                                     \
        double *restrict out = dWt + j * K;                                                    \
        for (Py_ssize_t k = 0; k < K; k++) out[k] = 0.0;                                       \
        for (Py_ssize_t p = (Py_ssize_t)colptr[j]; p < (Py_ssize_t)colptr[j + 1]; p++) {       \
            const double x = (double)data[p];                                                  \
            const double *restrict g = G + (Py_ssize_t)rows[p] * K;                            \
            for (Py_ssize_t k = 0; k < K; k++) out[k] += x * g[k];                             \
        }                                                                                      \
    }                                                                                          \
}

SF_SPARSE_LOOPS(d_i32, double, int32_t)
SF_SPARSE_LOOPS(d_i64, double, int64_t)
SF_SPARSE_LOOPS(f_i32, float, int32_t)
SF_SPARSE_LOOPS(f_i64, float, int64_t)

#undef SF_SPARSE_LOOPS

#endif /* SOFTMAX_FAST_SFSPARSE_H */

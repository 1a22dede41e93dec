/* Flat loops of the dense fused kernel over a transposed tile Zt (K x nt): class k of row i at
 * Zt[k * nt + i], so that every loop runs along rows over contiguous memory and vectorizes for
 * any K.  Written in C with `restrict` and compiled twice (SF_MULTIVERSION: baseline and
 * AVX2+FMA, picked at load time), as the loops of _sfmath.h; the Cython helpers they replace
 * ran on SSE2 only.  Each output element is one chain of additions or one product in class
 * order (no multiply-add to contract): both versions give the same bits.
 *
 *   sf_tile_bias      Zt[k, i] += b[k]
 *   sf_tile_max       mx[i] = max_k Zt[k, i]  (NaN skipped: caught later by the row sums)
 *   sf_tile_subtract  Zt[k, i] -= mx[i]
 *   sf_tile_sums      s[i] = sum_k Zt[k, i]   (float64, classes in order)
 *   sf_tile_scale     Zt[k, i] *= c[i]
 *   sf_tile_add_to    acc[k * stride + i] += Zt[k, i]  (float64)
 */
#ifndef SOFTMAX_FAST_SFTILE_H
#define SOFTMAX_FAST_SFTILE_H

#include "_sfmath.h"

#define SF_TILE_LOOPS(SUFFIX, T)                                                               \
SF_MULTIVERSION SF_MAYBE_UNUSED static void sf_tile_bias_##SUFFIX(                              \
    T *restrict Zt, const T *restrict b, Py_ssize_t nt, Py_ssize_t K)                          \
{                                                                                              \
    for (Py_ssize_t k = 0; k < K; k++) {                                                       \
        const T bk = b[k];                                                                     \
        T *restrict z = Zt + k * nt;                                                           \
        for (Py_ssize_t i = 0; i < nt; i++) z[i] += bk;                                        \
    }                                                                                          \
}                                                                                              \
SF_MULTIVERSION SF_MAYBE_UNUSED static void sf_tile_max_##SUFFIX(                               \
    const T *restrict Zt, T *restrict mx, Py_ssize_t nt, Py_ssize_t K)                         \
{                                                                                              \
    for (Py_ssize_t i = 0; i < nt; i++) mx[i] = Zt[i];                                         \
    for (Py_ssize_t k = 1; k < K; k++) {                                                       \
        const T *restrict z = Zt + k * nt;                                                     \
        for (Py_ssize_t i = 0; i < nt; i++) mx[i] = z[i] > mx[i] ? z[i] : mx[i];               \
    }                                                                                          \
}                                                                                              \
SF_MULTIVERSION SF_MAYBE_UNUSED static void sf_tile_subtract_##SUFFIX(                          \
    T *restrict Zt, const T *restrict mx, Py_ssize_t nt, Py_ssize_t K)                         \
{                                                                                              \
    for (Py_ssize_t k = 0; k < K; k++) {                                                       \
        T *restrict z = Zt + k * nt;                                                           \
        for (Py_ssize_t i = 0; i < nt; i++) z[i] -= mx[i];                                     \
    }                                                                                          \
}                                                                                              \
SF_MULTIVERSION SF_MAYBE_UNUSED static void sf_tile_sums_##SUFFIX(                              \
    const T *restrict Zt, double *restrict s, Py_ssize_t nt, Py_ssize_t K)                     \
{                                                                                              \
    for (Py_ssize_t i = 0; i < nt; i++) s[i] = (double)Zt[i];                                  \
    for (Py_ssize_t k = 1; k < K; k++) {                                                       \
        const T *restrict z = Zt + k * nt;                                                     \
        for (Py_ssize_t i = 0; i < nt; i++) s[i] += (double)z[i];                              \
    }                                                                                          \
}                                                                                              \
SF_MULTIVERSION SF_MAYBE_UNUSED static void sf_tile_scale_##SUFFIX(                             \
    T *restrict Zt, const T *restrict c, Py_ssize_t nt, Py_ssize_t K)                          \
{                                                                                              \
    for (Py_ssize_t k = 0; k < K; k++) {                                                       \
        T *restrict z = Zt + k * nt;                                                           \
        for (Py_ssize_t i = 0; i < nt; i++) z[i] *= c[i];                                      \
    }                                                                                          \
}                                                                                              \
SF_MULTIVERSION SF_MAYBE_UNUSED static void sf_tile_add_to_##SUFFIX(                            \
    const T *restrict Zt, double *restrict acc, Py_ssize_t stride, Py_ssize_t nt,              \
    Py_ssize_t K)                                                                              \
{                                                                                              \
    for (Py_ssize_t k = 0; k < K; k++) {                                                       \
        const T *restrict z = Zt + k * nt;                                                     \
        double *restrict a = acc + k * stride;                                                 \
        for (Py_ssize_t i = 0; i < nt; i++) a[i] += (double)z[i];                              \
    }                                                                                          \
}

SF_TILE_LOOPS(d, double)
SF_TILE_LOOPS(f, float)

#undef SF_TILE_LOOPS

#endif /* SOFTMAX_FAST_SFTILE_H */

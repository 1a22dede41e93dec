/*
 * softmax_fast: passes over parameter-sized float64 vectors (softmax_fast._native.vectors),
 * for large models: the L-BFGS solver's passes over its pair history and its trial points
 * (softmax_fast._lbfgs), the objective's penalized gradient (softmax_fast._objective).
 *
 * The history Z holds R vectors of n values (the pairs' s and y), float32 (_f) or float64
 * (_d); the gradient, the direction and every sum are float64.  Z is stored in blocks of
 * SF_HIST_BLOCK columns, all R rows of a block contiguous (block b, row r at
 * Z + (b R + r) SF_HIST_BLOCK; n rounded up to whole blocks): a pass over the history reads
 * one contiguous stream while the block of the float64 vector it combines the rows with stays
 * in L1 (rather than as many interleaved streams as rows).  Each function runs over the columns
 * [c0, c1), c0 a multiple of SF_HIST_BLOCK.  Sums run in 16 lanes (lane c mod 16, one chain
 * each, so the result does not depend on the vector width; four chains of four-wide vectors
 * hide the latency of the additions), the lanes and blocks added in a fixed order: results
 * depend on the inputs and on [c0, c1) only.  Compiled twice (SF_MULTIVERSION), as the loops
 * of _sfmath.h.
 *
 *   sf_hist_dots     out_g[r] += Z[rows[r]] . g,  out_y[r] += Z[rows[r]] . Z[yrow] (yrow >= 0)
 *   sf_hist_combine  d = -(cg g + sum_r coef[r] Z[rows[r]]);  returns g . d
 *   sf_hist_pair     s = step d, y = gn - g, rounded to Z's type and stored; g = gn;
 *                    out[0] += s . y, out[1] += y . y (of the stored values), out[2] max |gn|
 *   sf_axpy_to       xt = x + step d
 *   sf_penalized     out = dw + alpha w (out may be dw);  returns w . w
 */
#ifndef SOFTMAX_FAST_SFVECTORS_H
#define SOFTMAX_FAST_SFVECTORS_H

#include "_sfmath.h"

/* The helpers below are inlined into each compiled version of their callers (and so vectorized
   for its target), never called as a baseline function. */
#if defined(__GNUC__) || defined(__clang__)
#define SF_HIST_INLINE static inline __attribute__((always_inline))
#else
#define SF_HIST_INLINE static inline
#endif


#ifndef SF_HIST_BLOCK
#define SF_HIST_BLOCK 1024
#endif
#define SF_HIST_LANES 16

/* The lanes of a sum, added pairwise in a fixed order. */
SF_HIST_INLINE double sf_hist_lanes(const double *a)
{
    double h[8];
    for (int j = 0; j < 8; j++) h[j] = a[j] + a[j + 8];
    return ((h[0] + h[4]) + (h[2] + h[6])) + ((h[1] + h[5]) + (h[3] + h[7]));
}

/* Four float64 lanes as one vector (GCC/clang vector extensions), loaded unaligned; four values
   of type float widen to float64 as they load. */
#if defined(__GNUC__) || defined(__clang__)
#define SF_HIST_VECTORS 1
typedef double sf_hist_v4d __attribute__((vector_size(32), aligned(8)));
typedef float sf_hist_v4f __attribute__((vector_size(16), aligned(4)));
#define SF_HIST_LOAD_d(p) (*(const sf_hist_v4d *)(p))
#define SF_HIST_LOAD_f(p) __builtin_convertvector(*(const sf_hist_v4f *)(p), sf_hist_v4d)
#else
#define SF_HIST_VECTORS 0
#endif

#if SF_HIST_VECTORS
/* The 16 lanes of four vector accumulators, lane 4 i + j from a_i[j]. */
SF_HIST_INLINE void sf_hist_unpack(sf_hist_v4d a0, sf_hist_v4d a1, sf_hist_v4d a2,
                                   sf_hist_v4d a3, double *l)
{
    for (int j = 0; j < 4; j++)
        l[j] = a0[j], l[j + 4] = a1[j], l[j + 8] = a2[j], l[j + 12] = a3[j];
}
#endif

/* sum_c u[c] v[c] over len elements (lane c mod 16), and with w given also sum_c u[c] w[c]:
   u of type U, v and w float64.  One pass over u. */
#if SF_HIST_VECTORS
#define SF_HIST_DOTS(S, U)                                                                     \
SF_HIST_INLINE void sf_hist_dot2_##S(const U *restrict u, const double *restrict v,            \
                                    const double *restrict w, Py_ssize_t len, double *out_v,        \
                                    double *out_w)                                             \
{                                                                                              \
    sf_hist_v4d a0 = {0.0}, a1 = {0.0}, a2 = {0.0}, a3 = {0.0};                                \
    sf_hist_v4d b0 = {0.0}, b1 = {0.0}, b2 = {0.0}, b3 = {0.0};                                \
    Py_ssize_t c = 0;                                                                          \
    if (w) {                                                                                   \
        for (; c + SF_HIST_LANES <= len; c += SF_HIST_LANES) {                                 \
            const sf_hist_v4d x0 = SF_HIST_LOAD_##S(u + c), x1 = SF_HIST_LOAD_##S(u + c + 4);  \
            const sf_hist_v4d x2 = SF_HIST_LOAD_##S(u + c + 8);                                \
            const sf_hist_v4d x3 = SF_HIST_LOAD_##S(u + c + 12);                               \
            a0 += x0 * SF_HIST_LOAD_d(v + c);                                                  \
            a1 += x1 * SF_HIST_LOAD_d(v + c + 4);                                              \
            a2 += x2 * SF_HIST_LOAD_d(v + c + 8);                                              \
            a3 += x3 * SF_HIST_LOAD_d(v + c + 12);                                             \
            b0 += x0 * SF_HIST_LOAD_d(w + c);                                                  \
            b1 += x1 * SF_HIST_LOAD_d(w + c + 4);                                              \
            b2 += x2 * SF_HIST_LOAD_d(w + c + 8);                                              \
            b3 += x3 * SF_HIST_LOAD_d(w + c + 12);                                             \
        }                                                                                      \
    } else {                                                                                   \
        for (; c + SF_HIST_LANES <= len; c += SF_HIST_LANES) {                                 \
            a0 += SF_HIST_LOAD_##S(u + c) * SF_HIST_LOAD_d(v + c);                             \
            a1 += SF_HIST_LOAD_##S(u + c + 4) * SF_HIST_LOAD_d(v + c + 4);                     \
            a2 += SF_HIST_LOAD_##S(u + c + 8) * SF_HIST_LOAD_d(v + c + 8);                     \
            a3 += SF_HIST_LOAD_##S(u + c + 12) * SF_HIST_LOAD_d(v + c + 12);                   \
        }                                                                                      \
    }                                                                                          \
    double la[SF_HIST_LANES], lb[SF_HIST_LANES];                                               \
    sf_hist_unpack(a0, a1, a2, a3, la);                                                        \
    sf_hist_unpack(b0, b1, b2, b3, lb);                                                        \
    for (int j = 0; c < len; c++, j++) {                                                       \
        la[j] += (double)u[c] * v[c];                                                          \
        if (w) lb[j] += (double)u[c] * w[c];                                                   \
    }                                                                                          \
    *out_v += sf_hist_lanes(la);                                                               \
    if (w) *out_w += sf_hist_lanes(lb);                                                        \
}
#else
#define SF_HIST_DOTS(S, U)                                                                     \
SF_HIST_INLINE void sf_hist_dot2_##S(const U *restrict u, const double *restrict v,             \
                                    const double *restrict w, Py_ssize_t len, double *out_v,        \
                                    double *out_w)                                             \
{                                                                                              \
    double la[SF_HIST_LANES] = {0.0}, lb[SF_HIST_LANES] = {0.0};                               \
    for (Py_ssize_t c = 0; c < len; c++) {                                                     \
        la[c % SF_HIST_LANES] += (double)u[c] * v[c];                                          \
        if (w) lb[c % SF_HIST_LANES] += (double)u[c] * w[c];                                   \
    }                                                                                          \
    *out_v += sf_hist_lanes(la);                                                               \
    if (w) *out_w += sf_hist_lanes(lb);                                                        \
}
#endif

SF_HIST_DOTS(d, double)
SF_HIST_DOTS(f, float)

/* out[0] += sum_c s[c] y[c], out[1] += sum_c y[c]^2 (lanes c mod 16), s and y of type U */
#if SF_HIST_VECTORS
#define SF_HIST_SY_YY(S, U)                                                                    \
SF_HIST_INLINE void sf_hist_sy_yy_##S(const U *restrict s, const U *restrict y, Py_ssize_t len, \
                                     double *out)                                              \
{                                                                                              \
    sf_hist_v4d a0 = {0.0}, a1 = {0.0}, a2 = {0.0}, a3 = {0.0};                                \
    sf_hist_v4d b0 = {0.0}, b1 = {0.0}, b2 = {0.0}, b3 = {0.0};                                \
    Py_ssize_t c = 0;                                                                          \
    for (; c + SF_HIST_LANES <= len; c += SF_HIST_LANES) {                                     \
        const sf_hist_v4d y0 = SF_HIST_LOAD_##S(y + c), y1 = SF_HIST_LOAD_##S(y + c + 4);      \
        const sf_hist_v4d y2 = SF_HIST_LOAD_##S(y + c + 8), y3 = SF_HIST_LOAD_##S(y + c + 12); \
        a0 += SF_HIST_LOAD_##S(s + c) * y0;                                                    \
        a1 += SF_HIST_LOAD_##S(s + c + 4) * y1;                                                \
        a2 += SF_HIST_LOAD_##S(s + c + 8) * y2;                                                \
        a3 += SF_HIST_LOAD_##S(s + c + 12) * y3;                                               \
        b0 += y0 * y0;                                                                         \
        b1 += y1 * y1;                                                                         \
        b2 += y2 * y2;                                                                         \
        b3 += y3 * y3;                                                                         \
    }                                                                                          \
    double la[SF_HIST_LANES], lb[SF_HIST_LANES];                                               \
    sf_hist_unpack(a0, a1, a2, a3, la);                                                        \
    sf_hist_unpack(b0, b1, b2, b3, lb);                                                        \
    for (int j = 0; c < len; c++, j++) {                                                       \
        la[j] += (double)s[c] * (double)y[c];                                                  \
        lb[j] += (double)y[c] * (double)y[c];                                                  \
    }                                                                                          \
    out[0] += sf_hist_lanes(la);                                                               \
    out[1] += sf_hist_lanes(lb);                                                               \
}
#else
#define SF_HIST_SY_YY(S, U)                                                                    \
SF_HIST_INLINE void sf_hist_sy_yy_##S(const U *restrict s, const U *restrict y, Py_ssize_t len, \
                                     double *out)                                              \
{                                                                                              \
    double la[SF_HIST_LANES] = {0.0}, lb[SF_HIST_LANES] = {0.0};                               \
    for (Py_ssize_t c = 0; c < len; c++) {                                                     \
        la[c % SF_HIST_LANES] += (double)s[c] * (double)y[c];                                  \
        lb[c % SF_HIST_LANES] += (double)y[c] * (double)y[c];                                  \
    }                                                                                          \
    out[0] += sf_hist_lanes(la);                                                               \
    out[1] += sf_hist_lanes(lb);                                                               \
}
#endif

SF_HIST_SY_YY(d, double)
SF_HIST_SY_YY(f, float)

/* Row r of block b of a history with R rows: B values from column b * B. */
#define SF_HIST_PART(Z, R, b0, r) ((Z) + ((b0) / SF_HIST_BLOCK * (R) + (r)) * SF_HIST_BLOCK)

#define SF_HISTORY_LOOPS(S, T)                                                                 \
SF_MULTIVERSION SF_LOOP_ALIGN SF_MAYBE_UNUSED static void sf_hist_dots_##S(                     \
    const T *Z, Py_ssize_t R, const Py_ssize_t *rows, Py_ssize_t nr,                           \
    const double *restrict g, Py_ssize_t yrow, Py_ssize_t c0, Py_ssize_t c1,                   \
    double *restrict out_g, double *restrict out_y)                                            \
{                                                                                              \
    double yb[SF_HIST_BLOCK]; /* the block of Z[yrow] widened once, for every row */          \
    for (Py_ssize_t b0 = c0; b0 < c1; b0 += SF_HIST_BLOCK) {                                   \
        const Py_ssize_t len = (c1 - b0 < SF_HIST_BLOCK) ? c1 - b0 : SF_HIST_BLOCK;            \
        if (yrow >= 0) {                                                                       \
            const T *restrict yv = SF_HIST_PART(Z, R, b0, yrow);                               \
            for (Py_ssize_t c = 0; c < len; c++) yb[c] = (double)yv[c];                        \
        }                                                                                      \
        for (Py_ssize_t r = 0; r < nr; r++)                                                    \
            sf_hist_dot2_##S(SF_HIST_PART(Z, R, b0, rows[r]), g + b0, yrow >= 0 ? yb : NULL,   \
                             len, out_g + r, out_y + r);                                       \
    }                                                                                          \
}                                                                                              \
SF_MULTIVERSION SF_LOOP_ALIGN SF_MAYBE_UNUSED static double sf_hist_combine_##S(                \
    const T *Z, Py_ssize_t R, const Py_ssize_t *rows, Py_ssize_t nr,                           \
    const double *restrict coef, double cg, const double *restrict g, double *restrict d,      \
    Py_ssize_t c0, Py_ssize_t c1)                                                              \
{                                                                                              \
    double gd = 0.0;                                                                           \
    for (Py_ssize_t b0 = c0; b0 < c1; b0 += SF_HIST_BLOCK) {                                   \
        const Py_ssize_t len = (c1 - b0 < SF_HIST_BLOCK) ? c1 - b0 : SF_HIST_BLOCK;            \
        double *restrict db = d + b0;                                                          \
        const double *restrict gb = g + b0;                                                    \
        for (Py_ssize_t c = 0; c < len; c++) db[c] = cg * gb[c];                               \
        for (Py_ssize_t r = 0; r < nr; r++) {                                                  \
            const T *restrict z = SF_HIST_PART(Z, R, b0, rows[r]);                             \
            const double cr = coef[r];                                                         \
            for (Py_ssize_t c = 0; c < len; c++) db[c] += cr * (double)z[c];                   \
        }                                                                                      \
        for (Py_ssize_t c = 0; c < len; c++) db[c] = -db[c];                                   \
        sf_hist_dot2_d(db, gb, NULL, len, &gd, NULL);                                          \
    }                                                                                          \
    return gd;                                                                                 \
}                                                                                              \
SF_MULTIVERSION SF_LOOP_ALIGN SF_MAYBE_UNUSED static void sf_hist_pair_##S(                     \
    T *Z, Py_ssize_t R, Py_ssize_t srow, Py_ssize_t yrow, const double *restrict d,            \
    double step, const double *restrict gn, double *restrict g, Py_ssize_t c0, Py_ssize_t c1,  \
    double *restrict out)                                                                      \
{                                                                                              \
    double gmax = 0.0;                                                                         \
    for (Py_ssize_t b0 = c0; b0 < c1; b0 += SF_HIST_BLOCK) {                                   \
        const Py_ssize_t len = (c1 - b0 < SF_HIST_BLOCK) ? c1 - b0 : SF_HIST_BLOCK;            \
        T *restrict s = SF_HIST_PART(Z, R, b0, srow);                                          \
        T *restrict y = SF_HIST_PART(Z, R, b0, yrow);                                          \
        const double *restrict db = d + b0, *restrict gnb = gn + b0;                           \
        double *restrict gb = g + b0;                                                          \
        for (Py_ssize_t c = 0; c < len; c++) {                                                 \
            const double a = gnb[c] < 0.0 ? -gnb[c] : gnb[c];                                  \
            gmax = a > gmax ? a : gmax;                                                        \
            s[c] = (T)(step * db[c]);                                                          \
            y[c] = (T)(gnb[c] - gb[c]);                                                        \
            gb[c] = gnb[c];                                                                    \
        }                                                                                      \
        sf_hist_sy_yy_##S(s, y, len, out);                                                     \
    }                                                                                          \
    out[2] = gmax > out[2] ? gmax : out[2];                                                    \
}

SF_MULTIVERSION SF_LOOP_ALIGN SF_MAYBE_UNUSED static void sf_axpy_to(
    const double *restrict x, const double *restrict d, double step, double *restrict xt,
    Py_ssize_t c0, Py_ssize_t c1)
{
    for (Py_ssize_t c = c0; c < c1; c++) xt[c] = x[c] + step * d[c];
}

/* (out may be dw itself: each element is read before it is written) */
SF_MULTIVERSION SF_LOOP_ALIGN SF_MAYBE_UNUSED static double sf_penalized(
    const double *restrict w, const double *dw, double alpha, double *out, Py_ssize_t c0,
    Py_ssize_t c1)
{
    double ww = 0.0;
    for (Py_ssize_t b0 = c0; b0 < c1; b0 += SF_HIST_BLOCK) {
        const Py_ssize_t len = (c1 - b0 < SF_HIST_BLOCK) ? c1 - b0 : SF_HIST_BLOCK;
        for (Py_ssize_t c = b0; c < b0 + len; c++) out[c] = dw[c] + alpha * w[c];
        sf_hist_dot2_d(w + b0, w + b0, NULL, len, &ww, NULL);
    }
    return ww;
}

SF_HISTORY_LOOPS(d, double)
SF_HISTORY_LOOPS(f, float)

#undef SF_HISTORY_LOOPS

#endif /* SOFTMAX_FAST_SFVECTORS_H */

/*
 * softmax_fast: GEMM micro-kernels for few classes (K <= 16 in float64, K <= 32 in float32).
 *
 * Why: the fused loss-and-gradient multiplies a row tile X_t (rows x n) by W^T (n x K) and then
 * G^T (K x rows) by the same X_t.  With K ~ 10 these are "skinny" products on which a general
 * BLAS reaches a fraction of its peak (measured ~10 GFLOP/s a core here, against ~40 for the
 * FMA units).  These kernels keep a block of outputs in AVX registers and stream X once:
 *   small_xwt: Z = X W^T, classes along the vector lanes, a few rows at a time;
 *   small_gtx: acc (+)= G^T X, features along the lanes, up to 4 classes at a time.
 * They are compiled for AVX2+FMA with a target attribute and used only when the CPU has both
 * (checked at run time), so the extension stays portable; elsewhere BLAS is used.
 */
#ifndef SOFTMAX_FAST_SFGEMM_H
#define SOFTMAX_FAST_SFGEMM_H

/* Included by every extension module of softmax_fast._native, which each use a part of it. */
#ifndef SF_MAYBE_UNUSED
#if defined(__GNUC__) || defined(__clang__)
#define SF_MAYBE_UNUSED __attribute__((unused))
#else
#define SF_MAYBE_UNUSED
#endif
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) \
    && !defined(SOFTMAX_FAST_NO_SMALL_GEMM)
#define SF_HAVE_SMALL_GEMM 1
#include <immintrin.h>

/* How many row blocks ahead the logits kernel prefetches X (see _sfgemm_impl.h). */
#ifndef SF_PREFETCH_BLOCKS
#define SF_PREFETCH_BLOCKS 1
#endif

SF_MAYBE_UNUSED static int sf_cpu_has_avx2_fma(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* ---- float64 ---- */
#define SFG_T double
#define SFG_V __m256d
#define SFG_LANES 4
#define SFG(name) sf_##name##_d
#define SFG_MASKT __m256i
#define SFG_ZERO() _mm256_setzero_pd()
#define SFG_LOAD(p) _mm256_loadu_pd(p)
#define SFG_STORE(p, v) _mm256_storeu_pd((p), (v))
#define SFG_SET1(x) _mm256_set1_pd(x)
#define SFG_FMA(a, b, c) _mm256_fmadd_pd((a), (b), (c))
#define SFG_MASKLOAD(p, m) _mm256_maskload_pd((p), (m))
#define SFG_MASKSTORE(p, m, v) _mm256_maskstore_pd((p), (m), (v))
#define SFG_MASK(k) _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)(k)), \
                                       _mm256_setr_epi64x(0, 1, 2, 3))
#include "_sfgemm_impl.h"
#include "_sfgemm_undef.h"

/* ---- float32 ---- */
#define SFG_T float
#define SFG_V __m256
#define SFG_LANES 8
#define SFG(name) sf_##name##_f
#define SFG_MASKT __m256i
#define SFG_ZERO() _mm256_setzero_ps()
#define SFG_LOAD(p) _mm256_loadu_ps(p)
#define SFG_STORE(p, v) _mm256_storeu_ps((p), (v))
#define SFG_SET1(x) _mm256_set1_ps(x)
#define SFG_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define SFG_MASKLOAD(p, m) _mm256_maskload_ps((p), (m))
#define SFG_MASKSTORE(p, m, v) _mm256_maskstore_ps((p), (m), (v))
#define SFG_MASK(k) _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(k)), \
                                       _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#include "_sfgemm_impl.h"
#include "_sfgemm_undef.h"

#else /* no AVX2 micro-kernels on this platform/compiler: BLAS is always used */
#define SF_HAVE_SMALL_GEMM 0
SF_MAYBE_UNUSED static int sf_cpu_has_avx2_fma(void) { return 0; }
SF_MAYBE_UNUSED static void sf_small_xwt_d(const double *X, const double *Wt, double *Z, Py_ssize_t rows,
                           Py_ssize_t n, Py_ssize_t K) { (void)X; (void)Wt; (void)Z; (void)rows; (void)n; (void)K; }
SF_MAYBE_UNUSED static void sf_small_xwt_f(const float *X, const float *Wt, float *Z, Py_ssize_t rows,
                           Py_ssize_t n, Py_ssize_t K) { (void)X; (void)Wt; (void)Z; (void)rows; (void)n; (void)K; }
SF_MAYBE_UNUSED static void sf_small_gtx_d(const double *G, const double *X, double *acc, Py_ssize_t rows,
                           Py_ssize_t n, Py_ssize_t K, int accumulate)
{ (void)G; (void)X; (void)acc; (void)rows; (void)n; (void)K; (void)accumulate; }
SF_MAYBE_UNUSED static void sf_small_gtx_f(const float *G, const float *X, float *acc, Py_ssize_t rows,
                           Py_ssize_t n, Py_ssize_t K, int accumulate)
{ (void)G; (void)X; (void)acc; (void)rows; (void)n; (void)K; (void)accumulate; }
#endif

/* Largest K the micro-kernels handle (4 vectors of classes). */
#define SF_SMALL_GEMM_MAX_K_D 16
#define SF_SMALL_GEMM_MAX_K_F 32

#endif /* SOFTMAX_FAST_SFGEMM_H */

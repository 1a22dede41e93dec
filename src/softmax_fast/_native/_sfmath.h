/*
 * softmax_fast: small C helpers of the compiled layer (softmax_fast._native).
 *
 * 1. A branch-free exp for float64 and float32 that gcc/clang auto-vectorize with the baseline
 *    instruction set (SSE2 on x86-64, NEON on aarch64): no -march flags needed.
 *      exp(x) = 2^n * exp(r),  n = round(x / ln 2),  r = x - n ln2  (Cody-Waite, |r| <= ln2/2)
 *    exp(r) is a Taylor polynomial (degree 13 for double, 7 for float, Estrin's scheme) whose
 *    truncation error is far below half an ulp; measured error against a correctly rounded exp
 *    is about 1 ulp (tests/native/test_exp.py).
 *    2^n is applied as two factors 2^n1 * 2^n2 (n1 = round(n/2)) so that results in the
 *    subnormal range are rounded once and correctly, overflow gives +inf and -inf gives 0.
 *    NaN propagates.  All integer work is done on the bit patterns with 64/32-bit adds and
 *    shifts, which SSE2 has, so the loops vectorize.
 * 2. OpenMP shims: the extension still compiles (serially) when the compiler has no OpenMP.
 * 3. AddressSanitizer hooks: in a SOFTMAX_FAST_SANITIZE=address build the kernels poison the
 *    padding after each chunk's part of a scratch buffer for the length of a parallel region, so
 *    that a chunk overrunning its part is reported although it stays inside one allocation.
 *    No-ops (and SF_ASAN == 0) in every other build.
 */
#ifndef SOFTMAX_FAST_SFMATH_H
#define SOFTMAX_FAST_SFMATH_H

#include <stdint.h>
#include <string.h>

/* MSVC compiles C without the C99 `restrict` keyword (unless /std:c11): use its spelling. */
#if defined(_MSC_VER) && !defined(__clang__) && !defined(restrict)
#define restrict __restrict
#endif

/* Every extension module of softmax_fast._native includes this header and uses a part of it:
   its non-inline functions are marked as possibly unused (no warning; no effect on the code). */
#if defined(__GNUC__) || defined(__clang__)
#define SF_MAYBE_UNUSED __attribute__((unused))
#else
#define SF_MAYBE_UNUSED
#endif

#ifdef _OPENMP
#include <omp.h>
static inline int sf_openmp_enabled(void) { return 1; }
static inline int sf_omp_get_max_threads(void) { return omp_get_max_threads(); }
static inline int sf_omp_get_thread_num(void) { return omp_get_thread_num(); }
static inline int sf_omp_get_num_threads(void) { return omp_get_num_threads(); }
#else
static inline int sf_openmp_enabled(void) { return 0; }
static inline int sf_omp_get_max_threads(void) { return 1; }
static inline int sf_omp_get_thread_num(void) { return 0; }
static inline int sf_omp_get_num_threads(void) { return 1; }
#endif

/* ---------------------------------------------------------------- AddressSanitizer */

#if defined(__SANITIZE_ADDRESS__) /* gcc */
#define SF_ASAN 1
#elif defined(__has_feature)      /* clang */
#if __has_feature(address_sanitizer)
#define SF_ASAN 1
#endif
#endif
#ifndef SF_ASAN
#define SF_ASAN 0
#endif

#if SF_ASAN
#include <sanitizer/asan_interface.h>
static inline void sf_asan_poison(const void *p, size_t n) { __asan_poison_memory_region(p, n); }
static inline void sf_asan_unpoison(const void *p, size_t n) { __asan_unpoison_memory_region(p, n); }
#else
static inline void sf_asan_poison(const void *p, size_t n) { (void)p; (void)n; }
static inline void sf_asan_unpoison(const void *p, size_t n) { (void)p; (void)n; }
#endif

/* ---------------------------------------------------------------- float64 */

static inline uint64_t sf_bits_d(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
static inline double sf_from_bits_d(uint64_t u) { double x; memcpy(&x, &u, 8); return x; }

static inline double sf_exp_d(double x)
{
    const double log2e = 1.4426950408889634074;
    /* ln2 split so that n * ln2_hi is exact for |n| < 2^11 (fdlibm constants). */
    const double ln2_hi = 6.93147180369123816490e-01;
    const double ln2_lo = 1.90821492927058770002e-10;
    const double shift = 6755399441055744.0; /* 1.5 * 2^52: adding it rounds to an integer */

    /* Clamp (NaN compares false and passes through unchanged). */
    x = x < -746.0 ? -746.0 : x;
    x = x > 710.0 ? 710.0 : x;

    double t = x * log2e + shift;
    double n = t - shift;                      /* round(x / ln2), as a double */
    double r = (x - n * ln2_hi) - n * ln2_lo;  /* |r| <= ~0.347 */

    /* exp(r) = 1 + (r + r^2 P(r)), P = sum_{k=2..13} r^(k-2)/k! (Taylor, truncation < 1e-17).
       P is evaluated with Estrin's scheme: a shallow tree instead of a 12-deep Horner chain, so
       the vectorized loop is bound by throughput rather than latency.  The 1 + (...) form keeps
       the final rounding to a single one on a value near 1. */
    double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    double p23 = 5.0000000000000000000e-01 + r * 1.6666666666666666667e-01;   /* 1/2!, 1/3! */
    double p45 = 4.1666666666666666667e-02 + r * 8.3333333333333333333e-03;   /* 1/4!, 1/5! */
    double p67 = 1.3888888888888888889e-03 + r * 1.9841269841269841253e-04;   /* 1/6!, 1/7! */
    double p89 = 2.4801587301587301566e-05 + r * 2.7557319223985890653e-06;   /* 1/8!, 1/9! */
    double pab = 2.7557319223985890653e-07 + r * 2.5052108385441718775e-08;   /* 1/10!, 1/11! */
    double pcd = 2.0876756987868098979e-09 + r * 1.6059043836821614599e-10;   /* 1/12!, 1/13! */
    double P = (p23 + p45 * r2) + (p67 + p89 * r2) * r4 + (pab + pcd * r2) * r8;
    double p = 1.0 + (r + r2 * P);

    /* 2^n = 2^n1 * 2^n2 with n1 = round(n/2), both factors normal for every clamped x.
       The low bits of (k + shift) hold k + 2^51; adding the bias and shifting by 52 keeps
       only (k + 1023) mod 2^12, which is the biased exponent for |k| <= 538. */
    double n1 = (n * 0.5 + shift) - shift;
    double n2 = n - n1;
    double s1 = sf_from_bits_d((sf_bits_d(n1 + shift) + 1023u) << 52);
    double s2 = sf_from_bits_d((sf_bits_d(n2 + shift) + 1023u) << 52);
    return (p * s1) * s2;
}

/* Flat loops are compiled twice on Linux x86-64 with gcc: a baseline (SSE2) version and an
   AVX2+FMA version, picked at load time from the CPU (ifunc).  The wheel stays portable. */
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__) \
    && (__GNUC__ >= 11) && !defined(SOFTMAX_FAST_NO_MULTIVERSION)
#define SF_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#define SF_MULTIVERSIONED 1
#else
#define SF_MULTIVERSION
#define SF_MULTIVERSIONED 0
#endif

/* The flat loops start on a 64-byte boundary.  Every extension module of softmax_fast._native
   includes them, and their speed otherwise depends on where the linker places them in each
   module (measured: the float32 softmax 12% slower with sf_vexp_f at 48 mod 64 than at 0). */
#if defined(__GNUC__) || defined(__clang__)
#define SF_LOOP_ALIGN __attribute__((aligned(64)))
#else
#define SF_LOOP_ALIGN
#endif

/* x[i] = exp(x[i]) for i < n (a flat, vectorizable loop). */
SF_MULTIVERSION SF_LOOP_ALIGN SF_MAYBE_UNUSED static void sf_vexp_d(double *restrict x, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) x[i] = sf_exp_d(x[i]);
}

/* log(x) for 1 <= x < 2^1023 (a row sum of exp(z - max) is >= 1), branch-free so that a loop
   over it vectorizes.  fdlibm's method: x = 2^k z with z in [sqrt(2)/2, sqrt(2)), f = z - 1,
   s = f / (2 + f), log(z) = f - s (f - R(s^2)) rearranged with hfsq = f^2 / 2 as in fdlibm's
   e_log.c, whose Lg1..Lg7 minimax coefficients are used (error < 1 ulp).  For x >= sqrt(2)/2
   the exponent k is >= 0, so a logical shift and the 2^52 trick turn it into a double. */
static inline double sf_log_ge1_d(double x)
{
    const uint64_t off = 0x3fe6a09e00000000ULL;   /* ~ sqrt(2)/2 */
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    const double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01;
    const double Lg3 = 2.857142874366239149e-01, Lg4 = 2.222219843214978396e-01;
    const double Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01;
    const double Lg7 = 1.479819860511658591e-01;
    uint64_t u = sf_bits_d(x);
    uint64_t tmp = u - off;
    uint64_t k = tmp >> 52;
    double z = sf_from_bits_d(u - (k << 52));
    double dk = sf_from_bits_d(k | 0x4330000000000000ULL) - 4503599627370496.0; /* (double)k */
    double f = z - 1.0;
    double hfsq = 0.5 * f * f;
    double s = f / (2.0 + f);
    double z2 = s * s, w = z2 * z2;
    double t1 = w * (Lg2 + w * (Lg4 + w * Lg6));
    double t2 = z2 * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7)));
    double R = t2 + t1;
    return dk * ln2_hi - ((hfsq - (s * (hfsq + R) + dk * ln2_lo)) - f);
}

/* y[i] = log(x[i]) for x[i] >= 1 (row sums). */
SF_MULTIVERSION SF_LOOP_ALIGN SF_MAYBE_UNUSED static void sf_vlog_ge1_d(const double *restrict x, double *restrict y, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) y[i] = sf_log_ge1_d(x[i]);
}

/* ---------------------------------------------------------------- float32 */

static inline uint32_t sf_bits_f(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static inline float sf_from_bits_f(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }

static inline float sf_exp_f(float x)
{
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f;        /* 9 significant bits: n * ln2_hi exact */
    const float ln2_lo = -2.12194440e-4f;
    const float shift = 12582912.0f;          /* 1.5 * 2^23 */

    x = x < -104.0f ? -104.0f : x;
    x = x > 89.0f ? 89.0f : x;

    float t = x * log2e + shift;
    float n = t - shift;
    float r = (x - n * ln2_hi) - n * ln2_lo;

    /* exp(r) = 1 + (r + r^2 P(r)), P = sum_{k=2..7} r^(k-2)/k!, Estrin as for float64. */
    float r2 = r * r, r4 = r2 * r2;
    float p23 = 0.5f + r * 1.66666667e-1f;            /* 1/2!, 1/3! */
    float p45 = 4.16666667e-2f + r * 8.33333333e-3f;  /* 1/4!, 1/5! */
    float p67 = 1.38888889e-3f + r * 1.98412698e-4f;  /* 1/6!, 1/7! */
    float P = p23 + p45 * r2 + p67 * r4;
    float p = 1.0f + (r + r2 * P);

    float n1 = (n * 0.5f + shift) - shift;
    float n2 = n - n1;
    float s1 = sf_from_bits_f((sf_bits_f(n1 + shift) + 127u) << 23);
    float s2 = sf_from_bits_f((sf_bits_f(n2 + shift) + 127u) << 23);
    return (p * s1) * s2;
}

SF_MULTIVERSION SF_LOOP_ALIGN SF_MAYBE_UNUSED static void sf_vexp_f(float *restrict x, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) x[i] = sf_exp_f(x[i]);
}

#endif /* SOFTMAX_FAST_SFMATH_H */

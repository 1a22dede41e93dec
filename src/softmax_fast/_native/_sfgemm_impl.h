/*
 * Template body of the small-K GEMM micro-kernels, included twice by _sfgemm.h
 * (once for double, once for float).  Expects these macros:
 *   SFG_T  scalar type           SFG_V   AVX vector type         SFG_LANES  lanes per vector
 *   SFG(name)  name mangling     SFG_ZERO, SFG_LOAD, SFG_STORE, SFG_SET1, SFG_FMA,
 *   SFG_MASKLOAD(p, m), SFG_MASKSTORE(p, m, v), SFG_MASK(k) (first k lanes on), SFG_MASKT
 *
 * Both kernels keep an R x NV block of accumulators in registers (R * NV <= 12, plus the
 * operands, within the 16 AVX registers) and issue one FMA per useful vector; the constants R,
 * NV, KC, JV are literals at every call site, so the always_inline bodies unroll completely.
 *
 * Logits tiles are "transposed": class k of tile row r lives at Zt[k * ldz + r], so that the
 * softmax steps that follow run along rows, i.e. along contiguous memory.
 */

/* Zt[k * ldz + r] = sum_j X[r, j] Wt[j, k] for R rows;  Wt is n x (NV * LANES), zero-padded. */
static inline __attribute__((always_inline, target("avx2,fma")))
void SFG(xwt_rows)(const SFG_T *X, Py_ssize_t n, const SFG_T *Wt, SFG_T *Zt, Py_ssize_t ldz,
                   Py_ssize_t K, const int R, const int NV)
{
    SFG_V acc[8][4];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = SFG_ZERO();
    const Py_ssize_t line = 64 / (Py_ssize_t)sizeof(SFG_T);
    for (Py_ssize_t j0 = 0; j0 < n; j0 += line) {
        /* X streams from memory here (the first touch of the tile): prefetch this cache line
           of the next R rows.  Measured: 25-40% faster than leaving it to the hardware. */
        for (int r = 0; r < R; r++)
            _mm_prefetch((const char *)(X + (r + SF_PREFETCH_BLOCKS * R) * n + j0), _MM_HINT_T0);
        Py_ssize_t j1 = j0 + line < n ? j0 + line : n;
        for (Py_ssize_t j = j0; j < j1; j++) {
            SFG_V w[4];
            for (int v = 0; v < NV; v++)
                w[v] = SFG_LOAD(Wt + j * NV * SFG_LANES + v * SFG_LANES);
            for (int r = 0; r < R; r++) {
                SFG_V x = SFG_SET1(X[r * n + j]);
                for (int v = 0; v < NV; v++) acc[r][v] = SFG_FMA(x, w[v], acc[r][v]);
            }
        }
    }
    /* zeroed only to tell gcc that out[k] for k < K <= NV * LANES is always stored */
    SFG_T out[4 * SFG_LANES] = {0};
    for (int r = 0; r < R; r++) {
        for (int v = 0; v < NV; v++) SFG_STORE(out + v * SFG_LANES, acc[r][v]);
        for (Py_ssize_t k = 0; k < K; k++) Zt[k * ldz + r] = out[k];
    }
}

static inline __attribute__((always_inline, target("avx2,fma")))
void SFG(xwt_nv)(const SFG_T *X, Py_ssize_t n, const SFG_T *Wt, SFG_T *Zt, Py_ssize_t rows,
                 Py_ssize_t K, const int R, const int NV)
{
    Py_ssize_t i = 0;
    for (; i + R <= rows; i += R) SFG(xwt_rows)(X + i * n, n, Wt, Zt + i, rows, K, R, NV);
    for (; i < rows; i++) SFG(xwt_rows)(X + i * n, n, Wt, Zt + i, rows, K, 1, NV);
}

/* Zt (K x rows) = (X W^T)^T for X (rows x n) and K <= 4 * LANES, with Wt = W^T zero-padded to
   n x (ceil(K / LANES) * LANES). */
__attribute__((target("avx2,fma")))
SF_MAYBE_UNUSED static void SFG(small_xwt)(const SFG_T *X, const SFG_T *Wt, SFG_T *Zt, Py_ssize_t rows,
                           Py_ssize_t n, Py_ssize_t K)
{
    switch ((K + SFG_LANES - 1) / SFG_LANES) {
    case 1: SFG(xwt_nv)(X, n, Wt, Zt, rows, K, 8, 1); break;
    case 2: SFG(xwt_nv)(X, n, Wt, Zt, rows, K, 6, 2); break;
    case 3: SFG(xwt_nv)(X, n, Wt, Zt, rows, K, 4, 3); break;
    default: SFG(xwt_nv)(X, n, Wt, Zt, rows, K, 3, 4); break;
    }
}

/* acc[kc classes, JV vectors of columns] (+)= G[:, kc classes]^T X[:, columns] over all rows;
   G is transposed: G[k * ldg + i]. */
static inline __attribute__((always_inline, target("avx2,fma")))
void SFG(gtx_block)(const SFG_T *G, Py_ssize_t ldg, const SFG_T *X, Py_ssize_t n, Py_ssize_t rows,
                    SFG_T *acc, int accumulate, const int KC, const int JV, SFG_MASKT last)
{
    SFG_V a[6][3];
    for (int k = 0; k < KC; k++) {
        for (int v = 0; v < JV - 1; v++)
            a[k][v] = accumulate ? SFG_LOAD(acc + k * n + v * SFG_LANES) : SFG_ZERO();
        a[k][JV - 1] = accumulate ? SFG_MASKLOAD(acc + k * n + (JV - 1) * SFG_LANES, last)
                                  : SFG_ZERO();
    }
    for (Py_ssize_t i = 0; i < rows; i++) {
        SFG_V x[3];
        for (int v = 0; v < JV - 1; v++) x[v] = SFG_LOAD(X + i * n + v * SFG_LANES);
        x[JV - 1] = SFG_MASKLOAD(X + i * n + (JV - 1) * SFG_LANES, last);
        for (int k = 0; k < KC; k++) {
            SFG_V g = SFG_SET1(G[k * ldg + i]);
            for (int v = 0; v < JV; v++) a[k][v] = SFG_FMA(g, x[v], a[k][v]);
        }
    }
    for (int k = 0; k < KC; k++) {
        for (int v = 0; v < JV - 1; v++) SFG_STORE(acc + k * n + v * SFG_LANES, a[k][v]);
        SFG_MASKSTORE(acc + k * n + (JV - 1) * SFG_LANES, last, a[k][JV - 1]);
    }
}

static inline __attribute__((always_inline, target("avx2,fma")))
void SFG(gtx_kc)(const SFG_T *G, Py_ssize_t ldg, const SFG_T *X, Py_ssize_t n, Py_ssize_t rows,
                 SFG_T *acc, int accumulate, const int KC, const int JV)
{
    SFG_MASKT full = SFG_MASK(SFG_LANES);
    Py_ssize_t j = 0;
    for (; j + JV * SFG_LANES <= n; j += JV * SFG_LANES)
        SFG(gtx_block)(G, ldg, X + j, n, rows, acc + j, accumulate, KC, JV, full);
    for (; j < n; j += SFG_LANES) {
        Py_ssize_t left = n - j;
        SFG_MASKT last = SFG_MASK(left < SFG_LANES ? left : SFG_LANES);
        SFG(gtx_block)(G, ldg, X + j, n, rows, acc + j, accumulate, KC, 1, last);
    }
}

/* acc (K x n, row-major) = [acc +] G^T X with G transposed (K x rows) and X (rows x n).
   Classes go in blocks of up to 6 (two column vectors a block) or 4 (three vectors), sized
   evenly so that no block runs half empty (K = 10: 5 + 5). */
__attribute__((target("avx2,fma")))
SF_MAYBE_UNUSED static void SFG(small_gtx)(const SFG_T *Gt, const SFG_T *X, SFG_T *acc, Py_ssize_t rows,
                           Py_ssize_t n, Py_ssize_t K, int accumulate)
{
    Py_ssize_t n_blocks = (K + 5) / 6, k0 = 0;
    for (Py_ssize_t blk = 0; blk < n_blocks; blk++) {
        Py_ssize_t k1 = (K * (blk + 1)) / n_blocks;
        const SFG_T *Gk = Gt + k0 * rows;
        SFG_T *acck = acc + k0 * n;
        switch (k1 - k0) {
        case 1: SFG(gtx_kc)(Gk, rows, X, n, rows, acck, accumulate, 1, 3); break;
        case 2: SFG(gtx_kc)(Gk, rows, X, n, rows, acck, accumulate, 2, 3); break;
        case 3: SFG(gtx_kc)(Gk, rows, X, n, rows, acck, accumulate, 3, 3); break;
        case 4: SFG(gtx_kc)(Gk, rows, X, n, rows, acck, accumulate, 4, 3); break;
        case 5: SFG(gtx_kc)(Gk, rows, X, n, rows, acck, accumulate, 5, 2); break;
        default: SFG(gtx_kc)(Gk, rows, X, n, rows, acck, accumulate, 6, 2); break;
        }
        k0 = k1;
    }
}

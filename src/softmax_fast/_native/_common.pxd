"""Declarations shared by every module of the compiled layer: the index types, the C headers'
externs."""

cimport numpy as cnp

ctypedef cnp.intp_t intp_t

# The index dtypes of a CSR matrix (scipy uses int32 where it fits, int64 beyond); one dtype for
# both the column indices and the row pointers of a call.
ctypedef fused csr_index:
    cnp.int32_t
    cnp.int64_t

cdef extern from "_sfmath.h" nogil:
    int sf_openmp_enabled()
    int sf_omp_get_max_threads()
    int sf_omp_get_thread_num()
    int sf_omp_get_num_threads()
    void sf_vexp_d(double *x, Py_ssize_t n)
    void sf_vexp_f(float *x, Py_ssize_t n)
    void sf_vlog_ge1_d(const double *x, double *y, Py_ssize_t n)
    double sf_exp_d(double x)
    float sf_exp_f(float x)
    int SF_MULTIVERSIONED
    int SF_ASAN
    void sf_asan_poison(const void *p, size_t n)
    void sf_asan_unpoison(const void *p, size_t n)

cdef extern from "_sfgemm.h" nogil:
    int SF_HAVE_SMALL_GEMM
    int SF_SMALL_GEMM_MAX_K_D
    int SF_SMALL_GEMM_MAX_K_F
    int sf_cpu_has_avx2_fma()
    void sf_small_xwt_d(const double *X, const double *Wt, double *Z, Py_ssize_t rows,
                        Py_ssize_t n, Py_ssize_t K)
    void sf_small_xwt_f(const float *X, const float *Wt, float *Z, Py_ssize_t rows,
                        Py_ssize_t n, Py_ssize_t K)
    void sf_small_gtx_d(const double *G, const double *X, double *acc, Py_ssize_t rows,
                        Py_ssize_t n, Py_ssize_t K, int accumulate)
    void sf_small_gtx_f(const float *G, const float *X, float *acc, Py_ssize_t rows,
                        Py_ssize_t n, Py_ssize_t K, int accumulate)


cdef inline bint _cpu_runs_small_gemm() noexcept nogil:
    """True when the AVX2+FMA micro-kernels of _sfgemm.h are compiled in and this CPU has both."""
    return SF_HAVE_SMALL_GEMM and sf_cpu_has_avx2_fma()


cdef extern from "_sftile.h" nogil:
    # The dense fused kernel's loops over a transposed tile (see the header), per value type.
    void sf_tile_bias_d(double *Zt, const double *b, Py_ssize_t nt, Py_ssize_t K)
    void sf_tile_bias_f(float *Zt, const float *b, Py_ssize_t nt, Py_ssize_t K)
    void sf_tile_max_d(const double *Zt, double *mx, Py_ssize_t nt, Py_ssize_t K)
    void sf_tile_max_f(const float *Zt, float *mx, Py_ssize_t nt, Py_ssize_t K)
    void sf_tile_subtract_d(double *Zt, const double *mx, Py_ssize_t nt, Py_ssize_t K)
    void sf_tile_subtract_f(float *Zt, const float *mx, Py_ssize_t nt, Py_ssize_t K)
    void sf_tile_sums_d(const double *Zt, double *s, Py_ssize_t nt, Py_ssize_t K)
    void sf_tile_sums_f(const float *Zt, double *s, Py_ssize_t nt, Py_ssize_t K)
    void sf_tile_scale_d(double *Zt, const double *c, Py_ssize_t nt, Py_ssize_t K)
    void sf_tile_scale_f(float *Zt, const float *c, Py_ssize_t nt, Py_ssize_t K)
    void sf_tile_add_to_d(const double *Zt, double *acc, Py_ssize_t stride, Py_ssize_t nt,
                          Py_ssize_t K)
    void sf_tile_add_to_f(const float *Zt, double *acc, Py_ssize_t stride, Py_ssize_t nt,
                          Py_ssize_t K)


cdef extern from "_sfsparse.h" nogil:
    # The CSR kernels' inner loops (see the header), per value type (d, f) and index type.
    void sf_csr_logits_d_i32(const double *data, const cnp.int32_t *indices,
                             const cnp.int32_t *indptr, const double *Wt, const double *b,
                             double *Z, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t K)
    void sf_csr_logits_d_i64(const double *data, const cnp.int64_t *indices,
                             const cnp.int64_t *indptr, const double *Wt, const double *b,
                             double *Z, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t K)
    void sf_csr_logits_f_i32(const float *data, const cnp.int32_t *indices,
                             const cnp.int32_t *indptr, const float *Wt, const float *b,
                             double *Z, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t K)
    void sf_csr_logits_f_i64(const float *data, const cnp.int64_t *indices,
                             const cnp.int64_t *indptr, const float *Wt, const float *b,
                             double *Z, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t K)
    void sf_csr_scatter_d_i32(const double *data, const cnp.int32_t *indices, Py_ssize_t p0,
                              Py_ssize_t p1, const double *g, double *acc, Py_ssize_t K)
    void sf_csr_scatter_d_i64(const double *data, const cnp.int64_t *indices, Py_ssize_t p0,
                              Py_ssize_t p1, const double *g, double *acc, Py_ssize_t K)
    void sf_csr_scatter_f_i32(const float *data, const cnp.int32_t *indices, Py_ssize_t p0,
                              Py_ssize_t p1, const double *g, double *acc, Py_ssize_t K)
    void sf_csr_scatter_f_i64(const float *data, const cnp.int64_t *indices, Py_ssize_t p0,
                              Py_ssize_t p1, const double *g, double *acc, Py_ssize_t K)
    void sf_csc_grad_d_i32(const double *data, const cnp.int32_t *rows,
                           const cnp.int32_t *colptr, const double *G, double *dW,
                           Py_ssize_t ldf, Py_ssize_t ldc, Py_ssize_t j0, Py_ssize_t j1,
                           Py_ssize_t K)
    void sf_csc_grad_d_i64(const double *data, const cnp.int64_t *rows,
                           const cnp.int64_t *colptr, const double *G, double *dW,
                           Py_ssize_t ldf, Py_ssize_t ldc, Py_ssize_t j0, Py_ssize_t j1,
                           Py_ssize_t K)
    void sf_csc_grad_f_i32(const float *data, const cnp.int32_t *rows,
                           const cnp.int32_t *colptr, const double *G, double *dW,
                           Py_ssize_t ldf, Py_ssize_t ldc, Py_ssize_t j0, Py_ssize_t j1,
                           Py_ssize_t K)
    void sf_csc_grad_f_i64(const float *data, const cnp.int64_t *rows,
                           const cnp.int64_t *colptr, const double *G, double *dW,
                           Py_ssize_t ldf, Py_ssize_t ldc, Py_ssize_t j0, Py_ssize_t j1,
                           Py_ssize_t K)
    void sf_csc_logits_d_i32(const double *data, const cnp.int32_t *rows,
                             const cnp.int32_t *colptr, const double *W, Py_ssize_t ldf,
                             Py_ssize_t ldc, double *Z, Py_ssize_t j0, Py_ssize_t j1,
                             Py_ssize_t K)
    void sf_csc_logits_d_i64(const double *data, const cnp.int64_t *rows,
                             const cnp.int64_t *colptr, const double *W, Py_ssize_t ldf,
                             Py_ssize_t ldc, double *Z, Py_ssize_t j0, Py_ssize_t j1,
                             Py_ssize_t K)
    void sf_csc_logits_f_i32(const float *data, const cnp.int32_t *rows,
                             const cnp.int32_t *colptr, const float *W, Py_ssize_t ldf,
                             Py_ssize_t ldc, double *Z, Py_ssize_t j0, Py_ssize_t j1,
                             Py_ssize_t K)
    void sf_csc_logits_f_i64(const float *data, const cnp.int64_t *rows,
                             const cnp.int64_t *colptr, const float *W, Py_ssize_t ldf,
                             Py_ssize_t ldc, double *Z, Py_ssize_t j0, Py_ssize_t j1,
                             Py_ssize_t K)

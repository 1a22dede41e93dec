"""Introspection of the compiled layer: OpenMP, the vectorized exp, the small-GEMM micro-kernels
(read by softmax_fast._config and softmax_fast.kernels)."""

from ._common cimport (
    SF_MULTIVERSIONED, SF_SMALL_GEMM_MAX_K_D, SF_SMALL_GEMM_MAX_K_F, _cpu_runs_small_gemm,
    sf_omp_get_max_threads, sf_openmp_enabled,
)

# The AVX2+FMA micro-kernels of _sfgemm.h are used only when this CPU has both.
cdef bint _CPU_SMALL_GEMM = _cpu_runs_small_gemm()


def openmp_enabled():
    """True when the extension was compiled with OpenMP."""
    return bool(sf_openmp_enabled())


def openmp_max_threads():
    """omp_get_max_threads(): honours OMP_NUM_THREADS and threadpoolctl (1 without OpenMP)."""
    return sf_omp_get_max_threads()


def simd_exp_dispatch():
    """How the vectorized exp is compiled ('baseline' or 'baseline+x86-64-v3 clone')."""
    return "baseline+x86-64-v3 clone" if SF_MULTIVERSIONED else "baseline"


def small_gemm_available():
    """True when the AVX2+FMA small-K GEMM micro-kernels are compiled in and this CPU runs them."""
    return bool(_CPU_SMALL_GEMM)


def small_gemm_max_k(bint single_precision):
    """Largest number of classes the micro-kernels take (float32 or float64)."""
    return SF_SMALL_GEMM_MAX_K_F if single_precision else SF_SMALL_GEMM_MAX_K_D

"""Build and runtime introspection: OpenMP, threads, the vectorized exp, BLAS."""

import sys

from . import _kernels
from ._validation import available_cpus, effective_n_threads
from ._version import __version__


def get_config():
    """How this build of softmax_fast runs here.

    Returns
    -------
    dict with keys
        ``version``; ``openmp`` (compiled with OpenMP); ``max_threads`` (what ``n_threads=None``
        resolves to now: available cores capped by OMP_NUM_THREADS / threadpoolctl);
        ``available_cpus``; ``simd_exp`` (how the vectorized exp is dispatched); ``small_gemm``
        (the AVX2+FMA tile micro-kernels are in use on this CPU); ``python``;
        ``blas`` (the BLAS libraries threadpoolctl sees, with their thread counts).
    """
    try:
        from threadpoolctl import threadpool_info

        blas = [
            {k: info.get(k) for k in ("internal_api", "version", "num_threads", "filepath")}
            for info in threadpool_info()
            if info.get("user_api") == "blas"
        ]
    except Exception:  # pragma: no cover - introspection must never fail
        blas = []
    return {
        "version": __version__,
        "openmp": _kernels.openmp_enabled(),
        "max_threads": effective_n_threads(None),
        "available_cpus": available_cpus(),
        "simd_exp": _kernels.simd_exp_dispatch(),
        "small_gemm": _kernels.small_gemm_available(),
        "python": sys.version.split()[0],
        "blas": blas,
    }


def show_config():
    """Print :func:`get_config` in a readable form."""
    config = get_config()
    print(f"softmax_fast {config['version']} (Python {config['python']})")
    print(f"  OpenMP compiled in : {config['openmp']}")
    print(f"  threads (None)     : {config['max_threads']} of {config['available_cpus']} CPUs")
    print(f"  vectorized exp     : {config['simd_exp']}")
    print(f"  small-K micro-GEMM : {config['small_gemm']}")
    for lib in config["blas"]:
        print(
            f"  BLAS               : {lib['internal_api']} {lib['version']} "
            f"({lib['num_threads']} threads) {lib['filepath']}"
        )

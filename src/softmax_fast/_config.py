"""Build and runtime introspection: compiler, OpenMP, threads, the vectorized exp, BLAS."""

import os
import sys
from typing import Any

from ._native import info as _native_info
from ._threads import available_cpus, effective_n_threads
from ._version import __version__


def get_config() -> dict[str, Any]:
    """How this build of softmax_fast runs here.

    Returns
    -------
    dict with keys
        ``version``; ``openmp`` (compiled with OpenMP); ``max_threads`` (what ``n_threads=None``
        resolves to now: available cores capped by OMP_NUM_THREADS / threadpoolctl);
        ``available_cpus``; ``simd_exp`` (how the vectorized exp is dispatched); ``small_gemm``
        (the AVX2+FMA tile micro-kernels are in use on this CPU); ``python``;
        ``build`` (what setup.py recorded: ``compiler``, ``openmp_flags``,
        ``optimization_flags``, ``sanitize``, ``numpy_build``, ``cython``, ``platform``);
        ``openmp_runtimes`` (every OpenMP runtime loaded in the process, as threadpoolctl sees
        it, with ``vendored`` True for the one shipped in this wheel's ``softmax_fast.libs``);
        ``blas`` (the BLAS libraries threadpoolctl sees, with their thread counts).
    """
    try:
        from threadpoolctl import threadpool_info

        pools = threadpool_info()
    except Exception:  # pragma: no cover - introspection must never fail
        pools = []
    keys = ("internal_api", "version", "num_threads", "filepath")
    blas = [{k: p.get(k) for k in keys} for p in pools if p.get("user_api") == "blas"]
    # Every OpenMP runtime loaded in the process (scikit-learn, for one, vendors its own); the one
    # shipped in softmax_fast's wheel sits in the softmax_fast.libs folder beside the package.
    vendored_dir = os.path.join(os.path.dirname(os.path.dirname(__file__)), "softmax_fast.libs")
    openmp_runtimes = [
        {
            **{k: p.get(k) for k in keys},
            "vendored": os.path.dirname(p.get("filepath") or "") == vendored_dir,
        }
        for p in pools
        if p.get("user_api") == "openmp"
    ]
    return {
        "version": __version__,
        "python": sys.version.split()[0],
        "build": _build_info(),
        "openmp": _native_info.openmp_enabled(),
        "openmp_runtimes": openmp_runtimes,
        "max_threads": effective_n_threads(None),
        "available_cpus": available_cpus(),
        "simd_exp": _native_info.simd_exp_dispatch(),
        "small_gemm": _native_info.small_gemm_available(),
        "blas": blas,
    }


def _build_info():
    """What setup.py recorded at build time (compiler, flags, NumPy and Cython versions)."""
    try:
        from ._build_info import BUILD_INFO
    except ImportError:  # built by something other than this repository's setup.py
        return {"compiler": "unknown (no _build_info.py: not built by setup.py)"}
    return dict(BUILD_INFO)


def show_config() -> None:
    """Print :func:`get_config` in a readable form: version, compiler, OpenMP runtime and
    thread count, vectorized exp, BLAS."""
    config = get_config()
    build = config["build"]
    print(f"softmax_fast {config['version']} (Python {config['python']})")
    print(f"  compiler           : {build.get('compiler')}")
    if build.get("numpy_build"):
        print(
            f"  built with         : NumPy {build['numpy_build']}, Cython {build.get('cython')}, "
            f"flags {' '.join(build.get('optimization_flags') or [])} "
            f"{' '.join(build.get('openmp_flags') or [])} ({build.get('platform')})"
        )
    if build.get("sanitize"):
        print(f"  sanitizers         : {build['sanitize']}")
    print(f"  OpenMP compiled in : {config['openmp']}")
    for rt in config["openmp_runtimes"]:
        where = "vendored in this wheel" if rt["vendored"] else "loaded"
        version = f" {rt['version']}" if rt["version"] else ""
        print(
            f"  OpenMP runtime     : {rt['internal_api']}{version} "
            f"({rt['num_threads']} threads, {where}) {rt['filepath']}"
        )
    print(f"  threads (None)     : {config['max_threads']} of {config['available_cpus']} CPUs")
    print(f"  vectorized exp     : {config['simd_exp']}")
    print(f"  small-K micro-GEMM : {config['small_gemm']}")
    for lib in config["blas"]:
        print(
            f"  BLAS               : {lib['internal_api']} {lib['version']} "
            f"({lib['num_threads']} threads) {lib['filepath']}"
        )

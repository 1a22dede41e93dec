"""Build the softmax_fast._kernels extension.

OpenMP policy
-------------
* gcc / clang: ``-fopenmp``; Apple clang: ``-Xpreprocessor -fopenmp -lomp`` (needs libomp);
  MSVC: ``/openmp``.  Support is probed by compiling and linking a tiny OpenMP program.
* Where the probe fails the extension is built serially and a loud warning is printed;
  ``SOFTMAX_FAST_REQUIRE_OPENMP=1`` turns that into a build error.

Flags are portable and IEEE-exact (``-O3 -fno-trapping-math``): no host-specific ``-march``
flag and no fast-math option in a default build.
``SOFTMAX_FAST_EXTRA_CFLAGS`` (space separated) is an opt-in for local experiments.
"""

import os
import shutil
import sys
import tempfile
import textwrap

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("%d %d\\n", n, omp_get_max_threads());
        return 0;
    }
    """
)


def _openmp_flags(compiler_type):
    """Candidate (compile, link) flag pairs for this compiler, best first."""
    if compiler_type == "msvc":
        return [(["/openmp"], [])]
    if sys.platform == "darwin":
        return [
            (["-Xpreprocessor", "-fopenmp"], ["-lomp"]),
            (["-fopenmp"], ["-fopenmp"]),
        ]
    return [(["-fopenmp"], ["-fopenmp"])]


def _probe_openmp(compiler, compile_args, link_args):
    """True when a small OpenMP program compiles, links and runs with these flags."""
    tmp = tempfile.mkdtemp(prefix="sf_omp_")
    cwd = os.getcwd()
    try:
        os.chdir(tmp)
        with open("probe.c", "w") as f:
            f.write(OPENMP_PROBE)
        objects = compiler.compile(["probe.c"], extra_postargs=compile_args)
        compiler.link_executable(objects, "probe", extra_postargs=link_args)
        return True
    except Exception:  # noqa: BLE001 - any compiler/linker failure means "no OpenMP"
        return False
    finally:
        os.chdir(cwd)
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExtWithOpenMP(build_ext):
    """build_ext that adds OpenMP flags when the compiler supports them."""

    def build_extensions(self):
        compiler_type = self.compiler.compiler_type
        found = None
        for compile_args, link_args in _openmp_flags(compiler_type):
            if _probe_openmp(self.compiler, compile_args, link_args):
                found = (compile_args, link_args)
                break
        if found is None:
            message = (
                "\n" + "*" * 78 + "\n"
                "softmax_fast: the C compiler has no usable OpenMP support.\n"
                "The kernels will be built SERIALLY (n_threads is ignored; one core).\n"
                "On macOS install libomp (`brew install libomp`) and rebuild.\n"
                "Set SOFTMAX_FAST_REQUIRE_OPENMP=1 to make this a build error.\n" + "*" * 78
            )
            if os.environ.get("SOFTMAX_FAST_REQUIRE_OPENMP", "0") not in ("", "0"):
                raise RuntimeError(message)
            print(message, file=sys.stderr)
        for ext in self.extensions:
            if compiler_type == "msvc":
                ext.extra_compile_args += ["/O2"]
            else:
                # -fno-trapping-math lets gcc vectorize the branch-free exp (its clamps become
                # blends).  It changes no result: it only drops the assumption that floating-point
                # exceptions trap.  It is not a fast-math option: IEEE semantics are kept.
                ext.extra_compile_args += ["-O3", "-fno-trapping-math"]
            if found is not None:
                ext.extra_compile_args += found[0]
                ext.extra_link_args += found[1]
            ext.extra_compile_args += os.environ.get("SOFTMAX_FAST_EXTRA_CFLAGS", "").split()
        super().build_extensions()


extensions = [
    Extension(
        "softmax_fast._kernels",
        sources=["src/softmax_fast/_kernels.pyx"],
        include_dirs=[np.get_include(), "src/softmax_fast"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
            "autotestdict": False,
        },
        annotate=bool(os.environ.get("SOFTMAX_FAST_ANNOTATE")),
    ),
    cmdclass={"build_ext": BuildExtWithOpenMP},
)

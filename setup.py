"""Build the extension modules of softmax_fast._native (one per .pyx file there).

OpenMP policy
-------------
* gcc / clang: ``-fopenmp``; Apple clang: ``-Xpreprocessor -fopenmp -lomp`` (needs libomp);
  MSVC: ``/openmp``.  Support is probed by compiling and linking a tiny OpenMP program.
* Where the probe fails the extension is built serially and a loud warning is printed;
  ``SOFTMAX_FAST_REQUIRE_OPENMP=1`` turns that into a build error.

Flags are portable and IEEE-exact (``-O3 -fno-trapping-math``): no host-specific ``-march``
flag and no fast-math option in a default build.
``SOFTMAX_FAST_EXTRA_CFLAGS`` (space separated) is an opt-in for local experiments.

Environment variables read here
-------------------------------
``SOFTMAX_FAST_REQUIRE_OPENMP=1``
    Fail the build when the compiler has no OpenMP (wheel builds set it).
``SOFTMAX_FAST_OPENMP_PREFIX=/path``
    macOS: where libomp lives (``include/omp.h``, ``lib/libomp.dylib``); its include and
    library directories and an rpath are added.  Wheel builds use conda-forge's
    ``llvm-openmp`` (see ``tools/cibw_before_build_macos.sh``); a Homebrew libomp works for
    local builds (``SOFTMAX_FAST_OPENMP_PREFIX=$(brew --prefix libomp)``).
``SOFTMAX_FAST_SANITIZE=address,undefined``
    Opt-in AddressSanitizer / UndefinedBehaviorSanitizer build (gcc or clang): adds
    ``-fsanitize=...``, frame pointers, debug info, ``-O1`` and makes every UBSan finding
    fatal.  See ``tools/run_sanitizers.sh`` for how to run the tests under it.
``SOFTMAX_FAST_ANNOTATE=1``
    Also write Cython's ``-a`` HTML annotation.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

NATIVE_DIR = "src/softmax_fast/_native"
# The extension modules, one per .pyx file of NATIVE_DIR (tests/native/test_stub.py checks their
# stubs).
NATIVE_MODULES = (
    "_workspace",
    "rowwise",
    "dense",
    "csr",
    "vectors",
    "info",
    "testing",
    "incremental",
)

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


def openmp_flag_candidates(compiler_type, platform=sys.platform, environ=os.environ):
    """Candidate ``(compile_args, link_args)`` pairs for OpenMP with this compiler, best first.

    Pure function of its arguments so that the macOS and Windows branches are tested on Linux
    (``tests/packaging/test_packaging.py``).
    """
    if compiler_type == "msvc":
        # MSVC's OpenMP 2.0 runtime (vcomp140.dll) is enough for Cython's prange.
        return [(["/openmp"], [])]
    if platform == "darwin":
        prefix = environ.get("SOFTMAX_FAST_OPENMP_PREFIX", "")
        extra_compile, extra_link = [], []
        if prefix:
            lib = os.path.join(prefix, "lib")
            extra_compile = ["-I" + os.path.join(prefix, "include")]
            extra_link = ["-L" + lib, "-Wl,-rpath," + lib]
        # Apple clang has no -fopenmp driver flag; a Homebrew/LLVM clang or gcc does.
        return [
            (["-Xpreprocessor", "-fopenmp", *extra_compile], [*extra_link, "-lomp"]),
            (["-fopenmp", *extra_compile], [*extra_link, "-fopenmp"]),
        ]
    return [(["-fopenmp"], ["-fopenmp"])]


def optimization_flags(compiler_type):
    """Portable optimization flags: no -march, no fast-math."""
    if compiler_type == "msvc":
        return ["/O2"]
    # -fno-trapping-math lets gcc vectorize the branch-free exp (its clamps become blends).
    # It changes no result: it only drops the assumption that floating-point exceptions trap.
    # It is not a fast-math option: IEEE semantics are kept.
    return ["-O3", "-fno-trapping-math"]


def sanitizer_flags(spec, compiler_type):
    """``(compile_args, link_args)`` for ``SOFTMAX_FAST_SANITIZE=spec`` (empty spec: none)."""
    spec = spec.strip()
    if not spec or spec == "0":
        return [], []
    if compiler_type == "msvc":
        raise RuntimeError("SOFTMAX_FAST_SANITIZE is supported with gcc or clang only")
    allowed = {"address", "undefined", "leak", "thread"}
    parts = [p for p in spec.split(",") if p]
    unknown = sorted(set(parts) - allowed)
    if unknown:
        raise RuntimeError(
            f"SOFTMAX_FAST_SANITIZE: unknown sanitizer(s) {unknown}; use a comma-separated "
            f"subset of {sorted(allowed)}"
        )
    flag = "-fsanitize=" + ",".join(parts)
    compile_args = [flag, "-fno-omit-frame-pointer", "-g", "-O1"]
    if "undefined" in parts:
        compile_args.append("-fno-sanitize-recover=undefined")
    return compile_args, [flag]


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
        for compile_args, link_args in openmp_flag_candidates(compiler_type):
            if _probe_openmp(self.compiler, compile_args, link_args):
                found = (compile_args, link_args)
                break
        if found is None:
            message = (
                "\n" + "*" * 78 + "\n"
                "softmax_fast: the C compiler has no usable OpenMP support.\n"
                "The kernels will be built SERIALLY (n_threads is ignored; one core).\n"
                "On macOS install libomp (`brew install libomp`) and rebuild with\n"
                "SOFTMAX_FAST_OPENMP_PREFIX=$(brew --prefix libomp).\n"
                "Set SOFTMAX_FAST_REQUIRE_OPENMP=1 to make this a build error.\n" + "*" * 78
            )
            if os.environ.get("SOFTMAX_FAST_REQUIRE_OPENMP", "0") not in ("", "0"):
                raise RuntimeError(message)
            print(message, file=sys.stderr)
        sanitize_compile, sanitize_link = sanitizer_flags(
            os.environ.get("SOFTMAX_FAST_SANITIZE", ""), compiler_type
        )
        for ext in self.extensions:
            ext.extra_compile_args += optimization_flags(compiler_type)
            if found is not None:
                ext.extra_compile_args += found[0]
                ext.extra_link_args += found[1]
            ext.extra_compile_args += os.environ.get("SOFTMAX_FAST_EXTRA_CFLAGS", "").split()
            # Last, so that the sanitizer build's -O1 wins over -O3.
            ext.extra_compile_args += sanitize_compile
            ext.extra_link_args += sanitize_link
        super().build_extensions()
        self._write_build_info(compiler_type, found)

    def _write_build_info(self, compiler_type, openmp_flags):
        """Record how the extension was built in ``softmax_fast/_build_info.py`` next to it
        (in the wheel, or in src/ for an in-place/editable build), for ``show_config()``."""
        info = {
            "compiler_type": compiler_type,
            "compiler": compiler_version(self.compiler),
            "openmp_flags": openmp_flags[0] if openmp_flags else None,
            "optimization_flags": optimization_flags(compiler_type),
            "sanitize": os.environ.get("SOFTMAX_FAST_SANITIZE", "") or None,
            "extra_cflags": os.environ.get("SOFTMAX_FAST_EXTRA_CFLAGS", "") or None,
            "numpy_build": _module_version("numpy"),
            "cython": _module_version("Cython"),
            "platform": sysconfig.get_platform(),
        }
        text = '"""Written by setup.py at build time; read by get_config()."""\n\n'
        text += f"BUILD_INFO = {info!r}\n"
        # In the built package (what a wheel ships) and in the source package (what an editable
        # or in-place build imports); the two are the same folder for --inplace.  The package
        # folder is the one above the extensions' folder softmax_fast/_native/.
        info_ext = os.path.abspath(self.get_ext_fullpath("softmax_fast._native.info"))
        targets = {
            os.path.dirname(os.path.dirname(info_ext)),
            os.path.join(os.path.dirname(os.path.abspath(__file__)), "src", "softmax_fast"),
        }
        for folder in targets:
            if os.path.isdir(folder):
                with open(os.path.join(folder, "_build_info.py"), "w") as f:
                    f.write(text)


def _module_version(name):
    module = __import__(name)
    return getattr(module, "__version__", None)


def compiler_version(compiler):
    """First line of ``<cc> --version`` (gcc/clang), or the compiler class for MSVC."""
    executable = getattr(compiler, "compiler_so", None) or getattr(compiler, "cc", None)
    if isinstance(executable, (list, tuple)):
        executable = executable[0] if executable else None
    if not executable or compiler.compiler_type == "msvc":
        return f"{compiler.compiler_type} ({executable or 'unknown executable'})"
    try:
        out = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
        return out.splitlines()[0].strip() if out.strip() else executable
    except (OSError, subprocess.SubprocessError):
        return executable


def main():
    import numpy as np
    from Cython.Build import cythonize

    extensions = [
        Extension(
            f"softmax_fast._native.{name}",
            sources=[f"{NATIVE_DIR}/{name}.pyx"],
            include_dirs=[np.get_include(), NATIVE_DIR],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
        )
        for name in NATIVE_MODULES
    ]
    setup(
        ext_modules=cythonize(
            extensions,
            # The one place of the Cython directives: no .pyx file sets its own.
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


# setuptools' build backend executes this file with __name__ == "__main__"; tests import it.
if __name__ == "__main__":
    main()

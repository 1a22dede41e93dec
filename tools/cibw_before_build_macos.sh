#!/usr/bin/env bash
# cibuildwheel `before-build` on macOS: put an OpenMP runtime (libomp) for the wheel's
# architecture into $SOFTMAX_FAST_OPENMP_PREFIX, where setup.py finds it.
#
# Source: conda-forge's `llvm-openmp` package (LLVM's libomp, Apache-2.0 WITH LLVM-exception),
# installed with micromamba (or conda) for the subdir in $LIBOMP_CONDA_SUBDIR (osx-64 or
# osx-arm64, set per architecture in [tool.cibuildwheel] overrides).  conda-forge builds it for
# macOS 10.13 (x86_64) and 11.0 (arm64), the MACOSX_DEPLOYMENT_TARGET values pyproject.toml sets,
# so the vendored dylib never needs a newer macOS than the wheel's tag says; Homebrew's bottles
# are built for the runner's own macOS and would make delocate refuse the wheel.
# delocate-wheel (cibuildwheel's default macOS repair) then copies libomp.dylib into the wheel.
#
# The CI runner must provide micromamba or conda on PATH (e.g. the setup-micromamba action).
set -euo pipefail
: "${SOFTMAX_FAST_OPENMP_PREFIX:?set by [tool.cibuildwheel] overrides}"
: "${LIBOMP_CONDA_SUBDIR:?set by [tool.cibuildwheel] overrides}"
LLVM_OPENMP_VERSION=${LLVM_OPENMP_VERSION:-19.1.7}

if [[ -f "$SOFTMAX_FAST_OPENMP_PREFIX/lib/libomp.dylib" ]]; then
    exit 0  # one install serves every Python version of this architecture
fi
if command -v micromamba >/dev/null; then
    micromamba create --yes --prefix "$SOFTMAX_FAST_OPENMP_PREFIX" --platform "$LIBOMP_CONDA_SUBDIR" \
        --channel conda-forge "llvm-openmp=$LLVM_OPENMP_VERSION"
elif command -v conda >/dev/null; then
    CONDA_SUBDIR="$LIBOMP_CONDA_SUBDIR" conda create --yes --prefix "$SOFTMAX_FAST_OPENMP_PREFIX" \
        --channel conda-forge --override-channels "llvm-openmp=$LLVM_OPENMP_VERSION"
else
    echo "cibw_before_build_macos.sh: needs micromamba or conda on PATH for conda-forge's" \
         "llvm-openmp" >&2
    exit 1
fi
test -f "$SOFTMAX_FAST_OPENMP_PREFIX/include/omp.h"
test -f "$SOFTMAX_FAST_OPENMP_PREFIX/lib/libomp.dylib"
echo "libomp $LLVM_OPENMP_VERSION for $LIBOMP_CONDA_SUBDIR in $SOFTMAX_FAST_OPENMP_PREFIX"

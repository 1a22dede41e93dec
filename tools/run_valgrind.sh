#!/usr/bin/env bash
# Run a reduced set of the kernel tests under valgrind memcheck (docs/reliability.md).
# Exits non-zero when a test fails or memcheck reports an error (invalid read/write, use of
# uninitialised values in a branch, invalid free, ...).
#
#   tools/run_valgrind.sh                           # the default selection below
#   tools/run_valgrind.sh tests/native/test_exp.py  # any pytest arguments instead
#
# Needs valgrind and a Python with the test extras and build requirements installed;
# PYTHON=/path/to/python picks another.  The current checkout (uncommitted edits included) is
# built normally (-O3, plus -g for line numbers) in a temporary directory, never in place.
# SF_KEEP_WORKDIR=1 keeps the temporary directory.
set -euo pipefail

command -v valgrind >/dev/null || { echo "run_valgrind.sh: valgrind is not installed" >&2; exit 2; }
# shellcheck source=tools/private_build.sh
source "$(dirname "$0")/private_build.sh"
sf_private_build sf-valgrind SOFTMAX_FAST_EXTRA_CFLAGS=-g
sf_check_import

# Default selection: the kernel tests (every kernel in both dtypes, both tile paths, one and two
# threads, in place, layouts, bad rows, extreme logits, allocation failures), thinned for a run
# about 50 times slower than native: parametrizations with a 1000-row or 1000-class side and the
# finite-difference tests are left out, then at most SF_VALGRIND_PER_TEST (default 10)
# parametrizations of each test function are kept (40 of the tile-path grid, which covers the
# micro-kernels' K and n branches), a seeded random sample so that every axis of a grid is
# spread.  The child processes of test_alloc_failure.py are left
# out too (valgrind does not follow them), and so are the estimator fits of test_threads.py.
cd "$work/src"
if [[ $# -eq 0 ]]; then
    "$py" -m pytest -p no:cacheprovider --collect-only -q \
        tests/kernels/test_kernels.py tests/native/test_tile_paths.py \
        tests/threads/test_threads.py tests/native/test_alloc_failure.py \
        tests/kernels/test_bad_input.py >"$work/collected.txt"
    "$py" - "$work/collected.txt" "${SF_VALGRIND_PER_TEST:-10}" >"$work/selected.txt" <<'EOF2'
import collections
import random
import sys

per_test = int(sys.argv[2])
groups = collections.defaultdict(list)
for line in open(sys.argv[1]):
    node = line.strip()
    if "::" not in node:
        continue
    if "1000" in node or "finite_differences" in node or "child_process" in node:
        continue
    if "larger_than_memory" in node or "omp_num_threads" in node:
        continue
    if "fits_equal" in node or "test_fit_with" in node:  # estimator fits (threads/)
        continue
    groups[node.split("[")[0]].append(node)
for name, nodes in groups.items():
    keep = 4 * per_test if "tile_paths" in name else per_test
    for node in random.Random(0).sample(nodes, min(keep, len(nodes))):
        print(node)
EOF2
    mapfile -t selected <"$work/selected.txt"
    echo "== ${#selected[@]} tests selected"
    set -- -q "${selected[@]}"
fi

# PYTHONMALLOC=malloc: every Python object comes from malloc, which memcheck tracks (pymalloc's
#   arenas would hide them and raise false "uninitialised" reports in address_in_range).
# OMP_WAIT_POLICY=passive: idle OpenMP threads sleep instead of spinning (valgrind runs one
#   thread at a time, so spinning costs a whole time slice).
# --leak-check=no: CPython and NumPy keep memory alive until exit by design; leaks are the
#   sanitizer script's business (SF_DETECT_LEAKS=1), not this run's.
# tools/valgrind.supp: CPython 3.11's own uninitialised-value reports and one ld.so false
#   positive (explained there); nothing in the extension, NumPy or BLAS is suppressed.
start=$SECONDS
status=0
PYTHONMALLOC=malloc OMP_WAIT_POLICY=passive \
    valgrind --tool=memcheck --error-exitcode=99 --leak-check=no --num-callers=40 \
    --track-origins=yes --suppressions="$root/tools/valgrind.supp" \
    "$py" -m pytest -p no:cacheprovider "$@" || status=$?
echo "== valgrind run took $((SECONDS - start)) s, exit status $status"
if [[ $status -eq 99 ]]; then
    echo "run_valgrind.sh: memcheck reported errors (see above)" >&2
fi
exit "$status"

#!/usr/bin/env bash
# Run the test suite against an AddressSanitizer + UndefinedBehaviorSanitizer build of the
# extension (docs/reliability.md).  Exits non-zero when a test fails or a sanitizer reports.
#
#   tools/run_sanitizers.sh                                # tests/ (about 10 min on 2 cores)
#   tools/run_sanitizers.sh tests/kernels/test_kernels.py  # any pytest arguments instead
#
# Needs gcc (or clang: CC=clang) and a Python with the test extras and the build requirements
# installed (numpy, scipy, Cython, setuptools, pytest, ...): e.g. the one of `pip install -e
# ".[test]"`; PYTHON=/path/to/python picks another.  The current checkout (uncommitted edits
# included) is copied and built in a temporary directory, never in place: the checkout's own
# extension is left alone and the sanitized one is visible only to this run (PYTHONPATH).
# SF_DETECT_LEAKS=1 also runs LeakSanitizer at exit and fails on a leak allocated with the
# extension on the stack (the interpreter's own leaks at exit are listed, not counted).
# SF_KEEP_WORKDIR=1 keeps the temporary directory.
set -euo pipefail

cc=${CC:-gcc}
# shellcheck source=tools/private_build.sh
source "$(dirname "$0")/private_build.sh"

# 1-2. Copy the checkout and build it with the sanitizers into a private site directory.
sf_private_build sf-sanitize CC="$cc" SOFTMAX_FAST_SANITIZE=address,undefined

# 3. The sanitizer runtimes.  CPython is not instrumented, so ASan must be preloaded (it has to
# come first in the library list); libubsan is loaded with it (gcc links it separately).
runtimes=""
for lib in asan ubsan; do
    path=$("$cc" -print-file-name="lib$lib.so")
    if [[ "$path" == /* && -e "$path" ]]; then
        runtimes="$runtimes${runtimes:+:}$path"
    fi
done
if [[ "$runtimes" != *asan* ]]; then
    echo "run_sanitizers.sh: $cc has no libasan.so" >&2
    exit 2
fi

leaks="detect_leaks=0"
if [[ "${SF_DETECT_LEAKS:-0}" == 1 ]]; then
    # Every stack passes through libpython, so no suppression file can tell the interpreter's
    # leaks at exit from the extension's: report them all, fail on the extension's (step 6).
    leaks="detect_leaks=1"
    export LSAN_OPTIONS="exitcode=0"
fi
# detect_leaks=0: CPython does not free everything at exit by design (interned objects,
#   static types, module state), and NumPy/OpenBLAS keep caches; see docs/reliability.md.
# abort_on_error: a finding kills the process (exit status 134), which fails the run.
# allocator_may_return_null=1: malloc returns NULL when it cannot allocate, as the real one
#   does (ASan aborts otherwise); tests/native/test_alloc_failure.py checks what happens then.
# detect_stack_use_after_return=0: libgomp's worker threads and Cython's generated code are
#   fine with it, but it makes the run several times slower for no extra coverage here.
export ASAN_OPTIONS="$leaks:abort_on_error=1:halt_on_error=1:allocator_may_return_null=1:strict_string_checks=1:detect_stack_use_after_return=0:check_initialization_order=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:abort_on_error=1"
# Python's own allocator hands out memory from 256 KiB arenas that ASan sees as one block;
# with the system malloc every Python object gets ASan's red zones.
export PYTHONMALLOC=malloc

# 4. Check that the tests will import the sanitized build.
sf_check_import LD_PRELOAD="$runtimes"

# 5. The tests.  Left out:
#  * tests/packaging/test_build.py compiles the package again (without OpenMP, without
#    sanitizers): it tests setup.py, not this build, and takes minutes.
#  * test_omp_num_threads_caps_the_default_thread_count[bare-environment] starts a child
#    Python with a bare environment (no LD_PRELOAD), where the sanitized extension cannot load.
#  * test_repeated_calls_do_not_leak measures resident memory over 10,000 calls: ASan keeps
#    freed blocks in quarantine (up to 256 MiB) on purpose, so resident memory grows there.
#    Leaks are what SF_DETECT_LEAKS=1 checks in this build.
if [[ $# -eq 0 ]]; then
    set -- tests -q
fi
cd "$work/src"
start=$SECONDS
status=0
LD_PRELOAD="$runtimes" "$py" -m pytest -p no:cacheprovider \
    --deselect tests/packaging/test_build.py \
    --deselect "tests/threads/test_config.py::test_omp_num_threads_caps_the_default_thread_count[bare-environment]" \
    --deselect tests/kernels/test_memory.py::test_repeated_calls_do_not_leak \
    "$@" 2> >(tee "$work/stderr.log" >&2) || status=$?
echo "== tests ran in $((SECONDS - start)) s, exit status $status"

# 6. Leaks (SF_DETECT_LEAKS=1): a leak report whose allocation stack has a frame of the
# extension (a file of src/softmax_fast/_native/: its .c, .pyx, .pxd or _sf*.h headers) fails the
# run.
if [[ "${SF_DETECT_LEAKS:-0}" == 1 ]]; then
    sleep 1  # let tee finish
    ours=$(awk 'BEGIN { RS = "" } /(Direct|Indirect) leak/ && /_native\/|_sfmath|_sfgemm/' \
        "$work/stderr.log")
    echo "== LeakSanitizer: $(grep -c 'leak of' "$work/stderr.log" || true) leak reports in all," \
        "$(grep -c 'leak of' <<<"$ours" || true) with the extension on the stack"
    if [[ -n "$ours" ]]; then
        echo "$ours" >&2
        [[ $status -ne 0 ]] || status=98
    fi
fi
if [[ $status -ge 128 ]]; then
    echo "run_sanitizers.sh: the test process died (signal $((status - 128))): see the" \
        "sanitizer report above" >&2
fi
exit "$status"

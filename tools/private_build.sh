# Sourced by tools/run_sanitizers.sh and tools/run_valgrind.sh; not run on its own.

# sf_private_build NAME [VAR=value ...]
#   Copy the checkout (tracked and untracked-but-not-ignored files: uncommitted edits included,
#   no build outputs) into a new temporary directory and build it there, with the given
#   environment, into "$work/site": never in place, so the checkout's own extension is left
#   alone.  Sets root (the checkout), py (the real interpreter, not a pyenv/conda shim script:
#   valgrind and LD_PRELOAD need it; PYTHON=/path/to/python picks another) and work.
#   SF_KEEP_WORKDIR=1 keeps the directory.
sf_private_build() {
    local name=$1
    shift
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    py=$("${PYTHON:-python3}" -c 'import sys; print(sys.executable)')
    work=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX")
    if [[ "${SF_KEEP_WORKDIR:-0}" == 1 ]]; then
        echo "work directory: $work"
    else
        trap 'rm -rf "$work"' EXIT
    fi
    mkdir -p "$work/src"
    if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        # Tracked files deleted in the work tree (an uncommitted deletion) are left out.
        git -C "$root" ls-files -co --exclude-standard -z | (
            cd "$root" && while IFS= read -r -d '' f; do
                if [[ -e "$f" ]]; then printf '%s\0' "$f"; fi
            done | tar --null -T - -cf -
        ) | tar -xf - -C "$work/src"
    else
        tar -C "$root" --exclude=build --exclude='*.so' --exclude='*.egg-info' \
            --exclude='src/softmax_fast/_native/*.c' -cf - . | tar -xf - -C "$work/src"
    fi
    local start=$SECONDS
    echo "== building the extension ($py${*:+, $*})"
    env "$@" "$py" -m pip install --quiet --no-build-isolation --no-deps --no-compile \
        --target "$work/site" "$work/src"
    echo "== built in $((SECONDS - start)) s"
    export PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}"
    export PATH="$work/site/bin:$PATH"
}

# sf_check_import [VAR=value ...]
#   Fail unless Python (with the given environment) imports the private build.
sf_check_import() {
    env "$@" "$py" - "$work/site" <<'PYEOF'
import sys
import softmax_fast._native.rowwise as k
if not k.__file__.startswith(sys.argv[1]):
    sys.exit(f"imported {k.__file__}, not the build in {sys.argv[1]}")
print("== testing", k.__file__)
PYEOF
}

#!/usr/bin/env bash
# The built wheel against the oldest dependencies pyproject.toml allows.
#
#   bash tools/test_lowest_deps.sh [WHEEL]      (default: the one in wheelhouse/)
#
# A fresh virtualenv (.lowest-deps-venv) gets the wheel, binary only, with NumPy 1.26, SciPy 1.11,
# scikit-learn 1.3, threadpoolctl 3.5 and tqdm 4.62 (the lower bounds in [project.dependencies])
# and dask and distributed 2024.8 (those of the dask extra), and statsmodels 0.14.4 (the test
# extra's lower bound) with pandas 2.2 (statsmodels 0.14 does not import with pandas 3); the
# wheel is built against NumPy 2, so this is also the NumPy 1.x run-time check.  Then it runs the test suite against it.  Keep
# the pins below equal to those lower bounds.
set -euo pipefail
cd "$(dirname "$0")/.."
wheel=${1:-$(ls wheelhouse/*.whl)}
rm -rf .lowest-deps-venv
python3 -m venv .lowest-deps-venv
# shellcheck disable=SC1091
source .lowest-deps-venv/bin/activate
python -m pip install --upgrade pip >/dev/null
python -m pip install --only-binary=:all: "${wheel}[test]" \
    "numpy==1.26.*" "scipy==1.11.*" "scikit-learn==1.3.*" "threadpoolctl==3.5.*" "tqdm==4.62.*" \
    "dask[array]==2024.8.0" "distributed==2024.8.0" "statsmodels==0.14.4" "pandas==2.2.3"
python -m pip list 2>/dev/null \
    | grep -E '^(numpy|scipy|scikit-learn|threadpoolctl|tqdm|dask|distributed|statsmodels|pandas|softmax-fast) '
python -m pytest tests benchmarks --benchmark-disable -q -p no:cacheprovider

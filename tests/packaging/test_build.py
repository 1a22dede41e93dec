"""The build without OpenMP: a loud warning and a working serial extension, or, with
SOFTMAX_FAST_REQUIRE_OPENMP=1, a build error.  A compiler without OpenMP is simulated by a
wrapper around the system C compiler that fails on -fopenmp (Linux/gcc only; ~1 minute)."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="gcc wrapper: Linux only"),
    pytest.mark.skipif(not (REPO / "setup.py").exists(), reason="needs the source tree"),
    pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc"),
]


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory):
    pytest.importorskip("Cython")
    pytest.importorskip("setuptools")
    root = tmp_path_factory.mktemp("serial-build")
    shutil.copy(REPO / "setup.py", root)
    shutil.copy(REPO / "pyproject.toml", root)
    shutil.copytree(
        REPO / "src", root / "src", ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__")
    )
    cc = root / "cc-without-openmp"
    cc.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do case "$a" in -fopenmp) echo "no OpenMP" >&2; exit 1;; esac; done\n'
        'exec gcc "$@"\n'
    )
    cc.chmod(cc.stat().st_mode | stat.S_IEXEC)
    return root, str(cc)


def _build(root, cc, **env):
    environ = {k: v for k, v in os.environ.items() if k != "SOFTMAX_FAST_REQUIRE_OPENMP"}
    environ.update(CC=str(cc), **env)
    return subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace", "-q"],
        cwd=root,
        env=environ,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_required_openmp_makes_the_build_fail(source_copy):
    root, cc = source_copy
    result = _build(root, cc, SOFTMAX_FAST_REQUIRE_OPENMP="1")
    assert result.returncode != 0
    assert "no usable OpenMP support" in result.stdout + result.stderr


def test_build_without_openmp_warns_and_runs_serially(source_copy):
    root, cc = source_copy
    result = _build(root, cc)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "built SERIALLY" in result.stderr
    code = (
        "import numpy as np, softmax_fast as sf\n"
        "from softmax_fast import reference\n"
        "Z = np.random.default_rng(0).standard_normal((500, 7))\n"
        "assert sf.get_config()['openmp'] is False\n"
        "import softmax_fast._native.testing as hooks\n"
        "assert hooks.openmp_team_size(2) == 1\n"
        "assert np.allclose(sf.softmax(Z, n_threads=2), reference.softmax(Z), rtol=1e-13)\n"
        "print('serial ok')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root / "src")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "serial ok" in run.stdout

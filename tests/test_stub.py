"""The typed stub _kernels.pyi matches the compiled extension (mypy.stubtest)."""

import subprocess
import sys

import pytest


def test_kernels_stub_matches_the_extension():
    pytest.importorskip("mypy")
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "softmax_fast._kernels"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr

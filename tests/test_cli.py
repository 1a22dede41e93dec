"""The softmax-fast command (the installed console script and its functions)."""

import io
import shutil
import subprocess
import sys

import pytest

from softmax_fast import cli


def test_demo_quick_trains_and_matches_the_reference_solution():
    out = io.StringIO()
    rows = cli.demo(quick=True, out=out)
    (fast, _, _, obj_fast, acc_fast), (ref, _, _, obj_ref, acc_ref) = rows
    assert fast == "softmax_fast" and ref == "NumPy reference"
    # Same solver on the same objective: the same optimum, and a useful classifier.
    assert obj_fast == pytest.approx(obj_ref, rel=1e-6)
    assert acc_fast > 0.5 and abs(acc_fast - acc_ref) < 0.01
    assert "faster than the NumPy reference" in out.getvalue()


def test_info_prints_the_configuration(capsys):
    assert cli.main(["info"]) == 0
    assert "OpenMP compiled in" in capsys.readouterr().out


def test_console_script_is_installed():
    exe = shutil.which("softmax-fast")
    if exe is None:
        pytest.skip("console script not on PATH (package not installed with pip)")
    result = subprocess.run([exe, "info"], capture_output=True, text=True, check=True)
    assert "softmax_fast" in result.stdout


def test_unknown_command_exits_with_usage_error():
    result = subprocess.run(
        [sys.executable, "-m", "softmax_fast.cli", "nonsense"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "invalid choice" in result.stderr

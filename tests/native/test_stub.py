"""Every extension module of softmax_fast._native has a typed stub (``<module>.pyi``) that matches
it (mypy.stubtest).

The modules are found on disk: every built extension of the ``_native`` folder and every ``.pyx``
file shipped beside them, so that a new module without a stub, or a stub that drifted, fails.
"""

import importlib.machinery
import subprocess
import sys
from pathlib import Path

import pytest

import softmax_fast._native as native

NATIVE = Path(native.__file__).parent


def _module_name(path):
    """The module a file of _native builds or is, or None (EXTENSION_SUFFIXES: longest first)."""
    if path.suffix == ".pyx":
        return path.stem
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return None


def _extension_modules():
    return sorted({name for p in NATIVE.iterdir() if (name := _module_name(p)) is not None})


EXTENSION_MODULES = _extension_modules()


def test_the_extension_modules_are_found():
    assert {"_workspace", "rowwise", "dense", "info", "testing"} <= set(EXTENSION_MODULES)


@pytest.mark.parametrize("name", EXTENSION_MODULES)
def test_kernels_stub_matches_the_extension(name):
    assert (NATIVE / f"{name}.pyi").is_file(), f"softmax_fast/_native/{name}.pyi is missing"
    pytest.importorskip("mypy")
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", f"softmax_fast._native.{name}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr

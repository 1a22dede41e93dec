"""Packaging: metadata, the cibuildwheel configuration, setup.py's per-platform flag choices and
the lowest-dependency pins.  Needs the source tree (skipped when the suite runs from a copy
holding only tests/, as cibuildwheel's test step does, except for the metadata checks)."""

import importlib.metadata
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import softmax_fast

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[2]
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
needs_pyproject = pytest.mark.skipif(
    not (REPO / "pyproject.toml").exists(), reason="needs pyproject.toml"
)
needs_source_tree = pytest.mark.skipif(
    not (REPO / "setup.py").exists(), reason="needs the source tree"
)


@pytest.fixture(scope="module")
def pyproject():
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


@pytest.fixture(scope="module")
def setup_module():
    """setup.py imported as a module (its setup() call is guarded by __name__)."""
    spec = importlib.util.spec_from_file_location("softmax_fast_setup", REPO / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- metadata


def test_version_is_single_sourced():
    assert softmax_fast.__version__ == importlib.metadata.version("softmax-fast")


def test_installed_metadata():
    meta = importlib.metadata.metadata("softmax-fast")
    assert meta["Requires-Python"] == ">=3.10"
    assert meta["License-Expression"] == "BSD-3-Clause"
    classifiers = set(meta.get_all("Classifier"))
    for version in PYTHONS:
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert "Typing :: Typed" in classifiers
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert {"Homepage", "Source", "Issues", "Changelog"} <= set(urls)
    requires = meta.get_all("Requires-Dist")
    for dep in ("numpy>=1.26", "scipy>=1.11", "threadpoolctl>=3.5", "scikit-learn>=1.3"):
        assert dep in requires
    files = {str(f) for f in importlib.metadata.files("softmax-fast")}
    if "softmax_fast/__init__.py" not in files:
        pytest.skip("an editable install lists no package files")
    assert "softmax_fast/py.typed" in files
    assert any(f.endswith("licenses/LICENSE") for f in files)
    assert not any(f.endswith(".c") for f in files)  # generated C is never shipped


# ----------------------------------------------------------------------------- cibuildwheel


@needs_pyproject
@pytest.mark.parametrize(
    "platform, archs",
    [
        ("linux", ("manylinux_x86_64", "manylinux_aarch64")),
        ("macos", ("macosx_x86_64", "macosx_arm64")),
        ("windows", ("win_amd64",)),
    ],
)
def test_cibuildwheel_builds_cpython_310_to_313_on_every_platform(platform, archs):
    if shutil.which("cibuildwheel") is None:
        pytest.skip("cibuildwheel is not installed")
    out = subprocess.run(
        ["cibuildwheel", "--print-build-identifiers", "--platform", platform, str(REPO)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout.split()
    expected = {f"cp{v.replace('.', '')}-{arch}" for v in PYTHONS for arch in archs}
    assert set(out) == expected


@needs_pyproject
def test_cibuildwheel_platform_settings(pyproject):
    cibw = pyproject["tool"]["cibuildwheel"]
    assert cibw["environment"]["SOFTMAX_FAST_REQUIRE_OPENMP"] == "1"
    assert cibw["manylinux-x86_64-image"] == cibw["manylinux-aarch64-image"] == "manylinux_2_28"
    assert "pytest" in cibw["test-command"] and "tests" in cibw["test-sources"]
    assert "auditwheel repair" in " ".join(cibw["linux"]["repair-wheel-command"])
    assert "cibw_before_build_macos.sh" in cibw["macos"]["before-build"]
    macos = {o["select"]: o["environment"] for o in cibw["overrides"]}
    for select, subdir in (("*-macosx_x86_64", "osx-64"), ("*-macosx_arm64", "osx-arm64")):
        env = macos[select]
        assert re.fullmatch(r"\d+\.\d+", env["MACOSX_DEPLOYMENT_TARGET"])
        assert env["LIBOMP_CONDA_SUBDIR"] == subdir
        assert env["SOFTMAX_FAST_OPENMP_PREFIX"]
    assert (REPO / "tools" / "cibw_before_build_macos.sh").exists()


@needs_pyproject
def test_python_classifiers_match_the_wheel_matrix(pyproject):
    classifiers = set(pyproject["project"]["classifiers"])
    builds = pyproject["tool"]["cibuildwheel"]["build"]
    assert builds == [f"cp{v.replace('.', '')}-*" for v in PYTHONS]
    for version in PYTHONS:
        assert f"Programming Language :: Python :: {version}" in classifiers


@needs_source_tree
def test_lowest_dependency_pins_equal_the_declared_lower_bounds(pyproject):
    script = (REPO / "tools" / "test_lowest_deps.sh").read_text()
    pins = dict(re.findall(r'"([a-z-]+)==([\d.]+)\.\*"', script))
    bounds = dict(
        re.fullmatch(r"([a-z-]+)>=([\d.]+)", dep).groups()
        for dep in pyproject["project"]["dependencies"]
    )
    assert pins == bounds


# ----------------------------------------------------------------------------- setup.py


@needs_source_tree
def test_openmp_flags_per_platform(setup_module):
    candidates = setup_module.openmp_flag_candidates
    assert candidates("msvc", "win32", {}) == [(["/openmp"], [])]
    assert candidates("unix", "linux", {}) == [(["-fopenmp"], ["-fopenmp"])]
    apple = candidates("unix", "darwin", {})
    assert apple[0] == (["-Xpreprocessor", "-fopenmp"], ["-lomp"])  # Apple clang first
    assert apple[1] == (["-fopenmp"], ["-fopenmp"])  # then an LLVM clang / gcc
    prefixed = candidates("unix", "darwin", {"SOFTMAX_FAST_OPENMP_PREFIX": "/opt/omp"})
    compile_args, link_args = prefixed[0]
    assert compile_args == ["-Xpreprocessor", "-fopenmp", "-I/opt/omp/include"]
    assert link_args == ["-L/opt/omp/lib", "-Wl,-rpath,/opt/omp/lib", "-lomp"]


@needs_source_tree
def test_optimization_flags_are_portable(setup_module):
    for compiler_type in ("unix", "msvc"):
        flags = " ".join(setup_module.optimization_flags(compiler_type))
        assert "march" not in flags and "fast-math" not in flags and "fp:fast" not in flags
    assert setup_module.optimization_flags("msvc") == ["/O2"]
    assert "-O3" in setup_module.optimization_flags("unix")


@needs_source_tree
def test_sanitizer_flags(setup_module):
    flags = setup_module.sanitizer_flags
    assert flags("", "unix") == ([], [])
    assert flags("0", "unix") == ([], [])
    compile_args, link_args = flags("address,undefined", "unix")
    assert "-fsanitize=address,undefined" in compile_args and "-g" in compile_args
    assert "-fno-sanitize-recover=undefined" in compile_args
    assert link_args == ["-fsanitize=address,undefined"]
    with pytest.raises(RuntimeError, match="unknown sanitizer"):
        flags("adress", "unix")
    with pytest.raises(RuntimeError, match="gcc or clang"):
        flags("address", "msvc")


def test_build_info_is_written_next_to_the_extension():
    """What show_config() reports about the build comes from the build itself."""
    config = softmax_fast.get_config()["build"]
    assert "unknown" not in config["compiler"]
    assert json.loads(json.dumps(config)) == config  # plain data

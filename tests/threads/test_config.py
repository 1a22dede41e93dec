"""Configuration and introspection: OpenMP really on (Linux) and a team of one without it,
get_config / show_config and the build information they report, the OpenMP runtime in use,
the caps on the default thread count (OMP_NUM_THREADS, threadpoolctl), the team-size hook's
limits.  What threads do to results is in test_threads.py."""

import os
import subprocess
import sys

import pytest

import softmax_fast
from softmax_fast._native import info
from softmax_fast._native import testing as hooks

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux builds only")


@linux_only
def test_openmp_is_compiled_in_on_linux():
    assert softmax_fast.get_config()["openmp"] is True


@linux_only
def test_openmp_really_runs_two_threads():
    assert hooks.openmp_team_size(2) == 2
    assert hooks.openmp_team_size(1) == 1


def test_team_size_without_openmp_is_one():
    if softmax_fast.get_config()["openmp"]:
        pytest.skip("built with OpenMP")
    assert hooks.openmp_team_size(3) == 1


@pytest.mark.parametrize("n_threads", [0, -1, 1025, 10**5])
def test_openmp_team_size_refuses_thread_counts_outside_the_cap(n_threads):
    with pytest.raises(ValueError, match="n_threads"):
        hooks.openmp_team_size(n_threads)


def test_get_config_value_types():
    config = softmax_fast.get_config()
    assert isinstance(config["version"], str) and config["version"]
    assert isinstance(config["openmp"], bool)
    assert isinstance(config["max_threads"], int)
    assert isinstance(config["simd_exp"], str)


def test_get_config_keys_and_show_config(capsys):
    config = softmax_fast.get_config()
    assert config["version"] == softmax_fast.__version__
    assert config["max_threads"] >= 1
    assert config["max_threads"] <= config["available_cpus"]
    softmax_fast.show_config()
    printed = capsys.readouterr().out
    assert softmax_fast.__version__ in printed
    assert "OpenMP" in printed
    assert "compiler" in printed and config["build"]["compiler"] in printed


def test_build_info_records_the_compiler_and_flags():
    build = softmax_fast.get_config()["build"]
    compiler = build["compiler"].lower()
    assert any(name in compiler for name in ("gcc", "clang", "msvc", "cc")), compiler
    assert int(build["numpy_build"].split(".")[0]) >= 2  # built against NumPy 2 (ABI for 1.x too)
    flags = " ".join(build["optimization_flags"])
    assert "-march" not in flags and "fast-math" not in flags


@linux_only
def test_the_openmp_runtime_in_use_is_reported_and_is_the_vendored_one_in_a_wheel():
    runtimes = softmax_fast.get_config()["openmp_runtimes"]
    assert runtimes, "no OpenMP runtime loaded although the extension uses OpenMP"
    package_parent = os.path.dirname(os.path.dirname(softmax_fast.__file__))
    if os.path.isdir(os.path.join(package_parent, "softmax_fast.libs")):  # a repaired wheel
        vendored = [rt for rt in runtimes if rt["vendored"]]
        assert len(vendored) == 1 and "libgomp" in os.path.basename(vendored[0]["filepath"])
        # ... and it is the one our threads run on: a team of 2 really starts.
        assert hooks.openmp_team_size(2) == 2


@linux_only
@pytest.mark.parametrize(
    "inherit", [False, True], ids=["bare-environment", "inherited-environment"]
)
def test_omp_num_threads_caps_the_default_thread_count(inherit):
    """OMP_NUM_THREADS=1 caps max_threads in a fresh interpreter, with nothing else in its
    environment and with the caller's whole environment."""
    if inherit and not softmax_fast.get_config()["openmp"]:
        pytest.skip("built without OpenMP")
    code = "import softmax_fast; print(softmax_fast.get_config()['max_threads'])"
    env = dict(os.environ, OMP_NUM_THREADS="1") if inherit else {"OMP_NUM_THREADS": "1", "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    if inherit:
        assert out.stdout.strip().splitlines()[-1] == "1"
    else:
        assert out.stdout.strip() == "1"


@linux_only
def test_threadpoolctl_limit_caps_the_default_thread_count():
    # (the default n_threads under such a limit gives the one-thread result: test_threads.py)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        assert softmax_fast.get_config()["max_threads"] == 1


def test_small_gemm_flag_is_boolean():
    assert isinstance(info.small_gemm_available(), bool)

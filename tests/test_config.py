"""Build configuration: OpenMP really on (Linux), config reporting, thread-count rules."""

import subprocess
import sys

import pytest

import softmax_fast
from softmax_fast import _kernels

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux builds only")


@linux_only
def test_openmp_is_compiled_in_on_linux():
    assert softmax_fast.get_config()["openmp"] is True


@linux_only
def test_openmp_really_runs_two_threads():
    assert _kernels.openmp_team_size(2) == 2
    assert _kernels.openmp_team_size(1) == 1


def test_get_config_keys_and_show_config(capsys):
    config = softmax_fast.get_config()
    assert config["version"] == softmax_fast.__version__
    assert config["max_threads"] >= 1
    assert config["max_threads"] <= config["available_cpus"]
    softmax_fast.show_config()
    printed = capsys.readouterr().out
    assert softmax_fast.__version__ in printed
    assert "OpenMP" in printed


@linux_only
def test_omp_num_threads_caps_the_default_thread_count():
    code = "import softmax_fast; print(softmax_fast.get_config()['max_threads'])"
    env = {"OMP_NUM_THREADS": "1", "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "1"


@linux_only
def test_threadpoolctl_limit_caps_the_default_thread_count():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        assert softmax_fast.get_config()["max_threads"] == 1


def test_small_gemm_flag_is_boolean():
    assert isinstance(_kernels.small_gemm_available(), bool)

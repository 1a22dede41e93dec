"""Shared fixtures of the benchmark suites.

With ``--benchmark-disable`` (the CI smoke run) the problem sizes shrink so that the suites only
prove that the benchmark code works; real runs use the sizes of benchmarks/RESULTS.md.
"""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def quick(request):
    """True in smoke runs (benchmarking disabled): use small sizes."""
    return bool(request.config.getoption("benchmark_disable", default=False))


@pytest.fixture(scope="session")
def rng():
    return np.random.default_rng(20261123)


@pytest.fixture(scope="session")
def scaled(quick):
    """rows -> the rows to use: the real size, or a small one for the smoke run."""
    return lambda m: max(8, m // 500) if quick else m

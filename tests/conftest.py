"""Fixtures of the softmax_fast test suite (every folder of tests/).

The shared helpers live beside this file, in kernel_test_helpers.py and optimum_bounds.py: in
pytest's default "prepend" import mode, loading this conftest puts tests/ on sys.path, so the
test modules of every folder import them by name (``from kernel_test_helpers import ...``).
"""

import zlib

import numpy as np
import pytest


@pytest.fixture
def rng(request):
    """A numpy Generator seeded from the test id: deterministic, different for every test."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture(autouse=True)
def _threads_for_any_work(monkeypatch):
    """Every kernel call of the suite runs on as many threads as it has rows for, however small
    its work, so that small test inputs exercise the multi-threaded code paths; the work-based
    team sizing itself is tested with the real threshold (``real_thread_policy``)."""
    from softmax_fast import _threads

    monkeypatch.setattr(_threads, "MIN_WORK_PER_THREAD", 1)


@pytest.fixture
def real_thread_policy(monkeypatch):
    """The shipped work threshold of the thread policy (undoes ``_threads_for_any_work``)."""
    from softmax_fast import _threads

    monkeypatch.setattr(_threads, "MIN_WORK_PER_THREAD", _threads.SHIPPED_MIN_WORK_PER_THREAD)

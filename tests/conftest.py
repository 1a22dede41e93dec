"""Fixtures of the softmax_fast test suite; shared helpers live in kernel_test_helpers.py."""

import zlib

import numpy as np
import pytest


@pytest.fixture
def rng(request):
    """A numpy Generator seeded from the test id: deterministic, different for every test."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))

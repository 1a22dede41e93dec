"""The peers of the benchmark suites: softmax_fast._peers, with a missing library a skip.

Each ``make_*``-style function returns a zero-argument callable doing the whole computation, or
calls ``pytest.skip`` when the library is not installed, so that a suite lists every installed
peer beside softmax_fast and skips the others cleanly.
"""

import functools

import pytest

from softmax_fast import _peers


def _skipping(make):
    @functools.wraps(make)
    def wrapper(*args, **kwargs):
        try:
            return make(*args, **kwargs)
        except _peers.PeerUnavailable as exc:
            pytest.skip(str(exc))

    return wrapper


sklearn_loss_and_grad = _skipping(_peers.sklearn_loss_and_grad)
torch_loss_and_grad = _skipping(_peers.torch_loss_and_grad)
jax_loss_and_grad = _skipping(_peers.jax_loss_and_grad)
scipy_softmax = _skipping(_peers.scipy_softmax)
torch_softmax = _skipping(_peers.torch_softmax)
jax_softmax = _skipping(_peers.jax_softmax)
sklearn_cross_entropy_grad = _skipping(_peers.sklearn_cross_entropy_grad)
torch_cross_entropy_grad = _skipping(_peers.torch_cross_entropy_grad)

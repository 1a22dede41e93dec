"""The generalized-softmax example: cross_entropy_grad chained through a non-linear model."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "generalized_softmax_mlp.py"

pytestmark = pytest.mark.skipif(not EXAMPLE.exists(), reason="needs the source tree's examples/")


@pytest.fixture(scope="module")
def example():
    pytest.importorskip("sklearn")
    spec = importlib.util.spec_from_file_location("generalized_softmax_mlp", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chained_gradient_matches_finite_differences(example):
    """The whole chain (softmax_fast's dL/dZ times the model's Jacobian) is the true gradient."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((13, 5))
    y = rng.integers(0, 4, 13)
    params = example.init_params(5, 6, 4, rng)
    _, grads = example.loss_and_grads(params, X, y, alpha=0.01)
    h = 1e-6
    for name, value in params.items():
        numeric = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            old = value[idx]
            value[idx] = old + h
            up, _ = example.loss_and_grads(params, X, y, alpha=0.01)
            value[idx] = old - h
            down, _ = example.loss_and_grads(params, X, y, alpha=0.01)
            value[idx] = old
            numeric[idx] = (up - down) / (2 * h)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-8, err_msg=name)


def test_a_few_epochs_train_a_useful_classifier(example):
    _, history, test_accuracy = example.train(epochs=4, seed=1, verbose=False)
    assert history[-1] < history[0] < np.log(10)
    assert test_accuracy > 0.85

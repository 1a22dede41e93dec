"""softmax_fast: fast, numerically careful softmax regression on the CPU.

Kernels (float32 and float64, GIL released, OpenMP threads): :func:`softmax`,
:func:`log_softmax`, :func:`logsumexp`, :func:`cross_entropy`, :func:`cross_entropy_grad`,
the fused softmax-regression :func:`loss_and_grad`, :func:`predict_proba` and :func:`predict`.
:class:`SoftmaxRegression` is a scikit-learn classifier trained on them.
:mod:`softmax_fast.reference` holds the same maths in plain NumPy.
"""

from ._config import get_config, show_config
from ._version import __version__
from .estimator import SoftmaxRegression
from .kernels import (
    cross_entropy,
    cross_entropy_grad,
    log_softmax,
    logsumexp,
    loss_and_grad,
    predict,
    predict_proba,
    softmax,
)

__all__ = [
    "__version__",
    "softmax",
    "log_softmax",
    "logsumexp",
    "cross_entropy",
    "cross_entropy_grad",
    "loss_and_grad",
    "predict_proba",
    "predict",
    "get_config",
    "show_config",
    "SoftmaxRegression",
]

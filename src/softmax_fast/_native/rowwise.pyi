# Typed stub of the extension softmax_fast._native.rowwise (checked with mypy.stubtest).
# The kernels take C-contiguous float32 or float64 arrays (one dtype per call); validation,
# the dtype policy and error messages live in softmax_fast.kernels.

import enum

import numpy as np
import numpy.typing as npt

_Float = np.float32 | np.float64
_FArray = npt.NDArray[_Float]
_F64 = npt.NDArray[np.float64]
_Intp = npt.NDArray[np.intp]

class RowwiseMode(enum.IntEnum):
    SOFTMAX = 0
    LOG_SOFTMAX = 1
    LOGSUMEXP = 2

def softmax_rows(Z: _FArray, out: _FArray, mode: RowwiseMode, n_threads: int) -> int: ...
def cross_entropy(
    Z: _FArray,
    labels: _Intp | None,
    Y: _FArray | None,
    sample_weight: _F64 | None,
    grad_scale: float,
    row_loss: _F64 | None,
    dZ: _FArray | None,
    n_threads: int,
) -> tuple[int, float]: ...

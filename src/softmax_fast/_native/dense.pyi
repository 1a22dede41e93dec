# Typed stub of the extension softmax_fast._native.dense (checked with mypy.stubtest).
# The kernels take C-contiguous float32 or float64 arrays (one dtype per call); validation,
# the dtype policy and error messages live in softmax_fast.kernels.

import numpy as np
import numpy.typing as npt

_Float = np.float32 | np.float64
_FArray = npt.NDArray[_Float]
_F64 = npt.NDArray[np.float64]
_Intp = npt.NDArray[np.intp]

def loss_and_grad(
    X: _FArray,
    labels: _Intp | None,
    Y: _FArray | None,
    W: _FArray,
    b: _FArray | None,
    sample_weight: _F64 | None,
    grad_scale: float,
    tile_rows: int,
    n_threads: int,
    small_gemm: bool = True,
) -> tuple[int, float, _F64, _F64 | None]: ...
def hess_vec(
    X: _FArray,
    P: _FArray,
    V: _FArray,
    c: _FArray | None,
    sample_weight: _F64 | None,
    scale: float,
    tile_rows: int,
    n_threads: int,
    small_gemm: bool = True,
) -> tuple[_F64, _F64 | None]: ...
def predict(
    X: _FArray,
    W: _FArray,
    b: _FArray | None,
    proba: _FArray | None,
    labels: _Intp | None,
    tile_rows: int,
    n_threads: int,
    small_gemm: bool = True,
) -> int: ...

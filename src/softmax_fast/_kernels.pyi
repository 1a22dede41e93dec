# Typed stub of the compiled extension softmax_fast._kernels (checked with mypy.stubtest).
# The kernels take C-contiguous float32 or float64 arrays (one dtype per call); validation,
# the dtype policy and error messages live in softmax_fast.kernels.

import numpy as np
import numpy.typing as npt

_Float = np.float32 | np.float64
_FArray = npt.NDArray[_Float]
_F64 = npt.NDArray[np.float64]
_Intp = npt.NDArray[np.intp]

def openmp_enabled() -> bool: ...
def openmp_max_threads() -> int: ...
def openmp_team_size(n_threads: int) -> int: ...
def simd_exp_dispatch() -> str: ...
def small_gemm_available() -> bool: ...
def small_gemm_max_k(single_precision: bool) -> int: ...
def _fail_allocation(nth: int) -> int: ...
def vexp(x: _FArray) -> None: ...
def vlog_ge1(x: _F64, out: _F64) -> None: ...
def softmax_rows(Z: _FArray, out: _FArray, mode: int, n_threads: int) -> int: ...
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

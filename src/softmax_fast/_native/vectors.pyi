# Typed stub of the extension softmax_fast._native.vectors (checked with mypy.stubtest).
# Passes over parameter-sized float64 vectors: the L-BFGS history Z (float32 or float64 rows in
# blocks of HISTORY_BLOCK columns), trial points, the penalized gradient; sums in float64.

import numpy as np
import numpy.typing as npt

_Float = np.float32 | np.float64
_F64 = npt.NDArray[np.float64]
_Intp = npt.NDArray[np.intp]

def history_dots(
    Z: npt.NDArray[_Float],
    rows: _Intp,
    g: _F64,
    y_row: int,
    out_g: _F64,
    out_y: _F64,
    n_threads: int = 1,
) -> None: ...
def history_combine(
    Z: npt.NDArray[_Float],
    rows: _Intp,
    coef: _F64,
    coef_g: float,
    g: _F64,
    d: _F64,
    n_threads: int = 1,
) -> float: ...
def history_store_pair(
    Z: npt.NDArray[_Float],
    s_row: int,
    y_row: int,
    d: _F64,
    step: float,
    g_new: _F64,
    g: _F64,
    n_threads: int = 1,
) -> tuple[float, float, float]: ...

HISTORY_BLOCK: int

def history_shape(n_rows: int, n: int) -> tuple[int, int, int]: ...
def history_rows(Z: npt.NDArray[_Float], n: int) -> npt.NDArray[_Float]: ...
def axpy_to(x: _F64, d: _F64, step: float, xt: _F64, n_threads: int = 1) -> None: ...
def penalized_gradient(w: _F64, dw: _F64, alpha: float, out: _F64, n_threads: int = 1) -> float: ...
def transpose(src: npt.NDArray[_Float], out: npt.NDArray[_Float], n_threads: int = 1) -> None: ...

# Typed stub of the extension softmax_fast._native.incremental (checked with mypy.stubtest).
# One serial SAGA epoch over a dense or a CSR X (float32 or float64 values; int32 or int64 CSR
# indices, one dtype for both), in place on float64 state arrays.  Validation, the step size and
# the state's layout live in softmax_fast._saga.

import numpy as np
import numpy.typing as npt

_Float = np.float32 | np.float64
_FArray = npt.NDArray[_Float]
_F64 = npt.NDArray[np.float64]
_Intp = npt.NDArray[np.intp]
_U8 = npt.NDArray[np.uint8]
_Index = npt.NDArray[np.int32] | npt.NDArray[np.int64]

def saga_epoch_dense(
    X: _FArray,
    label_col: _Intp,
    sample_weight: _F64 | None,
    order: _Intp,
    W: _F64,
    b: _F64 | None,
    memory: _F64,
    sum_W: _F64,
    sum_b: _F64,
    seen: _U8,
    n_seen: int,
    has_reference: bool,
    row_norms: _F64 | None,
    curvature: float,
    curvature_max: float,
    curvature_min: float,
    decay: float,
    step_a: float,
    step_c: float,
    alpha: float,
    row_factor: float,
) -> tuple[int, int, float]: ...
def saga_epoch_csr(
    data: _FArray,
    indices: _Index,
    indptr: _Index,
    label_col: _Intp,
    sample_weight: _F64 | None,
    order: _Intp,
    Wt: _F64,
    b: _F64 | None,
    memory: _F64,
    sum_Wt: _F64,
    sum_b: _F64,
    seen: _U8,
    n_seen: int,
    has_reference: bool,
    row_norms: _F64 | None,
    curvature: float,
    curvature_max: float,
    curvature_min: float,
    decay: float,
    step_a: float,
    step_c: float,
    alpha: float,
    row_factor: float,
) -> tuple[int, int, float]: ...

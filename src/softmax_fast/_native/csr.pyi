# Typed stub of the extension softmax_fast._native.csr (checked with mypy.stubtest).
# The kernels take the three arrays of a canonical CSR matrix (float32 or float64 values, int32
# or int64 indices, one index dtype for both) and W^T (n, K); the loss kernels return the
# gradient as dW^T (n, K) float64.  Validation, the dtype policy, the chunk bounds and the
# choice of the gradient strategy live in softmax_fast._design.

import numpy as np
import numpy.typing as npt

_Float = np.float32 | np.float64
_FArray = npt.NDArray[_Float]
_F64 = npt.NDArray[np.float64]
_Intp = npt.NDArray[np.intp]
_Index = npt.NDArray[np.int32] | npt.NDArray[np.int64]

def loss_and_grad(
    data: _FArray,
    indices: _Index,
    indptr: _Index,
    n_features: int,
    row_bounds: _Intp,
    labels: _Intp | None,
    Y: _FArray | None,
    Wt: _FArray,
    b: _FArray | None,
    sample_weight: _F64 | None,
    grad_scale: float,
    csc_data: _FArray | None,
    csc_indices: _Index | None,
    csc_indptr: _Index | None,
    col_bounds: _Intp | None,
    n_threads: int,
) -> tuple[int, float, _F64, _F64 | None]: ...
def hess_vec(
    data: _FArray,
    indices: _Index,
    indptr: _Index,
    n_features: int,
    row_bounds: _Intp,
    P: _FArray,
    Vt: _FArray,
    c: _FArray | None,
    sample_weight: _F64 | None,
    scale: float,
    csc_data: _FArray | None,
    csc_rows: _Index | None,
    colptr: _Index | None,
    col_bounds: _Intp | None,
    n_threads: int,
) -> tuple[_F64, _F64 | None]: ...
def hess_vec_columns(
    csc_data: _FArray,
    csc_rows: _Index,
    colptr: _Index,
    n_rows: int,
    col_bounds: _Intp,
    row_bounds: _Intp,
    P: _FArray,
    Vt: _FArray,
    c: _FArray | None,
    sample_weight: _F64 | None,
    scale: float,
    n_threads: int,
) -> tuple[_F64, _F64 | None]: ...
def hess_diag(
    data_sq: _FArray,
    indices: _Index,
    indptr: _Index,
    n_features: int,
    row_bounds: _Intp,
    P: _FArray,
    sample_weight: _F64 | None,
    scale: float,
    with_intercept: bool,
    csc_data_sq: _FArray | None,
    csc_rows: _Index | None,
    colptr: _Index | None,
    col_bounds: _Intp | None,
    n_threads: int,
) -> tuple[_F64, _F64 | None]: ...
def predict(
    data: _FArray,
    indices: _Index,
    indptr: _Index,
    row_bounds: _Intp,
    Wt: _FArray,
    b: _FArray | None,
    proba: _FArray | None,
    labels: _Intp | None,
    n_threads: int,
) -> int: ...
def loss_and_grad_columns(
    csc_data: _FArray,
    csc_indices: _Index,
    csc_indptr: _Index,
    n_samples: int,
    col_bounds: _Intp,
    row_bounds: _Intp,
    labels: _Intp | None,
    Y: _FArray | None,
    W: _FArray,
    b: _FArray | None,
    sample_weight: _F64 | None,
    grad_scale: float,
    n_threads: int,
    class_major: bool = False,
) -> tuple[int, float, _F64, _F64 | None]: ...
def to_csc(
    data: _FArray,
    indices: _Index,
    indptr: _Index,
    n_features: int,
    row_bounds: _Intp,
    n_threads: int,
) -> tuple[_FArray, _Index, _Index]: ...

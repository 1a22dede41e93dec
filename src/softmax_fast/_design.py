"""Trusted, validate-once evaluation of the compiled kernels, per input format.

Everything here takes inputs that are already validated: C-contiguous, aligned float32/float64
arrays of consistent shapes, labels in range, weights non-negative and scaled
(:func:`softmax_fast._validation.scaled_weights`), ``n_threads`` already resolved to an int.
No O(m) check runs here, so an objective may call it once per solver evaluation.  What this
layer owns: the tile size, the choice between the micro-kernels and BLAS (and BLAS's thread
count meanwhile), the team size of each call, and turning the kernels' status codes (the first
bad row) into exceptions.  Sums come back in float64, also for float32 data.

:class:`DenseDesign` is the dense-X design; a CSR design and a per-chunk (Dask) evaluation plug
in beside it with the same methods.
"""

import numpy as np

from ._native import dense as _native_dense
from ._native import info as _native_info
from ._threads import blas_guard, team_for_work

__all__ = ["DenseDesign", "raise_bad_row", "raise_bad_linear_row", "tile_rows", "uses_small_gemm"]

# Bytes of one row tile (X rows plus their logits) that a thread keeps in cache between the
# logits GEMM and the gradient GEMM; see benchmarks/RESULTS.md for how it was chosen.
_TILE_BYTES = 256 * 1024
_MIN_TILE_ROWS, _MAX_TILE_ROWS = 64, 1024

# Test switch: the tile products use the AVX2+FMA micro-kernels where the CPU has them and K is
# small; tests set this to False to check the BLAS path on the same inputs.
_USE_SMALL_GEMM = True


def tile_rows(n: int, K: int, itemsize: int) -> int:
    """Rows of a tile: about ``_TILE_BYTES`` of X rows and logits, a multiple of 8."""
    rows = _TILE_BYTES // max(1, (n + K) * itemsize)
    return int(min(_MAX_TILE_ROWS, max(_MIN_TILE_ROWS, rows - rows % 8)))


def uses_small_gemm(n: int, K: int, dtype: np.dtype) -> bool:
    """True when the tile products of an (n features, K classes) call run on the micro-kernels."""
    return (
        _USE_SMALL_GEMM
        and n > 0
        and _native_info.small_gemm_available()
        and K <= _native_info.small_gemm_max_k(dtype == np.float32)
    )


# ----------------------------------------------------------------------------- status -> errors


def _describe_bad_logits(z):
    if np.isnan(z).any():
        return "contains NaN"
    if np.isposinf(z).any():
        return "contains +inf"
    return "has no finite logit (all -inf)"


def raise_bad_row(Z: np.ndarray, row: int, name: str = "Z") -> None:
    """The ValueError for a row of logits the row-wise kernels reported (NaN, +inf, all -inf)."""
    raise ValueError(
        f"{name}: row {row} {_describe_bad_logits(Z[row])}; logits must be finite or -inf"
    )


def raise_bad_linear_row(X: np.ndarray, W: np.ndarray, b: np.ndarray | None, row: int) -> None:
    """The ValueError for a row whose logits ``X @ W.T + b`` a linear kernel reported."""
    if not np.all(np.isfinite(X[row])):
        raise ValueError(f"X: row {row} contains NaN or infinity")
    with np.errstate(over="ignore", invalid="ignore"):  # describing the overflow, not causing it
        z = X[row].astype(np.float64) @ np.asarray(W).T.astype(np.float64)
        if b is not None:
            z = z + b
    raise ValueError(
        f"X: the logits X @ W.T + b of row {row} are not finite: the row {_describe_bad_logits(z)}"
    )


# ----------------------------------------------------------------------------- dense X


class DenseDesign:
    """A validated dense design matrix and the kernel calls on it.

    Parameters
    ----------
    X : ndarray of shape (m, n), float32 or float64, C-contiguous and aligned
        Not copied.  W and b passed to the methods must have X's dtype.
    n_threads : int
        Resolved thread count (>= 1); each call's team is sized from its work.
    """

    def __init__(self, X: np.ndarray, n_threads: int):
        self.X = X
        self.dtype = X.dtype
        self.n_samples, self.n_features = X.shape
        self.n_threads = int(n_threads)

    def take_rows(self, sample_rows: np.ndarray) -> "DenseDesign":
        """The design of the rows ``sample_rows`` (a copy of those rows of X)."""
        return DenseDesign(self.X[sample_rows], self.n_threads)

    def _call_plan(self, K):
        m, n = self.n_samples, self.n_features
        team = team_for_work(self.n_threads, m, m * (n + 1) * K)
        small = uses_small_gemm(n, K, self.dtype)
        return team, tile_rows(n, K, self.dtype.itemsize), small

    def loss_grad(
        self,
        W: np.ndarray,
        b: np.ndarray | None,
        labels: np.ndarray | None,
        Y: np.ndarray | None,
        sample_weight: np.ndarray | None,
        grad_scale: float,
    ) -> tuple[float, np.ndarray, np.ndarray | None]:
        """Fused data term: ``(sum_i w_i l_i, dW, db)`` without any penalty.

        ``dW`` (K, n) and ``db`` (K,) are float64 sums of ``g_i = (a_i - y_i) w_i grad_scale``
        (``db`` None when ``b`` is None).  ``labels`` (m,) intp or ``Y`` (m, K) targets, one
        of them.  Rows of weight 0 never count, even where their loss is infinite.
        """
        K = W.shape[0]
        team, tile, small = self._call_plan(K)
        X = self.X
        with blas_guard(not small):
            bad, total, dW, db = _native_dense.loss_and_grad(
                X, labels, Y, W, b, sample_weight, grad_scale, tile, team, _USE_SMALL_GEMM
            )
            if bad >= 0:
                raise_bad_linear_row(X, W, b, bad)
            if sample_weight is not None and np.isnan(total):
                # a row of weight 0 whose loss is +inf gave 0 * inf = NaN: the sum without them
                keep = sample_weight > 0
                total = 0.0  # a mini-batch may hold rows of weight 0 only
                if keep.any():
                    total = _native_dense.loss_and_grad(
                        X[keep],
                        None if labels is None else labels[keep],
                        None if Y is None else Y[keep],
                        W,
                        b,
                        sample_weight[keep],
                        grad_scale,
                        tile,
                        team,
                        _USE_SMALL_GEMM,
                    )[1]
        return float(total), dW, db

    def _predict(self, W, b, want_proba):
        m, K = self.n_samples, W.shape[0]
        team, tile, small = self._call_plan(K)
        proba = np.empty((m, K), dtype=self.dtype) if want_proba else None
        labels = None if want_proba else np.empty(m, dtype=np.intp)
        with blas_guard(not small):
            bad = _native_dense.predict(self.X, W, b, proba, labels, tile, team, _USE_SMALL_GEMM)
        if bad >= 0:
            raise_bad_linear_row(self.X, W, b, bad)
        return proba if want_proba else labels

    def predict_proba(self, W: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        """``softmax(X W^T + b)``, shape (m, K), X's dtype."""
        return self._predict(W, b, want_proba=True)

    def predict(self, W: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        """``argmax_k (X W^T + b)_k`` per row (ties: lowest index), shape (m,) intp."""
        return self._predict(W, b, want_proba=False)

"""Trusted, validate-once evaluation of the compiled kernels, per input format.

Everything here takes inputs that are already validated: C-contiguous, aligned float32/float64
arrays of consistent shapes, labels in range, weights non-negative and scaled
(:func:`softmax_fast._validation.scaled_weights`), ``n_threads`` already resolved to an int.
No O(m) check runs here, so an objective may call it once per solver evaluation.  What this
layer owns: the tile size, the choice between the micro-kernels and BLAS (and BLAS's thread
count meanwhile), the team size of each call, and turning the kernels' status codes (the first
bad row) into exceptions.  Sums come back in float64, also for float32 data.

:class:`DenseDesign` is the dense-X design and :class:`CSRDesign` the CSR one, with the same
methods; a per-chunk (Dask) evaluation plugs in beside them.  ``loss_grad`` takes the
coefficients, and returns their gradient, in the design's own layout (``feature_major``): W
(K, n) for dense X, where the kernels' GEMMs want it so, and W^T (n, K) for CSR X, where a
feature's K values are the unit the sparse kernels gather and scatter.  The objective stores
its parameters in that layout, so a fit's evaluations make no transposed copies;
``predict_proba`` and ``predict`` take W (K, n) on every design.
"""

from typing import Any, NamedTuple

import numpy as np

from ._native import csr as _native_csr
from ._native import dense as _native_dense
from ._native import info as _native_info
from ._native import vectors as _native_vectors
from ._threads import CSR_WORK_PER_NONZERO, blas_guard, one_blas_thread, team_for_work
from ._validation import CSRArrays

__all__ = [
    "CSRDesign",
    "Curvature",
    "HESSIAN_MAX_PARAMS",
    "DenseDesign",
    "ROW_ACCUMULATOR_BYTES",
    "raise_bad_row",
    "raise_bad_linear_row",
    "tile_rows",
    "transposed",
    "uses_small_gemm",
]

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


def raise_bad_linear_row(X, W: np.ndarray, b: np.ndarray | None, row: int) -> None:
    """The ValueError for a row whose logits ``X @ W.T + b`` a linear kernel reported.

    ``X``: a dense array, or :class:`CSRArrays` (whose values are known to be finite).
    """
    if isinstance(X, CSRArrays):
        start, stop = int(X.indptr[row]), int(X.indptr[row + 1])
        x = np.zeros(X.shape[1], dtype=np.float64)
        np.add.at(x, X.indices[start:stop], X.data[start:stop])
    elif not np.all(np.isfinite(X[row])):
        raise ValueError(f"X: row {row} contains NaN or infinity")
    else:
        x = X[row].astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):  # describing the overflow, not causing it
        z = x @ np.asarray(W).T.astype(np.float64)
        if b is not None:
            z = z + b
    raise ValueError(
        f"X: the logits X @ W.T + b of row {row} are not finite: the row {_describe_bad_logits(z)}"
    )


def transposed(A: np.ndarray, dtype=None, n_threads: int = 1) -> np.ndarray:
    """``A.T`` as a new C-contiguous array of ``dtype`` (A's when None), for coefficients
    between the (K, n) layout and a feature-major design's (n, K): one threaded, tiled pass
    (NumPy's strided copy of a (K, n) array takes several times as long).  ``A``: a
    C-contiguous 2-D float32 or float64 array."""
    out = np.empty(A.shape[::-1], dtype=A.dtype if dtype is None else dtype)
    _native_vectors.transpose(A, out, n_threads)
    return out


# ----------------------------------------------------------------------------- curvature

HESSIAN_MAX_PARAMS = 8192
"""The most parameters whose full Hessian (``n_params**2`` float64, 512 MiB at this size, plus a
copy per thread while it is summed) a design builds."""

# Rows of X a thread turns into one block of the Hessian's sums at a time (the diagonal's).
_HESSIAN_BLOCK_ROWS = 2048
# Bytes of the per-block products of the full Hessian (U, rows x n_params float64): its row
# blocks are sized to this (at least 256 rows), so that the extra memory stays small.
_HESSIAN_BLOCK_BYTES = 1 << 21


def _hessian_block_rows(n_params):
    """Rows of a block of the full Hessian: about _HESSIAN_BLOCK_BYTES of products, and at
    least 256 (the symmetric products are slow below that many rows)."""
    return max(256, _HESSIAN_BLOCK_BYTES // (8 * max(1, n_params)))


class Curvature(NamedTuple):
    """What the Hessian products need of one point (W, b): the probabilities there and the
    weights; built once per outer iteration of a second-order solver.

    Attributes
    ----------
    P : ndarray of shape (m, K)
        softmax(X W^T + b), the design's dtype (``m * K * itemsize`` bytes).
    sample_weight : ndarray of shape (m,), float64, or None
    """

    P: np.ndarray
    sample_weight: np.ndarray | None


def _hessian_terms(P, sample_weight, scale):
    """``d2 = w scale P (1 - P)`` (float64, (m, K)): the diagonal of each row's softmax
    Jacobian, weighted, the factor of the Hessian's diagonal."""
    d2 = P.astype(np.float64)
    d2 *= 1.0 - d2
    d2 *= scale if sample_weight is None else (sample_weight * scale)[:, None]
    return d2


def _add_dense_hessian_block(H, Xa, P, w, class_rows):
    """Add one block of rows' class-major Hessian sums to the lower triangle of ``H``
    (F-ordered, (|F| d, |F| d) float64):
    ``sum_i w_i (diag(p_iF) - p_iF p_iF^T) (x) xa_i xa_i^T`` over the free classes F, for
    ``Xa`` (rows, d) (X with a column of ones appended when the model has intercepts).  The
    whole matrix gets ``- U^T U`` with ``U_i = sqrt(w_i) p_iF (x) xa_i`` (one symmetric
    rank-k update, BLAS syrk: half a product's work), the diagonal blocks
    ``Xa^T diag(w p_k) Xa``; :func:`_symmetric_from_lower` completes H at the end."""
    from scipy.linalg.blas import dsyrk

    rows, d = Xa.shape
    PF = P[:, class_rows]
    F = class_rows.size
    U = np.empty((rows, F, d))
    np.multiply((np.sqrt(w)[:, None] * PF)[:, :, None], Xa[:, None, :], out=U)
    # U^T (F d, rows) is F-contiguous: syrk reads it in place and updates H in place
    dsyrk(-1.0, U.reshape(rows, F * d).T, beta=1.0, c=H, trans=0, lower=1, overwrite_c=1)
    for a in range(F):
        block = slice(a * d, (a + 1) * d)
        root = Xa * np.sqrt(w * PF[:, a])[:, None]
        H[block, block] += root.T @ root


def _symmetric_from_lower(H):
    """The symmetric matrix whose lower triangle is H's (exactly symmetric)."""
    lower = np.tril(H)
    return lower + np.tril(H, -1).T


def _thread_sums(n_items, n_threads, part):
    """``part(start, stop)`` over ``n_threads`` contiguous ranges of ``range(n_items)`` on Python
    threads (BLAS and the kernels release the GIL), summed in range order: the result depends
    on ``n_threads`` only, not on which thread finishes first."""
    bounds = [n_items * t // n_threads for t in range(n_threads + 1)]
    ranges = [(bounds[t], bounds[t + 1]) for t in range(n_threads) if bounds[t + 1] > bounds[t]]
    if len(ranges) <= 1:
        return part(0, n_items)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(ranges)) as pool:
        parts = list(pool.map(lambda r: part(*r), ranges))
    total = parts[0]
    for other in parts[1:]:
        total += other
    return total


def _add_block_hessian(H, X, W, b, sample_weight, r0, r1, scale, class_rows):
    """:func:`_add_dense_hessian_block` of the float64 rows ``X`` (rows r0..r1 of the data),
    with their probabilities at (W (K, n), b) computed here in float64."""
    Z = X @ W.T
    if b is not None:
        Z += b
        X = np.hstack([X, np.ones((X.shape[0], 1))])
    Z -= Z.max(axis=1, keepdims=True)
    np.exp(Z, out=Z)
    Z /= Z.sum(axis=1, keepdims=True)
    w = np.full(r1 - r0, scale) if sample_weight is None else sample_weight[r0:r1] * scale
    _add_dense_hessian_block(H, X, Z, w, class_rows)


# ----------------------------------------------------------------------------- dense X


class DenseDesign:
    """A validated dense design matrix and the kernel calls on it.

    Parameters
    ----------
    X : ndarray of shape (m, n), float32 or float64, C-contiguous and aligned
        Not copied.  W and b passed to the methods must have X's dtype.
    n_threads : int
        Resolved thread count (>= 1); each call's team is sized from its work.

    Attributes
    ----------
    feature_major : bool
        False: ``loss_grad`` takes W and returns dW as (K, n).
    """

    feature_major = False

    def __init__(self, X: np.ndarray, n_threads: int):
        self.X = X
        self.dtype = X.dtype
        self.n_samples, self.n_features = X.shape
        self.n_threads = int(n_threads)
        self._plans: dict[int, tuple[int, int, bool]] = {}

    def take_rows(self, sample_rows: np.ndarray) -> "DenseDesign":
        """The design of the rows ``sample_rows`` (a copy of those rows of X)."""
        return DenseDesign(self.X[sample_rows], self.n_threads)

    def float32_copy(self) -> "DenseDesign":
        """The design of X rounded to float32 (a new array of half X's size, written in row
        ranges on ``n_threads`` threads: the first touch of its pages costs about as much as
        the cast itself)."""
        X32 = np.empty(self.X.shape, dtype=np.float32)

        def part(start, stop):
            np.copyto(X32[start:stop], self.X[start:stop])
            return 0

        _thread_sums(self.n_samples, self.n_threads, part)
        return DenseDesign(X32, self.n_threads)

    def _call_plan(self, K):
        """(team, tile rows, micro-kernels or not) of a call with K classes; cached per K for
        the design's life (a fit, or one public call)."""
        plan = self._plans.get(K)
        if plan is None:
            m, n = self.n_samples, self.n_features
            team = team_for_work(self.n_threads, m, m * (n + 1) * K)
            small = uses_small_gemm(n, K, self.dtype)
            plan = self._plans[K] = (team, tile_rows(n, K, self.dtype.itemsize), small)
        return plan

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
        if W.ndim != 2 or W.shape[1] != self.n_features:
            raise ValueError(f"W: shape {W.shape}, expected (K, {self.n_features})")
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

    class_major_loss_grad = loss_grad
    """:meth:`loss_grad`: W and dW (K, n) are this design's own layout."""

    def column_mean_squares(self) -> np.ndarray:
        """``mean_i x_ij^2`` per column, float64 (n,): one pass over X, in row blocks."""
        total = np.zeros(self.n_features)
        for r0 in range(0, self.n_samples, _HESSIAN_BLOCK_ROWS):
            block = self.X[r0 : r0 + _HESSIAN_BLOCK_ROWS]
            total += np.einsum("ij,ij->j", block, block, dtype=np.float64)
        return total / max(1, self.n_samples)

    # ------------------------------------------------------------------------- curvature
    def curvature(
        self, W: np.ndarray, b: np.ndarray | None, sample_weight: np.ndarray | None
    ) -> Curvature:
        """The probabilities at (W, b) (one fused pass) for :meth:`hess_vec` and
        :meth:`hess_diag`; W in the design's layout."""
        return Curvature(self.predict_proba(W, b), sample_weight)

    def hess_vec(
        self, curvature: Curvature, V: np.ndarray, c: np.ndarray | None, scale: float
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The data term's Hessian (times ``scale``) applied to the direction (V, c), V in the
        design's layout and dtype: ``(dV, dc)`` float64, one pass over X (see
        :func:`softmax_fast._native.dense.hess_vec`)."""
        K = V.shape[0]
        team, tile, small = self._call_plan(K)
        with blas_guard(not small):
            return _native_dense.hess_vec(
                self.X,
                curvature.P,
                V,
                c,
                curvature.sample_weight,
                scale,
                tile,
                team,
                _USE_SMALL_GEMM,
            )

    def hess_diag(self, curvature: Curvature, scale: float) -> tuple[np.ndarray, np.ndarray]:
        """The diagonal of the data term's Hessian (times ``scale``):
        ``sum_i w_i P_ik (1 - P_ik) x_ij^2`` as (K, n) and its intercept part (K,), float64."""
        d2 = _hessian_terms(curvature.P, curvature.sample_weight, scale)

        def part(start, stop):
            out = np.zeros((d2.shape[1], self.n_features))
            for r0 in range(start, stop, _HESSIAN_BLOCK_ROWS):
                r1 = min(stop, r0 + _HESSIAN_BLOCK_ROWS)
                out += d2[r0:r1].T @ np.square(self.X[r0:r1], dtype=np.float64)
            return out

        with one_blas_thread():
            diag_W = _thread_sums(self.n_samples, self.n_threads, part)
        return diag_W, d2.sum(axis=0)

    def hessian(
        self,
        W: np.ndarray,
        b: np.ndarray | None,
        sample_weight: np.ndarray | None,
        scale: float,
        class_rows: np.ndarray,
    ) -> np.ndarray:
        """The full Hessian of the data term (times ``scale``) over the classes ``class_rows``,
        class-major: parameter ``(a, j)`` (class ``class_rows[a]``, feature j, then the
        intercept at j = n when ``b`` is not None) at index ``a * d + j``, ``d = n + (b is not
        None)``; shape ``(F d, F d)`` float64, symmetric.  Probabilities in float64 from
        float64 logits, sums in float64, row blocks on ``n_threads`` threads."""
        W64 = np.asarray(W, dtype=np.float64)
        b64 = None if b is None else np.asarray(b, dtype=np.float64)

        def part(start, stop):
            d = self.n_features + (b is not None)
            H = np.zeros((class_rows.size * d,) * 2, order="F")
            rows = _hessian_block_rows(class_rows.size * d)
            for r0 in range(start, stop, rows):
                r1 = min(stop, r0 + rows)
                X = np.asarray(self.X[r0:r1], dtype=np.float64)
                _add_block_hessian(H, X, W64, b64, sample_weight, r0, r1, scale, class_rows)
            return H

        with one_blas_thread():
            return _symmetric_from_lower(_thread_sums(self.n_samples, self.n_threads, part))

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


# ----------------------------------------------------------------------------- CSR X

# The most extra memory a CSR call may take as per-chunk float64 tables of m x K logits (the
# column-wise kernel) or n x K gradient accumulators (the row-wise one).  Above it the gradient
# takes the column pass, whose extra memory does not grow with the threads: G (m x K float64)
# plus the CSC copy of X, built once per design.
ROW_ACCUMULATOR_BYTES = 256 * 2**20


def _dense_block(product, d):
    """A (d, d) sparse product of the Hessian as a dense float64 array (its entries written
    one by one: this is the Hessian's block, not X densified)."""
    coo = product.tocoo()
    out = np.zeros((d, d))
    np.add.at(out, (coo.row, coo.col), coo.data)
    return out


def _balanced_bounds(pointers, n_chunks):
    """Chunk bounds over the rows (columns) of compressed ``pointers`` (length count + 1) so
    that each chunk has about equal cost, an item costing 1 + its entries: shape (n_chunks + 1,),
    0 first and count last, non-decreasing."""
    count = pointers.shape[0] - 1
    cost = pointers.astype(np.int64) + np.arange(count + 1)
    bounds = np.searchsorted(cost, np.linspace(0, int(cost[-1]), n_chunks + 1))
    bounds = bounds.astype(np.intp)
    bounds[0], bounds[-1] = 0, count
    return bounds


class CSRDesign:
    """A validated CSR design matrix and the kernel calls on it.

    Parameters
    ----------
    X : CSRArrays
        From :func:`softmax_fast._validation.as_csr_arrays`; not copied.  W and b passed to the
        methods must have X's dtype.
    n_threads : int
        Resolved thread count (>= 1); each call's team is sized from its work.

    Notes
    -----
    ``loss_grad`` takes one of three strategies (:meth:`strategy`), each a function of the
    shape, K and the team size only, so results are reproducible for a given ``n_threads``:

    * ``"columns"`` when X has fewer rows than columns (text data): both products run over the
      CSC copy of X, column by column, scattering into and gathering from the m x K logits
      table, the smaller of the two tables; extra memory ``t * m * K * 8`` bytes for ``t``
      threads, plus the CSC copy;
    * ``"rows"``: one pass over the CSR rows, each thread adding its rows' gradient into its own
      (n, K) accumulator, summed in thread order into the result: extra memory
      ``t * n * K * 8`` bytes (none beyond the result for one thread);
    * ``"rows+column pass"`` when those tables would exceed :data:`ROW_ACCUMULATOR_BYTES`:
      logits by rows, then the gradient by columns from G: extra memory ``m * K * 8`` bytes
      plus the CSC copy, whatever the thread count.

    The CSC copy (``nnz * (itemsize + index size) + (n + 1) * index size`` bytes) is built on
    the first call that needs it and kept by the design (a fit builds it once).

    Attributes
    ----------
    feature_major : bool
        True: ``loss_grad`` takes the coefficients as Wt = W^T (n, K) and returns the gradient
        as dWt (n, K).
    nnz : int
        The stored entries of X.
    """

    feature_major = True

    def __init__(self, X: CSRArrays, n_threads: int):
        self.X = X
        self.dtype = X.dtype
        self.n_samples, self.n_features = X.shape
        self.nnz = X.nnz
        self.n_threads = int(n_threads)
        self._row_bounds: dict[int, np.ndarray] = {}
        self._csc: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._col_bounds: dict[int, np.ndarray] = {}
        self._squared_values: dict[str, np.ndarray] = {}

    def take_rows(self, sample_rows: np.ndarray) -> "CSRDesign":
        """The design of the rows ``sample_rows`` (a copy of those rows' entries)."""
        indptr = self.X.indptr
        starts, stops = indptr[sample_rows], indptr[sample_rows + 1]
        lengths = stops - starts
        new_indptr = np.zeros(sample_rows.size + 1, dtype=indptr.dtype)
        np.cumsum(lengths, out=new_indptr[1:])
        # positions of the taken entries: for each taken row, starts[r] + 0 .. lengths[r] - 1
        offsets = np.repeat(starts - new_indptr[:-1], lengths)
        positions = np.arange(int(new_indptr[-1]), dtype=np.intp) + offsets
        sub = CSRArrays(
            self.X.data[positions],
            self.X.indices[positions],
            new_indptr,
            (int(sample_rows.size), self.n_features),
        )
        return CSRDesign(sub, self.n_threads)

    def _bounds(self, n_chunks):
        """Row chunk bounds of about equal work (a row costs 1 + its non-zeros); cached."""
        bounds = self._row_bounds.get(n_chunks)
        if bounds is None:
            bounds = _balanced_bounds(self.X.indptr, n_chunks)
            self._row_bounds[n_chunks] = bounds
        return bounds

    def _team(self, K):
        work = (self.nnz * CSR_WORK_PER_NONZERO + self.n_samples) * K
        return team_for_work(self.n_threads, self.n_samples, work)

    def strategy(self, K: int) -> str:
        """The strategy of ``loss_grad`` with K classes: "columns", "rows" or
        "rows+column pass" (see the class notes)."""
        team = self._team(K)
        m, n = self.n_samples, self.n_features
        if m < n and team * m * K * 8 <= ROW_ACCUMULATOR_BYTES:
            return "columns"
        if team == 1 or team * n * K * 8 <= ROW_ACCUMULATOR_BYTES:
            return "rows"
        return "rows+column pass"

    def uses_column_pass(self, K: int) -> bool:
        """True when ``loss_grad`` with K classes forms the gradient by columns, from the CSC
        copy (the "columns" and "rows+column pass" strategies)."""
        return self.strategy(K) != "rows"

    def _csc_arrays(self):
        """(data, row indices, column pointers) of X in CSC, X's dtypes; built once."""
        if self._csc is None:
            X = self.X
            if X.indices.dtype == np.int32 and self.n_samples > 2**31 - 1:
                raise ValueError("X: more than 2**31 - 1 rows need int64 indices")
            team = team_for_work(self.n_threads, self.n_samples, self.nnz * CSR_WORK_PER_NONZERO)
            self._csc = _native_csr.to_csc(
                X.data, X.indices, X.indptr, self.n_features, self._bounds(team), team
            )
        return self._csc

    def _column_bounds(self, n_chunks):
        """Column chunk bounds of about equal work (a column costs 1 + its entries); cached."""
        bounds = self._col_bounds.get(n_chunks)
        if bounds is None:
            colptr = self._csc_arrays()[2]
            bounds = _balanced_bounds(colptr, n_chunks)
            self._col_bounds[n_chunks] = bounds
        return bounds

    def loss_grad(
        self,
        Wt: np.ndarray,
        b: np.ndarray | None,
        labels: np.ndarray | None,
        Y: np.ndarray | None,
        sample_weight: np.ndarray | None,
        grad_scale: float,
    ) -> tuple[float, np.ndarray, np.ndarray | None]:
        """Fused data term: ``(sum_i w_i l_i, dWt, db)`` without any penalty, as
        :meth:`DenseDesign.loss_grad` but feature-major: ``Wt`` (n, K) C-contiguous in X's
        dtype, ``dWt`` (n, K) float64."""
        if Wt.ndim != 2 or Wt.shape[0] != self.n_features:
            raise ValueError(f"Wt: shape {Wt.shape}, expected ({self.n_features}, K)")
        return self._loss_grad(Wt, b, labels, Y, sample_weight, grad_scale, class_major=False)

    def class_major_loss_grad(
        self,
        W: np.ndarray,
        b: np.ndarray | None,
        labels: np.ndarray | None,
        Y: np.ndarray | None,
        sample_weight: np.ndarray | None,
        grad_scale: float,
    ) -> tuple[float, np.ndarray, np.ndarray | None]:
        """:meth:`loss_grad` with W and dW in the user's (K, n) layout, for one-off calls: the
        "columns" strategy reads W and writes dW in that layout itself (a little slower than
        feature-major, and no transposed copies); the others transpose W in and dW out."""
        if W.ndim != 2 or W.shape[1] != self.n_features:
            raise ValueError(f"W: shape {W.shape}, expected (K, {self.n_features})")
        if self.strategy(W.shape[0]) == "columns":
            return self._loss_grad(W, b, labels, Y, sample_weight, grad_scale, class_major=True)
        total, dWt, db = self._loss_grad(
            transposed(W, n_threads=self.n_threads),
            b,
            labels,
            Y,
            sample_weight,
            grad_scale,
            class_major=False,
        )
        return total, transposed(dWt, n_threads=self.n_threads), db

    def _loss_grad(self, W, b, labels, Y, sample_weight, grad_scale, class_major):
        K = W.shape[0] if class_major else W.shape[1]
        team = self._team(K)
        strategy = self.strategy(K)
        X = self.X
        if strategy == "columns":
            data, rows, colptr = self._csc_arrays()
            bad, total, dW, db = _native_csr.loss_and_grad_columns(
                data,
                rows,
                colptr,
                self.n_samples,
                self._column_bounds(team),
                self._bounds(team),
                labels,
                Y,
                W,
                b,
                sample_weight,
                grad_scale,
                team,
                class_major,
            )
        else:
            assert not class_major  # the row kernels gather rows of Wt
            csc = (None, None, None, None)
            if strategy == "rows+column pass":
                csc = (*self._csc_arrays(), self._column_bounds(4 * team))
            bad, total, dW, db = _native_csr.loss_and_grad(
                X.data,
                X.indices,
                X.indptr,
                self.n_features,
                self._bounds(team),
                labels,
                Y,
                W,
                b,
                sample_weight,
                grad_scale,
                *csc,
                team,
            )
        if bad >= 0:
            raise_bad_linear_row(X, W if class_major else W.T, b, bad)
        return float(total), dW, db

    def column_mean_squares(self) -> np.ndarray:
        """``mean_i x_ij^2`` per column, float64 (n,): one pass over the non-zeros (repeated
        entries of a row squared one by one: a bound, not the exact sum's square)."""
        data = self.X.data.astype(np.float64)
        sums = np.bincount(self.X.indices, weights=data * data, minlength=self.n_features)
        return sums / max(1, self.n_samples)

    # ------------------------------------------------------------------------- curvature
    def curvature(
        self, Wt: np.ndarray, b: np.ndarray | None, sample_weight: np.ndarray | None
    ) -> Curvature:
        """The probabilities at (Wt (n, K), b) (one pass) for :meth:`hess_vec` and
        :meth:`hess_diag`."""
        return Curvature(self._predict(Wt, b, want_proba=True, feature_major=True), sample_weight)

    def hess_vec(
        self, curvature: Curvature, Vt: np.ndarray, c: np.ndarray | None, scale: float
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`DenseDesign.hess_vec` feature-major: ``Vt`` (n, K) in X's dtype, ``dVt``
        (n, K) float64; the strategy of :meth:`loss_grad` (:meth:`strategy`)."""
        K = Vt.shape[1]
        team = self._team(K)
        strategy = self.strategy(K)
        X, P, sw = self.X, curvature.P, curvature.sample_weight
        if strategy == "columns":
            data, rows, colptr = self._csc_arrays()
            return _native_csr.hess_vec_columns(
                data,
                rows,
                colptr,
                self.n_samples,
                self._column_bounds(team),
                self._bounds(team),
                P,
                Vt,
                c,
                sw,
                scale,
                team,
            )
        csc = (None, None, None, None)
        if strategy == "rows+column pass":
            csc = (*self._csc_arrays(), self._column_bounds(4 * team))
        return _native_csr.hess_vec(
            X.data,
            X.indices,
            X.indptr,
            self.n_features,
            self._bounds(team),
            P,
            Vt,
            c,
            sw,
            scale,
            *csc,
            team,
        )

    def _scipy(self):
        """X as a float64 scipy.sparse CSR matrix sharing the index arrays; cached."""
        matrix = getattr(self, "_matrix", None)
        if matrix is None:
            from scipy.sparse import csr_matrix

            data = self.X.data.astype(np.float64)
            matrix = csr_matrix((data, self.X.indices, self.X.indptr), shape=self.X.shape)
            self._matrix = matrix
        return matrix

    def _squared(self, data: np.ndarray, key: str) -> np.ndarray:
        """``data * data`` in X's dtype (CSR or CSC values), cached under ``key``."""
        squared = self._squared_values.get(key)
        if squared is None:
            squared = np.multiply(data, data)
            self._squared_values[key] = squared
        return squared

    def hess_diag(self, curvature: Curvature, scale: float) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`DenseDesign.hess_diag` feature-major: (n, K) and (K,), float64: one pass,
        by rows into per-chunk accumulators where :meth:`loss_grad` uses them, else through
        the column pass over the CSC copy; X's entries squared, in the order that pass
        reads them, are kept for the design's life (nnz values of X's dtype)."""
        P = curvature.P
        K = P.shape[1]
        team = self._team(K)
        X = self.X
        csc: tuple[Any, Any, Any, Any] = (None, None, None, None)
        row_values = X.data  # the column pass reads the squares from the CSC copy only
        if self.strategy(K) != "rows":
            data, rows, colptr = self._csc_arrays()
            csc = (self._squared(data, "csc"), rows, colptr, self._column_bounds(4 * team))
        else:
            row_values = self._squared(X.data, "csr")
        diag_W, diag_b = _native_csr.hess_diag(
            row_values,
            X.indices,
            X.indptr,
            self.n_features,
            self._bounds(team),
            P,
            curvature.sample_weight,
            scale,
            True,
            *csc,
            team,
        )
        assert diag_b is not None
        return diag_W, diag_b

    def hessian(
        self,
        Wt: np.ndarray,
        b: np.ndarray | None,
        sample_weight: np.ndarray | None,
        scale: float,
        class_rows: np.ndarray,
    ) -> np.ndarray:
        """:meth:`DenseDesign.hessian` from Wt (n, K), in the same class-major order.  Each
        pair of free classes (a, a') costs one sparse product ``Xa^T diag(d) Xa`` with
        ``d = w scale (delta p_a - p_a p_a')``: ``sum_i nnz_i^2`` work, X never densified."""
        from scipy.sparse import csr_matrix, hstack

        X = self._scipy()
        Z = np.asarray(X @ np.asarray(Wt, dtype=np.float64))
        if b is not None:
            Z += np.asarray(b, dtype=np.float64)
            X = csr_matrix(hstack([X, np.ones((self.n_samples, 1))], format="csr"))
        Z -= Z.max(axis=1, keepdims=True)
        np.exp(Z, out=Z)
        Z /= Z.sum(axis=1, keepdims=True)
        w = np.full(self.n_samples, scale) if sample_weight is None else sample_weight * scale
        XT = X.T.tocsr()
        d = X.shape[1]
        F = class_rows.size
        H = np.empty((F * d, F * d))
        for a in range(F):
            pa = Z[:, class_rows[a]]
            for a2 in range(a, F):
                coef = w * pa * ((a == a2) - Z[:, class_rows[a2]])
                if a == a2:  # coef >= 0: R^T R, exactly symmetric
                    root = X.multiply(np.sqrt(coef)[:, None]).tocsr()
                    block = _dense_block(root.T @ root, d)
                else:
                    block = _dense_block(XT @ X.multiply(coef[:, None]).tocsr(), d)
                H[a * d : (a + 1) * d, a2 * d : (a2 + 1) * d] = block
                if a2 != a:
                    H[a2 * d : (a2 + 1) * d, a * d : (a + 1) * d] = block.T
        return H

    def _predict(self, W, b, want_proba, feature_major=False):
        """Probabilities or labels from W (K, n), or from Wt (n, K) when ``feature_major``."""
        Wt = W if feature_major else np.ascontiguousarray(W.T)
        m, K = self.n_samples, Wt.shape[1]
        team = self._team(K)
        proba = np.empty((m, K), dtype=self.dtype) if want_proba else None
        labels = None if want_proba else np.empty(m, dtype=np.intp)
        X = self.X
        bounds = self._bounds(max(1, min(4 * team, m)) if team > 1 else 1)
        bad = _native_csr.predict(X.data, X.indices, X.indptr, bounds, Wt, b, proba, labels, team)
        if bad >= 0:
            raise_bad_linear_row(X, Wt.T, b, bad)
        return proba if want_proba else labels

    def predict_proba(self, W: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        """``softmax(X W^T + b)``, shape (m, K), X's dtype."""
        return self._predict(W, b, want_proba=True)

    def predict(self, W: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        """``argmax_k (X W^T + b)_k`` per row (ties: lowest index), shape (m,) intp."""
        return self._predict(W, b, want_proba=False)

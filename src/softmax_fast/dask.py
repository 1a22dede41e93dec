"""Softmax regression on Dask arrays: the fused kernels run on the workers, block by block, and
the solver runs on the client (the design of Spark MLlib's multinomial logistic regression and
of dask-glm).

:class:`DaskSoftmaxRegression` fits a ``dask.array`` X chunked by rows, with dense NumPy blocks
or scipy.sparse CSR blocks.  Each block becomes a validated design (:mod:`softmax_fast._design`)
once, kept in the workers' memory when ``persist=True``.  Each evaluation of the objective sends
the coefficients once (one key of the graph, which each worker running a block fetches once;
not a copy inside every task), evaluates the fused loss and gradient of every block with the
global ``1 / sum(w)`` scaling where the block lives, and adds the blocks' (loss, dW, db) in a
fixed binary tree, pairs of neighbouring blocks first, up to the client: nothing of size m ever
travels to the client, and the sums do not depend on which worker finished first (the same
chunking gives the same bits).  The solvers of :mod:`softmax_fast._solvers` run unchanged on
this objective.  With a ``distributed.Client`` active the work runs on its cluster, else on
Dask's default scheduler.

Requires the ``dask`` extra: ``pip install "softmax-fast[dask]"``.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

try:
    import dask
    import dask.array as da
    import dask.sizeof
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError('softmax_fast.dask needs dask: pip install "softmax-fast[dask]"') from exc

import scipy.sparse as sp

from ._design import CSRDesign, DenseDesign
from ._objective import SoftmaxObjective
from ._threads import effective_n_threads, one_blas_thread
from ._validation import as_csr_arrays, as_float_array, check_finite
from .estimator import SoftmaxRegression, _progress_reporter

__all__ = ["DaskSoftmaxRegression"]


# What a block's design holds, for Dask's scheduler: it places a task where its largest inputs
# are, and would otherwise take a design (which holds the block) for a few bytes and move it.
@dask.sizeof.sizeof.register(DenseDesign)
def _sizeof_dense_design(design):
    return int(design.X.nbytes) + 1000


@dask.sizeof.sizeof.register(CSRDesign)
def _sizeof_csr_design(design):
    X = design.X
    held = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    if design._csc is not None:
        held += sum(a.nbytes for a in design._csc)
    return int(held) + 1000


_LOCAL_PARAMS = (
    "alpha",
    "fit_intercept",
    "solver",
    "max_iter",
    "tol",
    "learning_rate",
    "reference_class",
    "class_weight",
    "verbose",
)


# ----------------------------------------------------------------------------- on the workers


def _block_design(X_block, n_threads):
    """The validated design of one block of X (checked once: finite values, a sane CSR
    structure), as the in-memory estimator builds it for the whole X."""
    if sp.issparse(X_block):
        return CSRDesign(as_csr_arrays(X_block, "X"), n_threads)
    X_block = as_float_array(X_block, "X", ndim=2)
    check_finite(X_block, "X")
    return DenseDesign(X_block, n_threads)


def _block_labels(y_block, classes):
    """Class indices of a block of labels (each is among ``classes``, found by one pass)."""
    y_block = np.asarray(y_block).ravel()
    idx = np.searchsorted(classes, y_block)
    idx = np.clip(idx, 0, classes.size - 1)
    if y_block.size and not np.array_equal(classes[idx], y_block):
        raise ValueError("y: a label outside the classes found in y (y changed during the fit?)")
    return idx.astype(np.intp)


def _block_weights(w_block, y_idx, per_class, scale):
    """A block's weights as the objective sees them: sample weight times class weight, times
    the fit's power-of-two scale (exact); None when every weight is 1."""
    if w_block is None and per_class is None:
        return None
    w = np.ones(y_idx.size) if w_block is None else np.asarray(w_block, dtype=np.float64).ravel()
    if per_class is not None:
        w = w * per_class[y_idx]
    return w * scale


def _block_weight_stats(w_block, y_idx, n_classes):
    """(all finite, min, per-class sums, per-class maxima) of a block's sample weights (a
    block without weights: each weight 1)."""
    w = np.ones(y_idx.size) if w_block is None else np.asarray(w_block, dtype=np.float64).ravel()
    maxima = np.full(n_classes, -np.inf)
    if w.size:
        np.maximum.at(maxima, y_idx, w)
    return (
        bool(np.isfinite(w).all()),
        float(w.min()) if w.size else np.inf,
        np.bincount(y_idx, weights=w, minlength=n_classes),
        maxima,
    )


def _block_state(X_block, y_block, w_block, classes, per_class, scale, n_threads):
    """What an evaluation needs of one block, built once: (its design, its class indices, its
    weights or None), one object, so that the three stay on one worker."""
    y_idx = _block_labels(y_block, classes)
    weights = _block_weights(w_block, y_idx, per_class, scale)
    return _block_design(X_block, n_threads), y_idx, weights


def _block_loss_grad(state, coefficients, grad_scale):
    """One block's (sum_i w_i l_i, dW, db) in float64: its design's fused kernel."""
    design, y_idx, weights = state
    W, b = coefficients
    if design.n_samples == 0:
        K = W.shape[1] if design.feature_major else W.shape[0]
        dW = np.zeros_like(W, dtype=np.float64)
        return 0.0, dW, None if b is None else np.zeros(K)
    return design.loss_grad(W, b, y_idx, None, weights, grad_scale)


def _coefficients(W, b):
    """The evaluation's (W, b), as one task's result."""
    return W, b


def _add_parts(a, b):
    """Partial sums of two neighbouring blocks (or subtrees), added in that order: tuples of
    floats, arrays and Nones, element by element."""
    return tuple(None if x is None else x + y for x, y in zip(a, b, strict=True))


def _tree_sum(parts):
    """The blocks' partial sums added pairwise, neighbours first, in a fixed binary tree: the
    result does not depend on the order in which the tasks finish."""
    level = list(parts)
    add = dask.delayed(_add_parts, pure=True)
    while len(level) > 1:
        level = [
            add(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
            for i in range(0, len(level), 2)
        ]
    return level[0]


def _block_curvature(state, coefficients):
    """One block's :class:`softmax_fast._design.Curvature` at (W, b) (None for an empty
    block): its probabilities, kept on its worker for the Hessian products."""
    design, _, weights = state
    if design.n_samples == 0:
        return None
    W, b = coefficients
    return design.curvature(W, b, weights)


def _zeros_like_parts(W, b):
    return np.zeros(W.shape), None if b is None else np.zeros(b.shape)


def _block_hess_vec(state, curvature, direction, scale):
    """One block's data-term Hessian applied to the direction (V, c): (dV, dc), float64."""
    design = state[0]
    V, c = direction
    if curvature is None:
        return _zeros_like_parts(V, c)
    return design.hess_vec(curvature, V, c, scale)


def _block_hess_diag(state, curvature, shapes, scale):
    """One block's diagonal of the data-term Hessian: (diag_W, diag_b), float64."""
    design = state[0]
    if curvature is None:
        return np.zeros(shapes[0]), np.zeros(shapes[1])
    return design.hess_diag(curvature, scale)


def _block_hessian(state, coefficients, scale, class_rows):
    """One block's full data-term Hessian (class-major, the designs' ``hessian``), as a
    1-tuple for the tree sum."""
    design, _, weights = state
    W, b = coefficients
    if design.n_samples == 0:
        d = design.n_features + (b is not None)
        return (np.zeros((class_rows.size * d,) * 2),)
    return (design.hessian(W, b, weights, scale, class_rows),)


# ----------------------------------------------------------------------------- on the client


class _DaskCurvature(NamedTuple):
    """The blocks' curvatures (futures or persisted delayed objects) and K."""

    parts: list
    n_classes: int


class DaskDesign:
    """The per-block states (design, class indices, weights) of a row-chunked dask X, and one
    evaluation of their data term.

    Implements what :class:`softmax_fast._objective.SoftmaxObjective` needs of a design
    (``loss_grad``, ``dtype``, ``feature_major``, ``n_threads``, shapes), with the labels and
    weights held per block beside the designs: ``loss_grad`` takes ``labels`` and
    ``sample_weight`` as None.  ``states``: one delayed object (or future) per block.
    """

    def __init__(self, states, n_samples, n_features, dtype, sparse, n_threads):
        self.states = list(states)
        self.n_samples, self.n_features = int(n_samples), int(n_features)
        self.dtype = np.dtype(dtype)
        self.feature_major = bool(sparse)  # CSRDesign's layout for CSR blocks
        self.n_threads = int(n_threads)  # the client's, for the solver's own passes

    def loss_grad(self, W, b, labels, Y, sample_weight, grad_scale):
        """``(sum_i w_i l_i, dW, db)`` over every block, float64, W in the design's layout."""
        if labels is not None or Y is not None or sample_weight is not None:
            raise ValueError("DaskDesign.loss_grad: labels and weights live with the blocks")
        # one task of the graph, whose result each worker running a block fetches once (not
        # a literal, which Dask would copy into every task that uses it; and not a scatter,
        # whose data a lost worker would take with it)
        coefficients = dask.delayed(_coefficients, pure=False)(W, b)
        block = dask.delayed(_block_loss_grad, pure=True)
        parts = [block(state, coefficients, grad_scale) for state in self.states]
        ((total, dW, db),) = dask.compute(_tree_sum(parts))
        return float(total), dW, db

    # ------------------------------------------------------------------------- curvature
    def curvature(self, W, b, sample_weight):
        """Every block's probabilities at (W, b), computed and kept on the workers (the
        blocks' :class:`softmax_fast._design.Curvature`, one future each) for the Hessian
        products of one outer iteration; they are released when the result is dropped."""
        if sample_weight is not None:
            raise ValueError("DaskDesign.curvature: the weights live with the blocks")
        coefficients = dask.delayed(_coefficients, pure=False)(W, b)
        block = dask.delayed(_block_curvature, pure=True)
        parts = [block(state, coefficients) for state in self.states]
        client = _distributed_client()
        if client is None:
            parts = list(dask.persist(*parts))
        else:
            parts = client.compute(parts)  # next to their blocks: the scheduler follows the data
        return _DaskCurvature(parts, W.shape[1] if self.feature_major else W.shape[0])

    def hess_vec(self, curvature, V, c, scale):
        """The data term's Hessian applied to (V, c) over every block, tree-summed:
        ``(dV, dc)`` float64 in the design's layout."""
        direction = dask.delayed(_coefficients, pure=False)(V, c)
        block = dask.delayed(_block_hess_vec, pure=True)
        parts = [
            block(state, part, direction, scale)
            for state, part in zip(self.states, curvature.parts, strict=True)
        ]
        ((dV, dc),) = dask.compute(_tree_sum(parts))
        return dV, dc

    def hess_diag(self, curvature, scale):
        """The diagonal of the data term's Hessian over every block: (W's shape, (K,))."""
        K = curvature.n_classes
        shapes = ((self.n_features, K) if self.feature_major else (K, self.n_features), (K,))
        block = dask.delayed(_block_hess_diag, pure=True)
        parts = [
            block(state, part, shapes, scale)
            for state, part in zip(self.states, curvature.parts, strict=True)
        ]
        ((diag_W, diag_b),) = dask.compute(_tree_sum(parts))
        return diag_W, diag_b

    def hessian(self, W, b, sample_weight, scale, class_rows):
        """The full data-term Hessian (class-major), one block's share per task, summed."""
        if sample_weight is not None:
            raise ValueError("DaskDesign.hessian: the weights live with the blocks")
        coefficients = dask.delayed(_coefficients, pure=False)(W, b)
        block = dask.delayed(_block_hessian, pure=True)
        parts = [block(state, coefficients, scale, class_rows) for state in self.states]
        ((H,),) = dask.compute(_tree_sum(parts))
        return H


def _place(states):
    """The block states computed and kept in memory: with a ``distributed.Client``, blocks
    [i n_workers / n_blocks] in contiguous runs on the workers in turn (an even share of the
    work each, neighbours of the reduction tree together; another worker takes over a lost
    one's); else on Dask's default scheduler."""
    client = _distributed_client()
    if client is None:
        return list(dask.persist(*states))
    workers = sorted(client.scheduler_info()["workers"])
    n = len(states)
    return [
        client.compute(state, workers=[workers[i * len(workers) // n]], allow_other_workers=True)
        for i, state in enumerate(states)
    ]


def _distributed_client():
    """The active ``distributed.Client``, or None."""
    try:
        from distributed import get_client
    except ImportError:  # pragma: no cover - dask without distributed
        return None
    try:
        return get_client()
    except ValueError:
        return None


class _DaskObjective(SoftmaxObjective):
    """SoftmaxObjective on a DaskDesign: the labels and weights are the design's, and the sum
    of the weights was found by the fit's pass over them."""

    def __init__(self, design, n_classes, alpha, fit_intercept, reference, weight_total):
        super().__init__(design, None, None, n_classes, alpha, fit_intercept, reference)
        self.weight_total = float(weight_total)


def _check_dask_rows(name, a, row_chunks, m):
    """A 1-D dask array (or array-like) of length m with X's row chunks, as a dask array."""
    if isinstance(a, da.Array):
        if a.ndim == 2 and a.shape[1] == 1:
            a = a[:, 0]
        if a.ndim != 1:
            raise ValueError(f"{name}: must be 1-D, got shape {a.shape}")
        if any(np.isnan(c) for c in a.chunks[0]):
            raise ValueError(
                f"{name}: unknown chunk sizes (NaN); call {name}.compute_chunk_sizes() first"
            )
        if a.shape[0] != m:
            raise ValueError(f"{name}: has {a.shape[0]} rows but X has {m}")
        if a.chunks[0] != row_chunks:
            raise ValueError(
                f"{name}: its row chunks {a.chunks[0]} do not match X's {row_chunks}; "
                f"rechunk it with {name}.rechunk({{0: X.chunks[0]}})"
            )
        return a
    a = np.asarray(a)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"{name}: must be 1-D, got shape {a.shape}")
    if a.shape[0] != m:
        raise ValueError(f"{name}: has {a.shape[0]} rows but X has {m}")
    return da.from_array(a, chunks=(row_chunks,))


def _check_dask_X(X):
    """X as a dask array with known row chunks and one chunk across the columns; (X, sparse)."""
    if not isinstance(X, da.Array):
        raise TypeError(
            f"X: must be a dask.array.Array, got {type(X).__name__} (use SoftmaxRegression for "
            "in-memory data)"
        )
    if X.ndim != 2:
        raise ValueError(f"X: must be 2-D, got {X.ndim} dimensions")
    if any(np.isnan(c) for axis in X.chunks for c in axis):
        raise ValueError("X: unknown chunk sizes (NaN); call X.compute_chunk_sizes() first")
    meta = X._meta
    if sp.issparse(meta):
        if meta.format != "csr":
            raise TypeError(
                f"X: blocks of scipy.sparse format {meta.format!r} are not supported; the "
                "accepted blocks are NumPy arrays and scipy.sparse CSR matrices or arrays "
                "(map_blocks(lambda b: b.tocsr()))"
            )
        sparse = True
    elif isinstance(meta, np.ndarray):
        sparse = False
    else:
        raise TypeError(
            f"X: blocks of type {type(meta).__module__}.{type(meta).__name__} are not supported; "
            "the accepted blocks are NumPy arrays and scipy.sparse CSR matrices or arrays"
        )
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_) or np.issubdtype(
        X.dtype, np.complexfloating
    ):
        raise TypeError(f"X: must hold real numbers, got dtype {X.dtype}")
    if X.numblocks[1] != 1:
        # the kernels need a row's every feature in one block
        X = X.rechunk({1: -1})
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X: needs at least one row and one column, got shape {X.shape}")
    return X, sparse


class DaskSoftmaxRegression(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression on Dask arrays, the fused kernels on the workers.

    The parameters mean what they mean on :class:`softmax_fast.SoftmaxRegression`.

    Parameters
    ----------
    alpha : float, default=1e-4
    fit_intercept : bool, default=True
    solver : {"auto", "lbfgs", "newton-cg", "newton", "gd"}, default="auto"
        The full-batch solvers: each evaluation, Hessian-vector product (newton-cg) or Hessian
        (newton) is one pass over the blocks, tree-reduced; newton-cg keeps the blocks'
        probabilities on the workers for an outer iteration (``m * K`` values of X's dtype
        across the cluster).  ``"auto"`` chooses as on :class:`SoftmaxRegression`.  The
        row-by-row solvers are refused: ``"sgd"`` and ``"saga"`` would send a task per batch
        or a pass of sequential steps through every block in turn.
    max_iter : int, default=200
    tol : float, default=1e-6
    learning_rate : float, default=0.5
        The step of ``"gd"``.
    reference_class : label or None, default=None
    class_weight : dict, "balanced" or None, default=None
    n_threads : int, default=1
        Threads of the kernel in each task (one task per block); the workers' own thread
        counts are the cluster's setting.
    verbose : int, default=0
    persist : bool, default=True
        Keep the blocks' validated designs (and their labels and weights) in the workers'
        memory for the whole fit.  False: every evaluation reads X's blocks again from their
        source (for X larger than the cluster's memory).

    Attributes
    ----------
    classes_, coef_, intercept_, n_features_in_, n_iter_, loss_curve_, solver_
        NumPy values (and the solver run), as on :class:`SoftmaxRegression`.

    Notes
    -----
    X must be a ``dask.array`` of known chunk sizes; chunks across the columns are rechunked
    into one (a block holds whole rows).  y and ``sample_weight`` may be NumPy arrays or dask
    arrays with X's row chunks.  The classes are found by one pass over y.  With a
    ``distributed.Client`` active the work runs on its cluster, else on Dask's default
    scheduler.  A worker lost during the fit costs its blocks' recomputation from their source,
    not the fit: the result is the same.
    """

    def __init__(
        self,
        *,
        alpha=1e-4,
        fit_intercept=True,
        solver="auto",
        max_iter=200,
        tol=1e-6,
        learning_rate=0.5,
        reference_class=None,
        class_weight=None,
        n_threads=1,
        verbose=0,
        persist=True,
    ):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.learning_rate = learning_rate
        self.reference_class = reference_class
        self.class_weight = class_weight
        self.n_threads = n_threads
        self.verbose = verbose
        self.persist = persist

    # ----------------------------------------------------------------------------- helpers
    def _local_estimator(self):
        """A SoftmaxRegression with this estimator's parameters (unfitted)."""
        return SoftmaxRegression(
            **{name: getattr(self, name) for name in _LOCAL_PARAMS}, n_threads=self.n_threads
        )

    def _local_template(self):
        """:meth:`_local_estimator`, its parameters checked by its own rules and ours."""
        local = self._local_estimator()
        local._check_params()
        if self.solver in ("sgd", "saga"):
            raise ValueError(
                f'solver: "{self.solver}" is not supported on Dask arrays (a row-by-row solver '
                'would send a task per batch); use "auto", "lbfgs", "newton-cg", "newton" or '
                '"gd"'
            )
        if isinstance(self.n_threads, bool) or not isinstance(self.n_threads, numbers.Integral):
            raise TypeError(f"n_threads: must be an int, got {type(self.n_threads).__name__}")
        if not isinstance(self.persist, (bool, np.bool_)):
            raise TypeError(f"persist: must be a bool, got {type(self.persist).__name__}")
        return local

    def to_local(self) -> SoftmaxRegression:
        """The fitted model as an in-memory :class:`SoftmaxRegression` (the same coefficients,
        classes and fit history), for NumPy and scipy.sparse input and for saving."""
        if not hasattr(self, "coef_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("This DaskSoftmaxRegression is not fitted yet; call fit first")
        local = self._local_estimator()
        local.classes_ = self.classes_
        local.coef_ = self.coef_
        local.intercept_ = self.intercept_
        local.n_features_in_ = self.n_features_in_
        local.n_iter_ = self.n_iter_
        local.loss_curve_ = list(self.loss_curve_)
        local.solver_ = self.solver_
        return local

    # ----------------------------------------------------------------------------- fit
    def fit(self, X, y, sample_weight=None):
        """Fit the model to the dask array X (rows in chunks) and labels y.

        Parameters
        ----------
        X : dask.array.Array of shape (n_samples, n_features)
            NumPy or scipy.sparse CSR blocks, chunked by rows.
        y : dask.array.Array or array_like of shape (n_samples,)
        sample_weight : dask.array.Array or array_like of shape (n_samples,), optional

        Returns
        -------
        self
        """
        local = self._local_template()
        X, sparse = _check_dask_X(X)
        m, n = X.shape
        row_chunks = X.chunks[0]
        y = _check_dask_rows("y", y, row_chunks, m)
        w = (
            None
            if sample_weight is None
            else _check_dask_rows("sample_weight", sample_weight, row_chunks, m)
        )
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        if X.dtype != dtype:
            X = X.astype(dtype)

        # one pass over y: the classes
        classes = np.unique(np.asarray(da.unique(y).compute()))
        if classes.size < 2:
            raise ValueError(
                f"y: needs samples of at least 2 classes, got {classes.size} ({classes.tolist()})"
            )
        K = classes.size
        local.classes_ = classes
        reference = local._reference_index()
        y_blocks = list(y.to_delayed().ravel())
        label = dask.delayed(_block_labels, pure=True)
        labels = [label(yb, classes) for yb in y_blocks]
        per_class, scale, weight_total = self._weight_plan(local, labels, w, K, m)

        w_blocks = [None] * len(y_blocks) if w is None else list(w.to_delayed().ravel())
        state = dask.delayed(_block_state, pure=True)
        states = [
            state(xb, yb, wb, classes, per_class, scale, int(self.n_threads))
            for xb, yb, wb in zip(X.to_delayed().ravel(), y_blocks, w_blocks, strict=True)
        ]
        if self.persist:
            states = _place(states)
        design = DaskDesign(states, m, n, dtype, sparse, effective_n_threads(None))
        objective = _DaskObjective(
            design, K, float(self.alpha), bool(self.fit_intercept), reference, weight_total * scale
        )
        progress = _progress_reporter(int(self.verbose), None)
        with one_blas_thread():
            result = local._run_solver(objective, np.zeros(objective.n_params), progress)
        local._store(objective, result.theta)
        self.classes_ = classes
        self.coef_, self.intercept_ = local.coef_, local.intercept_
        self.n_features_in_ = n
        self.n_iter_ = result.n_iter
        self.loss_curve_ = list(result.loss_curve)
        self.solver_ = local.solver_
        if not result.converged:
            local._warn_not_converged("iterations")
        return self

    def _weight_plan(self, local, labels, w, K, m):
        """(per-class weights or None, the power-of-two scale, the sum of the unscaled
        weights), from one pass over the weights and labels: the scale brings the largest
        weight into [0.5, 1), as the in-memory fit's (exact; no overflow of the sums)."""
        cw = self.class_weight
        if w is None and cw is None:
            return None, 1.0, float(m)
        stat = dask.delayed(_block_weight_stats, pure=True)
        w_blocks = [None] * len(labels) if w is None else list(w.to_delayed().ravel())
        stats = dask.compute([stat(wb, yi, K) for wb, yi in zip(w_blocks, labels, strict=True)])[0]
        if not all(s[0] for s in stats):
            raise ValueError("sample_weight: contains NaN or infinity")
        if min(s[1] for s in stats) < 0:
            raise ValueError("sample_weight: must be non-negative")
        class_sums = np.sum([s[2] for s in stats], axis=0)
        class_max = np.max([s[3] for s in stats], axis=0)
        if not class_sums.sum() > 0:
            raise ValueError("sample_weight: the weights sum to 0; at least one must be > 0")
        per_class = None if cw is None else _class_weights(cw, local.classes_, class_sums)
        if per_class is not None:
            class_sums = class_sums * per_class
            class_max = np.where(per_class > 0, class_max * per_class, 0.0)
        total = float(class_sums.sum())
        if not total > 0:
            raise ValueError(
                "class_weight: every sample has weight 0 (class weights times sample_weight)"
            )
        largest = float(class_max.max())
        scale = float(np.ldexp(1.0, -int(np.frexp(largest)[1])))
        return per_class, scale, total

    # ----------------------------------------------------------------------------- predict
    def _blockwise(self, X, method, shape_K):
        local = self.to_local()
        if not isinstance(X, da.Array):
            return getattr(local, method)(X)
        X, _ = _check_dask_X(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X: has {X.shape[1]} features, but the model was fitted on {self.n_features_in_}"
            )

        def run(block):
            return getattr(local, method)(block)

        if shape_K is None:
            meta = np.empty((0,), dtype=self.classes_.dtype if method == "predict" else np.float64)
            return X.map_blocks(run, drop_axis=1, meta=meta, dtype=meta.dtype)
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        return X.map_blocks(
            run, chunks=(X.chunks[0], (shape_K,)), meta=np.empty((0, shape_K), dtype), dtype=dtype
        )

    def predict(self, X):
        """Most probable class of each row: a dask array for dask X (lazy, block by block),
        a NumPy array otherwise."""
        return self._blockwise(X, "predict", None)

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, K): lazy for dask X."""
        return self._blockwise(X, "predict_proba", self.classes_.size)

    def predict_log_proba(self, X):
        """Log-probabilities from the log-softmax kernel: lazy for dask X."""
        return self._blockwise(X, "predict_log_proba", self.classes_.size)

    def decision_function(self, X):
        """Logits (for K = 2 the difference of the two, as scikit-learn): lazy for dask X."""
        if self.classes_.size == 2:
            if not isinstance(X, da.Array):
                return self.to_local().decision_function(X)
            Z = self._blockwise(X, "decision_function", None)
            return Z.astype(X.dtype if X.dtype in (np.float32, np.float64) else np.float64)
        return self._blockwise(X, "decision_function", self.classes_.size)

    def score(self, X, y, sample_weight=None):
        """Mean accuracy (weighted by ``sample_weight``); computed for dask X."""
        if not isinstance(X, da.Array):
            return self.to_local().score(X, y, sample_weight=sample_weight)
        predicted = self.predict(X)
        y = _check_dask_rows("y", y, predicted.chunks[0], predicted.shape[0])
        hits = (predicted == y).astype(np.float64)
        if sample_weight is None:
            return float(hits.mean().compute())
        w = _check_dask_rows("sample_weight", sample_weight, predicted.chunks[0], y.shape[0])
        num, den = dask.compute((hits * w).sum(), w.sum())
        return float(num / den)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = False
        tags.classifier_tags.multi_class = True
        return tags


def _class_weights(cw, classes, class_sums):
    """Per-class weights of ``class_weight`` (a dict or "balanced"), as SoftmaxRegression's."""
    K = classes.size
    if isinstance(cw, str):
        if cw != "balanced":
            raise ValueError(f'class_weight: must be a dict, "balanced" or None, got {cw!r}')
        per_class = np.zeros(K)
        present = class_sums > 0
        per_class[present] = class_sums.sum() / (K * class_sums[present])
        return per_class
    per_class = np.ones(K)
    for label, weight in cw.items():
        matches = [i for i, c in enumerate(classes) if c == label]
        if not matches:
            raise ValueError(
                f"class_weight: label {label!r} is not among the classes {classes.tolist()}"
            )
        per_class[matches[0]] = weight
    return per_class

r"""SAGA: a variance-reduced incremental solver that converges to the optimum with a fixed step.

For J = (1/m+) sum_i f_i over the m+ rows of positive weight,
f_i = (m+ w_i / S) CE_i + (alpha / 2) ||W||^2 (S = sum_i w_i), each step on a row i moves the
coefficients along ``grad f_i(now) - grad f_i(at its last visit) + the mean of the stored
gradients`` (Defazio, Bach & Lacoste-Julien, 2014), an unbiased estimate of grad J whose variance
vanishes at the optimum; the penalty is applied by its exact proximal step.  A linear model's
per-row gradient is ``g_i (x) [x_i, 1]`` with g_i = w_i (p_i - y_i), so the memory is one
(m, K_free) table of the g_i plus the running sums of g_i (x) x_i and g_i.  The epoch itself is
compiled (:mod:`softmax_fast._native.incremental`: serial; dense X updates all of W each row,
CSR X just in time, O(nnz_i K) a row), and its docstring states the update exactly.

The objective side, :func:`saga_state` and :func:`saga_epoch`, is what
:class:`softmax_fast._objective.SoftmaxObjective` exposes as ``incremental_state`` and
``incremental_epoch``; the solver side, :func:`saga`, sees only those two and
``value_and_grad`` (for the stop test, the deterministic solvers' ``max |grad J| <= tol``).
"""

import numpy as np

from ._design import CSRDesign, DenseDesign
from ._native import incremental as _native_incremental
from ._solvers import SolverResult, _grad_max, _report

__all__ = ["SagaState", "saga", "saga_epoch", "saga_state", "saga_step_size"]

# The Hessian of the cross-entropy in the logits, diag(p) - p p^T, has its largest eigenvalue at
# most 1/2 (also for the K - 1 free classes of the reference form: a principal submatrix).
_CE_CURVATURE = 0.5

# First epoch: the mean of the stored gradients is taken over the rows seen so far (SAG's
# initialization), not over all m+ rows of a zero memory.  Measured on standardized digits
# (alpha = 2 / m, adaptive step, seed 0) the two are alike: 55 epochs to 1 % of the optimum's
# objective both, 1155 against 1161 epochs to a gradient of 1e-8; the seen-rows mean is kept
# (its first steps are estimates of the gradient, not of a fraction of it).  The switch stays
# for that comparison.
_SEEN_ROWS_MEAN = True


def _design_rows_squared_norms(design):
    """||x_i||^2 per row, float64 (a CSR row's repeated columns summed first)."""
    X = design.X
    if isinstance(design, DenseDesign):
        return np.einsum("ij,ij->i", X, X, dtype=np.float64)
    import scipy.sparse

    # copies: summing the duplicates sorts the indices in place, and X is the caller's
    A = scipy.sparse.csr_matrix(
        (X.data.astype(np.float64), X.indices.copy(), X.indptr.copy()), shape=X.shape
    )
    A.sum_duplicates()
    A.data **= 2
    return np.asarray(A.sum(axis=1), dtype=np.float64).ravel()


_STEP_RULES = {
    # (a, c) of the step 1 / (a L + min(c, L)), c as a multiple of m+ alpha
    "scikit-learn": (2.0, 2.0),
    "1/3L": (3.0, 0.0),
}


def saga_step_size(
    curvature: float, alpha: float, n_rows: int, rule: str = "scikit-learn"
) -> float:
    """The SAGA step from a curvature ``curvature`` of the data part of the f_i (alpha not
    included: ``L = curvature + alpha``), their strong convexity ``alpha`` and their number.

    ``rule="scikit-learn"`` (the default): ``1 / (2 L + min(2 n_rows alpha, L))``, between
    1/(3L) and 1/(2L): Defazio et al.'s step 1/(2 (alpha n + L)) of their strongly convex rate,
    capped as scikit-learn's ``get_auto_step_size`` caps it; larger than 1/(3L) (up to 1.5
    times) and measured faster: on standardized digits (alpha = 2 / m, adaptive curvature) 55
    epochs to 1 % of the optimum and 1155 to a gradient of 1e-8, against 75 and 1641.
    ``rule="1/3L"``: the step of Defazio et al.'s main theorem, ``1 / (3 L)``.
    """
    a, c = _step_coefficients(rule, alpha, n_rows)
    L = float(curvature) + float(alpha)
    return 1.0 / (a * L + min(c, L))


def _step_coefficients(rule, alpha, n_rows):
    if rule not in _STEP_RULES:
        raise ValueError(f"step_rule: unknown rule {rule!r}; one of {sorted(_STEP_RULES)}")
    a, c = _STEP_RULES[rule]
    return a, c * n_rows * float(alpha)


class SagaState:
    """What SAGA keeps between epochs (see :mod:`softmax_fast._native.incremental`).

    Attributes
    ----------
    memory : ndarray of shape (m, K_free), float64
        ``g_i = w_i (p_i - y_i)`` of each row at its last visit (0 before the first), the free
        classes only (the reference class's coefficients are never updated).
    sum_W : ndarray, float64
        ``sum_i g_i (x) x_i`` in W's layout in theta: (K_free, n) for dense X, (n, K_free) for
        CSR X.
    sum_b : ndarray of shape (K_free,), float64
        ``sum_i g_i``.
    seen : ndarray of shape (m,), uint8
        Rows visited so far; ``n_seen`` counts them.
    label_col : ndarray of shape (m,), intp
        Each row's label as a column of the free classes (-1: the reference class).
    row_norms : ndarray of shape (m,), float64, or None
        ``||x_i||^2 + fit_intercept`` for the adaptive step; None: the step is fixed.
    curvature : float
        The current curvature L of the data part of the f_i (fixed: ``curvature_max``).
    curvature_max, curvature_min : float
        The bound from the largest row norm, and the adaptive estimate's floor.
    decay : float
        The adaptive estimate's factor before each row, ``2 ** (-1 / m+)``.
    step_a, step_c : float
        The step is ``1 / (step_a (L + alpha) + min(step_c, L + alpha))``.
    alpha : float
        The objective's L2 penalty.
    row_factor : float
        ``m+ / S``: rows of positive weight over the weight total.
    n_positive : int
        m+.
    """

    memory: np.ndarray
    sum_W: np.ndarray
    sum_b: np.ndarray
    seen: np.ndarray
    n_seen: int
    label_col: np.ndarray
    row_norms: np.ndarray | None
    curvature: float
    curvature_max: float
    curvature_min: float
    decay: float
    step_a: float
    step_c: float
    alpha: float
    row_factor: float
    n_positive: int

    def __init__(self, **fields):
        unknown = set(fields) - set(type(self).__annotations__)
        if unknown:
            raise TypeError(f"SagaState: unknown fields {sorted(unknown)}")
        self.__dict__.update(fields)

    @property
    def step(self) -> float:
        """The step the current curvature gives."""
        L = self.curvature + self.alpha
        return 1.0 / (self.step_a * L + min(self.step_c, L))


def _coefficient_views(objective, theta):
    """W (the design's layout, free classes) and b (or None): views of theta."""
    k_free, n = objective.class_rows.size, objective.n_features
    k_n = k_free * n
    shape = (n, k_free) if objective.design.feature_major else (k_free, n)
    W = theta[:k_n].reshape(shape)
    b = theta[k_n:] if objective.fit_intercept else None
    return W, b


def saga_state(
    objective, theta: np.ndarray, *, step_rule: str = "scikit-learn", adaptive: bool = True
) -> SagaState:
    """A fresh SAGA state for ``objective`` (a :class:`~softmax_fast._objective.SoftmaxObjective`
    on in-memory data); ``theta``: the starting parameters (only their shape is used: the memory
    fills as the first epoch visits the rows).

    The step: the curvature bound ``L_max = max_i (||x_i||^2 + fit_intercept) * 0.5 * m+ w_i / S``
    over the rows of positive weight (0.5 bounds the curvature of the cross-entropy in the
    logits), then :func:`saga_step_size` (``step_rule``) at ``L_max + alpha``: the fixed step
    with SAGA's guarantee (``adaptive=False``).  ``adaptive=True`` (the default) starts the
    curvature at the rows' mean bound and adapts it row by row with SAG's line search (the
    kernel's ``_row_step``), never above ``L_max``: on data whose largest rows are far above the
    mean (standardized digits: 2338 against 61), a far larger step, and the fixed one's epochs
    to 1 % of the optimum cut from hundreds to a few (see tests/solvers/test_saga.py).

    Raises
    ------
    ValueError
        When the objective's data is not in memory (a Dask design: no labels array).
    """
    design = objective.design
    if objective.labels is None or not isinstance(design, (DenseDesign, CSRDesign)):
        raise ValueError(
            "solver='saga' needs in-memory data (a NumPy array or a SciPy sparse matrix, "
            "with the labels in memory); use solver='lbfgs' for out-of-core (Dask) data"
        )
    theta = np.asarray(theta)
    if theta.shape != (objective.n_params,):
        raise ValueError(f"theta: shape {theta.shape}, expected ({objective.n_params},)")
    m, n = objective.n_samples, objective.n_features
    k_free = objective.class_rows.size
    alpha = objective.alpha
    sw = objective.sample_weight
    col_of_class = np.full(objective.n_classes, -1, dtype=np.intp)
    col_of_class[objective.class_rows] = np.arange(k_free, dtype=np.intp)
    label_col = col_of_class[np.asarray(objective.labels, dtype=np.intp)]
    positive = np.ones(m, dtype=bool) if sw is None else np.asarray(sw) > 0
    n_positive = int(np.count_nonzero(positive))
    row_factor = n_positive / objective.weight_total if n_positive else 0.0
    step_a, step_c = _step_coefficients(step_rule, alpha, n_positive)
    curvature_max = curvature_mean = 1.0
    row_norms = None
    if n_positive:
        weights = np.ones(m) if sw is None else np.asarray(sw, dtype=np.float64)
        row_norms = _design_rows_squared_norms(design) + float(objective.fit_intercept)
        bounds = (row_norms * weights)[positive] * (_CE_CURVATURE * row_factor)
        curvature_max, curvature_mean = float(np.max(bounds)), float(np.mean(bounds))
        if not curvature_max > 0:  # all-zero rows, no intercept: nothing to learn
            curvature_max = curvature_mean = 1.0
    w_shape = (n, k_free) if design.feature_major else (k_free, n)
    if _SEEN_ROWS_MEAN:
        seen, n_seen = np.zeros(m, dtype=np.uint8), 0
    else:  # a zero memory, every row counted as seen
        seen, n_seen = np.ones(m, dtype=np.uint8), n_positive
    return SagaState(
        memory=np.zeros((m, k_free)),
        sum_W=np.zeros(w_shape),
        sum_b=np.zeros(k_free),
        seen=seen,
        n_seen=n_seen,
        label_col=label_col,
        row_norms=row_norms if adaptive else None,
        curvature=max(curvature_mean, 1e-6 * curvature_max) if adaptive else curvature_max,
        curvature_max=curvature_max,
        curvature_min=1e-6 * curvature_max,
        decay=2.0 ** (-1.0 / max(n_positive, 1)),
        step_a=step_a,
        step_c=step_c,
        alpha=alpha,
        row_factor=row_factor,
        n_positive=n_positive,
    )


def saga_epoch(objective, theta: np.ndarray, state: SagaState, order: np.ndarray) -> None:
    """One SAGA pass over the rows ``order`` (a permutation of range(m), or any sequence of
    row indices), updating ``theta`` (float64, C-contiguous, (n_params,)) and ``state`` in
    place.

    Raises
    ------
    ValueError
        When a row's logits are not finite (the iterates diverged), or on a bad ``theta`` or
        ``order``.
    """
    if not (
        isinstance(theta, np.ndarray)
        and theta.dtype == np.float64
        and theta.flags.c_contiguous
        and theta.shape == (objective.n_params,)
    ):
        raise ValueError(
            f"theta: a C-contiguous float64 array of shape ({objective.n_params},) is updated "
            "in place"
        )
    m = objective.n_samples
    order = np.ascontiguousarray(order, dtype=np.intp)
    if order.ndim != 1 or (order.size and (order.min() < 0 or order.max() >= m)):
        raise ValueError(f"order: row indices in [0, {m}) expected")
    if state.n_positive == 0 or order.size == 0:
        return
    design = objective.design
    W, b = _coefficient_views(objective, theta)
    args = (
        state.label_col,
        objective.sample_weight,
        order,
        W,
        b,
        state.memory,
        state.sum_W,
        state.sum_b,
        state.seen,
        state.n_seen,
        objective.reference is not None,
        state.row_norms,
        state.curvature,
        state.curvature_max,
        state.curvature_min,
        state.decay,
        state.step_a,
        state.step_c,
        objective.alpha,
        state.row_factor,
    )
    if isinstance(design, CSRDesign):
        X = design.X
        bad, n_seen, curvature = _native_incremental.saga_epoch_csr(
            X.data, X.indices, X.indptr, *args
        )
    else:
        bad, n_seen, curvature = _native_incremental.saga_epoch_dense(design.X, *args)
    state.n_seen, state.curvature = int(n_seen), float(curvature)
    if bad >= 0:
        raise ValueError(
            f"solver='saga': the logits of row {bad} are not finite: the iterates diverged; "
            "standardize the features (e.g. StandardScaler)"
        )


def saga(
    objective,
    theta0: np.ndarray,
    *,
    max_iter: int,
    tol: float,
    rng: np.random.Generator,
    progress=None,
) -> SolverResult:
    """Minimize with SAGA: epochs over a fresh random order of the rows each, a fixed step.

    After each epoch the full objective and gradient are evaluated (one fused pass) for the
    loss curve, ``progress`` (unit "epoch") and the stop test ``max |grad J| <= tol``.

    Parameters
    ----------
    objective : SoftmaxObjective
        Its ``incremental_state``, ``incremental_epoch`` and ``value_and_grad``.
    theta0 : ndarray of shape (n_params,)
        Starting point (not modified).
    max_iter : int
        Maximum epochs.
    tol : float
    rng : numpy.random.Generator
        Draws each epoch's order (``rng.permutation(m)``).
    progress : callable or None

    Returns
    -------
    SolverResult
        ``n_iter`` epochs; ``converged`` False when ``max_iter`` stopped it;
        ``samples_seen`` = epochs * m.
    """
    theta = np.array(theta0, dtype=np.float64)
    state = objective.incremental_state(theta)
    m = objective.n_samples
    loss_curve: list[float] = []
    converged = False
    n_epochs = 0
    for epoch in range(1, max_iter + 1):
        objective.incremental_epoch(theta, state, rng.permutation(m))
        n_epochs = epoch
        value, grad = objective.value_and_grad(theta)
        if not np.isfinite(value):
            raise ValueError("solver='saga': the objective is not finite: the iterates diverged")
        loss_curve.append(value)
        _report(progress, epoch, max_iter, value, grad, unit="epoch")
        if _grad_max(grad) <= tol:
            converged = True
            break
    return SolverResult(theta, n_epochs, loss_curve, converged, n_epochs * m)

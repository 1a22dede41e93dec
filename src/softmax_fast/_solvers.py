"""Optimizers for :class:`softmax_fast.SoftmaxRegression`.

Every solver works on a flat float64 parameter vector ``theta`` and an :class:`Objective` (the
protocol below; :class:`softmax_fast._objective.SoftmaxObjective` implements it for in-memory
data).  The solvers never see X: the objective owns the data and the kernels.  Each returns a
:class:`SolverResult` and reports every iteration (epoch for sgd) to an optional ``progress``
callable as a :class:`SolverStep`.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

from ._lbfgs import _line_search, minimize_lbfgs

if TYPE_CHECKING:
    from ._objective import ClassShifts

# sgd stops when the epoch loss has not improved by more than ``tol`` for this many epochs in a row
# (the running mean of the mini-batch losses is noisy, so one epoch is not enough evidence).
_SGD_N_ITER_NO_CHANGE = 5
# sgd's result averages the iterates with weights growing like t ** _AVERAGING_POWER
_AVERAGING_POWER = 3
# the step decays like (samples seen / decay_samples) ** -_DECAY_POWER
_DECAY_POWER = 0.5


class HessianOperator(Protocol):
    """The Hessian of an objective at one point (what ``Objective.hessian_operator`` returns)."""

    def matvec(self, v: np.ndarray) -> np.ndarray:
        """``H v``, float64 of v's shape."""
        ...

    def diagonal(self) -> np.ndarray:
        """diag H, float64 of theta's shape."""
        ...

    @property
    def has_float32(self) -> bool:
        """Whether ``matvec_float32`` is a cheaper, float32 product (else it is ``matvec``)."""
        ...

    def matvec_float32(self, v: np.ndarray) -> np.ndarray:
        """``H v`` to about 1e-6 relative (float32 data), float64 of v's shape."""
        ...


class Objective(Protocol):
    """What a solver needs of an objective J(theta).

    Attributes
    ----------
    n_samples : int
        Rows the objective sums over (the stochastic solver's epoch length).
    """

    n_samples: int

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """``(J(theta), grad J(theta))``, float and float64 array of theta's shape."""
        ...

    def batch_value_and_grad(
        self, theta: np.ndarray, sample_rows: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """Unbiased estimates of ``(J, grad J)`` from the rows ``sample_rows`` (sorted int
        indices into the objective's samples)."""
        ...

    def hessian_operator(
        self, theta: np.ndarray, *, float32_products: bool = False
    ) -> HessianOperator:
        """The Hessian at theta as an operator (newton-cg); ``float32_products``: offer
        ``matvec_float32`` where the objective can make it cheaper."""
        ...

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        """The full Hessian at theta, (n_params, n_params) float64 (newton)."""
        ...

    def invariant_directions(self, *, class_shifts: bool = True) -> np.ndarray:
        """Orthonormal basis (n_params, r) of the directions along which J is constant (the
        Newton methods keep their steps orthogonal to them); ``class_shifts=False``: without
        those of :meth:`class_shifts`."""
        ...

    def class_shifts(self) -> "ClassShifts | None":
        """The directions on which the Hessian is a known multiple of the identity
        (:class:`softmax_fast._objective.ClassShifts`), or None."""
        ...


class SolverStep(NamedTuple):
    """One report of a solver's progress, after an iteration (or an sgd epoch).

    Attributes
    ----------
    iteration : int
        1-based iteration (epoch) number.
    max_iter : int
        The solver's iteration (epoch) limit.
    objective : float
        J at the current iterate (sgd: at the averaged iterate).
    grad_max : float
        ``max |grad J|`` there.
    unit : str
        ``"iteration"`` or ``"epoch"``.
    """

    iteration: int
    max_iter: int
    objective: float
    grad_max: float
    unit: str = "iteration"


Progress = Callable[[SolverStep], None]


class SolverResult(NamedTuple):
    """What a solver hands back.

    Attributes
    ----------
    theta : ndarray of shape (n_params,)
        The final parameters (float64).
    n_iter : int
        Iterations (lbfgs, gd) or epochs (sgd) run.
    loss_curve : list of float
        The objective after each iteration, or the mean mini-batch objective of each epoch (sgd).
    converged : bool
        False when the solver stopped at ``max_iter`` before meeting ``tol``.
    samples_seen : int
        Rows the stochastic solver has processed in total (0 for the deterministic solvers).
    """

    theta: np.ndarray
    n_iter: int
    loss_curve: list
    converged: bool
    samples_seen: int = 0


def _grad_max(grad):
    return float(np.max(np.abs(grad))) if grad.size else 0.0


def _report(progress, iteration, max_iter, value, grad, unit="iteration"):
    if progress is not None:
        progress(SolverStep(iteration, max_iter, float(value), _grad_max(grad), unit))


def print_progress(step: SolverStep) -> None:
    """The ``verbose`` report: one line per iteration (epoch) on standard output."""
    if step.unit == "epoch":
        label = f"Epoch {step.iteration}/{step.max_iter}"
    else:
        label = f"Iteration {step.iteration}"
    print(f"{label}: objective = {step.objective:.10g}, max|grad| = {step.grad_max:.3e}")


def _check_finite_step(value, theta):
    if not (np.isfinite(value) and np.all(np.isfinite(theta))):
        raise ValueError(
            "learning_rate: the iterates diverged (non-finite objective or coefficients); "
            "use a smaller learning_rate or standardize the features"
        )


def lbfgs(
    objective: Objective,
    theta0: np.ndarray,
    *,
    max_iter: int,
    tol: float,
    ftol: float,
    progress: Progress | None = None,
    n_threads: int = 1,
) -> SolverResult:
    """Minimize with our own L-BFGS (:func:`softmax_fast._lbfgs.minimize_lbfgs`) on the fused
    loss and gradient.

    Parameters
    ----------
    objective : Objective
    theta0 : ndarray of shape (n_params,)
        Starting point (float64).
    max_iter : int
        Maximum L-BFGS iterations.
    tol : float
        ``gtol``: stop when the largest gradient component is at most ``tol``.
    ftol : float
        Stop when the relative decrease of the objective is at most ``ftol``.
    progress : callable or None
        Called with a :class:`SolverStep` after each iteration (the value and gradient of the
        new iterate are the line search's: nothing is evaluated again for it).
    n_threads : int
        Threads of the solver's passes over its history (large models only).

    Returns
    -------
    SolverResult
        ``converged`` is False only when ``max_iter`` stopped the solver; a line search that
        cannot decrease the objective any more (the gradient is at the precision of the
        arithmetic) counts as converged.

    Raises
    ------
    ValueError
        When the objective is not finite at ``theta0``.
    """
    loss_curve: list[float] = []
    append = loss_curve.append

    def callback(iteration, x, value, grad, grad_max):
        append(value)
        if progress is not None:
            progress(SolverStep(iteration, max_iter, value, grad_max))

    res = minimize_lbfgs(
        objective.value_and_grad,
        theta0,
        max_iter=max_iter,
        gtol=tol,
        ftol=ftol,
        callback=callback,
        n_threads=n_threads,
    )
    return SolverResult(res.x, res.n_iter, loss_curve, res.converged)


def _scipy_lbfgs(
    objective: Objective,
    theta0: np.ndarray,
    *,
    max_iter: int,
    tol: float,
    ftol: float,
    progress: Progress | None = None,
    n_threads: int = 1,
) -> SolverResult:
    """:func:`lbfgs` with SciPy's L-BFGS-B instead of our own (the solver before 2026-12;
    kept for the tests and benchmarks that compare the two, not used by the estimator).

    The same parameters (``n_threads`` unused: SciPy's vector work is its own) and result;
    SciPy's status 2 (the line search cannot decrease the
    objective any more) counts as converged.
    """
    from scipy.optimize import minimize

    last = {}

    def fun(theta):
        value, grad = objective.value_and_grad(theta)
        last["theta"], last["value"], last["grad"] = theta.copy(), value, grad
        return value, grad

    loss_curve: list[float] = []

    def callback(intermediate_result):
        loss_curve.append(float(intermediate_result.fun))
        if progress is not None:
            x = intermediate_result.x
            if "theta" in last and np.array_equal(last["theta"], x):
                value, grad = last["value"], last["grad"]
            else:
                value, grad = objective.value_and_grad(x)
            _report(progress, len(loss_curve), max_iter, value, grad)

    res = minimize(
        fun,
        theta0,
        method="L-BFGS-B",
        jac=True,
        callback=callback,
        options={"maxiter": max_iter, "gtol": tol, "ftol": ftol, "maxls": 50},
    )
    # status 1: iteration limit reached.  status 2 (the line search cannot decrease the objective
    # any more: the gradient is at the precision of the arithmetic) counts as converged.
    converged = res.status != 1
    return SolverResult(np.asarray(res.x, dtype=np.float64), int(res.nit), loss_curve, converged)


def gradient_descent(
    objective: Objective,
    theta0: np.ndarray,
    *,
    learning_rate: float,
    max_iter: int,
    tol: float,
    progress: Progress | None = None,
) -> SolverResult:
    """Full-batch gradient descent with a fixed step: ``theta <- theta - learning_rate * grad J``.

    ``grad J`` already contains the penalty term ``alpha * W``.  Stops when the largest gradient
    component is below ``tol``, or after ``max_iter`` updates.

    Returns
    -------
    SolverResult
    """
    theta = np.array(theta0, dtype=np.float64)
    loss_curve: list[float] = []
    converged = False
    n_iter = 0
    for it in range(max_iter + 1):
        value, grad = objective.value_and_grad(theta)
        _check_finite_step(value, theta)
        # below 2 / L a fixed step never increases a smooth convex objective: a large increase
        # means the step is unstable (stop before the coefficients overflow)
        if loss_curve and value > 10.0 * abs(loss_curve[0]) + 1.0:
            _check_finite_step(np.inf, theta)
        loss_curve.append(value)
        if it:
            _report(progress, it, max_iter, value, grad)
        if grad.size == 0 or np.max(np.abs(grad)) < tol:
            converged = True
            break
        if it == max_iter:
            break
        theta -= learning_rate * grad
        n_iter = it + 1
    return SolverResult(theta, n_iter, loss_curve, converged)


def sgd_step_size(learning_rate: float, samples_seen: int, decay_samples: float) -> float:
    """The decaying step ``learning_rate / (1 + samples_seen / decay_samples) ** 0.5``."""
    return learning_rate / (1.0 + samples_seen / decay_samples) ** _DECAY_POWER


def sgd_epoch(
    objective: Objective,
    theta: np.ndarray,
    *,
    learning_rate: float,
    batch_size: int,
    rng: np.random.Generator,
    samples_seen: int,
    decay_samples: float,
    average: list[Any] | None = None,
) -> tuple[float, int]:
    """One shuffled pass of mini-batch SGD over the objective's rows, updating ``theta`` in place.

    Parameters
    ----------
    objective : Objective
        Its ``n_samples`` and ``batch_value_and_grad``.
    theta : ndarray of shape (n_params,)
        Current parameters (float64), updated in place.
    learning_rate : float
        Initial step.
    batch_size : int
        Rows per mini-batch (the last batch of the pass may be smaller).
    rng : numpy.random.Generator
        Shuffles the rows.
    samples_seen : int
        Rows processed before this pass (drives the step decay).
    decay_samples : float
        The step is ``learning_rate / sqrt(1 + samples_seen / decay_samples)``.
    average : list [theta_bar, count] or None
        When given, the weighted running mean ``theta_bar`` of the iterates and the number of
        iterates in it, updated in place after every step.

    Returns
    -------
    mean_loss : float
        Mean of the mini-batch objective estimates over the pass (weighted by batch size).
    samples_seen : int
        Updated count.
    """
    m = objective.n_samples
    order = rng.permutation(m)
    total = 0.0
    for start in range(0, m, batch_size):
        # sorted: X rows read in memory order
        sample_rows = np.sort(order[start : start + batch_size])
        value, grad = objective.batch_value_and_grad(theta, sample_rows)
        _check_finite_step(value, theta)
        step = sgd_step_size(learning_rate, samples_seen, decay_samples)
        theta -= step * grad
        samples_seen += sample_rows.size
        total += value * sample_rows.size
        if average is not None:
            # polynomial-decay averaging (Shamir & Zhang, 2013): iterate t has weight ~ t^3,
            # so the early, far-off iterates are forgotten
            average[1] += 1
            average[0] += (theta - average[0]) * (
                (_AVERAGING_POWER + 1) / (average[1] + _AVERAGING_POWER)
            )
    return total / m, samples_seen


def sgd(
    objective: Objective,
    theta0: np.ndarray,
    *,
    learning_rate: float,
    batch_size: int,
    max_iter: int,
    tol: float,
    rng: np.random.Generator,
    progress: Progress | None = None,
) -> SolverResult:
    """Averaged shuffled mini-batch SGD with a step decaying once per epoch's worth of rows.

    The step after ``s`` rows is ``learning_rate / sqrt(1 + s / n_samples)``.  The result is the
    polynomial-decay average of the iterates (iterate t weighted like t**3), which removes most of
    the mini-batch noise: the decaying step and the averaging together converge to the optimum of
    the strictly convex objective.  After each epoch the full objective of the
    averaged parameters is evaluated (one fused pass); the solver stops when it has improved by
    less than ``tol`` for a few epochs in a row, or after ``max_iter`` epochs.

    Returns
    -------
    SolverResult
        ``loss_curve`` holds the full objective of the averaged parameters after each epoch.
    """
    theta = np.array(theta0, dtype=np.float64)
    m = objective.n_samples
    loss_curve: list[float] = []
    best = np.inf
    no_change = 0
    converged = False
    samples_seen = 0
    average: list[Any] = [theta.copy(), 0]
    n_epochs = 0
    for epoch in range(1, max_iter + 1):
        _, samples_seen = sgd_epoch(
            objective,
            theta,
            learning_rate=learning_rate,
            batch_size=batch_size,
            rng=rng,
            samples_seen=samples_seen,
            decay_samples=float(m),
            average=average,
        )
        n_epochs = epoch
        value, grad = objective.value_and_grad(average[0])
        loss_curve.append(value)
        _report(progress, epoch, max_iter, value, grad, unit="epoch")
        if value > best - tol:
            no_change += 1
        else:
            no_change = 0
        best = min(best, value)
        if no_change >= _SGD_N_ITER_NO_CHANGE:
            converged = True
            break
    return SolverResult(average[0], n_epochs, loss_curve, converged, samples_seen)


# ----------------------------------------------------------------------------- second order

# Evaluations one line search of the Newton methods may take (the full step is accepted at
# almost every iteration, so this only bounds the rare bad start).
_NEWTON_LINE_SEARCH = 30
# Below this (relative to max(1, |J|)) a step's predicted decrease may not be seen in J's
# values: float32 rounding, the coarsest an objective here computes its logits with (float32
# data; measured at a float32 problem's optimum: J off by 5e-9 at |J| = 0.8); L-BFGS's line
# search uses the same bound (softmax_fast._lbfgs._NOISE_MAX_REL).
_VALUE_NOISE = float(np.finfo(np.float32).eps)
# newton-cg's inner loop: at most this many conjugate-gradient steps per outer iteration, and
# it stops at this relative residual (a fixed forcing term, LIBLINEAR's 0.1: the outer
# iterations then converge linearly at about this rate).  Passes over the data (products,
# gradients, and the probabilities and diagonal of each outer iteration) to an objective within
# 1e-6 relative of the optimum (benchmarks/newton_cg_forcing.py; RESULTS.md, "Solvers, third
# round"), 0.1 against 0.3: one-hot 44 / 62, MNIST-shaped 279 / 340, tf-idf text 40 / 43,
# dense 46 / 45; over the four cases 409 passes, against 423 for 0.2, 469 for 0.05 and 490
# for 0.3.
NEWTON_CG_MAX_INNER = 200
NEWTON_CG_FORCING = 0.1
# Where the inner loop ran on float32 products (large dense float64 X), its direction d is
# checked once in float64: the inexact-Newton condition ||H d + g|| <= this * ||g|| (any
# forcing below 1 keeps the outer iterations' convergence).  The float32 products' error
# (about 1e-6 relative) moves the residual of the forcing term (0.1) far less than that, except
# on a Hessian conditioned near 1e6; where the check fails, the fit's products are float64
# from then on, and this direction is recomputed with them.
NEWTON_CG_FLOAT32_RESIDUAL = 0.5


def _preconditioned_cg(matvec, grad, precond, rtol, max_steps, restrict=None):
    """Approximately solve ``H d = -grad`` by conjugate gradients preconditioned by the
    diagonal ``precond`` (> 0), stopping when ``||H d + grad|| <= rtol ||grad||``.

    H is positive semi-definite; a direction of non-positive curvature (rounding, or a
    singular H) ends the loop with the step so far (or, at the first step, the preconditioned
    steepest descent ``-grad / precond``).  ``restrict``: an orthogonal projection (in place;
    its return value is ignored) onto an invariant subspace of H that holds ``grad``, applied
    to each preconditioned residual, so that the iterates stay in that subspace (the
    preconditioner becomes ``P M^-1 P``).  The vectors are updated in place in a few
    preallocated buffers (no parameter-sized temporaries per step).  Returns ``(d, steps)``.
    """
    inverse = 1.0 / precond
    d = np.zeros_like(grad)
    r = -grad
    z = r * inverse
    if restrict is not None:
        restrict(z)
    p = z.copy()
    scratch = np.empty_like(grad)
    rz = float(r @ z)
    target = rtol * float(np.linalg.norm(grad))
    steps = 0
    while steps < max_steps:
        Hp = matvec(p)
        steps += 1
        curvature = float(p @ Hp)
        if not curvature > 0.0:
            if steps == 1:
                d = p
            break
        step = rz / curvature
        np.multiply(p, step, out=scratch)
        d += scratch
        np.multiply(Hp, step, out=scratch)
        r -= scratch
        if float(np.sqrt(r @ r)) <= target:
            break
        np.multiply(r, inverse, out=z)
        if restrict is not None:
            restrict(z)
        rz_new = float(r @ z)
        p *= rz_new / rz
        p += z
        rz = rz_new
    return d, steps


def _newton_loop(objective, theta0, direction, *, max_iter, tol, progress):
    """The outer loop the Newton methods share: ``direction(theta, grad) -> d`` (a descent
    direction), a strong-Wolfe line search from the full step (softmax_fast's L-BFGS's
    Moré–Thuente search), stopping at ``max|grad| <= tol``.  Where the step's predicted
    decrease is below the rounding of J, the full step is taken when it shrinks the gradient
    (the line search cannot see the decrease in J's values); a step that can do neither ends
    the run as converged (the gradient is at the precision of the arithmetic), as for
    lbfgs."""
    theta = np.array(theta0, dtype=np.float64)
    value, grad = objective.value_and_grad(theta)
    if not (np.isfinite(value) and np.all(np.isfinite(grad))):
        raise ValueError(
            "the objective or its gradient is not finite at the starting point "
            f"(objective {value!r}); check the data and the initial coefficients"
        )
    loss_curve: list[float] = []
    trial_point = np.empty_like(theta)
    n_iter = 0
    converged = _grad_max(grad) <= tol
    while not converged and n_iter < max_iter:
        d = direction(theta, grad)
        dphi0 = float(grad @ d)
        if not (np.isfinite(dphi0) and dphi0 < 0.0):
            d = -grad  # rounding has spoilt the direction: steepest descent this once
            dphi0 = -float(grad @ grad)
        ok, _, new_value, new_grad, _, _ = _line_search(
            objective.value_and_grad, theta, d, trial_point, value, dphi0, 1.0, _NEWTON_LINE_SEARCH
        )
        if not ok:
            if -dphi0 > _VALUE_NOISE * max(1.0, abs(value)):
                converged = True  # no decrease left at the precision of the arithmetic
                break
            # The decrease this step predicts, -dphi0 / 2, is below the rounding of J, which
            # the line search reads: judge the (Newton) step by the gradient instead, the
            # precise measure there, and take it whole when it shrinks the gradient.
            np.add(theta, d, out=trial_point)
            new_value, new_grad = objective.value_and_grad(trial_point)
            if not _grad_max(new_grad) < _grad_max(grad):
                converged = True
                break
        theta, trial_point = trial_point, theta
        value, grad = new_value, new_grad
        n_iter += 1
        loss_curve.append(float(value))
        _report(progress, n_iter, max_iter, value, grad)
        converged = _grad_max(grad) <= tol
    return SolverResult(theta, n_iter, loss_curve, converged)


def newton_cg(
    objective: Objective,
    theta0: np.ndarray,
    *,
    max_iter: int,
    tol: float,
    progress: Progress | None = None,
    max_inner: int = NEWTON_CG_MAX_INNER,
    float32_products: bool = True,
) -> SolverResult:
    """Truncated Newton: each outer iteration solves ``H d = -grad`` approximately by
    conjugate gradients, preconditioned by the Hessian's diagonal (one extra pass a
    iteration), one Hessian-vector product (one pass over the data) per inner step, then a
    line search along d.

    The inner loop stops at the relative residual :data:`NEWTON_CG_FORCING` (fixed, as in
    LIBLINEAR's Newton method), at ``max_inner`` steps, or at a direction of non-positive
    curvature.  The probabilities the products need are computed once per outer iteration
    (``m * K`` values of the data's dtype).  Stops when ``max|grad| <= tol``.

    In the symmetric form (``objective.class_shifts()``), the step's part along the features'
    class shifts, where H is alpha times the identity, is exact (``-g_S / alpha``), and the
    conjugate gradients run on the complement with the preconditioner projected onto it:
    the diagonal alone would bring in those directions of curvature alpha, far below the
    data's (on the one-hot and MNIST-shaped cases of the benchmarks, 19% and 20% fewer
    products to the same tol).

    On large dense float64 X (``objective.hessian_operator(..., float32_products=True)``
    offers it: :data:`softmax_fast._objective.FLOAT32_PRODUCTS_MIN_VALUES`) the inner loop's
    products are float32 (a float32 copy of X, half its size, kept for the fit), each
    direction checked by one float64 product against :data:`NEWTON_CG_FLOAT32_RESIDUAL`.
    The values, gradients, line search and stop test stay float64, so the point it stops at
    meets the same test as with float64 products.  ``float32_products=False``: float64
    products throughout.
    """

    shifts = objective.class_shifts()
    # the invariant directions other than the class shifts, which `shifts` handles in O(n K)
    project = _projection(objective.invariant_directions(class_shifts=shifts is None))
    float32 = {"products": bool(float32_products)}

    def solve(matvec, grad, precond):
        g = project(grad.copy())
        if shifts is None:
            d, _ = _preconditioned_cg(
                lambda v: project(matvec(v)), g, precond, NEWTON_CG_FORCING, max(1, max_inner)
            )
            return project(d)
        # H = alpha I on the class shifts: that part of the step in closed form, the rest by
        # conjugate gradients kept in the complement (ClassShifts)
        means = shifts.remove(g)
        d, _ = _preconditioned_cg(
            lambda v: project(matvec(v)),
            g,
            precond,
            NEWTON_CG_FORCING,
            max(1, max_inner),
            restrict=shifts.remove,
        )
        project(d)
        shifts.remove(d)
        if shifts.curvature > 0.0:
            shifts.add(d, means, -1.0 / shifts.curvature)
        return d

    def direction(theta, grad):
        op = objective.hessian_operator(theta, float32_products=float32["products"])
        precond = op.diagonal()
        # a zero column of X (or a class with p = 0 or 1 everywhere, unpenalized) has a zero
        # diagonal entry: no scaling there
        floor = 1e-12 * max(float(np.max(precond)), 1e-300)
        precond = np.where(precond > floor, precond, 1.0)
        if not op.has_float32:
            return solve(op.matvec, grad, precond)
        d = solve(op.matvec_float32, grad, precond)
        g = project(grad.copy())
        residual = project(op.matvec(d)) + g
        if np.linalg.norm(residual) <= NEWTON_CG_FLOAT32_RESIDUAL * np.linalg.norm(g):
            return d
        float32["products"] = False
        return solve(op.matvec, grad, precond)

    return _newton_loop(objective, theta0, direction, max_iter=max_iter, tol=tol, progress=progress)


def _projection(U):
    """``v -> v - U (U^T v)`` in place (v is returned): the projection onto the complement of
    the orthonormal columns of U, computed on the rows where U is not zero only (the
    intercepts, for the usual invariant direction: K entries, not the whole vector)."""
    if U.shape[1] == 0:
        return lambda v: v
    rows = np.flatnonzero(np.any(U != 0.0, axis=1))
    Ur = np.ascontiguousarray(U[rows])

    def project(v):
        v[rows] -= Ur @ (Ur.T @ v[rows])
        return v

    return project


def newton_direction(H: np.ndarray, grad: np.ndarray, invariant: np.ndarray | None = None):
    """The Newton step ``-H^{-1} grad`` by Cholesky, orthogonal to the ``invariant``
    directions (orthonormal columns, along which J is constant and H singular: the symmetric
    form's class shifts): there H is replaced by ``H + s U U^T`` (s the largest diagonal
    entry), positive definite with the same solution on the complement, and the gradient's
    rounding-sized component along U is dropped.  When the matrix is still not (numerically)
    positive definite (collinear columns without a penalty), the minimum-norm step on the
    eigenvectors whose eigenvalues exceed ``n eps lambda_max``."""
    from scipy.linalg import LinAlgError, cho_factor, cho_solve, eigh

    if invariant is not None and invariant.shape[1]:
        grad = _projection(invariant)(grad.copy())
        H = H + max(float(np.max(np.diag(H))), 1.0) * (invariant @ invariant.T)
    try:
        factor = cho_factor(H, lower=True, check_finite=False)
        d = -cho_solve(factor, grad, check_finite=False)
        if np.all(np.isfinite(d)):
            return d
    except LinAlgError:
        pass
    eigenvalues, Q = eigh(H, check_finite=False)
    top = float(eigenvalues[-1]) if eigenvalues.size else 0.0
    keep = eigenvalues > H.shape[0] * np.finfo(np.float64).eps * max(top, 0.0)
    Qk = Q[:, keep]
    return -(Qk @ ((Qk.T @ grad) / eigenvalues[keep]))


def newton(
    objective: Objective,
    theta0: np.ndarray,
    *,
    max_iter: int,
    tol: float,
    progress: Progress | None = None,
) -> SolverResult:
    """Newton's method on the exact Hessian: each iteration builds the full Hessian (one
    fused pass over the data, ``n_params**2`` float64), takes the step of
    :func:`newton_direction` and a line search along it.  For models up to a few thousand
    parameters; stops when ``max|grad| <= tol`` (quadratic convergence near the optimum)."""

    invariant = objective.invariant_directions()

    def direction(theta, grad):
        return newton_direction(objective.hessian(theta), grad, invariant)

    return _newton_loop(objective, theta0, direction, max_iter=max_iter, tol=tol, progress=progress)


def saga(
    objective: Objective,
    theta0: np.ndarray,
    *,
    max_iter: int,
    tol: float,
    rng: np.random.Generator,
    progress: Progress | None = None,
) -> SolverResult:
    """SAGA, the variance-reduced incremental gradient method
    (:func:`softmax_fast._saga.saga`); epochs of single-row steps on in-memory data."""
    from ._saga import saga as _saga

    return _saga(objective, theta0, max_iter=max_iter, tol=tol, rng=rng, progress=progress)


# ----------------------------------------------------------------------------- "auto"

# Models of at most this many parameters take "newton" under "auto" (dense X): see
# choose_solver.
AUTO_NEWTON_MAX_PARAMS = 500
# ... and on CSR X (where the Hessian costs one sparse product per pair of classes).
AUTO_NEWTON_MAX_PARAMS_CSR = 200
# Above this spread of the columns' curvature, (max_j mean x_j^2 + alpha) / (min_j mean x_j^2 +
# alpha), "auto" takes newton-cg rather than lbfgs.
AUTO_SCALE_SPREAD = 100.0
# In-memory CSR models with at least this many parameters per stored entry of X take "saga"
# under "auto" (see choose_solver).
AUTO_SAGA_PARAMS_PER_NONZERO = 0.5


def column_spread(objective: Objective) -> float | None:
    """``(max_j mean_i x_ij^2 + alpha) / (min_j mean_i x_ij^2 + alpha)`` over the columns of
    X: the diagonal of the Hessian's W part varies about that much between the columns (with
    the probabilities' factor p (1 - p) in between), a lower bound on its condition number
    that L-BFGS pays for and a diagonally preconditioned newton-cg does not.  None when the
    design cannot tell cheaply (a Dask design)."""
    design = getattr(objective, "design", None)
    squares = getattr(design, "column_mean_squares", None)
    if squares is None:
        return None
    ms = squares()
    if ms.size == 0:
        return 1.0
    alpha = float(getattr(objective, "alpha", 0.0))
    low = float(ms.min()) + alpha
    return np.inf if low <= 0.0 else (float(ms.max()) + alpha) / low


def choose_solver(objective: Objective) -> str:
    """The solver ``solver="auto"`` runs on ``objective``:

    1. ``"newton"`` for at most :data:`AUTO_NEWTON_MAX_PARAMS` parameters on dense X and
       :data:`AUTO_NEWTON_MAX_PARAMS_CSR` on CSR X: an iteration builds the Hessian (about
       ``m n_params^2 / 2`` multiply-adds, BLAS syrk, on dense X) and it needs a handful of
       them whatever the scales of the columns, ending at the precision of the arithmetic;
    2. ``"saga"`` for in-memory CSR X whose model has at least
       :data:`AUTO_SAGA_PARAMS_PER_NONZERO` parameters per stored entry (text with a large
       vocabulary over few documents): an epoch costs about two passes over the entries,
       O(nnz K), while each of newton-cg's conjugate-gradient steps also makes several passes
       over the n_params-sized vectors.  Measured (time to tol 1e-5, alpha 1e-4, two runs,
       saga / newton-cg; parameters per entry in brackets): tf-idf text 11,314 x 130,107,
       K = 20 [1.29]: 1.50-2.00 / 2.15-3.18 s; 2,000 x 130,107 [7.3]: 0.92-1.12 / 2.0 s;
       50,000 x 30,000 [0.07]: 4.3-4.8 / 3.8 s; 11,314 x 130,107, K = 5 [0.32]: 0.74-0.85 /
       0.46-0.60 s; one-hot 100,000 x 500, K = 7 [0.0035]: 1.0 / 0.5 s; one-hot 100,000 x
       20,000 [0.14]: 1.5 / 0.75 s.  The rows' order is seeded by ``random_state``
       (the estimator seeds it with 0 when that is None, so "auto" stays reproducible);
    3. ``"newton-cg"`` for the other CSR models above the newton size (one-hot data: it took
       0.19 s against lbfgs's 0.38 s on the one-hot case of the benchmark table), and for
       dense X whose columns' curvature spreads widely (:func:`column_spread` above
       :data:`AUTO_SCALE_SPREAD`: unscaled regressors, pixels
       that are almost always 0; and a Dask design, which does not measure it): its
       preconditioner absorbs the scales that make L-BFGS crawl;
    4. ``"lbfgs"`` otherwise, dense and well-scaled (0.60 s against newton-cg's 0.93 s on the
       dense case of the table: fewer passes over X than newton-cg's products).

    Measured (benchmarks/RESULTS.md, "Solvers"; times to tol 1e-6, two runs' best): newton
    against newton-cg on 50,000 dense rows with one column scaled by 100: 0.15 / 0.44 s at
    50 parameters, 0.40 / 2.8 at 100, 1.0 / 3.0 at 250, 4.2 / 3.4 and 3.1 / 3.9 at 500 (they
    cross; L-BFGS hit its 3,000 iterations on all of them).  On CSR one-hot data (100,000
    rows) newton against newton-cg: 0.51 / 0.61 s at 124 parameters, 0.88 / 0.68 at 404,
    4.7 / 1.5 at 505.  newton-cg against lbfgs at alpha 1e-6, 1e-4 and 1e-2 on well-scaled
    columns: 5.5 / 8.3, 1.7 / 1.4 and 0.66 / 1.1 s (20,000 x 100 dense, K = 10) and 0.81 /
    1.04, 1.06 / 1.16 and 0.40 / 0.31 s (one-hot, 500 columns, K = 7): alpha alone decides
    nothing, which is why it enters only through the spread.  The benchmark table of
    RESULTS.md shows the four large cases.
    """
    n_params = int(getattr(objective, "n_params", 0))
    design = getattr(objective, "design", None)
    sparse = bool(getattr(design, "feature_major", False))
    if n_params <= (AUTO_NEWTON_MAX_PARAMS_CSR if sparse else AUTO_NEWTON_MAX_PARAMS):
        return "newton"
    if sparse:
        nnz = getattr(design, "nnz", None)  # None: not in memory (a Dask design)
        in_memory = getattr(objective, "labels", None) is not None
        if nnz is not None and in_memory and n_params >= AUTO_SAGA_PARAMS_PER_NONZERO * nnz:
            return "saga"
        return "newton-cg"
    spread = column_spread(objective)
    if spread is None or spread > AUTO_SCALE_SPREAD:
        return "newton-cg"
    return "lbfgs"

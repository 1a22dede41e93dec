r"""Unconstrained limited-memory BFGS: the algorithm behind ``solver="lbfgs"``.

:func:`minimize_lbfgs` minimizes a smooth function f from its value and gradient.  Each iteration
moves along ``d = -H g``, where H is the L-BFGS approximation of the inverse Hessian built from
the last ``m = 10`` pairs ``s_i = x_{i+1} - x_i``, ``y_i = g_{i+1} - g_i`` and ``H_0 = gamma I``
with ``gamma = s'y / y'y`` of the newest pair; the step length comes from a strong-Wolfe line
search (Moré & Thuente, 1994; ``c1 = 1e-3``, ``c2 = 0.9``, a bracket tolerance of 0.1 and at
most 50 evaluations: L-BFGS-B's settings).

**The direction: the compact representation.**  H is applied in the compact form of Byrd,
Nocedal & Schnabel (1994, eq. 3.1), with S, Y the n x k matrices of the pairs (oldest first),
R the upper triangle of S'Y and D its diagonal::

    H g = gamma g + S u - gamma Y p,   p = R^-1 S'g,   u = R^-T (D p + gamma Y'Y p - gamma Y'g)

The pairs live in one preallocated (1 + 2m, n) array, the current gradient in row 0 and pair i
in rows 1 + 2i and 2 + 2i of a ring buffer, so that an iteration makes two passes over the
history: one matrix-vector product gives S'g and Y'g at the new point, one more gives
``d = [g, s_0, y_0, ...] c`` from the 1 + 2k coefficients c.  The k x k matrices R and Y'Y are
updated incrementally: the new pair's column is S'g_new - S'g_old (both products are at hand)
and its diagonal is computed directly (``s'y`` from the line search, ``y'y`` by a dot product),
so no pass is spent on them.

**Large models** (:data:`NATIVE_HISTORY_MIN` parameters and more) keep the pairs in float32
instead (:class:`_NativeMemory`), in blocks that threaded native loops read as one stream
(:mod:`softmax_fast._native.vectors`), with float64 sums.  Every product of the k x k part
(R, D, Y'Y, the curvature test) is then computed from the stored, rounded rows, so H is the
exact L-BFGS matrix of those pairs: positive definite, d a descent direction, and the iterate,
the gradient and the stopping rule stay float64.  This halves the history's bytes (88 instead
of 168 a parameter).

The plain two-loop recursion computes the same direction with 4k dot products and axpy's: each
a pass over a pair vector and the work vector (about 10k vector reads and writes, against
4k + 3 here) and a Python-level BLAS call (40 calls with a full history, against a dozen here,
most of them on the k x k matrices).  ``benchmarks/lbfgs_solver.py --memory`` measures both
inside this solver (figures in ``benchmarks/RESULTS.md``, "Our own L-BFGS"): with 10 pairs
stored the compact direction takes 1.5-1.9x less time than the two-loop one at 63, 1,000 and
2.6 million parameters, and at 2.6 million a whole iteration's overhead is about 1.5x lower,
so the compact form is the one kept.

**Stopping** (as SciPy's L-BFGS-B): ``max|g_i| <= gtol`` (checked at the start point too: then
no iteration), or a relative decrease ``(f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= ftol``, or
``max_iter`` iterations.  When the line search fails, or the direction is not one of descent,
the history is dropped and steepest descent is tried once; when that fails too the gradient is
at the precision of the arithmetic and the solver stops there (counted as converged, like
SciPy's ``ABNORMAL_TERMINATION_IN_LNSRCH``).

The objective is evaluated once at the start point and otherwise only inside the line search;
the value and gradient at each accepted point are the line search's.  A non-finite value or
directional derivative at a trial step makes the line search shrink the step; at the start point
it is a ``ValueError``.
"""

import math
import mmap
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy.linalg import blas as _blas

# BLAS on float64 vectors and the small matrices, called positionally (each call ~0.5 us, a
# third of a NumPy call's overhead); every output is a contiguous float64 buffer of ours, which
# the wrappers update in place
_dcopy, _dscal, _daxpy, _ddot = _blas.dcopy, _blas.dscal, _blas.daxpy, _blas.ddot
_dgemv, _dsymv, _dsbmv, _dtrsv, _idamax = (
    _blas.dgemv,
    _blas.dsymv,
    _blas.dsbmv,
    _blas.dtrsv,
    _blas.idamax,
)

__all__ = ["LbfgsResult", "minimize_lbfgs"]

HISTORY = 10
"""(s, y) pairs kept."""
C1 = 1e-3
"""Sufficient-decrease constant of the strong Wolfe conditions (L-BFGS-B's ``ftol``)."""
C2 = 0.9
"""Curvature constant of the strong Wolfe conditions."""
MAX_LINE_SEARCH = 50
"""Objective evaluations allowed in one line search."""

GTOL, MAX_ITER, FTOL, LINE_SEARCH_FAILED = 0, 1, 2, 3
"""Status codes of :class:`LbfgsResult`."""
_MESSAGES = {
    GTOL: "max|g| <= gtol",
    MAX_ITER: "max_iter reached",
    FTOL: "relative decrease of f <= ftol",
    LINE_SEARCH_FAILED: "no step along steepest descent satisfies the Wolfe conditions",
}

_EPS = float(np.finfo(np.float64).eps)
# a pair is kept only when s'y > _EPS * y'y (enough positive curvature for H to stay definite)
_CURVATURE_EPS = _EPS
# Moré–Thuente: the step interval grows by a factor in [1.1, 4] while no minimizer is bracketed,
# the search gives up when the bracket is narrower than _XTOL relative (L-BFGS-B's xtol: where
# the objective's rounding noise hides the decrease, e.g. float32 data at the optimum, a narrower
# tolerance only spends evaluations bisecting noise), and steps are <= 1e10
_XTRAPL, _XTRAPU = 1.1, 4.0
_XTOL = 0.1
# a search that has needed this many trials checks whether its values are rounding noise: a
# disagreement with the slopes of at most _NOISE_MAX_REL |f| (float32 rounding, the coarsest an
# objective here reads its parameters with) can be noise, a larger one is the shape of f
_NOISE_CHECK_AFTER = 3
_NOISE_MAX_REL = float(np.finfo(np.float32).eps)
_STEP_MAX = 1e10

# Buffers of at least this many bytes come from their own anonymous memory map (_zeros)
_OWN_MAP_BYTES = 4 * 2**20

NATIVE_HISTORY_MIN = 1 << 18
"""Models with at least this many parameters keep their pairs in float32 rows that threaded
native passes read (:class:`_NativeMemory`): from here on the float64 history (21 vectors) is
larger than a CPU's last-level cache and the direction's two passes over it are bound by memory
(measured at 2.6 million parameters, 2 cores: 33 ms a direction against 65 ms with the float64
BLAS history; at this threshold 2.5 ms against 6.3 ms).  Smaller models keep the float64
history: there the passes are cheap and the pairs keep their full precision."""
NATIVE_HISTORY_DTYPE = np.float32
"""The type of the pair rows of :class:`_NativeMemory`."""


def _zeros(shape: int | tuple[int, ...]) -> np.ndarray:
    """A zero float64 array; one of at least ``_OWN_MAP_BYTES`` from an anonymous memory map
    of its own (zero pages, freed with the array).

    NumPy marks arrays of 4 MiB and more ``MADV_HUGEPAGE``; under the common transparent huge
    page setting ``defrag=madvise``, the first touch of such memory waits while the kernel
    compacts memory into huge pages when none is free.  Measured on a 2.6-million-parameter
    fit: 1.1 s of page faults for the 437 MB history, against 0.2 s for the same bytes in 4 KiB
    pages.  An unmarked map gets huge pages only where the kernel has them at hand.
    """
    size = math.prod(shape) if isinstance(shape, tuple) else shape
    if size * 8 < _OWN_MAP_BYTES:
        return np.zeros(shape)
    return np.frombuffer(mmap.mmap(-1, size * 8), dtype=np.float64).reshape(shape)


Callback = Callable[[int, np.ndarray, float, np.ndarray, float], None]
"""``callback(iteration, x, f, g, max|g|)`` after each iteration (x and g are the solver's own
buffers: read them, do not keep or modify them)."""


class LbfgsResult(NamedTuple):
    """What :func:`minimize_lbfgs` returns.

    Attributes
    ----------
    x : ndarray of shape (n,)
        The last iterate (float64).
    fun : float
        f there.
    grad : ndarray of shape (n,)
        The gradient there.
    n_iter : int
        Iterations done (accepted line-search steps, as SciPy's ``nit``).
    n_fev : int
        Objective evaluations, the one at the start point included.
    status : int
        :data:`GTOL`, :data:`MAX_ITER`, :data:`FTOL` or :data:`LINE_SEARCH_FAILED`.
    """

    x: np.ndarray
    fun: float
    grad: np.ndarray
    n_iter: int
    n_fev: int
    status: int

    @property
    def converged(self) -> bool:
        """False only when ``max_iter`` stopped the solver."""
        return self.status != MAX_ITER

    @property
    def message(self) -> str:
        """The stopping reason in words."""
        return _MESSAGES[self.status]


class _CompactMemory:
    """The (s, y) history and the L-BFGS direction in compact form (module docstring).

    ``Z`` (1 + 2m, n): row 0 the current gradient ``g`` (the caller writes it), rows 1 + 2j and
    2 + 2j the pair of ring slot j.  Slots fill 0, 1, ... after each reset, so the k active
    pairs are always rows 1 .. 2k; once all m are full, the oldest pair is in slot ``head``.
    The small quantities are in chronological order (oldest first), s and y interleaved:
    ``G[2i, 2j + 1] = s_i'y_j`` (i <= j: R) and ``G[2i + 1, 2j + 1] = y_i'y_j`` (i <= j: the
    upper triangle of Y'Y), and ``_sy_g`` holds s_j'g, y_j'g at the last direction's gradient.
    The vector work is BLAS called directly (positional arguments: at 63 parameters NumPy's
    per-call overhead would be most of the solver's time).
    """

    def __init__(self, n: int, m: int):
        self.Z = _zeros((1 + 2 * m, n))
        self.g = self.Z[0]
        self._y = _zeros(n)
        self._init_small(m)

    def _init_small(self, m: int) -> None:
        """The k x k quantities and the bookkeeping (shared with :class:`_NativeMemory`)."""
        self.m = m
        self.G = np.zeros((2 * m, 2 * m))
        self._q = np.zeros(2 * m)
        self._sy_g = np.zeros(2 * m)
        self._sy_g_old = np.zeros(2 * m)
        self._coef = np.zeros(1 + 2 * m)
        self.k = 0
        self.head = 0
        self.gamma = 1.0
        self._new = False  # a pair came in since the last direction
        self._dropped = False  # and the oldest pair went out

    def trial(self, x: np.ndarray, d: np.ndarray, step: float, xt: np.ndarray) -> None:
        """The line search's trial point ``xt = x + step d``."""
        _trial_blas(x, d, step, xt)

    def reset(self) -> None:
        """Forget every pair."""
        self.k = 0
        self.head = 0
        self._new = False

    def update(self, step: float, d: np.ndarray, g_new: np.ndarray, sy: float) -> float:
        """After an accepted step ``step * d``: ``y = g_new - g``, ``g = g_new``, and the pair
        stored when its curvature ``sy`` (s'y, from the line search) is positive enough.
        Returns ``max |g_new|``."""
        y, g = self._y, self.g
        _dcopy(g_new, y)
        _daxpy(g, y, y.size, -1.0)  # y = g_new - g
        _dcopy(g_new, g)
        yy = _ddot(y, y)
        if sy > _CURVATURE_EPS * yy:
            self.push(step, d, y, sy, yy)
        return _abs_max(g)

    def push(self, step: float, d: np.ndarray, y: np.ndarray, sy: float, yy: float) -> None:
        """Store the pair ``s = step * d``, ``y``, given s'y and y'y (> 0), dropping the oldest
        when all m slots are full."""
        m, k = self.m, self.k
        self._dropped = k == m
        if self._dropped:
            slot = self.head
            self.head = (slot + 1) % m
            self.G[:-2, :-2] = self.G[2:, 2:]
        else:
            slot = k
            self.k = k = k + 1
        s_row = self.Z[1 + 2 * slot]
        _dcopy(d, s_row)
        _dscal(step, s_row)
        _dcopy(y, self.Z[2 + 2 * slot])
        j = 2 * (k - 1)
        self.G[j, j + 1] = sy
        self.G[j + 1, j + 1] = yy
        self.gamma = sy / yy
        self._new = True

    def direction(self, d: np.ndarray) -> float:
        """Write ``-H g`` into ``d`` (at least one pair stored); returns ``g'd``."""
        ab = self._products()
        u, p = self._solve_small(ab)
        return self._combine(u, p, d)

    def _products(self) -> np.ndarray:
        """The first pass: s_j'g, y_j'g for every pair (chronological, interleaved), and the
        new pair's column of ``G``."""
        m, k, head = self.m, self.k, self.head
        G, Z, ab, old = self.G, self.Z, self._sy_g_old, self._sy_g
        # in slot order, then chronological
        if head:
            q = self._q
            _dgemv(1.0, Z[1:].T, self.g, 0.0, q, 0, 1, 0, 1, 1, 1)
            r = 2 * (m - head)
            ab[:r] = q[2 * head :]
            ab[r:] = q[: 2 * head]
        else:
            _dgemv(1.0, Z[1 : 1 + 2 * k].T, self.g, 0.0, ab, 0, 1, 0, 1, 1, 1)
        self._sy_g, self._sy_g_old = ab, old
        j = 2 * (k - 1)
        if self._new and j:
            # the new pair's products with the older ones: s_i'y_new = s_i'g_new - s_i'g_old
            # (y_i'y_new likewise), both products at hand
            start = 2 if self._dropped else 0
            np.subtract(ab[:j], old[start : start + j], out=G[:j, j + 1])
        self._new = False
        return ab

    def _solve_small(self, ab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The k x k part of the compact form: ``u`` and ``-gamma p`` (the coefficients of the
        s and y vectors in ``-d``) from ``ab`` = S'g, Y'g interleaved."""
        G, k, gamma = self.G, self.k, self.gamma
        R = G[0 : 2 * k : 2, 1 : 2 * k : 2]
        p = _dtrsv(R, ab[0 : 2 * k : 2], 1, 0, 0, 0)  # R p = S'g
        w = _dsymv(gamma, G[1 : 2 * k : 2, 1 : 2 * k : 2], p, -gamma, ab[1 : 2 * k : 2])
        _dsbmv(0, 1.0, R.diagonal()[None, :], p, 1, 0, 1.0, w, 1, 0, 0, 1)  # w += D p
        u = _dtrsv(R, w, 1, 0, 0, 1, 0, 1)  # R'u = D p + gamma (Y'Y p - Y'g)
        _dscal(-gamma, p)
        return u, p

    def _combine(self, u: np.ndarray, p: np.ndarray, d: np.ndarray) -> float:
        """The second pass: ``d = -(gamma g + S u - gamma Y p)``; returns ``g'd``."""
        m, k, head, Z = self.m, self.k, self.head, self.Z
        # coefficients of the rows of Z, in slot order
        coef = self._coef
        coef[0] = self.gamma
        if head:
            r = m - head
            _dcopy(u, coef, r, 0, 1, 1 + 2 * head, 2)
            _dcopy(u, coef, head, r, 1, 1, 2)
            _dcopy(p, coef, r, 0, 1, 2 + 2 * head, 2)
            _dcopy(p, coef, head, r, 1, 2, 2)
        else:
            _dcopy(u, coef, k, 0, 1, 1, 2)
            _dcopy(p, coef, k, 0, 1, 2, 2)
        _dgemv(-1.0, Z[: 1 + 2 * k].T, coef[: 1 + 2 * k], 0.0, d, 0, 1, 0, 1, 0, 1)
        return _ddot(self.g, d)


class _NativeMemory(_CompactMemory):
    """:class:`_CompactMemory` for large models: the pairs in rows of ``dtype`` (float32: half
    the bytes the direction's two passes read), every pass one native loop
    (:mod:`softmax_fast._native.vectors`) over them, the gradient in float64.

    Each pair owns two rows of ``Z`` (2 (m + 1) vectors of n values, in the blocked layout of
    :mod:`softmax_fast._native.vectors`): pair q is rows 2q (s) and 2q + 1 (y).  The
    pairs in use are listed oldest first, and one more pair's rows take the next candidate, so
    that a pair without enough curvature is dropped without touching the stored ones and no
    separate y vector is needed.  All the k x k quantities (R, D, Y'Y) and the curvature test
    are computed from the stored, rounded vectors, so H is exactly the L-BFGS matrix of the
    pairs it is built from (positive definite whatever their rounding); the first pass gives
    the new pair's whole column of ``G`` along with S'g, Y'g (so, as for the float64 history,
    a direction comes between two stored pairs: the solver's order).
    """

    def __init__(self, n: int, m: int, dtype: "npt.DTypeLike", n_threads: int = 1):
        from ._native import vectors as native

        self._native = native
        self.n_threads = n_threads
        shape = native.history_shape(2 * m + 2, n)
        size = math.prod(shape) * np.dtype(dtype).itemsize
        if size >= _OWN_MAP_BYTES:
            self.Z = np.frombuffer(mmap.mmap(-1, size), dtype=dtype).reshape(shape)
        else:
            self.Z = np.zeros(shape, dtype=dtype)
        self.g = _zeros(n)
        self._init_small(m)
        self._out_y = np.zeros(2 * m)
        self._forget_pairs()

    def reset(self) -> None:
        super().reset()
        self._forget_pairs()

    def _forget_pairs(self) -> None:
        self._pairs: list[int] = []
        self._free = list(range(self.m, -1, -1))
        self._candidate = self._free.pop()
        self._rows = np.zeros(0, dtype=np.intp)

    def trial(self, x: np.ndarray, d: np.ndarray, step: float, xt: np.ndarray) -> None:
        self._native.axpy_to(x, d, step, xt, self.n_threads)

    def update(self, step: float, d: np.ndarray, g_new: np.ndarray, sy: float) -> float:
        """As :meth:`_CompactMemory.update`, in one pass; the curvature test uses the stored
        pair's own s'y and y'y (``sy`` from the line search is not used)."""
        q = self._candidate
        sy, yy, g_max = self._native.history_store_pair(
            self.Z, 2 * q, 2 * q + 1, d, step, g_new, self.g, self.n_threads
        )
        if sy > _CURVATURE_EPS * yy:
            self._dropped = self.k == self.m
            if self._dropped:
                self._free.append(self._pairs.pop(0))
                self.G[:-2, :-2] = self.G[2:, 2:]
            else:
                self.k += 1
            self._pairs.append(q)
            self._candidate = self._free.pop()
            self._rows = np.array(
                [r for p in self._pairs for r in (2 * p, 2 * p + 1)], dtype=np.intp
            )
            self.gamma = sy / yy
            self._new = True
        return g_max

    def _products(self) -> np.ndarray:
        k = self.k
        ab, out_y = self._sy_g[: 2 * k], self._out_y[: 2 * k]
        y_row = 2 * self._pairs[-1] + 1 if self._new else -1
        self._native.history_dots(self.Z, self._rows, self.g, y_row, ab, out_y, self.n_threads)
        if self._new:
            self.G[: 2 * k, 2 * k - 1] = out_y  # s_i'y_new, y_i'y_new, i <= new
        self._new = False
        return ab

    def _combine(self, u: np.ndarray, p: np.ndarray, d: np.ndarray) -> float:
        coef = self._coef[: 2 * self.k]
        coef[0::2] = u
        coef[1::2] = p
        return self._native.history_combine(
            self.Z, self._rows, coef, self.gamma, self.g, d, self.n_threads
        )


def _memory(n: int, m: int, n_threads: int) -> _CompactMemory:
    """The history for ``n`` parameters (see :data:`NATIVE_HISTORY_MIN`)."""
    if n >= NATIVE_HISTORY_MIN:
        return _NativeMemory(n, m, NATIVE_HISTORY_DTYPE, n_threads)
    return _CompactMemory(n, m)


def _trial_blas(x: np.ndarray, d: np.ndarray, step: float, xt: np.ndarray) -> None:
    """``xt = x + step d`` (BLAS: two passes, the cheaper calls for small models)."""
    _dcopy(x, xt)
    _daxpy(d, xt, x.size, step)


def _line_search(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x: np.ndarray,
    d: np.ndarray,
    xt: np.ndarray,
    f0: float,
    dphi0: float,
    step: float,
    max_evals: int,
    xtol: float = _XTOL,
    trial: Callable[[np.ndarray, np.ndarray, float, np.ndarray], None] | None = None,
) -> tuple[bool, float, float, np.ndarray | None, float, int]:
    """Moré–Thuente line search for phi(t) = f(x + t d), phi'(0) = ``dphi0`` < 0.

    Finds t with phi(t) <= phi(0) + C1 t phi'(0) and |phi'(t)| <= C2 |phi'(0)|, starting at
    ``step``.  Until a minimizer is bracketed it works on psi(t) = phi(t) - C1 t phi'(0) (so
    that a step satisfying both conditions is not passed over), then on phi; each trial step
    comes from cubic and quadratic interpolation of the values and derivatives at the ends of
    the interval of uncertainty (:func:`_next_step`), with bisection when the interval does not
    shrink fast enough.  A trial with a non-finite value or derivative is treated as too long:
    it becomes the far end of the interval and the next trial is halfway to the best point.
    The trial points are written into ``xt`` by ``trial(x, d, t, xt)`` (:func:`_trial_blas`
    unless given).

    When the interval becomes narrower than ``xtol`` relative, or rounding errors prevent
    progress (MINPACK-2's warnings), the last trial is accepted if its value is below phi(0),
    as L-BFGS-B accepts it: where rounding noise hides the decrease (float32 data near the
    optimum) a step with less decrease than the Wolfe conditions ask is still progress, and the
    solver's relative-decrease test then ends the run, instead of a search spending its
    evaluations on bisecting noise.  For the same reason a search that has made
    ``_NOISE_CHECK_AFTER`` trials ends (as at a warning) when a trial's value disagrees with the
    slopes at 0 and at t by more than the change they predict, ``|phi(t) - phi(0) - t (phi'(0) +
    phi'(t)) / 2| > |t phi'(0)|``, while that disagreement is at most float32 rounding of f: the
    trapezoid rule is exact for a quadratic, so the values there are rounding noise, and every
    shorter step predicts a smaller change still.

    Returns
    -------
    ok : bool
        Whether a step was accepted (then ``xt`` holds ``x + t d``): one satisfying the strong
        Wolfe conditions, or a decrease at a warning as above.  False: no decrease at a
        warning, a trial step that no longer moves x, or ``max_evals`` evaluations did not
        suffice.
    step, f, g, dphi : float, float, ndarray or None, float
        The accepted step, phi and grad f there, phi' there.
    n_evals : int
        Objective evaluations done.
    """
    if trial is None:
        trial = _trial_blas
    gtest = C1 * dphi0
    curvature = -C2 * dphi0
    bracketed = False
    stage_one = True
    width = _STEP_MAX
    width1 = 2.0 * width
    # stx: the best step so far; sty: the other end of the interval of uncertainty
    stx = sty = 0.0
    fx = fy = f0
    gx = gy = dphi0
    stmin, stmax = 0.0, step * (1.0 + _XTRAPU)
    # below this step x + step * d may round to x (then |step d_i| <= eps |x_i| for every i);
    # worked out only for a search that has needed many trials
    tiny_step = -1.0
    n_evals = 0
    evaluated, f, g, dphi = 0.0, f0, None, dphi0  # the last trial evaluated
    while n_evals < max_evals:
        trial(x, d, step, xt)
        if n_evals >= 5:
            if tiny_step < 0.0:
                tiny_step = _EPS * abs(float(x[_idamax(x)])) / abs(float(d[_idamax(d)]))
            if step <= tiny_step and np.array_equal(xt, x):
                break  # no move: the search has failed
        n_evals += 1
        value, g = fun(xt)
        f = float(value)
        dphi = _ddot(g, d)
        evaluated = step
        if not (math.isfinite(f) and math.isfinite(dphi)):
            # too long a step: the far end of a bracket, and bisect towards the best point
            bracketed = True
            sty, fy, gy = step, math.inf, math.nan
            stmin, stmax = min(stx, sty), max(stx, sty)
            width1 = width = stmax - stmin
            new = stx + 0.5 * (step - stx)
            if new == stx or new == step:
                break
            step = new
            continue
        ftest = f0 + step * gtest
        if f <= ftest and abs(dphi) <= curvature:
            return True, step, f, g, dphi, n_evals
        if n_evals >= _NOISE_CHECK_AFTER:
            # rounding noise dominates when the value disagrees with the slopes (the trapezoid
            # rule, exact for a quadratic) by more than the whole change they predict while the
            # disagreement is a rounding-sized part of f: then no shorter step can show the
            # decrease either (float32 data near the optimum)
            mismatch = abs(f - f0 - 0.5 * step * (dphi0 + dphi))
            if abs(step * dphi0) < mismatch <= _NOISE_MAX_REL * max(abs(f0), abs(f)):
                break
        if stage_one and f <= ftest and dphi >= 0.0:
            stage_one = False
        # no further progress possible (MINPACK-2 dcsrch's warnings)
        if bracketed and (step <= stmin or step >= stmax or stmax - stmin <= xtol * stmax):
            break
        if step == _STEP_MAX and f <= ftest and dphi <= gtest:
            break
        if stage_one and fx >= f > ftest:
            # psi instead of phi: the same interpolation on the shifted values and slopes
            stx, fxm, gxm, sty, fym, gym, bracketed, step = _next_step(
                stx,
                fx - stx * gtest,
                gx - gtest,
                sty,
                fy - sty * gtest,
                gy - gtest,
                step,
                f - step * gtest,
                dphi - gtest,
                bracketed,
                stmin,
                stmax,
            )
            fx, gx = fxm + stx * gtest, gxm + gtest
            fy, gy = fym + sty * gtest, gym + gtest
        else:
            stx, fx, gx, sty, fy, gy, bracketed, step = _next_step(
                stx, fx, gx, sty, fy, gy, step, f, dphi, bracketed, stmin, stmax
            )
        if bracketed:
            if abs(sty - stx) >= 0.66 * width1:
                step = stx + 0.5 * (sty - stx)
            width1 = width
            width = abs(sty - stx)
            stmin, stmax = min(stx, sty), max(stx, sty)
        else:
            stmin = step + _XTRAPL * (step - stx)
            stmax = step + _XTRAPU * (step - stx)
        step = min(max(step, 0.0), _STEP_MAX)
        if bracketed and (step <= stmin or step >= stmax or stmax - stmin <= xtol * stmax):
            break  # a warning before the next trial: the last one is the search's result
    else:
        return False, 0.0, f0, None, dphi0, n_evals  # max_evals evaluations
    if g is not None and math.isfinite(f) and math.isfinite(dphi) and f < f0:
        trial(x, d, evaluated, xt)  # (a no-move break overwrote xt with an unevaluated trial)
        return True, evaluated, f, g, dphi, n_evals
    return False, 0.0, f0, None, dphi0, n_evals


def _next_step(
    stx: float,
    fx: float,
    dx: float,
    sty: float,
    fy: float,
    dy: float,
    stp: float,
    fp: float,
    dp: float,
    bracketed: bool,
    stpmin: float,
    stpmax: float,
) -> tuple[float, float, float, float, float, float, bool, float]:
    """One update of the interval of uncertainty and the next trial step (Moré & Thuente, 1994,
    section 4; MINPACK-2's dcstep).

    ``stx, fx, dx``: the best step and its value and derivative; ``sty, fy, dy``: the other end
    of the interval; ``stp, fp, dp``: the trial just evaluated.  Returns the new
    ``stx, fx, dx, sty, fy, dy``, whether a minimizer is now bracketed, and the next trial.
    A degenerate interpolation (a zero denominator, or an end of the interval with an infinite
    value) falls back to bisection, or to the far bound while nothing is bracketed.
    """
    sgnd = dp * math.copysign(1.0, dx)
    try:
        if fp > fx:
            # 1. a higher value: a minimizer is bracketed.  The cubic step if it is closer to
            # stx than the quadratic (values and dx) step, else halfway between the two.
            theta, gamma = _cubic_terms(stx, fx, dx, stp, fp, dp)
            if stp < stx:
                gamma = -gamma
            p = (gamma - dx) + theta
            q = ((gamma - dx) + gamma) + dp
            stpc = stx + (p / q) * (stp - stx)
            stpq = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2.0) * (stp - stx)
            if abs(stpc - stx) < abs(stpq - stx):
                stpf = stpc
            else:
                stpf = stpc + (stpq - stpc) / 2.0
            bracketed = True
        elif sgnd < 0.0:
            # 2. a lower value, derivatives of opposite signs: bracketed.  The cubic step if it
            # is farther from stp than the secant step, else the secant step.
            theta, gamma = _cubic_terms(stx, fx, dx, stp, fp, dp)
            if stp > stx:
                gamma = -gamma
            p = (gamma - dp) + theta
            q = ((gamma - dp) + gamma) + dx
            stpc = stp + (p / q) * (stx - stp)
            stpq = stp + (dp / (dp - dx)) * (stx - stp)
            stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
            bracketed = True
        elif abs(dp) < abs(dx):
            # 3. a lower value, same signs, the derivative's magnitude decreases: the cubic step
            # only if it goes the right way (its minimizer beyond stp), safeguarded
            theta, gamma = _cubic_terms(stx, fx, dx, stp, fp, dp)
            if stp > stx:
                gamma = -gamma
            p = (gamma - dp) + theta
            q = (gamma + (dx - dp)) + gamma
            r = p / q
            if r < 0.0 and gamma != 0.0:
                stpc = stp + r * (stx - stp)
            elif stp > stx:
                stpc = stpmax
            else:
                stpc = stpmin
            stpq = stp + (dp / (dp - dx)) * (stx - stp)
            if bracketed:
                stpf = stpc if abs(stpc - stp) < abs(stpq - stp) else stpq
                if stp > stx:
                    stpf = min(stp + 0.66 * (sty - stp), stpf)
                else:
                    stpf = max(stp + 0.66 * (sty - stp), stpf)
            else:
                stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
                stpf = max(stpmin, min(stpmax, stpf))
        else:
            # 4. a lower value, same signs, the derivative does not decrease: the cubic step
            # through stp and sty if bracketed, else the bound
            if bracketed:
                if not math.isfinite(fy):
                    stpf = stp + 0.5 * (sty - stp)
                else:
                    theta, gamma = _cubic_terms(stp, fp, dp, sty, fy, dy)
                    if stp > sty:
                        gamma = -gamma
                    p = (gamma - dp) + theta
                    q = ((gamma - dp) + gamma) + dy
                    stpf = stp + (p / q) * (sty - stp)
            elif stp > stx:
                stpf = stpmax
            else:
                stpf = stpmin
    except (ZeroDivisionError, OverflowError, ValueError):
        stpf = math.nan
    # the new interval
    extrapolate_to = stpmax if stp > stx else stpmin
    if fp > fx:
        sty, fy, dy = stp, fp, dp
    else:
        if sgnd < 0.0:
            sty, fy, dy = stx, fx, dx
        stx, fx, dx = stp, fp, dp
    if not math.isfinite(stpf):
        stpf = stx + 0.5 * (sty - stx) if bracketed else extrapolate_to
    return stx, fx, dx, sty, fy, dy, bracketed, stpf


def _cubic_terms(a, fa, da, b, fb, db):
    """theta and |gamma| of the cubic through the values and derivatives at a and b (the
    common part of Moré–Thuente's trial steps): theta = 3 (fa - fb) / (b - a) + da + db,
    gamma = sqrt(theta^2 - da db), scaled by s = max(|theta|, |da|, |db|) against overflow;
    each caller gives gamma its sign."""
    theta = 3.0 * (fa - fb) / (b - a) + da + db
    s = max(abs(theta), abs(da), abs(db))
    return theta, s * math.sqrt(max(0.0, (theta / s) ** 2 - (da / s) * (db / s)))


def _abs_max(v: np.ndarray) -> float:
    return abs(float(v[_idamax(v)])) if v.size else 0.0


def minimize_lbfgs(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    *,
    max_iter: int,
    gtol: float,
    ftol: float,
    history: int = HISTORY,
    max_line_search: int = MAX_LINE_SEARCH,
    callback: Callback | None = None,
    n_threads: int = 1,
) -> LbfgsResult:
    """Minimize ``f`` by L-BFGS with a strong-Wolfe line search (see the module docstring).

    Parameters
    ----------
    fun : callable
        ``fun(x) -> (f(x), grad f(x))``, a float and an array of x's shape.  ``x`` is one of
        the solver's buffers: ``fun`` must not modify it or keep a reference to it.
    x0 : ndarray of shape (n,)
        The start point (copied, as float64).
    max_iter : int
        Iteration limit (>= 0).
    gtol : float
        Stop when ``max|g_i| <= gtol``.
    ftol : float
        Stop when ``(f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= ftol``.
    history : int
        Pairs (s, y) kept.
    max_line_search : int
        Objective evaluations allowed in one line search.
    callback : callable or None
        ``callback(iteration, x, f, g, max|g|)`` after each iteration.
    n_threads : int
        Threads of the history passes of a large model (:data:`NATIVE_HISTORY_MIN`).

    Returns
    -------
    LbfgsResult

    Raises
    ------
    ValueError
        When f or its gradient is not finite at ``x0``, or ``x0`` is not one-dimensional.
    """
    x0 = np.asarray(x0)
    if x0.ndim != 1:
        raise ValueError(f"x0: must be one-dimensional, got shape {x0.shape}")
    x = _zeros(x0.size)
    np.copyto(x, x0, casting="unsafe")
    value, g0 = fun(x)
    f = float(value)
    n_fev = 1
    memory = _memory(x.size, history, n_threads)
    g = memory.g
    np.copyto(g, g0)
    if not (math.isfinite(f) and np.isfinite(g).all()):
        raise ValueError(
            "the objective or its gradient is not finite at the starting point "
            f"(objective {f!r}); check the data and the initial coefficients"
        )
    gmax = _abs_max(g)
    if gmax <= gtol:
        return LbfgsResult(x, f, g.copy(), 0, n_fev, GTOL)
    n = x.size
    xt, d = _zeros(n), _zeros(n)
    n_iter = 0
    status = MAX_ITER
    while n_iter < max_iter:
        if memory.k:
            dphi0 = memory.direction(d)
            step = 1.0
        else:
            # steepest descent, a first step of length at most 1
            _dcopy(g, d)
            _dscal(-1.0, d)
            gg = _ddot(g, g)
            if math.isfinite(gg):
                step = min(1.0, 1.0 / math.sqrt(gg)) if gg > 0.0 else 1.0
            else:  # ||g|| beyond the float range: 1 / (sqrt(n) max|g|) <= 1 / ||g||
                step = 1.0 / (math.sqrt(g.size) * gmax)
            dphi0 = _ddot(g, d)
        ok = dphi0 < 0.0
        if ok:
            ok, step, f_new, g_new, dphi, n_evals = _line_search(
                fun, x, d, xt, f, dphi0, step, max_line_search, trial=memory.trial
            )
            n_fev += n_evals
        if not ok:
            if memory.k:  # forget the curvature pairs, try steepest descent
                memory.reset()
                continue
            status = LINE_SEARCH_FAILED
            break
        assert g_new is not None
        # s'y = step (dphi - dphi0), > 0 by the curvature condition
        gmax = memory.update(step, d, g_new, step * (dphi - dphi0))
        x, xt = xt, x
        f_old, f = f, f_new
        n_iter += 1
        if callback is not None:
            callback(n_iter, x, f, g, gmax)
        if gmax <= gtol:
            status = GTOL
            break
        if f_old - f <= ftol * max(abs(f_old), abs(f), 1.0):
            status = FTOL
            break
    return LbfgsResult(x, f, g.copy(), n_iter, n_fev, status)

"""What convexity says about two near-minimizers of the softmax-regression objective.

The objective (``softmax_fast.reference``) is, with row weights w (1 when not given),
omega_i = w_i / sum(w), the augmented rows x~_i = (x_i, 1) and the parameters theta = (W, b)::

    J(theta) = sum_i omega_i CE(W x_i + b, y_i) + alpha/2 ||W||_F^2

The tests compare two fitted parameter sets ``a`` (one of ours, at its solver's stopping point)
and ``b`` (scikit-learn's, another solver's, another formulation's) with tolerances that follow
from the maths, not from the digits one machine's BLAS gave:

1. Values.  J and its gradient are evaluated by the NumPy reference in long double on the exact
   (float64) parameters.  ``rounding_bound`` bounds the evaluation error of J.
2. Convexity at ``a``.  CE is convex, so with Delta = theta_a - theta_b::

       J(b) - J(a) + grad J(a) . Delta  =  int_0^1 (1 - t) Delta^T H(theta_a - t Delta) Delta dt
                                        >=  alpha/2 ||Delta_W||^2  +  (curvature term, 3.)  >=  0

   The computed upper bound of the left side is the Bregman ``gap``: it must be >= 0, i.e.
   J(a) - J(b) <= grad J(a) . (theta_a - theta_b) (+ the rounding of the evaluations): ``a`` is
   no higher than ``b`` beyond what ``a``'s own gradient allows.  And strong convexity (modulus
   alpha in W) gives the coefficient radius ||W_a - W_b||_F <= sqrt(2 gap / alpha).
3. Curvature.  The Hessian of CE at theta is sum_i omega_i (x~_i x~_i^T) (x) (diag p_i - p_i p_i^T),
   and Delta^T H Delta = sum_i omega_i Var_{p_i}(Delta_z_i), Delta_z_i = Delta_W x_i + Delta_b.
   Along the segment the probabilities of row i change by a factor within exp(+-osc_i), osc_i =
   max_j Delta_z_ij - min_j Delta_z_ij, so each variance by at least exp(-2 osc_i); with lambda
   the smallest eigenvalue of H(theta_a) + alpha I_W on the free coordinates (orthogonal to the
   common intercept shift, which leaves the symmetric objective unchanged and the gradient
   orthogonal to it)::

       ||Delta_perp||^2 <= 2 exp(2 max_i osc_i) gap / lambda

   which bounds the (centred) intercepts too.  A logit of row i then moves by at most
   ``radius * ||x~_i||`` (Cauchy-Schwarz), and a probability by a factor within exp(+-osc_i).
4. Predictions.  Where the top-two logit gap of ``a`` exceeds twice the largest logit
   difference between ``a`` and ``b`` on that row (plus the rounding of the logits), the two
   argmaxes are the same class.
5. Distance to the optimum.  The inequalities of 2. and 3. hold for any two points, so they
   cannot tell whether ``a``'s solver converged.  ``excess_bound`` can: from the gradient and
   the Hessian at ``a`` alone (the Newton decrement nu), min J >= J(a) - exp(2 s) nu^2 / 2, a
   certificate that ``a`` is near the optimum which the tests require to be small; and then
   J(a) - J(b) <= J(a) - min J for every ``b``.

Only the inequalities above are exact; every rounding term is a first-order bound in the unit
``eps`` of the dtype the quantity is computed in (its derivation is in each function).
"""

from typing import NamedTuple

import numpy as np

from softmax_fast import reference

LD = np.longdouble
EPS = float(np.finfo(np.float64).eps)
EPS_LD = np.finfo(LD).eps  # 2**-63 on x86-64 Linux, 2**-112 on aarch64, eps when it is double


def _omega(sample_weight, m, dtype=np.float64):
    w = np.ones(m, dtype) if sample_weight is None else np.asarray(sample_weight, dtype)
    return w / w.sum()


def logit_magnitude(X, W, b):
    """Per-row bound on the logits' size, A_i = max_j (|x_i| . |w_j| + |b_j|), shape (m,)."""
    return (np.abs(X) @ np.abs(W).T + np.abs(b)).max(axis=1)


def logit_rounding(X, W, b, eps=EPS, input_roundings=0):
    """Per-row bound on the rounding of any evaluation of the logits X W^T + b in a dtype of unit
    ``eps`` (BLAS, the kernels' micro-kernels, any summation order): (n + 1) eps A_i, shape (m,),
    plus eps A_i for each input first rounded to that dtype (X, W: a relative eps / 2 each)."""
    return (X.shape[1] + 1 + input_roundings) * eps * logit_magnitude(X, W, b)


def rounding_bound(X, W, b, loss, sample_weight=None, eps=EPS_LD):
    """Bound on |computed J - J| for one evaluation of J in a dtype of unit ``eps``.

    Per row: the logits carry (n + 1) eps A_i (a dot product of n terms plus the intercept,
    in any order), and CE(z) moves by at most 2 max_j |dz_j| (its gradient p - e_y has L1
    norm <= 2): 2 (n + 1) eps A_i.  Evaluating CE from the rounded logits (shift by the max,
    K exps and one log of <= 2 ulps each, a sum of K terms, two subtractions, with shifted
    logits <= 2 A_i and log sum <= log K <= K) adds <= eps (3 A_i + 3 K).  The weighted mean
    (m products, two sums of m terms in any order, a division) adds (2 m + 4) eps J, the
    penalty (K n squares summed, one addition) (K n + 2) eps J.
    """
    m, n = X.shape
    K = W.shape[0]
    omega = _omega(sample_weight, m)
    A = logit_magnitude(X, W, b)
    per_row = float(omega @ ((2 * n + 5) * A + 3 * K))
    return float(eps) * (per_row + (2 * m + K * n + 6) * abs(float(loss)))


def _gradient_rounding(X, W, b, alpha, sample_weight, eps=EPS_LD):
    """Bounds (E_W, E_b) on the error of the computed gradient, elementwise.

    dZ_ij = omega_i (p_ij - y_ij): the probabilities of the rounded logits are off by a factor
    within exp(+-2 (n + 1) eps A_i), their own evaluation adds eps (2 A_i + K + 3), so
    |error dZ_ij| <= omega_i eps ((2 n + 4) A_i + K + 4).  dW = dZ^T X sums m terms of size
    omega_i |x_ik| (|dZ_ij| <= omega_i): eps sum_i omega_i |x_ik| ((2 n + 4) A_i + K + m + 5),
    plus the penalty term alpha |W|; db likewise without |x_ik|.
    """
    m, n = X.shape
    omega = _omega(sample_weight, m)
    c = omega * ((2 * n + 4) * logit_magnitude(X, W, b) + W.shape[0] + m + 5)
    e_W = float(eps) * (np.broadcast_to(c @ np.abs(X), W.shape) + alpha * np.abs(W))
    e_b = float(eps) * np.full(W.shape[0], c.sum())
    return e_W, e_b


def objective(X, y, W, b, alpha, sample_weight=None):
    """(J, dJ/dW, dJ/db) by the NumPy reference in long double (exact float64 inputs)."""
    XL = np.asarray(X, dtype=LD)
    WL = np.asarray(W, dtype=LD)
    Z = XL @ WL.T + np.asarray(b, dtype=LD)
    w = np.ones(XL.shape[0], LD) if sample_weight is None else np.asarray(sample_weight, LD)
    # reduction="none" keeps long double (the "mean" reduction returns a Python float)
    ce = reference.cross_entropy(Z, y, sample_weight=w, reduction="none")
    J = ce.sum() / w.sum() + LD(alpha) / 2 * np.sum(WL * WL)
    _, dZ = reference.cross_entropy_grad(Z, y, sample_weight=w)
    return J, dZ.T @ XL + LD(alpha) * WL, dZ.sum(axis=0)


class Curvature(NamedTuple):
    """The Hessian of J at a point, on the free coordinates (orthogonal to the common
    intercept shift when the objective is invariant under it).

    lam : lower bound on its smallest eigenvalue there
    eigenvalues, eigenvectors : of the computed matrix (the shift direction lifted to the top)
    shift : the unit shift direction (0, 1/sqrt(K)) in these coordinates, or None
    inverse_factor : x^T H^-1 x <= inverse_factor * (the same from the computed eigenpairs)
    """

    lam: float
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    shift: np.ndarray | None
    inverse_factor: float


def curvature(X, W, b, alpha, free, shift_invariant, sample_weight=None):
    """H(theta) + alpha I_W = sum_i omega_i (x~_i x~_i^T) (x) (diag p_i - p_i p_i^T) + alpha I_W on
    the parameters (w_j, b_j) of the rows ``free``, orthogonal to the shift when
    ``shift_invariant`` (along it H is 0; it is lifted to the eigenvalue trace(H)).

    H is built in float64 from the probabilities of the float64 logits, which are the exact
    probabilities of logits off by (n + 1) eps A_i: a factor within exp(+-4 (n + 1) eps max A) (3.
    of the module docstring).  The sum over m rows and the eigensolver add an error of norm
    <= 2 (m + 8) p eps trace(H) (p parameters; |H_ab| <= lambda_max <= trace for a PSD matrix).
    """
    m, n = X.shape
    K = W.shape[0]
    omega = _omega(sample_weight, m)
    P = reference.softmax(X @ W.T + b)
    S = P[:, :, None] * np.eye(K) - P[:, :, None] * P[:, None, :]
    Xt = np.hstack([X, np.ones((m, 1))])
    outer = (omega[:, None, None] * Xt[:, :, None] * Xt[:, None, :]).reshape(m, -1)
    H = (S.reshape(m, K * K).T @ outer).reshape(K, K, n + 1, n + 1)
    H = H.transpose(0, 2, 1, 3).reshape(K * (n + 1), K * (n + 1))
    index = np.arange(K * (n + 1)).reshape(K, n + 1)
    H[index[:, :n].ravel(), index[:, :n].ravel()] += alpha
    keep = index[free].ravel()
    H = H[np.ix_(keep, keep)]
    trace = np.trace(H)
    shift = None
    if shift_invariant:
        u = np.zeros((K, n + 1))
        u[:, n] = 1.0 / np.sqrt(K)
        shift = u[free].ravel()
        H = H + trace * np.outer(shift, shift)
    eigenvalues, eigenvectors = np.linalg.eigh(H)
    error = 2 * (m + 8) * keep.size * EPS * trace
    logit_factor = np.exp(-4 * (n + 1) * EPS * logit_magnitude(X, W, b).max())
    lam = (eigenvalues[0] - error) * logit_factor
    inverse_factor = 1.0 / ((1.0 - error / eigenvalues[0]) * logit_factor)
    return Curvature(lam, eigenvalues, eigenvectors, shift, inverse_factor)


def _free_vector(M_W, M_b, free):
    """(W, b) parts as the flat coordinates of ``curvature``: rows ``free``, each (w_j, b_j)."""
    return np.column_stack([np.asarray(M_W, np.float64), np.asarray(M_b, np.float64)])[free].ravel()


def excess_bound(X, curv, g_W, g_b, e_W, e_b, free):
    """Upper bound on J(theta) - min J from the gradient at theta (the Newton decrement), or inf
    when the gradient is too large for the argument.

    nu^2 = g^T H^-1 g (H = ``curv`` at theta, g orthogonal to the shift: the exact gradient is).
    Where every logit difference of a step d has osc <= s, J(theta + d) >= J + g.d +
    exp(-2 s)/2 ||d||_H^2 (3. of the module docstring).  osc <= 2 ||d||_2 max_i ||x~_i|| <= 2
    ||d||_H max ||x~|| / sqrt(lam), so on the H-ball of radius rho = 2 exp(2 s) nu the
    osc stays <= s when 4 exp(2 s) nu max||x~|| / sqrt(lam) <= s (the fixed point s = a
    exp(2 s) exists for a <= 1/(2e)).  On that ball's boundary J > J(theta), so the minimizer is
    inside, and min J >= J(theta) - exp(2 s) nu^2 / 2.  The gradient's error (its rounding in long
    double and to float64) adds ||error||_2 / sqrt(lam) to nu.
    """
    g = _free_vector(g_W, g_b, free)
    error = _free_vector(e_W, e_b, free) + EPS * np.abs(g)
    if curv.shift is not None:
        g = g - (g @ curv.shift) * curv.shift
    if curv.lam <= 0:
        return np.inf
    coords = curv.eigenvectors.T @ g
    nu = np.sqrt(np.sum(coords**2 / curv.eigenvalues) * curv.inverse_factor)
    nu += np.linalg.norm(error) / np.sqrt(curv.lam)
    a = 4 * nu * augmented_norms(X).max() / np.sqrt(curv.lam)
    s = a
    for _ in range(60):  # increasing, to the smallest fixed point of s = a exp(2 s) if a < 1/(2e)
        s = a * np.exp(2 * s)
    s *= 1 + 1e-6  # a ball radius slightly above 2 exp(2 s) nu
    if not a * np.exp(2 * s) * (1 + 1e-9) <= s:
        return np.inf
    return float(np.exp(2 * s) * nu**2 / 2)


class Comparison(NamedTuple):
    """Two parameter sets of one objective, compared (see the module docstring).

    loss_a, loss_b : J(a), J(b), computed in long double
    excess_a : upper bound on J(a) - min J from the gradient at a (``excess_bound``)
    rounding : bound on the rounding of loss_a and loss_b together
    gap : upper bound on J(b) - J(a) + grad J(a) . (theta_a - theta_b); must be >= 0
    w_dist, w_radius : ||W_a - W_b||_F and its bound sqrt(2 gap / alpha)
    dist, radius : ||Delta_perp|| (free rows, intercept shift removed) and its curvature bound
    delta_b : b_a - b_b with the common shift removed when the objective is invariant under it
    """

    loss_a: float
    loss_b: float
    excess_a: float
    rounding: float
    gap: float
    w_dist: float
    w_radius: float
    dist: float
    radius: float
    delta_b: np.ndarray


def compare(X, y, alpha, a, b, *, free=slice(None), sample_weight=None):
    """Compare the parameter sets ``a = (W_a, b_a)`` and ``b = (W_b, b_b)`` (float64, all K
    rows; the rows outside ``free`` are fixed and equal, as a reference class's zero row).
    ``y``: class indices.  The common intercept shift is removed when all rows are free (the
    symmetric form: J and the gradient's orthogonality to the shift)."""
    X = np.asarray(X, dtype=np.float64)
    W_a, b_a = (np.asarray(v, dtype=np.float64) for v in a)
    W_b, b_b = (np.asarray(v, dtype=np.float64) for v in b)
    shift_invariant = isinstance(free, slice) and free == slice(None)
    J_a, g_W, g_b = objective(X, y, W_a, b_a, alpha, sample_weight)
    J_b = objective(X, y, W_b, b_b, alpha, sample_weight)[0]
    d_W = W_a.astype(LD) - W_b
    d_b = b_a.astype(LD) - b_b
    if shift_invariant:
        d_b -= d_b.mean()
    e_W, e_b = _gradient_rounding(X, W_a, b_a, alpha, sample_weight)
    n_params = d_W.size + d_b.size
    products = np.concatenate([(g_W * d_W).ravel(), g_b * d_b])
    # grad J(a) . Delta: the gradient's error and the dot product's rounding (p terms)
    linear = (
        products.sum()
        + (n_params + 2) * EPS_LD * np.abs(products).sum()
        + np.sum(e_W * np.abs(d_W))
        + np.sum(e_b * np.abs(d_b))
    )
    rounding = rounding_bound(X, W_a, b_a, J_a, sample_weight) + rounding_bound(
        X, W_b, b_b, J_b, sample_weight
    )
    gap = float(J_b - J_a + linear + LD(rounding))
    w_dist = float(np.sqrt(np.sum(d_W * d_W)))
    w_radius = np.sqrt(2 * max(gap, 0.0) / alpha) if alpha > 0 else np.inf
    rows = np.arange(W_a.shape[0])[free]
    d_W64, d_b64 = np.asarray(d_W, np.float64), np.asarray(d_b, np.float64)
    dist = float(np.sqrt(np.sum(d_W * d_W) + np.sum(d_b * d_b)))
    # osc_i <= 2 max_j |Delta_z_ij|, bounded through |X| |Delta_W|^T + |Delta_b|
    osc = 2 * logit_magnitude(X, d_W64, d_b64).max() * (1 + 1e-6)
    curv = curvature(X, W_a, b_a, alpha, rows, shift_invariant, sample_weight)
    radius = np.sqrt(2 * np.exp(2 * osc) * max(gap, 0.0) / curv.lam) if curv.lam > 0 else np.inf
    excess = excess_bound(X, curv, g_W, g_b, e_W, e_b, rows)
    return Comparison(
        float(J_a), float(J_b), excess, rounding, gap, w_dist, w_radius, dist, radius, d_b64
    )


def top_two_gap(Z):
    """Largest minus second largest logit of each row, shape (m,)."""
    part = np.partition(Z, -2, axis=1)
    return part[:, -1] - part[:, -2]


def decided_rows(Z_a, Z_b, rounding):
    """Rows where the argmax of the logits ``a`` and ``b`` predict from cannot differ: the
    top-two gap of ``Z_a`` exceeds twice the largest |Z_a - Z_b| of the row plus the rounding.

    ``rounding`` (shape (m,)): bound on |computed - exact| of each model's logits, summed over
    the two models.  A prediction may come from another evaluation of the same logits than the
    decision function's, so each model's logits may differ by twice its bound between the two;
    the margin 4 * rounding covers that on both sides (gap and difference).
    """
    diff = np.abs(Z_a - Z_b).max(axis=1)
    return top_two_gap(Z_a) > 2 * (diff + 4 * rounding)


def assert_predictions_agree(pred_a, pred_b, Z_a, Z_b, rounding, min_fraction):
    """The two models predict alike on every decided row, and at least ``min_fraction`` of the
    rows are decided (so that the check cannot pass vacuously)."""
    decided = decided_rows(Z_a, Z_b, rounding)
    assert decided.mean() >= min_fraction, (decided.mean(), min_fraction)
    np.testing.assert_array_equal(pred_a[decided], pred_b[decided])


def probability_tolerance(P_a, P_b, Z_a, Z_b, rounding):
    """|P_a - P_b| bound from the logits: softmax(z + d) / softmax(z) lies within
    exp(+-osc(d)) elementwise, osc(d) = max d - min d, with the rounding of both logits; each
    softmax's own evaluation adds an absolute (K + 4) eps (K exps, a sum, a division, or a
    complement 1 - p for two classes: absolute, not relative, near p = 0)."""
    K = Z_a.shape[1]
    d = Z_a - Z_b
    osc = d.max(axis=1) - d.min(axis=1) + 4 * rounding
    top = np.maximum(P_a, P_b)
    return np.expm1(osc)[:, None] * top + 2 * (K + 4) * EPS


def augmented_norms(X):
    """||x~_i|| = sqrt(||x_i||^2 + 1), shape (m,)."""
    return np.sqrt(np.einsum("ij,ij->i", X, X) + 1.0)


def centred_sum_bound(b):
    """Bound on |sum(b - mean(b))| computed in float64: the mean is off by <= K eps max|b|, so
    the exact sum of the computed differences by <= K^2 eps max|b|; the K subtractions and the
    sum of K terms add <= 2 K^2 eps max|b| more (first order): 3 K^2 eps max|b|."""
    b = np.asarray(b, dtype=np.float64)
    return 3 * b.size**2 * EPS * np.abs(b).max()

r"""The softmax-regression objective as the solvers see it.

.. math::

    J(\theta) = \frac{\sum_i w_i \, \mathrm{CE}(\mathrm{softmax}(W x_i + b), y_i)}{\sum_i w_i}
                + \frac{\alpha}{2} \lVert W \rVert_F^2

``theta`` packs the free class rows of W followed by their intercepts (when ``fit_intercept``),
W in the design's layout: (K_free, n) row-major for dense X, feature-major (n, K_free)
row-major for CSR X (:attr:`softmax_fast._design.CSRDesign.feature_major`), so that each
evaluation hands the kernels a view of theta and adds their gradient to it as it comes; the
solvers see a flat vector either way.  With a reference class r, row r of W and b_r are fixed
at 0 and left out of ``theta``: the K - 1 form.  This module is the only home of the L2 penalty
(:func:`l2_penalty`, :func:`add_l2_penalty`; for large models the one native pass of
:data:`NATIVE_PENALTY_MIN`); the data term comes from a design
(:mod:`softmax_fast._design`), so the objective works on any input format that has one.
Everything is float64 on this side: the design returns float64 sums also for float32 data, and
only W and b are cast to the data's dtype for the kernels.
"""

import numpy as np

from ._design import HESSIAN_MAX_PARAMS, CSRDesign, Curvature, DenseDesign
from ._native import vectors as _native_vectors

__all__ = ["ClassShifts", "HessianOperator", "SoftmaxObjective", "add_l2_penalty", "l2_penalty"]


def l2_penalty(
    W: np.ndarray, alpha: float, out: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """``((alpha / 2) ||W||^2, alpha W)`` in float64, for W of any shape.

    ``out``: a float64 array of W's shape to write ``alpha W`` into (returned).
    """
    W64 = np.asarray(W, dtype=np.float64)
    grad = np.zeros_like(W64) if out is None else out
    if not alpha:
        grad[...] = 0.0
        return 0.0, grad
    flat = W64.ravel()
    np.multiply(W64, alpha, out=grad)
    return 0.5 * alpha * float(np.dot(flat, flat)), grad


NATIVE_PENALTY_MIN = 1 << 18
"""From this many coefficients on, the gradient's penalty term and the data term are added in
one threaded native pass (:func:`softmax_fast._native.vectors.penalized_gradient`) instead of
NumPy's passes (single-threaded, and the sum of squares through BLAS, whose idle threads then
spin beside the next kernel's)."""


FLOAT32_PRODUCTS_MIN_VALUES = 1 << 22
"""Dense float64 X of at least this many values (and a float32 copy of at most
:data:`FLOAT32_PRODUCTS_MAX_BYTES`) gets float32 Hessian-vector products on request
(:meth:`SoftmaxObjective.hessian_operator`): there a product reads X from memory at about a
gradient's cost, and float32 halves the bytes and doubles the GEMM rate (measured on the
MNIST-shaped 60,000 x 784 fit: a product 1.6 times faster, the fit 1.3 times,
benchmarks/RESULTS.md, "Solvers, second round")."""

FLOAT32_PRODUCTS_MAX_BYTES = 1 << 30
"""The largest float32 copy of X (1 GiB) the objective keeps for those products."""


# add_l2_penalty works through blocks of this many elements (a small scratch, no W-sized one)
_PENALTY_BLOCK = 1 << 15


def add_l2_penalty(grad: np.ndarray, W: np.ndarray, alpha: float, n_threads: int = 1) -> float:
    """``grad += alpha W`` in place and ``(alpha / 2) ||W||^2`` returned: what
    :func:`l2_penalty` gives, added to a float64 gradient of W's shape without a W-sized
    temporary (``alpha * W`` then the sum, block by block; from :data:`NATIVE_PENALTY_MIN`
    coefficients on, one threaded native pass, with a fused multiply-add where the CPU has it)."""
    if not alpha:
        return 0.0
    flat_W = np.asarray(W, dtype=np.float64).reshape(-1)
    if not grad.flags.c_contiguous:
        grad += alpha * np.asarray(W, dtype=np.float64)
        return 0.5 * alpha * float(np.dot(flat_W, flat_W))
    flat_grad = grad.reshape(-1)  # a view of grad
    if flat_W.size >= NATIVE_PENALTY_MIN:
        squares = _native_vectors.penalized_gradient(flat_W, flat_grad, alpha, flat_grad, n_threads)
        return 0.5 * alpha * squares
    scratch = np.empty(min(flat_W.size, _PENALTY_BLOCK))
    for start in range(0, flat_W.size, _PENALTY_BLOCK):
        part = flat_W[start : start + _PENALTY_BLOCK]
        tmp = scratch[: part.size]
        np.multiply(part, alpha, out=tmp)
        flat_grad[start : start + part.size] += tmp
    return 0.5 * alpha * float(np.dot(flat_W, flat_W))


class SoftmaxObjective:
    """J(theta) and its gradient on a design, for the solvers of :mod:`softmax_fast._solvers`.

    Parameters
    ----------
    design : DenseDesign or CSRDesign
        The validated data (trusted: nothing is re-checked per evaluation); its
        ``feature_major`` fixes theta's layout.
    labels : ndarray of shape (m,), intp, or None
        Class indices in [0, n_classes); None for a design that holds its own with its data
        (``softmax_fast.dask.DaskDesign``).
    sample_weight : ndarray of shape (m,), float64, or None
        Non-negative weights, already scaled (their maximum in [0.5, 1)); None: all ones.
    n_classes : int
    alpha : float
        L2 penalty on W (not on the intercepts), >= 0.
    fit_intercept : bool
    reference : int or None
        Index of the reference class (its row of W and intercept fixed at 0), or None for the
        symmetric form with K free rows.

    Attributes
    ----------
    class_rows : ndarray of shape (K_free,), intp
        The rows of W (classes) that theta holds.
    n_samples, n_features, n_params : int
    weight_total : float
        ``sum_i w_i`` (m without weights).
    """

    def __init__(
        self,
        design: DenseDesign | CSRDesign,
        labels: np.ndarray | None,
        sample_weight: np.ndarray | None,
        n_classes: int,
        alpha: float,
        fit_intercept: bool,
        reference: int | None,
    ):
        self.design = design
        self.labels = labels
        self.sample_weight = sample_weight
        self.n_samples, self.n_features = design.n_samples, design.n_features
        self.n_classes = int(n_classes)
        self.alpha = float(alpha)
        self.fit_intercept = bool(fit_intercept)
        self.reference = reference
        self.class_rows = np.array(
            [k for k in range(self.n_classes) if k != reference], dtype=np.intp
        )
        self.n_params = self.class_rows.size * (self.n_features + int(self.fit_intercept))
        self.weight_total = (
            float(self.n_samples) if sample_weight is None else float(np.sum(sample_weight))
        )
        self._float32_copy: DenseDesign | None = None
        self._float32_decided = False

    # ----------------------------------------------------------------------------- packing
    def pack(self, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
        """(K, n) coef and (K,) intercept -> theta (float64)."""
        free = np.asarray(coef, dtype=np.float64)[self.class_rows]
        parts = [(free.T if self.design.feature_major else free).ravel()]
        if self.fit_intercept:
            parts.append(np.asarray(intercept, dtype=np.float64)[self.class_rows])
        return np.concatenate(parts)

    def unpack(self, theta: np.ndarray, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
        """theta -> (K, n) coef and (K,) intercept of ``dtype`` (zeros where fixed)."""
        k, n = self.class_rows.size, self.n_features
        coef = np.zeros((self.n_classes, n), dtype=dtype)
        if self.design.feature_major:
            coef[self.class_rows] = theta[: k * n].reshape(n, k).T
        else:
            coef[self.class_rows] = theta[: k * n].reshape(k, n)
        intercept = np.zeros(self.n_classes, dtype=dtype)
        if self.fit_intercept:
            intercept[self.class_rows] = theta[k * n :]
        return coef, intercept

    # ----------------------------------------------------------------------------- evaluation
    def _coefficients(self, theta, dtype):
        """W in the design's layout ((K, n), or (n, K) when feature-major) and b (K,) or None,
        for the kernels: views of theta where the layouts agree (float64, no reference class),
        else copies."""
        K, n = self.n_classes, self.n_features
        k_n = self.class_rows.size * n
        shape = (n, K) if self.design.feature_major else (K, n)
        if self.reference is None and dtype == np.float64:
            return theta[:k_n].reshape(shape), theta[k_n:] if self.fit_intercept else None
        W = np.zeros(shape, dtype=dtype)
        if self.design.feature_major:
            W[:, self.class_rows] = theta[:k_n].reshape(n, -1)
        else:
            W[self.class_rows] = theta[:k_n].reshape(-1, n)
        b = None
        if self.fit_intercept:
            b = np.zeros(K, dtype=dtype)
            b[self.class_rows] = theta[k_n:]
        return W, b

    def _evaluate(self, design, labels, sample_weight, theta, scale):
        """``(sum_i w_i l_i, penalty, gradient)``: the gradient (the data term's scaled by
        ``scale``) assembled in one fresh (n_params,) array, the penalty's ``alpha W`` written
        first and the kernel's sums added."""
        W, b = self._coefficients(theta, design.dtype)
        total, dW, db = design.loss_grad(W, b, labels, None, sample_weight, scale)
        grad = np.empty_like(theta)
        k_n = self.class_rows.size * self.n_features
        if self.reference is None:
            dW_free = dW
        else:  # the free classes, in theta's layout
            dW_free = dW[:, self.class_rows] if design.feature_major else dW[self.class_rows]
        if k_n >= NATIVE_PENALTY_MIN:
            # one threaded pass: alpha W + dW and ||W||^2
            squares = _native_vectors.penalized_gradient(
                theta[:k_n], dW_free.reshape(-1), self.alpha, grad[:k_n], design.n_threads
            )
            penalty = 0.5 * self.alpha * squares
        else:
            penalty, grad_W = l2_penalty(theta[:k_n], self.alpha, out=grad[:k_n])
            grad_W.reshape(dW_free.shape)[...] += dW_free
        if self.fit_intercept:
            grad[k_n:] = db if self.reference is None else db[self.class_rows]
        return total, penalty, grad

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """J(theta) and its gradient, shape (n_params,) float64, from one fused pass."""
        total, penalty, grad = self._evaluate(
            self.design, self.labels, self.sample_weight, theta, 1.0 / self.weight_total
        )
        return total / self.weight_total + penalty, grad

    def batch_value_and_grad(
        self, theta: np.ndarray, sample_rows: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """Unbiased estimates of J and grad J from the rows ``sample_rows`` (sorted indices).

        The data term of J is ``sum_i w_i l_i / sum_i w_i``; over a batch B of uniformly drawn
        rows, ``(m / |B|) sum_{i in B} w_i l_i / sum_i w_i`` has that expectation (and so has its
        gradient).  The penalty is added exactly.
        """
        if self.labels is None:
            raise ValueError("batch_value_and_grad: needs the labels in memory")
        scale = self.n_samples / (sample_rows.size * self.weight_total)
        sw = None if self.sample_weight is None else self.sample_weight[sample_rows]
        total, penalty, grad = self._evaluate(
            self.design.take_rows(sample_rows), self.labels[sample_rows], sw, theta, scale
        )
        return scale * total + penalty, grad

    # ----------------------------------------------------------------------------- curvature
    def invariant_directions(self, *, class_shifts: bool = True) -> np.ndarray:
        """An orthonormal basis (n_params, r) of the directions along which J is constant:
        adding one vector to every class's parameters leaves the probabilities unchanged, so
        in the symmetric form (no reference class) J does not change along the common shift
        of the intercepts (unpenalized), nor, with alpha = 0, along the common shift of each
        feature's weights.  r = 0 in the reference-class form.  The Hessian is singular
        there and the gradient orthogonal to them (up to rounding).

        ``class_shifts=False``: without the features' shifts (n columns with alpha = 0), for
        a caller that handles them through :meth:`class_shifts` instead of a dense basis."""
        K, n = self.n_classes, self.n_features
        if self.reference is not None:
            return np.zeros((self.n_params, 0))
        columns = []
        k_n = K * n
        if not self.alpha and class_shifts:
            for j in range(n):
                u = np.zeros(self.n_params)
                if self.design.feature_major:
                    u[j * K : (j + 1) * K] = 1.0
                else:
                    u[j:k_n:n] = 1.0
                columns.append(u)
        if self.fit_intercept:
            u = np.zeros(self.n_params)
            u[k_n:] = 1.0
            columns.append(u)
        if not columns:
            return np.zeros((self.n_params, 0))
        return np.column_stack(columns) / np.sqrt(K)

    def class_shifts(self) -> "ClassShifts | None":
        """The features' class shifts (:class:`ClassShifts`) in theta's layout, on which
        the Hessian is ``alpha`` times the identity; None in the reference-class form (its
        fixed class breaks the invariance)."""
        if self.reference is not None:
            return None
        return ClassShifts(self.n_classes, self.n_features, self.design.feature_major, self.alpha)

    def hessian_operator(
        self, theta: np.ndarray, *, float32_products: bool = False
    ) -> "HessianOperator":
        """The Hessian of J at theta as an operator (:class:`HessianOperator`): products with
        directions, and its diagonal; the probabilities at theta are computed here, once.

        ``float32_products``: also offer ``matvec_float32``, products from a float32 copy of
        X, where X is dense float64 and large (:meth:`float32_design`); elsewhere the request
        is ignored (``operator.has_float32`` tells)."""
        return HessianOperator(self, theta, float32_products=float32_products)

    def float32_design(self) -> DenseDesign | None:
        """A float32 copy of dense float64 X as a design (made once, kept for the objective's
        life: half X's size), or None: X is not dense float64, has fewer than
        :data:`FLOAT32_PRODUCTS_MIN_VALUES` values, or the copy would exceed
        :data:`FLOAT32_PRODUCTS_MAX_BYTES`."""
        if not self._float32_decided:
            design = self.design
            if (
                isinstance(design, DenseDesign)
                and design.dtype == np.float64
                and FLOAT32_PRODUCTS_MIN_VALUES <= design.X.size <= FLOAT32_PRODUCTS_MAX_BYTES // 4
            ):
                self._float32_copy = design.float32_copy()
            self._float32_decided = True
        return self._float32_copy

    def _theta_order(self):
        """Index into theta of each parameter in the class-major order of the designs'
        ``hessian``: class a's n weights then (with intercepts) its intercept, class after
        class."""
        F, n = self.class_rows.size, self.n_features
        a = np.arange(F)[:, None]
        j = np.arange(n)[None, :]
        weights = j * F + a if self.design.feature_major else a * n + j
        if not self.fit_intercept:
            return weights.reshape(-1)
        return np.hstack([weights, F * n + a]).reshape(-1)

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        """The full Hessian of J at theta, shape (n_params, n_params) float64, in theta's
        order (the penalty's ``alpha`` on the diagonal of the weights' part).

        Raises
        ------
        ValueError
            When the model has more than :data:`softmax_fast._design.HESSIAN_MAX_PARAMS`
            parameters.
        """
        if self.n_params > HESSIAN_MAX_PARAMS:
            raise ValueError(
                f"the full Hessian of {self.n_params} parameters is too large (at most "
                f"{HESSIAN_MAX_PARAMS}); use solver='newton-cg' or 'lbfgs'"
            )
        # float64 coefficients whatever X's dtype: the designs build the Hessian in float64
        W, b = self._coefficients(theta, np.float64)
        H_class = self.design.hessian(
            W, b, self.sample_weight, 1.0 / self.weight_total, self.class_rows
        )
        order = self._theta_order()
        H = np.empty_like(H_class)
        H[np.ix_(order, order)] = H_class
        k_n = self.class_rows.size * self.n_features
        H[np.arange(k_n), np.arange(k_n)] += self.alpha
        return H

    # ----------------------------------------------------------------------------- incremental
    def incremental_state(self, theta: np.ndarray):
        """A fresh SAGA state (:func:`softmax_fast._saga.saga_state`) for starting at theta."""
        from ._saga import saga_state

        return saga_state(self, theta)

    def incremental_epoch(self, theta: np.ndarray, state, order: np.ndarray) -> None:
        """One SAGA pass over the rows ``order``, theta and state updated in place
        (:func:`softmax_fast._saga.saga_epoch`)."""
        from ._saga import saga_epoch

        saga_epoch(self, theta, state, order)


class ClassShifts:
    r"""The n directions of theta that add one number to all K class weights of one feature
    (the symmetric form: every class free), and the curvature along them.

    Moving feature j's K weights by t together moves every logit of row i by ``t x_ij``, which
    leaves the probabilities unchanged: the data term is constant along these directions, so
    its Hessian vanishes on their span S and ``H = alpha I`` there (the penalty's part).  H is
    symmetric, so S and its complement are invariant subspaces of H, and Newton's equation
    ``H d = -g`` splits: ``d_S = -g_S / alpha`` in closed form (alpha > 0; with alpha = 0
    they are invariant directions of J and ``g_S`` is rounding), and the complement's part by
    conjugate gradients kept in the complement.  A diagonal preconditioner alone would mix S
    back in, where the curvature alpha is far below the data's.

    Vectors are theta-shaped float64 (the intercepts, after the weights, untouched); the
    weights are (n, K) in the feature-major layout, (K, n) otherwise.

    Parameters
    ----------
    n_classes, n_features : int
    feature_major : bool
        theta's weight layout (the design's).
    curvature : float
        H on S: the objective's alpha.
    """

    def __init__(self, n_classes: int, n_features: int, feature_major: bool, curvature: float):
        self.n_classes = int(n_classes)
        self.n_features = int(n_features)
        self.feature_major = bool(feature_major)
        self.curvature = float(curvature)
        self._mean_weights = np.full(self.n_classes, 1.0 / max(self.n_classes, 1))

    def _weights(self, v: np.ndarray) -> np.ndarray:
        K, n = self.n_classes, self.n_features
        return v[: K * n].reshape((n, K) if self.feature_major else (K, n))

    def remove(self, v: np.ndarray) -> np.ndarray:
        """Subtract from each feature's K weights of v their mean, in place (v's component in
        S); returns those means, shape (n, 1) feature-major, else (1, n)."""
        W = self._weights(v)
        # the means as one matrix-vector product (a reduction along the short axis of W is
        # several times slower)
        if self.feature_major:
            means = (W @ self._mean_weights)[:, None]
        else:
            means = (self._mean_weights @ W)[None, :]
        W -= means
        return means

    def add(self, v: np.ndarray, means: np.ndarray, factor: float) -> np.ndarray:
        """``v += factor *`` (the S vector whose class means are ``means``), in place; v."""
        W = self._weights(v)
        W += factor * means
        return v


class HessianOperator:
    """The Hessian of a :class:`SoftmaxObjective` at one point theta.

    ``matvec(v)``: ``H v`` (one pass over the data each, from the probabilities cached at
    construction: ``m * K`` values of the data's dtype); ``diagonal()``: diag H (one pass).
    Vectors are float64 of theta's shape; the penalty's ``alpha`` is included.

    With ``float32_products`` and a float32 copy of X (:meth:`SoftmaxObjective.float32_design`;
    ``has_float32``), ``matvec_float32(v)`` is H v from X and the probabilities rounded to
    float32 (sums in float64): about 1e-6 relative of ``matvec``, at about half its cost, and
    the diagonal comes from that copy too (a preconditioner needs no more).  Without the copy,
    ``matvec_float32`` is ``matvec``.
    """

    def __init__(
        self, objective: SoftmaxObjective, theta: np.ndarray, *, float32_products: bool = False
    ):
        self.objective = objective
        W, b = objective._coefficients(theta, objective.design.dtype)
        self.curvature = objective.design.curvature(W, b, objective.sample_weight)
        self._k_n = objective.class_rows.size * objective.n_features
        # (design, curvature) of the float32 products, or None
        self._float32: tuple[DenseDesign, Curvature] | None = None
        design32 = objective.float32_design() if float32_products else None
        if design32 is not None:
            # the float64 probabilities, rounded: no second pass over X for them
            P32 = self.curvature.P.astype(np.float32)
            self._float32 = (design32, Curvature(P32, self.curvature.sample_weight))

    @property
    def has_float32(self) -> bool:
        """Whether ``matvec_float32`` uses a float32 copy of X."""
        return self._float32 is not None

    def _free(self, dW, db, v_W):
        """The free classes' parts of the design's (dW, db) in theta's layout, penalty added."""
        obj = self.objective
        if obj.reference is not None:
            dW = dW[:, obj.class_rows] if obj.design.feature_major else dW[obj.class_rows]
        out = np.empty(obj.n_params)
        np.multiply(v_W, obj.alpha, out=out[: self._k_n])
        out[: self._k_n] += dW.reshape(-1)
        if obj.fit_intercept:
            out[self._k_n :] = db if obj.reference is None else db[obj.class_rows]
        return out

    def matvec(self, v: np.ndarray) -> np.ndarray:
        """``H v``, float64 (n_params,)."""
        return self._matvec(self.objective.design, self.curvature, v)

    def matvec_float32(self, v: np.ndarray) -> np.ndarray:
        """``H v`` from the float32 copy of X (float64 (n_params,)); ``matvec`` without it."""
        if self._float32 is None:
            return self.matvec(v)
        return self._matvec(*self._float32, v)

    def _matvec(self, design, curvature, v):
        obj = self.objective
        V, c = obj._coefficients(v, design.dtype)
        dV, dc = design.hess_vec(curvature, V, c, 1.0 / obj.weight_total)
        return self._free(dV, dc, v[: self._k_n])

    def diagonal(self) -> np.ndarray:
        """diag H, float64 (n_params,) (from the float32 copy of X where there is one)."""
        obj = self.objective
        design, curvature = self._float32 or (obj.design, self.curvature)
        diag_W, diag_b = design.hess_diag(curvature, 1.0 / obj.weight_total)
        return self._free(diag_W, diag_b, np.ones(self._k_n))

"""SoftmaxRegression: a scikit-learn classifier trained on the fused kernels.

This module owns the scikit-learn API: parameter checks, label encoding, sample and class
weights, the choice of solver and the fitted attributes.  The data path of ``fit``: validate X, y
and the weights once (float32 stays float32, C order, no copy when already so) -> encode labels
to indices -> scale the weights -> resolve ``n_threads`` -> a
:class:`~softmax_fast._design.DenseDesign` -> :class:`~softmax_fast._objective.SoftmaxObjective`
-> a solver of :mod:`softmax_fast._solvers` (BLAS held at one thread) -> one fused kernel call
per evaluation, float64 sums back.  Sparse X takes the same path with a
:class:`~softmax_fast._design.CSRDesign` (never densified).
"""

import contextlib
import math
import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from . import _solvers, kernels
from ._design import CSRDesign, DenseDesign, raise_bad_linear_row
from ._objective import SoftmaxObjective
from ._threads import effective_n_threads, one_blas_thread
from ._validation import SPARSE_FORMATS, as_csr_arrays, is_sparse, scaled_weights

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    _sk_validate_data = None

__all__ = ["SoftmaxRegression"]

_SOLVERS = ("auto", "lbfgs", "newton-cg", "newton", "saga", "gd", "sgd")
_DTYPES = [np.float64, np.float32]
_FAST_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))
# scipy.sparse X: these formats as they are (CSC and COO are converted once to CSR by the design),
# any other converted to CSR by scikit-learn's validation.
_SPARSE = list(SPARSE_FORMATS)
# partial_fit: the step is learning_rate / sqrt(1 + samples_seen / (this many batches of rows)).
_PARTIAL_FIT_DECAY_BATCHES = 10


def _check_class_labels(y):
    """scikit-learn's ``check_classification_targets`` for the 1-D y that ``validate_data``
    returns, without its cost where the dtype decides (it runs ``np.unique`` and more: about
    0.6 ms for 2,000 labels, a tenth of a small fit): integer, boolean and string labels are
    discrete; float labels must be whole numbers (else "continuous", scikit-learn's error);
    other dtypes (object) go through scikit-learn's check."""
    kind = y.dtype.kind
    if kind in "iubUS":
        return
    if kind == "f":
        if y.size and not np.array_equal(y, np.round(y)):
            raise ValueError(
                "Unknown label type: continuous. Maybe you are trying to fit a classifier, "
                "which expects discrete classes on a regression target with continuous values."
            )
        return
    check_classification_targets(y)


@contextlib.contextmanager
def _all_or_nothing(estimator):
    """Undo every attribute change of ``fit``/``partial_fit`` when they raise.

    A failed or interrupted fit (``KeyboardInterrupt`` from Ctrl-C, a ``ValueError`` raised after
    ``classes_`` or ``n_features_in_`` were already set) then leaves the estimator exactly as it was
    before the call: unfitted, or with its previous, mutually consistent attributes -- never a new
    ``classes_`` next to an old ``coef_``.  (The solvers return to Python
    between kernel calls, so Ctrl-C is seen there and arrives here as ``KeyboardInterrupt``.)
    """
    saved = dict(vars(estimator))
    try:
        yield
    except BaseException:
        vars(estimator).clear()
        vars(estimator).update(saved)
        raise


def _validate_data(estimator, X, y="no_validation", *, reset, **check_params):
    if _sk_validate_data is not None:
        return _sk_validate_data(estimator, X, y, reset=reset, **check_params)
    return estimator._validate_data(X, y, reset=reset, **check_params)  # pragma: no cover


def _validate_fit_data(estimator, X, y):
    """``validate_data(estimator, X, y, reset=True, ...)`` as ``fit`` calls it.

    The common case is checked here at the cost of one pass over X: a plain NumPy X that is
    already C-contiguous, aligned float64/float32 and 2-D with at least one row and one column,
    whose values sum to a finite number (so that none is NaN or infinite), and a 1-D integer y
    of the same length.  Such inputs are what scikit-learn's validation returns unchanged, and
    it is given the same effect on the estimator (``n_features_in_`` set, a previous fit's
    ``feature_names_in_`` removed).  Every other input, invalid ones included, goes through
    scikit-learn's validation and its error messages.  (On 2,000 x 20 it costs about 100 us
    against a fit of about 1.3 ms.)
    """
    if (
        type(X) is np.ndarray
        and type(y) is np.ndarray
        and X.ndim == 2
        and y.ndim == 1
        and X.dtype in _FAST_DTYPES
        and y.dtype.kind in "iu"
        and X.shape[0] == y.shape[0]
        and X.shape[0] >= 1
        and X.shape[1] >= 1
        and X.flags.c_contiguous
        and X.flags.aligned
        and math.isfinite(float(X.sum()))
    ):
        if hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
        estimator.n_features_in_ = X.shape[1]
        return X, y
    return _validate_data(
        estimator, X, y, reset=True, dtype=_DTYPES, order="C", accept_sparse=_SPARSE
    )


def _dense_integer_codes(y):
    """``(np.unique(y), indices of y in it)`` for integer y whose values span at most a few
    times its length (labels 0..K-1, or years, or codes), by counting: one pass instead of a
    sort, or None for other y."""
    if y.dtype.kind not in "iu" or y.size == 0:
        return None
    lo, hi = int(y.min()), int(y.max())
    if hi - lo > 4 * y.size + 1024:
        return None
    # y - min in y's own 64-bit type is exact (the result is small), narrower types widen first
    wide = y if y.dtype.itemsize == 8 else y.astype(np.int64)
    origin = wide.dtype.type(lo)
    shifted = (wide - origin).astype(np.intp, copy=False)
    present = np.flatnonzero(np.bincount(shifted, minlength=hi - lo + 1))
    codes = np.empty(hi - lo + 1, dtype=np.intp)
    codes[present] = np.arange(present.size)
    return (present.astype(wide.dtype) + origin).astype(y.dtype), codes[shifted]


def _progress_reporter(verbose, callback):
    """The solvers' progress callable: the verbose lines and/or the user's callback (or None)."""
    if not verbose and callback is None:
        return None
    if callback is None:
        return _solvers.print_progress

    def report(step):
        if verbose:
            _solvers.print_progress(step)
        callback(step)

    return report


class SoftmaxRegression(ClassifierMixin, BaseEstimator):
    r"""Multinomial logistic (softmax) regression trained on the fused compiled kernels.

    Minimizes the (sample-weighted) mean cross-entropy plus an L2 penalty on the coefficients,

    .. math::

        J(W, b) = \frac{\sum_i w_i \, \mathrm{CE}(\mathrm{softmax}(W x_i + b), y_i)}{\sum_i w_i}
                  + \frac{\alpha}{2} \lVert W \rVert_F^2,

    exactly the objective of :func:`softmax_fast.loss_and_grad` (the intercepts are not
    penalized).  scikit-learn's ``LogisticRegression(C=C)`` minimizes the same function for
    ``alpha = 1 / (C * sum(sample_weight))`` (``1 / (C * n_samples)`` without weights).

    Parameters
    ----------
    alpha : float, default=1e-4
        L2 penalty strength, >= 0.
    fit_intercept : bool, default=True
        Fit the intercepts ``b`` (not penalized).
    solver : {"auto", "lbfgs", "newton-cg", "newton", "saga", "gd", "sgd"}, default="auto"
        ``"auto"``: one of lbfgs, newton-cg, newton and saga, chosen from the shape, the
        sparsity and the scales of the columns by :func:`softmax_fast._solvers.choose_solver`
        (documented there with the measurements behind the rule); the choice is stored in
        ``solver_``.  It is reproducible: where it takes saga with ``random_state=None``, the
        rows' order is seeded with 0.
        ``"lbfgs"``: limited-memory BFGS (10 pairs, strong-Wolfe line search; softmax_fast's
        own, SciPy's L-BFGS-B stopping rule) on the fused loss and gradient.
        ``"newton-cg"``: truncated Newton, conjugate gradients preconditioned by the
        Hessian's diagonal, one fused Hessian-vector product per inner step.
        ``"newton"``: Newton's method on the exact Hessian (Cholesky; models of at most a
        few thousand parameters); the precise solver for unscaled, ill-conditioned data.
        ``"saga"``: the variance-reduced incremental gradient method SAGA (in-memory data),
        which converges to the optimum.  ``"gd"``: full-batch
        gradient descent with the fixed step ``learning_rate``: ``w <- w - learning_rate * grad J``
        (``grad J`` includes ``alpha * W``).  ``"sgd"``: shuffled mini-batches of ``batch_size``
        rows with the decaying step ``learning_rate / sqrt(1 + samples_seen / n_samples)``; the
        result is a weighted average of the iterates (weights growing like t**3), which removes
        most of the mini-batch noise.
    max_iter : int, default=200
        Maximum iterations (lbfgs, newton-cg, newton, gd) or epochs (saga, sgd).
    tol : float, default=1e-6
        lbfgs: stop when the largest gradient component is below ``tol`` (``gtol``; the
        relative-decrease tolerance ``ftol`` is 64 float64 epsilons, as in scikit-learn).
        newton-cg, newton, saga and gd: the same gradient test.  sgd: stop when the objective
        of the averaged coefficients has improved by less than ``tol`` for 5 epochs in a row.
    learning_rate : float, default=0.5
        The step of ``"gd"`` and the initial step of ``"sgd"`` and :meth:`partial_fit`, > 0.
    batch_size : int, default=256
        Rows per mini-batch (``"sgd"`` and :meth:`partial_fit`).
    reference_class : label or None, default=None
        None: the symmetric form with K free weight rows.  A class label: that class's logit is
        fixed at 0 (its row of ``coef_`` and its intercept are exactly 0), the K - 1 form.  With
        two classes and ``reference_class=classes_[0]``, ``coef_[1]`` is the binary logistic
        regression weight vector.
    class_weight : dict, "balanced" or None, default=None
        Weights per class, multiplied into ``sample_weight``.  "balanced":
        ``sum(w) / (n_classes * sum of w over the class)`` as in scikit-learn.  Not supported by
        :meth:`partial_fit` as "balanced".
    warm_start : bool, default=False
        Start :meth:`fit` from the previous ``coef_`` and ``intercept_`` (when the classes and
        the number of features are unchanged).
    n_threads : int or None, default=None
        Threads of the compiled kernels; None uses all available cores.
    random_state : int, numpy.random.Generator, RandomState or None, default=None
        Seeds the shuffling of ``"sgd"``, ``"saga"`` and :meth:`partial_fit` (None: fresh
        entropy, except under ``solver="auto"``, which seeds saga's shuffling with 0).
    verbose : int, default=0
        > 0 prints the objective and gradient max-norm every iteration (epoch for sgd).

    Attributes
    ----------
    classes_ : ndarray of shape (K,)
        The class labels.
    coef_ : ndarray of shape (K, n_features)
        Weights (float64).  In the symmetric form with ``alpha > 0`` each column sums to 0.
    intercept_ : ndarray of shape (K,)
        Intercepts.  Symmetric form: centred (they sum to 0; only differences are identified).
        Reference form: 0 for the reference class.
    n_features_in_ : int
        Number of features seen in fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features, when X was a DataFrame with string column names.
    n_iter_ : int
        Iterations (lbfgs, newton-cg, newton, gd) or epochs (saga, sgd, partial_fit calls) of
        the last fit.
    solver_ : str
        The solver the last fit ran (what ``"auto"`` chose).
    loss_curve_ : list of float
        Objective after each iteration, or mean mini-batch objective of each epoch.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from softmax_fast import SoftmaxRegression
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = SoftmaxRegression(alpha=1e-3).fit(X, y)
    >>> clf.predict(X[:2])
    array([0, 0])
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
        batch_size=256,
        reference_class=None,
        class_weight=None,
        warm_start=False,
        n_threads=None,
        random_state=None,
        verbose=0,
    ):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.reference_class = reference_class
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    # ----------------------------------------------------------------------------- validation
    def _check_params(self):
        def real(name, value, low, strict):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"{name}: must be a real number, got {type(value).__name__}")
            value = float(value)
            if not np.isfinite(value) or value < low or (strict and value == low):
                op = ">" if strict else ">="
                raise ValueError(f"{name}: must be finite and {op} {low}, got {value!r}")
            return float(value)

        def positive_int(name, value):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{name}: must be an int, got {type(value).__name__}")
            if value <= 0:
                raise ValueError(f"{name}: must be a positive int, got {value!r}")
            return int(value)

        def boolean(name, value):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name}: must be a bool, got {type(value).__name__}")

        real("alpha", self.alpha, 0.0, strict=False)
        real("tol", self.tol, 0.0, strict=False)
        real("learning_rate", self.learning_rate, 0.0, strict=True)
        positive_int("max_iter", self.max_iter)
        positive_int("batch_size", self.batch_size)
        if self.n_threads is not None:
            positive_int("n_threads", self.n_threads)
        boolean("fit_intercept", self.fit_intercept)
        boolean("warm_start", self.warm_start)
        if not isinstance(self.verbose, numbers.Integral):
            raise TypeError(f"verbose: must be an int, got {type(self.verbose).__name__}")
        if self.verbose < 0:
            raise ValueError(f"verbose: must be >= 0, got {self.verbose!r}")
        rs = self.random_state
        seeds = (
            np.random.RandomState,
            np.random.Generator,
            np.random.SeedSequence,
            np.random.BitGenerator,
        )
        if rs is not None and not isinstance(rs, seeds):
            if isinstance(rs, bool) or not isinstance(rs, numbers.Integral):
                raise TypeError(
                    f"random_state: must be None, an int, a numpy Generator or RandomState, "
                    f"got {type(rs).__name__}"
                )
            if rs < 0:
                raise ValueError(f"random_state: must be >= 0, got {rs!r}")
        if np.ndim(self.reference_class) != 0:
            raise TypeError(
                f"reference_class: must be None or one class label, got {self.reference_class!r}"
            )
        if not isinstance(self.solver, str) or self.solver not in _SOLVERS:
            raise ValueError(f"solver: must be one of {_SOLVERS}, got {self.solver!r}")
        cw = self.class_weight
        if not (cw is None or isinstance(cw, dict) or (isinstance(cw, str) and cw == "balanced")):
            raise ValueError(f"class_weight: must be None, 'balanced' or a dict, got {cw!r}")
        if isinstance(cw, dict):
            for label, weight in cw.items():
                if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
                    raise TypeError(
                        f"class_weight: the weight of class {label!r} must be a real number, "
                        f"got {type(weight).__name__}"
                    )
                if not (np.isfinite(float(weight)) and float(weight) >= 0):
                    raise ValueError(
                        f"class_weight: the weight of class {label!r} must be finite and >= 0, "
                        f"got {weight!r}"
                    )

    def _encode_classes(self, classes, name="y"):
        classes = np.unique(np.asarray(classes))
        if classes.size < 2:
            what = "samples of at least 2 classes" if name == "y" else "at least 2 class labels"
            raise ValueError(
                f"{name}: needs {what} to train a classifier; "
                f"got {classes.size} class: {classes.tolist()}"
            )
        return classes

    def _reference_index(self):
        if self.reference_class is None:
            return None
        for i, c in enumerate(self.classes_):
            if c == self.reference_class:
                return i
        raise ValueError(
            f"reference_class: {self.reference_class!r} is not among the classes "
            f"{self.classes_.tolist()}"
        )

    def _encode_labels(self, y):
        """Labels -> intp indices into ``classes_``; unknown labels raise (naming y)."""
        idx = np.searchsorted(self.classes_, y)
        idx = np.minimum(idx, self.classes_.size - 1)
        bad = self.classes_[idx] != y
        if np.any(bad):
            unknown = np.unique(np.asarray(y)[bad])
            raise ValueError(
                f"y: contains labels {unknown.tolist()} that are not in classes "
                f"{self.classes_.tolist()}"
            )
        return idx.astype(np.intp, copy=False)

    def _weights(self, X, y_idx, sample_weight, allow_balanced=True):
        """sample_weight times the class weights (float64, or None when all ones)."""
        sw = None
        if sample_weight is not None:
            sw = _check_sample_weight(sample_weight, X, dtype=np.float64)
            if np.any(sw < 0):
                raise ValueError("sample_weight: must be non-negative")
            if not np.any(sw > 0):
                raise ValueError("sample_weight: the weights sum to 0; at least one must be > 0")
        cw = self.class_weight
        if cw is None:
            return sw
        K = self.classes_.size
        if isinstance(cw, str):
            if not allow_balanced:
                raise ValueError(
                    "class_weight: 'balanced' is not supported by partial_fit (the class "
                    "frequencies of the stream are unknown); pass a dict"
                )
            counts = np.bincount(y_idx, weights=sw, minlength=K)
            # a class whose samples all have weight 0 keeps weight 0 (not 0 * inf = NaN)
            per_class = np.zeros(K)
            present = counts > 0
            per_class[present] = counts.sum() / (K * counts[present])
        else:
            per_class = np.ones(K)
            for label, weight in cw.items():
                matches = [i for i, c in enumerate(self.classes_) if c == label]
                if not matches:
                    raise ValueError(
                        f"class_weight: label {label!r} is not among the classes "
                        f"{self.classes_.tolist()}"
                    )
                per_class[matches[0]] = weight
        weights = per_class[y_idx]
        weights = weights if sw is None else sw * weights
        if not np.any(weights > 0):
            raise ValueError(
                "class_weight: every sample has weight 0 (class weights times sample_weight)"
            )
        return weights

    @staticmethod
    def _normalized(sw):
        """``sw`` times the power of two that brings its largest weight into [0.5, 1).

        The objective is a weighted mean, unchanged by the scaling (which is exact), but the
        solvers' sum of the weights can then neither overflow (weights near 1e308) nor vanish.
        """
        if sw is None or not np.any(sw > 0):
            return sw
        return scaled_weights(sw)[0]

    def _objective(self, X, y_idx, sw, reference):
        """The fit's objective on validated X, labels and scaled weights (n_threads resolved
        here, once)."""
        return SoftmaxObjective(
            self._design(X),
            y_idx,
            sw,
            self.classes_.size,
            float(self.alpha),
            bool(self.fit_intercept),
            reference,
        )

    def _rng(self):
        rs = self.random_state
        if isinstance(rs, np.random.RandomState):
            return np.random.default_rng(rs.randint(np.iinfo(np.int32).max))
        return np.random.default_rng(rs)

    def _store(self, objective, theta):
        coef, intercept = objective.unpack(theta)
        if objective.reference is None and self.fit_intercept:
            # only differences of the unpenalized intercepts are identified: centre them
            intercept -= intercept.mean()
        self.coef_, self.intercept_ = coef, intercept

    def _warn_not_converged(self, what):
        warnings.warn(
            f"SoftmaxRegression ({self.solver_}) stopped after max_iter={self.max_iter} {what} "
            f"before reaching tol={self.tol}. Increase max_iter, standardize the features "
            "(e.g. StandardScaler)"
            + (" or tune learning_rate." if self.solver_ in ("gd", "sgd") else "."),
            ConvergenceWarning,
            stacklevel=3,
        )

    @classmethod
    def _from_model_arrays(cls, *, coef, intercept, classes, params):
        """A fitted estimator from stored arrays (a model file's), checked like a fit's.

        ``params`` (a dict) may hold keys this version does not know; they are ignored.
        Raises ``TypeError``/``ValueError`` when the parameters or arrays are inconsistent.
        """
        model = cls()
        valid = model.get_params()
        model.set_params(**{k: v for k, v in params.items() if k in valid})
        model._check_params()
        coef = np.asarray(coef, dtype=np.float64)
        intercept = np.asarray(intercept, dtype=np.float64)
        classes = np.asarray(classes)
        if (
            coef.ndim != 2
            or intercept.shape != (coef.shape[0],)
            or classes.shape != intercept.shape
        ):
            raise ValueError(
                f"coef, intercept and classes: inconsistent shapes {coef.shape}, "
                f"{intercept.shape}, {classes.shape}"
            )
        model.coef_, model.intercept_, model.classes_ = coef, intercept, classes
        model.n_features_in_ = coef.shape[1]
        return model

    # ----------------------------------------------------------------------------- training
    def fit(self, X, y, sample_weight=None, *, callback=None):
        """Fit the model to (X, y).

        Parameters
        ----------
        X : {array_like, scipy.sparse matrix or array} of shape (n_samples, n_features)
            Training data.  float32 stays float32; C-contiguous float32/float64 data is not copied.
            Sparse X is never densified: CSR (and CSC or COO, converted once to CSR) goes to the
            CSR kernels as it is, other sparse formats are converted to CSR.
        y : array_like of shape (n_samples,)
            Class labels (ints, strings, ...), at least two distinct.
        sample_weight : array_like of shape (n_samples,), optional
            Non-negative row weights (multiplied by ``class_weight``).
        callback : callable, optional
            Called after every iteration (sgd: epoch) with a ``SolverStep`` named tuple
            ``(iteration, max_iter, objective, grad_max, unit)``; for progress bars and logging.

        Returns
        -------
        self : SoftmaxRegression

        Notes
        -----
        If the fit raises (including ``KeyboardInterrupt``), the estimator keeps the attributes it
        had before the call.
        """
        with _all_or_nothing(self):
            converged = self._fit(X, y, sample_weight, callback)
        if not converged:
            self._warn_not_converged("epochs" if self.solver_ in ("sgd", "saga") else "iterations")
        return self

    def _fit(self, X, y, sample_weight, callback=None):
        self._check_params()
        X, y = _validate_fit_data(self, X, y)
        _check_class_labels(y)
        old = None
        if self.warm_start and hasattr(self, "coef_"):
            old = (self.classes_, self.coef_, self.intercept_)
        codes = _dense_integer_codes(y)
        if codes is None:
            self.classes_: np.ndarray = self._encode_classes(y)
            y_idx = self._encode_labels(y)
        else:
            self.classes_ = self._encode_classes(codes[0])
            y_idx = codes[1]
        reference = self._reference_index()
        sw = self._normalized(self._weights(X, y_idx, sample_weight))
        objective = self._objective(X, y_idx, sw, reference)

        theta0 = np.zeros(objective.n_params)
        if (
            old is not None
            and old[0].shape == self.classes_.shape
            and np.array_equal(old[0], self.classes_)
            and old[1].shape == (self.classes_.size, X.shape[1])
        ):
            coef, intercept = old[1], old[2]
            if reference is not None:  # re-express relative to the reference class
                coef = coef - coef[reference]
                intercept = intercept - intercept[reference]
            theta0 = objective.pack(coef, intercept)

        progress = _progress_reporter(int(self.verbose), callback)
        # The solver's own BLAS calls are vector operations on theta: one BLAS thread for the
        # whole fit, so that idle BLAS threads never spin against the kernels' OpenMP threads
        # (measured also at 2.6 million parameters: benchmarks/RESULTS.md, "Sparse input").
        with one_blas_thread():
            result = self._run_solver(objective, theta0, progress)
        self._store(objective, result.theta)
        self.n_iter_ = result.n_iter
        self.loss_curve_ = list(result.loss_curve)
        self._samples_seen = result.samples_seen
        self._partial_rng = None
        return result.converged

    def _resolved_solver(self, objective):
        """The solver a fit on ``objective`` runs: ``solver``, or ``"auto"``'s choice."""
        if self.solver != "auto":
            return self.solver
        return _solvers.choose_solver(objective)

    def _run_solver(self, objective, theta0, progress):
        solver = self.solver_ = self._resolved_solver(objective)
        if solver == "lbfgs":
            # scikit-learn's setting: ftol of 64 float64 epsilons (also for float32 X: the kernels
            # accumulate the loss and the gradient in float64, so it is that precise)
            ftol = 64 * float(np.finfo(np.float64).eps)
            return _solvers.lbfgs(
                objective,
                theta0,
                max_iter=self.max_iter,
                tol=self.tol,
                ftol=ftol,
                progress=progress,
                n_threads=objective.design.n_threads,
            )
        if solver in ("newton-cg", "newton"):
            method = _solvers.newton_cg if solver == "newton-cg" else _solvers.newton
            return method(
                objective, theta0, max_iter=self.max_iter, tol=self.tol, progress=progress
            )
        if solver == "saga":
            auto_default = self.solver == "auto" and self.random_state is None
            return _solvers.saga(
                objective,
                theta0,
                max_iter=self.max_iter,
                tol=self.tol,
                rng=np.random.default_rng(0) if auto_default else self._rng(),
                progress=progress,
            )
        if solver == "gd":
            return _solvers.gradient_descent(
                objective,
                theta0,
                learning_rate=float(self.learning_rate),
                max_iter=self.max_iter,
                tol=self.tol,
                progress=progress,
            )
        return _solvers.sgd(
            objective,
            theta0,
            learning_rate=float(self.learning_rate),
            batch_size=self.batch_size,
            max_iter=self.max_iter,
            tol=self.tol,
            rng=self._rng(),
            progress=progress,
        )

    def inference(self, X, y, sample_weight=None, *, cov_type="nonrobust", groups=None):
        """Maximum-likelihood inference for the fitted reference-class model on (X, y).

        Parameters
        ----------
        X, y, sample_weight
            The data the model was fitted on (the same preprocessing); ``sample_weight`` as
            frequency weights (an integer weight counts as that many copies of the row;
            other weights scale each row's contribution to the likelihood the same way).
        cov_type : {"nonrobust", "HC0", "HC1", "cluster"}, default="nonrobust"
            The inverse observed information, or the sandwich (statsmodels' small-sample
            factors: HC1 ``n / (n - k)``, cluster ``G / (G - 1) (n - 1) / (n - k)``).
        groups : array_like of shape (n_samples,), optional
            The cluster of each row (``cov_type="cluster"`` only).

        Returns
        -------
        softmax_fast._inference.InferenceResults
            ``params``, ``bse``, ``zvalues``, ``pvalues`` of shape (n_features [+ 1],
            K - 1) (rows: the features, then ``const``; columns: the non-reference classes),
            ``conf_int``, ``cov_params``, ``llf``, ``llnull``, ``aic``, ``bic``, ...,
            ``summary()``, ``summary_frame()``.

        Raises
        ------
        ValueError
            Without ``reference_class``, with ``alpha > 0``, for a singular information
            matrix (naming the collinear columns), and where the maximum-likelihood estimate
            does not exist (separation).
        """
        from ._inference import compute_inference

        return compute_inference(self, X, y, sample_weight, cov_type=cov_type, groups=groups)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch of multinomial mini-batch SGD over (X, y), continuing the previous state.

        The step is ``learning_rate / sqrt(1 + samples_seen / (10 * batch_size))`` over all the
        rows seen so far; the coefficients are the last iterate.

        Parameters
        ----------
        X : {array_like, scipy.sparse matrix or array} of shape (n_samples, n_features)
        y : array_like of shape (n_samples,)
            Labels; each must be in ``classes`` (this batch may lack some classes).
        classes : array_like of shape (K,), optional
            All the class labels; required on the first call.
        sample_weight : array_like of shape (n_samples,), optional

        Returns
        -------
        self : SoftmaxRegression

        Notes
        -----
        If the call raises (including ``KeyboardInterrupt``), the estimator keeps the attributes
        it had before the call.
        """
        with _all_or_nothing(self):
            self._partial_fit(X, y, classes, sample_weight)
        return self

    def _partial_fit(self, X, y, classes, sample_weight):
        first = not hasattr(self, "classes_")
        self._check_params()
        if first and classes is None:
            raise ValueError(
                "classes: must be passed on the first call to partial_fit (all the class labels)"
            )
        X, y = _validate_data(
            self, X, y, reset=first, dtype=_DTYPES, order="C", accept_sparse=_SPARSE
        )
        _check_class_labels(y)
        if first:
            self.classes_ = self._encode_classes(classes, name="classes")
        elif classes is not None:
            given = np.unique(np.asarray(classes))
            if given.shape != self.classes_.shape or not np.array_equal(given, self.classes_):
                raise ValueError(
                    f"classes: {given.tolist()} differ from the classes of the previous calls "
                    f"{self.classes_.tolist()}"
                )
        reference = self._reference_index()
        y_idx = self._encode_labels(y)
        sw = self._normalized(self._weights(X, y_idx, sample_weight, allow_balanced=False))
        objective = self._objective(X, y_idx, sw, reference)

        if first:
            theta = np.zeros(objective.n_params)
            self._samples_seen = 0
            self.n_iter_ = 0
            self.loss_curve_ = []
        else:
            coef, intercept = self.coef_, self.intercept_
            if reference is not None:
                coef = coef - coef[reference]
                intercept = intercept - intercept[reference]
            theta = objective.pack(coef, intercept)
        rng = getattr(self, "_partial_rng", None)
        if rng is None:
            rng = self._partial_rng = self._rng()

        with one_blas_thread():
            mean_loss, self._samples_seen = _solvers.sgd_epoch(
                objective,
                theta,
                learning_rate=float(self.learning_rate),
                batch_size=self.batch_size,
                rng=rng,
                samples_seen=getattr(self, "_samples_seen", 0),
                decay_samples=float(_PARTIAL_FIT_DECAY_BATCHES * self.batch_size),
            )
        self._store(objective, theta)
        self.n_iter_ = getattr(self, "n_iter_", 0) + 1
        self.loss_curve_ = list(getattr(self, "loss_curve_", [])) + [mean_loss]
        if self.verbose:
            print(f"partial_fit {self.n_iter_}: mean objective = {mean_loss:.10g}")

    # ----------------------------------------------------------------------------- prediction
    def _check_X(self, X):
        check_is_fitted(self)
        return _validate_data(self, X, reset=False, dtype=_DTYPES, order="C", accept_sparse=_SPARSE)

    def _design(self, X):
        """The kernels' design of X (validated by scikit-learn; sparse X's structure is checked
        here, once), ``n_threads`` resolved here."""
        n_threads = effective_n_threads(self.n_threads)
        if is_sparse(X):
            return CSRDesign(as_csr_arrays(X, "X"), n_threads)
        return DenseDesign(X, n_threads)

    def _coefficients(self, dtype):
        """``(coef_, intercept_)`` in the data's dtype (no copy for float64)."""
        return self.coef_.astype(dtype, copy=False), self.intercept_.astype(dtype, copy=False)

    def _logits(self, X):
        """``X @ coef_.T + intercept_`` in X's dtype; a ValueError naming X and the first row
        whose logits overflow (as the predict kernels report it), never inf or NaN logits."""
        W = self.coef_.astype(X.dtype, copy=False)
        with np.errstate(over="ignore", invalid="ignore"):  # reported just below
            Z = np.asarray(X @ W.T) + self.intercept_.astype(X.dtype, copy=False)
        finite_rows = np.isfinite(Z).all(axis=1)
        if not finite_rows.all():
            row = int(np.argmin(finite_rows))
            rows_of = as_csr_arrays(X, "X") if is_sparse(X) else X
            raise_bad_linear_row(rows_of, self.coef_, self.intercept_, row)
        return Z

    def decision_function(self, X):
        """Logits ``X @ coef_.T + intercept_``.

        Parameters
        ----------
        X : {array_like, scipy.sparse matrix or array} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, K), or (n_samples,) when K = 2
            For two classes (scikit-learn's convention) the logit of ``classes_[1]`` minus that of
            ``classes_[0]``: positive means ``classes_[1]``.

        Raises
        ------
        ValueError
            When a row's logits overflow the dtype (naming the row).
        """
        Z = self._logits(self._check_X(X))
        return Z[:, 1] - Z[:, 0] if Z.shape[1] == 2 else Z

    def predict_proba(self, X):
        """Class probabilities ``softmax(X @ coef_.T + intercept_)``.

        Returns
        -------
        ndarray of shape (n_samples, K), X's dtype; columns follow ``classes_``.
        """
        X = self._check_X(X)
        return self._design(X).predict_proba(*self._coefficients(X.dtype))

    def predict_log_proba(self, X):
        """Log-probabilities from the log-softmax kernel (never ``log(predict_proba)``).

        Returns
        -------
        ndarray of shape (n_samples, K), X's dtype.
        """
        Z = self._logits(self._check_X(X))
        return kernels.log_softmax(Z, n_threads=self.n_threads)

    def predict(self, X):
        """Most probable class of each row.

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        X = self._check_X(X)
        idx = self._design(X).predict(*self._coefficients(X.dtype))
        return self.classes_[idx]

    # ----------------------------------------------------------------------------- tags
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = False
        tags.classifier_tags.multi_class = True
        tags.classifier_tags.multi_label = False
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"allow_nan": False, "multilabel": False, "requires_y": True}

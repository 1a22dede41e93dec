r"""Maximum-likelihood inference for the reference-class model: :meth:`SoftmaxRegression.inference`.

The model fixes the reference class's logit at 0 (the exponential-family K - 1 form, which is
identified); its parameters are the free classes' weights and intercepts.  With row weights w_i
(frequency weights: an integer weight means that many copies of the row) the log-likelihood is
``llf = -sum_i w_i CE_i``, and

* the observed information is ``I = (sum_i w_i) H_J``, H_J the Hessian of the objective's data
  term (:meth:`softmax_fast._objective.SoftmaxObjective.hessian`'s fused kernel, float64), so
  the ``"nonrobust"`` covariance is ``I^-1``;
* the sandwich covariances (``"HC0"``, ``"HC1"``, ``"cluster"``) are ``I^-1 S I^-1`` with
  ``S = sum_i w_i s_i s_i^T`` (``s_i = (y_iF - p_iF) (x) [x_i, 1]``, the score of one copy of
  row i; for ``"cluster"``, ``S = sum_g (sum_{i in g} w_i s_i)(...)^T``), built from the scores
  of blocks of rows (bounded memory) and scaled by statsmodels' small-sample factors:
  ``HC1``: ``n / (n - k)``; ``cluster``: ``G / (G - 1) (n - 1) / (n - k)`` (n = sum of the
  weights, k = parameters, G = groups).

Arrays are shaped as statsmodels' ``MNLogit`` results: rows the features in X's column order,
then the intercept (``const``) last; columns the non-reference classes in ``classes_`` order.
``cov_params()`` is the full square matrix, class-major: every parameter of the first
non-reference class (its features, then its ``const``), then the next.
"""

from __future__ import annotations

import numpy as np

__all__ = ["InferenceResults", "MarginalEffects", "compute_inference"]

# Rows of X whose scores (or marginal effects) are formed at once: at most 4,096, and at most
# 2**22 values of X's block in float64 (32 MiB; a sparse X's rows are densified a block at a
# time, never X whole).
_SCORE_BLOCK_ROWS = 4096
_BLOCK_VALUES = 1 << 22


def _block_rows(n_features):
    return max(16, min(_SCORE_BLOCK_ROWS, _BLOCK_VALUES // max(1, n_features)))


# The stored coefficients are used as they are when the Newton step from them moves no
# parameter by more than this fraction of its standard error; else they are refined first.
_STEP_OVER_BSE = 1e-6
_COV_TYPES = ("nonrobust", "HC0", "HC1", "cluster")
# Newton iterations a refinement may take (a handful where the MLE exists: quadratic).
_REFINE_ITERATIONS = 50


class InferenceResults:
    """Standard errors, tests and fit statistics of a fitted reference-class model.

    Attributes
    ----------
    params, bse, zvalues, pvalues : ndarray of shape (n_rows, K - 1)
        Rows: the features, then ``const`` (with intercepts); columns: the non-reference
        classes (``class_names``).  ``tvalues`` is ``zvalues``.
    row_names : list of str
        The features' names (``feature_names_in_``, else ``x0, x1, ...``) and ``const``.
    class_names : list
        The non-reference classes.
    cov_type : str
    llf, llnull, llr, llr_pvalue, prsquared, aic, bic : float
        Log-likelihood, that of the intercept-only model (fitted: the weighted class
        frequencies), the likelihood-ratio statistic ``2 (llf - llnull)`` and its chi-squared
        p-value on ``df_model`` degrees of freedom, McFadden's pseudo R-squared
        ``1 - llf / llnull``, ``-2 llf + 2 k`` and ``-2 llf + k log(nobs)``.
    df_model, df_resid, nobs : float
        ``(K - 1) n`` (the intercepts not counted), ``nobs - k``, and the sum of the weights.
    refined : bool
        True when the stored coefficients were not converged enough for the standard errors
        and a Newton refinement from them gave ``params``.
    """

    params: np.ndarray
    bse: np.ndarray
    zvalues: np.ndarray
    pvalues: np.ndarray
    _cov: np.ndarray
    cov_type: str
    llf: float
    llnull: float
    llr: float
    llr_pvalue: float
    prsquared: float
    aic: float
    bic: float
    df_model: float
    df_resid: float
    nobs: float
    row_names: list
    class_names: list
    reference_name: object
    refined: bool
    _margins: tuple

    def __init__(self, **fields):
        unknown = set(fields) - set(type(self).__annotations__)
        if unknown:
            raise TypeError(f"InferenceResults: unknown fields {sorted(unknown)}")
        self.__dict__.update(fields)

    @property
    def tvalues(self) -> np.ndarray:
        """Alias of ``zvalues`` (statsmodels' name)."""
        return self.zvalues

    def cov_params(self) -> np.ndarray:
        """The (K - 1) d x (K - 1) d covariance, class-major (d = features + const)."""
        return self._cov.copy()

    def conf_int(self, alpha: float = 0.05) -> np.ndarray:
        """``(1 - alpha)`` confidence intervals: shape (n_rows, K - 1, 2), [lower, upper]."""
        from scipy.stats import norm

        if not 0.0 < float(alpha) < 1.0:
            raise ValueError(f"alpha: must be in (0, 1), got {alpha!r}")
        q = norm.ppf(1.0 - float(alpha) / 2.0)
        return np.stack([self.params - q * self.bse, self.params + q * self.bse], axis=-1)

    def get_margeff(self, at: str = "overall", method: str = "dydx") -> MarginalEffects:
        """Marginal effects of each feature on each class's probability, ``dp_k / dx_j``, with
        delta-method standard errors, as statsmodels' ``get_margeff`` and Stata's ``margins,
        dydx(*)`` define them.

        Parameters
        ----------
        at : {"overall", "mean"}
            ``"overall"``: the (weighted) mean over the rows of the effect at each row (the
            average marginal effect); ``"mean"``: the effect at the (weighted) mean row.
        method : {"dydx"}

        Returns
        -------
        MarginalEffects
            ``margeff``, ``margeff_se``, ``zvalues``, ``pvalues`` of shape (n_features, K)
            (columns: every class, the reference class included), ``conf_int(alpha)``.
        """
        if method != "dydx":
            raise ValueError(f"method: only 'dydx' is supported, got {method!r}")
        if at not in ("overall", "mean"):
            raise ValueError(f"at: must be 'overall' or 'mean', got {at!r}")
        design, w, B, class_rows, fit_intercept = self._margins
        effect, jacobian = _marginal_effects(design, w, B, class_rows, fit_intercept, at)
        cov = jacobian @ self._cov @ jacobian.T
        se = np.sqrt(np.maximum(np.diag(cov), 0.0)).reshape(effect.shape)
        return MarginalEffects(effect, se, at)

    def summary_frame(self, alpha: float = 0.05):
        """The coefficients table as a pandas DataFrame (rows: (class, name))."""
        import pandas as pd

        ci = self.conf_int(alpha)
        rows = []
        for a, cls in enumerate(self.class_names):
            for j, name in enumerate(self.row_names):
                rows.append(
                    (
                        cls,
                        name,
                        self.params[j, a],
                        self.bse[j, a],
                        self.zvalues[j, a],
                        self.pvalues[j, a],
                        ci[j, a, 0],
                        ci[j, a, 1],
                    )
                )
        lo, hi = f"[{alpha / 2:g}", f"{1 - alpha / 2:g}]"
        frame = pd.DataFrame(
            rows, columns=["class", "name", "coef", "std err", "z", "P>|z|", lo, hi]
        )
        return frame.set_index(["class", "name"])

    def summary(self, alpha: float = 0.05) -> str:
        """A plain-text table: a header block, then one block per non-reference class (coef,
        std err, z, P>|z| and the confidence interval)."""
        ci = self.conf_int(alpha)
        width = max([len(n) for n in self.row_names] + [8])
        header = [
            "Multinomial logit (softmax_fast), reference class: " + str(self.reference_name),
            f"No. observations: {self.nobs:g}    Df model: {self.df_model:g}    "
            f"Df residuals: {self.df_resid:g}",
            f"Log-likelihood: {self.llf:.6g}    LL-null: {self.llnull:.6g}    "
            f"LLR p-value: {self.llr_pvalue:.4g}",
            f"Pseudo R-squ.: {self.prsquared:.4f}    AIC: {self.aic:.6g}    BIC: {self.bic:.6g}",
            f"Covariance type: {self.cov_type}",
        ]
        lo, hi = f"[{alpha / 2:g}", f"{1 - alpha / 2:g}]"
        lines = list(header)
        rule = "=" * (width + 66)
        for a, cls in enumerate(self.class_names):
            lines.append(rule)
            lines.append(
                f"{'y=' + str(cls):<{width}} {'coef':>11} {'std err':>11} {'z':>9} "
                f"{'P>|z|':>8} {lo:>11} {hi:>11}"
            )
            lines.append("-" * (width + 66))
            for j, name in enumerate(self.row_names):
                lines.append(
                    f"{name:<{width}} {self.params[j, a]:>11.4f} {self.bse[j, a]:>11.4f} "
                    f"{self.zvalues[j, a]:>9.3f} {self.pvalues[j, a]:>8.3f} "
                    f"{ci[j, a, 0]:>11.4f} {ci[j, a, 1]:>11.4f}"
                )
        lines.append(rule)
        return "\n".join(lines)


class MarginalEffects:
    """Marginal effects ``dp_k / dx_j`` (n_features, K) with delta-method standard errors.

    Attributes
    ----------
    margeff, margeff_se, zvalues, pvalues : ndarray of shape (n_features, K)
    at : str
    """

    def __init__(self, margeff: np.ndarray, margeff_se: np.ndarray, at: str):
        from scipy.stats import norm

        self.margeff, self.margeff_se, self.at = margeff, margeff_se, at
        with np.errstate(divide="ignore", invalid="ignore"):
            self.zvalues = margeff / margeff_se
        self.pvalues = 2.0 * norm.sf(np.abs(self.zvalues))

    def conf_int(self, alpha: float = 0.05) -> np.ndarray:
        """Shape (n_features, K, 2): [lower, upper]."""
        from scipy.stats import norm

        q = norm.ppf(1.0 - float(alpha) / 2.0)
        return np.stack(
            [self.margeff - q * self.margeff_se, self.margeff + q * self.margeff_se], axis=-1
        )


def _rows_float64(X, r0, r1):
    """Rows r0..r1 of a dense array or CSRArrays, as a dense float64 array."""
    if hasattr(X, "indptr"):
        from scipy.sparse import csr_matrix

        lo, hi = int(X.indptr[r0]), int(X.indptr[r1])
        return csr_matrix(
            (X.data[lo:hi].astype(np.float64), X.indices[lo:hi], X.indptr[r0 : r1 + 1] - lo),
            shape=(r1 - r0, X.shape[1]),
        ).toarray()
    return np.asarray(X[r0:r1], dtype=np.float64)


def _effect_block(P, bbar, Bn, weight):
    """``sum_i w_i p_ik (B_kj - bbar_ij)`` as (n, K)."""
    wP = weight[:, None] * P
    return Bn.T * wP.sum(axis=0)[None, :] - bbar.T @ wP


def _softmax_rows(Z):
    Z = Z - Z.max(axis=1, keepdims=True)
    np.exp(Z, out=Z)
    Z /= Z.sum(axis=1, keepdims=True)
    return Z


def _marginal_effects(design, w, B, class_rows, fit_intercept, at):
    """``(ME (n, K), J (n K, F d))``: the effects and their Jacobian in the parameters
    (class-major, as ``cov_params``).  With p_i = softmax(B xa_i), D_ikj = B_kj - sum_l p_il
    B_lj and A_ika = p_ik (delta_ka - p_ia):
    ``ME_jk = mean_i p_ik D_ikj`` and
    ``dME_jk / dB_at = mean_i [A_ika xa_it D_ikj - p_ik p_ia xa_it D_iaj + A_ika delta_jt]``
    (the weighted mean over the rows, or the one mean row for ``at="mean"``)."""
    K, d = B.shape
    n = design.n_features
    F = class_rows.size
    total = float(np.sum(w))

    rows = _block_rows(n)

    def blocks():
        if at == "mean":
            mean = np.zeros(n)
            for r0 in range(0, design.n_samples, rows):
                r1 = min(design.n_samples, r0 + rows)
                mean += w[r0:r1] @ _rows_float64(design.X, r0, r1)
            yield (mean / total)[None, :], np.ones(1)
            return
        for r0 in range(0, design.n_samples, rows):
            r1 = min(design.n_samples, r0 + rows)
            yield _rows_float64(design.X, r0, r1), w[r0:r1] / total

    # With D_ikj = B_kj - bbar_ij (bbar_i = p_i^T B): sum_i c_i(k, a) xa_it D_ikj splits into
    # B_kj sum_i c_i xa_it - sum_i c_i xa_it bbar_ij, so each block of rows needs two products
    # only, [c^T xa, c^T (xa (x) bbar)], for the two weightings c = w A and c = w p_k p_a.
    effect = np.zeros((n, K))
    sums = np.zeros((2 * K * F, d + d * n))
    T3 = np.zeros((K, F))
    for X, weight in blocks():
        Xa = np.hstack([X, np.ones((X.shape[0], 1))]) if fit_intercept else X
        P = _softmax_rows(Xa @ B.T)
        bbar = P @ B[:, :n]  # (rows, n)
        effect += _effect_block(P, bbar, B[:, :n], weight)
        PF = P[:, class_rows]
        A = -P[:, :, None] * PF[:, None, :]
        A[:, class_rows, np.arange(F)] += PF
        Q = P[:, :, None] * PF[:, None, :]
        C = np.concatenate([A.reshape(-1, K * F), Q.reshape(-1, K * F)], axis=1)
        C *= weight[:, None]
        E = (Xa[:, :, None] * bbar[:, None, :]).reshape(-1, d * n)
        sums += C.T @ np.hstack([Xa, E])
        T3 += C[:, : K * F].sum(axis=0).reshape(K, F)
    G1 = sums[: K * F, :d].reshape(K, F, d)
    H1 = sums[: K * F, d:].reshape(K, F, d, n)
    G2 = sums[K * F :, :d].reshape(K, F, d)
    H2 = sums[K * F :, d:].reshape(K, F, d, n)
    Bn = B[:, :n]
    T1 = Bn[:, None, None, :] * G1[:, :, :, None] - H1  # B_kj
    T2 = Bn[class_rows][None, :, None, :] * G2[:, :, :, None] - H2  # B_aj
    J = (T1 - T2).transpose(3, 0, 1, 2).copy()
    for j in range(n):
        J[j, :, :, j] += T3
    return effect, J.reshape(n * K, F * d)


def _scores_blocks(design, W, b, y_idx, class_rows, fit_intercept):
    """Per block of rows: (r0, r1, scores (rows, F d) float64), ``s_i = (y_iF - p_iF) (x)
    [x_i, 1]`` class-major, probabilities in float64."""
    m = design.n_samples
    F = class_rows.size
    rows = _block_rows(design.n_features)
    for r0 in range(0, m, rows):
        r1 = min(m, r0 + rows)
        block = _rows_float64(design.X, r0, r1)
        Z = block @ W.T
        if b is not None:
            Z += b
        Z = _softmax_rows(Z)
        residual = -Z[:, class_rows]
        rows = np.arange(r1 - r0)
        hit = np.searchsorted(class_rows, y_idx[r0:r1])
        is_free = (hit < F) & (class_rows[np.minimum(hit, F - 1)] == y_idx[r0:r1])
        residual[rows[is_free], hit[is_free]] += 1.0
        if fit_intercept:
            block = np.hstack([block, np.ones((r1 - r0, 1))])
        scores = (residual[:, :, None] * block[:, None, :]).reshape(r1 - r0, -1)
        yield r0, r1, scores


def _collinear_columns(information, F, d, names):
    """The columns (names) in the null space of a singular information matrix."""
    values, vectors = np.linalg.eigh(information)
    null = vectors[:, values <= values[-1] * information.shape[0] * 1e-12]
    weight = np.sqrt((null.reshape(F, d, -1) ** 2).sum(axis=(0, 2)))
    return [names[j] for j in np.flatnonzero(weight > 0.1 * weight.max())]


def compute_inference(estimator, X, y, sample_weight=None, *, cov_type="nonrobust", groups=None):
    """:meth:`SoftmaxRegression.inference` (see there)."""
    from scipy.linalg import LinAlgError, cho_factor, cho_solve
    from scipy.stats import chi2, norm

    from . import _solvers

    if cov_type not in _COV_TYPES:
        raise ValueError(f"cov_type: must be one of {_COV_TYPES}, got {cov_type!r}")
    if estimator.reference_class is None:
        raise ValueError(
            "reference_class: inference needs the identified K - 1 form; fit with "
            "reference_class set to one of the classes"
        )
    if float(estimator.alpha) != 0.0:
        raise ValueError(
            f"alpha: inference gives maximum-likelihood standard errors, which a penalized fit "
            f"(alpha={estimator.alpha!r}) does not have; fit with alpha=0"
        )
    X = estimator._check_X(X)
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y: must be 1-D with {X.shape[0]} labels, got shape {y.shape}")
    y_idx = estimator._encode_labels(y)
    raw = estimator._weights(X, y_idx, sample_weight)
    m = X.shape[0]
    w = np.ones(m) if raw is None else raw
    nobs = float(np.sum(w))
    if cov_type == "cluster":
        if groups is None:
            raise ValueError("groups: cov_type='cluster' needs the group of every row")
        groups = np.asarray(groups)
        if groups.shape != (m,):
            raise ValueError(f"groups: must have shape ({m},), got {groups.shape}")
    elif groups is not None:
        raise ValueError(f"groups: only for cov_type='cluster', not {cov_type!r}")

    reference = estimator._reference_index()
    objective = estimator._objective(X, y_idx, estimator._normalized(raw), reference)
    theta = objective.pack(estimator.coef_, estimator.intercept_)
    F, n = objective.class_rows.size, objective.n_features
    d = n + int(objective.fit_intercept)
    k = F * d
    order = objective._theta_order()
    names = [str(c) for c in getattr(estimator, "feature_names_in_", [f"x{j}" for j in range(n)])]
    row_names = names + (["const"] if objective.fit_intercept else [])

    separation = ValueError(
        "the maximum-likelihood estimate does not exist (perfect or quasi-complete "
        f"separation: {_REFINE_ITERATIONS} Newton iterations from the fitted "
        "coefficients keep moving them by more than their standard errors allow); "
        "drop the separating columns or fit with alpha > 0 (then no "
        "maximum-likelihood inference)"
    )

    def information_at(theta):
        """I (class-major) at theta, scaled to the observations."""
        return objective.hessian(theta)[np.ix_(order, order)] * nobs

    def factor_and_inverse(H):
        """H's Cholesky factor and inverse, or None where H is singular: also where the
        factorization succeeds only by rounding (exactly collinear columns can leave pivots
        of eps |H| instead of 0), by the bound ``cond(H) >= max_j H_jj * max_j (H^-1)_jj``
        above ``1 / (k 1e-12)``, the threshold of :func:`_collinear_columns`."""
        try:
            factor = cho_factor(H, lower=True)
        except LinAlgError:
            return None
        inverse = cho_solve(factor, np.eye(k))
        if not np.all(np.isfinite(inverse)):
            return None
        if np.max(np.diag(H)) * np.max(np.diag(inverse)) * k * 1e-12 >= 1.0:
            return None
        return factor, inverse

    def regular_information(theta):
        """(factor, inverse) of I at theta.  A singular I is either collinear columns, which
        keep I singular at every point (checked at theta = 0, where every probability is
        1/K), or probabilities run to 0 or 1 by a diverging fit: separation."""
        regular = factor_and_inverse(information_at(theta))
        if regular is not None:
            return regular
        at_zero = information_at(np.zeros_like(theta))
        if factor_and_inverse(at_zero) is None:
            columns = _collinear_columns(at_zero, F, d, row_names)
            raise ValueError(
                f"X: the information matrix is singular (collinear columns: {columns}); drop "
                "or combine them"
            )
        raise separation

    factor, inverse = regular_information(theta)
    grad = objective.value_and_grad(theta)[1][order] * nobs
    step = cho_solve(factor, grad)
    refined = False
    bse_now = np.sqrt(np.diag(inverse))
    if np.any(np.abs(step) > _STEP_OVER_BSE * bse_now):
        # not converged to the precision the standard errors need: Newton from there (its
        # steps shrink quadratically where the MLE exists)
        result = _solvers.newton(objective, theta, max_iter=_REFINE_ITERATIONS, tol=1e-12)
        theta = result.theta
        refined = True
        factor, inverse = regular_information(theta)
        grad = objective.value_and_grad(theta)[1][order] * nobs
        bse_now = np.sqrt(np.diag(inverse))
        if np.any(np.abs(cho_solve(factor, grad)) > _STEP_OVER_BSE * bse_now):
            raise separation
    cov = inverse
    W, b = objective.unpack(theta)

    if cov_type != "nonrobust":
        S = np.zeros((k, k))
        if cov_type == "cluster":
            labels, gidx = np.unique(groups, return_inverse=True)
            G = labels.size
            sums = np.zeros((G, k))
        for r0, r1, scores in _scores_blocks(
            objective.design,
            W,
            b if objective.fit_intercept else None,
            y_idx,
            objective.class_rows,
            objective.fit_intercept,
        ):
            weighted = scores * w[r0:r1, None]
            if cov_type == "cluster":
                np.add.at(sums, gidx[r0:r1], weighted)
            else:
                S += weighted.T @ scores
        if cov_type == "cluster":
            S = sums.T @ sums
            S *= G / (G - 1.0) * (nobs - 1.0) / (nobs - k)
        elif cov_type == "HC1":
            S *= nobs / (nobs - k)
        cov = cov @ S @ cov
        cov = 0.5 * (cov + cov.T)

    loss = objective.value_and_grad(theta)[0]
    llf = -nobs * loss
    counts = np.bincount(y_idx, weights=w, minlength=objective.n_classes)
    present = counts > 0
    llnull = float(np.sum(counts[present] * np.log(counts[present] / nobs)))
    params = np.vstack([W[objective.class_rows].T] + ([b[objective.class_rows]] if d > n else []))
    bse = np.sqrt(np.diag(cov)).reshape(F, d).T
    z = params / bse
    df_model = float(F * n)
    llr = 2.0 * (llf - llnull)
    classes = estimator.classes_
    return InferenceResults(
        params=params,
        bse=bse,
        zvalues=z,
        pvalues=2.0 * norm.sf(np.abs(z)),
        _cov=cov,
        cov_type=cov_type,
        llf=float(llf),
        llnull=llnull,
        llr=float(llr),
        llr_pvalue=float(chi2.sf(llr, df_model)) if df_model else float("nan"),
        prsquared=float(1.0 - llf / llnull) if llnull else float("nan"),
        aic=float(-2.0 * llf + 2.0 * k),
        bic=float(-2.0 * llf + np.log(nobs) * k),
        df_model=df_model,
        df_resid=float(nobs - k),
        nobs=nobs,
        row_names=row_names,
        class_names=[classes[c] for c in objective.class_rows],
        reference_name=classes[reference],
        refined=refined,
        _margins=(
            objective.design,
            w,
            np.hstack([W, b[:, None]]) if objective.fit_intercept else W,
            objective.class_rows,
            objective.fit_intercept,
        ),
    )

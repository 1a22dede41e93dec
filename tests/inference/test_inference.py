"""SoftmaxRegression.inference against statsmodels (MNLogit, and Logit for K = 2) on data the
tests generate, and its refusals.

Both sides are Newton iterations to a gradient of ~1e-15 on a well-posed problem, so the
parameters agree to about cond(I) eps (cond ~1e6 here) and every derived quantity to a few times
that; the tolerances below (1e-6 for the parameters, 1e-5 for the rest, as the issue asks) are far
looser than what is measured (1e-10 and better).
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import statsmodels.api as sm
from softmax_problems import softmax_problem, survey_problem

from softmax_fast import SoftmaxRegression

COV_TYPES = ["nonrobust", "HC0", "HC1", "cluster"]


def _statsmodels(y, X, cov_type, groups=None, logit=False):
    kwargs = {}
    if cov_type in ("HC0", "HC1"):
        # statsmodels' discrete models have no HC1 of their own: every HCx falls back to the
        # uncorrected sandwich (HC0); ours multiplies it by n / (n - k) (see the docs)
        kwargs = {"cov_type": "HC0"}
    elif cov_type == "cluster":
        kwargs = {"cov_type": "cluster", "cov_kwds": {"groups": groups}}
    model = (sm.Logit if logit else sm.MNLogit)(y, sm.add_constant(X, prepend=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(method="newton", tol=1e-12, maxiter=100, disp=0, **kwargs)


def _fit(X, y, sample_weight=None):
    return SoftmaxRegression(solver="newton", alpha=0.0, reference_class=0, tol=1e-12).fit(
        X, y, sample_weight=sample_weight
    )


def _check(ours, theirs, cov_type, nobs, k, K, logit=False):
    params = np.asarray(theirs.params).reshape(ours.params.shape)
    np.testing.assert_allclose(ours.params, params, rtol=1e-6)
    factor = np.sqrt(nobs / (nobs - k)) if cov_type == "HC1" else 1.0
    bse = np.asarray(theirs.bse).reshape(ours.bse.shape) * factor
    np.testing.assert_allclose(ours.bse, bse, rtol=1e-5)
    np.testing.assert_allclose(ours.zvalues, params / bse, rtol=1e-5)
    np.testing.assert_allclose(ours.tvalues, ours.zvalues)
    if cov_type != "HC1":
        np.testing.assert_allclose(
            ours.pvalues, np.asarray(theirs.pvalues).reshape(ours.params.shape), rtol=1e-5
        )
        ci = np.asarray(theirs.conf_int(0.05))
        if logit:
            ci = ci[:, None, :]
        else:  # MNLogit: rows class-major (class 1's parameters, then class 2's ...)
            ci = ci.reshape(K - 1, -1, 2).transpose(1, 0, 2)
        np.testing.assert_allclose(ours.conf_int(0.05), ci, rtol=1e-5)
        np.testing.assert_allclose(
            ours.cov_params(), np.asarray(theirs.cov_params()), rtol=1e-5, atol=1e-12
        )
    for name in ("llf", "llnull", "llr", "aic", "bic", "prsquared", "df_model", "df_resid"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-5)
    np.testing.assert_allclose(ours.llr_pvalue, theirs.llr_pvalue, rtol=1e-5, atol=1e-300)


@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("K", [2, 3, 5, 7])
@pytest.mark.parametrize("scaled", [False, True])
def test_matches_statsmodels_mnlogit(K, cov_type, scaled):
    X, y = survey_problem(K=K)
    if scaled:
        X = (X - X.mean(axis=0)) / X.std(axis=0)
    groups = np.arange(y.size) % 41
    ours = _fit(X, y).inference(
        X, y, cov_type=cov_type, groups=groups if cov_type == "cluster" else None
    )
    theirs = _statsmodels(y, X, cov_type, groups)
    _check(ours, theirs, cov_type, y.size, (K - 1) * (X.shape[1] + 1), K)
    assert ours.params.shape == (X.shape[1] + 1, K - 1)
    assert ours.row_names == ["x0", "x1", "x2", "x3", "x4", "const"]


@pytest.mark.parametrize("cov_type", ["nonrobust", "HC0"])
def test_two_classes_is_binary_logit(cov_type):
    X, y = survey_problem(K=2)
    ours = _fit(X, y).inference(X, y, cov_type=cov_type)
    theirs = _statsmodels(y, X, cov_type, logit=True)
    _check(ours, theirs, cov_type, y.size, X.shape[1] + 1, 2, logit=True)


def test_integer_weights_are_repeated_rows():
    X, y = survey_problem(K=4)
    counts = np.random.default_rng(0).integers(0, 4, y.size)
    weighted = _fit(X, y, counts).inference(X, y, counts)
    Xr, yr = np.repeat(X, counts, axis=0), np.repeat(y, counts)
    repeated = _fit(Xr, yr).inference(Xr, yr)
    for name in ("params", "bse", "pvalues"):
        np.testing.assert_allclose(getattr(weighted, name), getattr(repeated, name), rtol=1e-8)
    for name in ("llf", "llnull", "aic", "bic", "nobs", "df_resid"):
        np.testing.assert_allclose(getattr(weighted, name), getattr(repeated, name), rtol=1e-10)
    # and statsmodels on the repeated rows (MNLogit takes no frequency weights)
    theirs = _statsmodels(yr, Xr, "nonrobust")
    _check(weighted, theirs, "nonrobust", yr.size, 3 * (X.shape[1] + 1), 4)
    robust_w = _fit(X, y, counts).inference(X, y, counts, cov_type="HC0")
    robust_r = _fit(Xr, yr).inference(Xr, yr, cov_type="HC0")
    np.testing.assert_allclose(robust_w.bse, robust_r.bse, rtol=1e-8)


def test_sparse_and_dense_agree_and_dataframe_names():
    pd = pytest.importorskip("pandas")
    X, y = survey_problem(K=3)
    X[:, 3:] = np.where(X[:, 3:] > 0, X[:, 3:], 0.0)
    dense = _fit(X, y).inference(X, y)
    Xs = sp.csr_matrix(X)
    sparse = _fit(Xs, y).inference(Xs, y)
    np.testing.assert_allclose(sparse.params, dense.params, rtol=1e-9)
    np.testing.assert_allclose(sparse.bse, dense.bse, rtol=1e-8)
    frame = pd.DataFrame(X, columns=["income", "age", "educ", "d1", "d2"])
    named = _fit(frame, y).inference(frame, y)
    assert named.row_names == ["income", "age", "educ", "d1", "d2", "const"]
    table = named.summary_frame()
    assert list(table.columns) == ["coef", "std err", "z", "P>|z|", "[0.025", "0.975]"]
    assert table.loc[(1, "income"), "coef"] == named.params[0, 0]


def test_summary_layout():
    X, y = survey_problem(K=3)
    res = _fit(X, y).inference(X, y)
    text = res.summary()
    lines = text.splitlines()
    assert lines[0].startswith("Multinomial logit") and "reference class: 0" in lines[0]
    assert "Log-likelihood" in text and "Pseudo R-squ." in text and "nonrobust" in text
    headers = [line for line in lines if line.startswith("y=")]
    assert [h.split()[0] for h in headers] == ["y=1", "y=2"]
    assert headers[0].split()[1:] == ["coef", "std", "err", "z", "P>|z|", "[0.025", "0.975]"]
    const_rows = [line for line in lines if line.startswith("const")]
    assert len(const_rows) == 2
    assert float(const_rows[0].split()[1]) == pytest.approx(res.params[-1, 0], abs=1e-4)


def test_unconverged_coefficients_are_refined():
    X, y = survey_problem(K=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rough = SoftmaxRegression(
            solver="lbfgs", alpha=0.0, reference_class=0, tol=1e-3, max_iter=50
        ).fit(X, y)
    res = rough.inference(X, y)
    assert res.refined
    exact = _fit(X, y).inference(X, y)
    assert not exact.refined
    np.testing.assert_allclose(res.params, exact.params, rtol=1e-7)
    np.testing.assert_allclose(res.bse, exact.bse, rtol=1e-7)


def test_refusals():
    X, y = softmax_problem(200, 3, 3, seed=1)
    with pytest.raises(ValueError, match="reference_class"):
        SoftmaxRegression(alpha=0.0).fit(X, y).inference(X, y)
    with pytest.raises(ValueError, match="alpha"):
        SoftmaxRegression(alpha=0.1, reference_class=0).fit(X, y).inference(X, y)
    model = _fit(X, y)
    with pytest.raises(ValueError, match="cov_type"):
        model.inference(X, y, cov_type="HC3")
    with pytest.raises(ValueError, match="groups"):
        model.inference(X, y, cov_type="cluster")
    with pytest.raises(ValueError, match="groups"):
        model.inference(X, y, groups=np.zeros(200))


def test_collinear_columns_are_named():
    X, y = softmax_problem(300, 3, 3, seed=2)
    X = np.column_stack([X, X[:, 0] - 2 * X[:, 2]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SoftmaxRegression(
            solver="lbfgs", alpha=0.0, reference_class=0, tol=1e-8, max_iter=2000
        ).fit(X, y)
    with pytest.raises(ValueError, match=r"collinear columns: \['x0', 'x2', 'x3'\]"):
        model.inference(X, y)


def test_separation_is_reported():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((200, 2))
    y = (X[:, 0] > 0).astype(int)  # x0 separates the classes perfectly
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SoftmaxRegression(
            solver="lbfgs", alpha=0.0, reference_class=0, tol=1e-10, max_iter=200
        ).fit(X, y)
    with pytest.raises(ValueError, match="separation"):
        model.inference(X, y)


@pytest.mark.parametrize("at", ["overall", "mean"])
@pytest.mark.parametrize("K", [2, 4, 7])
def test_marginal_effects_match_statsmodels(K, at):
    X, y = survey_problem(K=K)
    ours = _fit(X, y).inference(X, y).get_margeff(at=at)
    theirs = _statsmodels(y, X, "nonrobust").get_margeff(at=at, method="dydx")
    assert ours.margeff.shape == (X.shape[1], K)
    np.testing.assert_allclose(ours.margeff, np.asarray(theirs.margeff), rtol=1e-5)
    np.testing.assert_allclose(ours.margeff_se, np.asarray(theirs.margeff_se), rtol=1e-5)
    np.testing.assert_allclose(ours.zvalues, np.asarray(theirs.tvalues), rtol=1e-5)
    np.testing.assert_allclose(ours.pvalues, np.asarray(theirs.pvalues), rtol=1e-5)
    # statsmodels: (n_features, [lower, upper], K)
    np.testing.assert_allclose(
        ours.conf_int(0.05), np.asarray(theirs.conf_int(0.05)).transpose(0, 2, 1), rtol=1e-5
    )
    # the effects on the K probabilities sum to 0 for every feature
    np.testing.assert_allclose(ours.margeff.sum(axis=1), 0.0, atol=1e-12)


def test_quasi_complete_separation_is_reported():
    """x0 takes the values 0, 1, 2: class 2 occurs at x0 >= 1 only, classes 0 and 1 at x0 <= 1
    only, so they overlap at x0 = 1 alone (quasi-complete separation): class 2's coefficient
    on x0 has no finite maximum-likelihood value."""
    rng = np.random.default_rng(5)
    x0 = rng.integers(0, 3, 900).astype(float)
    X = np.column_stack([x0, rng.standard_normal(900)])
    y = rng.integers(0, 2, 900)
    y[x0 == 2] = 2
    y[(x0 == 1) & (rng.random(900) < 0.5)] = 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SoftmaxRegression(
            solver="lbfgs", alpha=0.0, reference_class=0, tol=1e-10, max_iter=500
        ).fit(X, y)
    with pytest.raises(ValueError, match="separation"):
        model.inference(X, y)

"""SoftmaxRegression on scipy.sparse X: the same model as on the same X dense, every method and
solver, pipelines from text and categorical data, the caller's matrix untouched, never densified.

The dense and sparse fits minimize one objective; what "the same model" means for two fits is
derived in optimum_bounds (convexity certificates), for two evaluations of one model in the
rounding bounds of the logits.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from fitted_models import MIN_DECIDED, assert_same_model, logit_columns
from optimum_bounds import EPS, assert_predictions_agree, compare, logit_rounding
from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sparse_inputs import assert_unchanged, dense_of, random_csr, snapshot

from softmax_fast import SoftmaxRegression, reference

ALPHA = 1e-3


def _problem(m=400, n=60, K=4, density=0.1, seed=0, **kwargs):
    """Sparse features, labels from a softmax model of them (not separable)."""
    X = random_csr(m, n, density, seed=seed, **kwargs)
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((K, n)) * 2.0
    Z = dense_of(X).astype(np.float64) @ W.T
    y = np.argmax(Z + rng.gumbel(size=Z.shape), axis=1)
    return X, y


@pytest.fixture
def no_densifying(monkeypatch):
    """Any densification of a scipy.sparse matrix or array raises while the test runs."""

    def refuse(self, *args, **kwargs):
        raise AssertionError("a sparse matrix was densified")

    for cls in (sp.csr_matrix, sp.csr_array, sp.csc_matrix, sp.coo_matrix):
        monkeypatch.setattr(cls, "toarray", refuse)
        monkeypatch.setattr(cls, "todense", refuse)


def _certified_same_model(X_dense, y, a, b, free=slice(None), sample_weight=None):
    """``a`` (fitted on sparse X) and ``b`` (on the same X dense) at one optimum: ``a``
    certified near min J by its own gradient and Hessian, and the two within the convexity radii
    (fitted_models.assert_same_model).  Without intercepts (b fixed at 0) J is alpha-strongly
    convex in the only free block W: J(a) - min J <= ||grad J(a)||^2 / (2 alpha), and
    ||W_a - W_b|| within the strong-convexity radius."""
    params_a, params_b = (a.coef_, a.intercept_), (b.coef_, b.intercept_)
    comparison = compare(
        X_dense, y, ALPHA, params_a, params_b, free=free, sample_weight=sample_weight
    )
    assert comparison.gap >= 0, comparison
    if not a.fit_intercept:
        grad_W = reference.loss_and_grad(X_dense, y, a.coef_, None, alpha=ALPHA)[1]
        assert np.sum(grad_W**2) / (2 * ALPHA) <= 1e-10 * comparison.loss_a
        assert comparison.w_dist <= comparison.w_radius, comparison
        rounding = logit_rounding(X_dense, *params_a) + logit_rounding(X_dense, *params_b)
        Z_a, Z_b = a.decision_function(X_dense), b.decision_function(X_dense)
        assert_predictions_agree(
            a.predict(X_dense), b.predict(X_dense), Z_a, Z_b, rounding, MIN_DECIDED
        )
        return
    assert comparison.excess_a <= 1e-10 * comparison.loss_a, comparison
    assert_same_model(X_dense, a, b, params_a, params_b, comparison)


@pytest.mark.parametrize("container", ["matrix", "array"])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_lbfgs_on_sparse_is_the_dense_model(container, index_dtype, fit_intercept, no_densifying):
    X, y = _problem(container=container, index_dtype=index_dtype)
    D = dense_of(X)
    kwargs = dict(alpha=ALPHA, tol=1e-10, max_iter=10_000, fit_intercept=fit_intercept)
    snap = snapshot(X)
    sparse_fit = SoftmaxRegression(**kwargs).fit(X, y)
    assert_unchanged(X, snap)
    dense_fit = SoftmaxRegression(**kwargs).fit(D, y)
    _certified_same_model(D, y, sparse_fit, dense_fit)


def test_noncanonical_sample_weight_and_reference_class(no_densifying):
    """Unsorted, duplicated entries and explicit zeros mean what scipy means by them; weights and
    the K - 1 form work as on dense X."""
    X, y = _problem(m=300, unsorted=True, duplicates=True, explicit_zeros=True, seed=3)
    D = dense_of(X)
    w = np.random.default_rng(1).uniform(0, 2, X.shape[0])
    kwargs = dict(alpha=ALPHA, tol=1e-10, max_iter=10_000, reference_class=2)
    snap = snapshot(X)
    sparse_fit = SoftmaxRegression(**kwargs).fit(X, y, sample_weight=w)
    assert_unchanged(X, snap)
    dense_fit = SoftmaxRegression(**kwargs).fit(D, y, sample_weight=w)
    assert np.all(sparse_fit.coef_[2] == 0) and sparse_fit.intercept_[2] == 0
    _certified_same_model(D, y, sparse_fit, dense_fit, free=[0, 1, 3], sample_weight=w)


def test_float32_sparse_stays_float32_and_reaches_the_float64_optimum():
    X, y = _problem(dtype=np.float32, seed=5)
    model = SoftmaxRegression(alpha=ALPHA, tol=1e-8, max_iter=10_000).fit(X, y)
    assert model.predict_proba(X).dtype == np.float32
    X64 = dense_of(X).astype(np.float64)
    ref = SoftmaxRegression(alpha=ALPHA, tol=1e-10, max_iter=10_000).fit(X64, y)
    comparison = compare(
        X64, y, ALPHA, (ref.coef_, ref.intercept_), (model.coef_, model.intercept_)
    )
    assert comparison.excess_a <= 1e-10 * comparison.loss_a, comparison
    # the float32 fit is a float64 objective of float32 data (exactly the float64 values): its
    # objective is above the optimum by at most its own gradient certificate at tol=1e-8
    assert comparison.loss_b - comparison.loss_a <= 1e-6 * comparison.loss_a


def _deterministic_twins(solver, **extra):
    kwargs = dict(alpha=0.02, solver=solver, learning_rate=0.5, random_state=0, **extra)
    return SoftmaxRegression(**kwargs), SoftmaxRegression(**kwargs)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["gd", "sgd"])
def test_fixed_step_solvers_follow_the_dense_iterates(solver, no_densifying):
    """gd and sgd take the same steps from the same batches on sparse and dense X: each step is
    a gradient step with learning_rate below 2 / L (L <= max ||x~_i||^2 / 2 + alpha), a
    non-expansive map, so the two iterate sequences drift apart by no more than the sum of the
    per-step rounding, about steps * (n + K) * eps * |theta|: far below 1e-8 here."""
    X, y = _problem(m=300, n=40, density=0.2, seed=7)
    X = X / np.sqrt(X.multiply(X).sum(axis=1).max())  # ||x_i|| <= 1: L <= 1.5
    X = sp.csr_matrix(X)
    D = dense_of(X)
    a, b = _deterministic_twins(solver, max_iter=30, batch_size=32)
    a.fit(X, y)
    b.fit(D, y)
    scale = max(1.0, np.abs(b.coef_).max())
    assert np.abs(a.coef_ - b.coef_).max() <= 1e-8 * scale
    assert np.abs(a.intercept_ - b.intercept_).max() <= 1e-8 * scale
    assert a.n_iter_ == b.n_iter_


def test_partial_fit_follows_the_dense_iterates(no_densifying):
    X, y = _problem(m=300, n=40, density=0.2, seed=8)
    X = sp.csr_matrix(X / np.sqrt(X.multiply(X).sum(axis=1).max()))
    D = dense_of(X)
    a, b = _deterministic_twins("sgd", batch_size=16)
    classes = np.unique(y)
    for _ in range(3):
        a.partial_fit(X, y, classes=classes)
        b.partial_fit(D, y, classes=classes)
    # as for sgd above: non-expansive steps, rounding-level drift
    scale = max(1.0, np.abs(b.coef_).max())
    assert np.abs(a.coef_ - b.coef_).max() <= 1e-8 * scale


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "lil"])
def test_every_method_on_sparse_equals_dense(fmt, no_densifying):
    """One fitted model evaluated on sparse and on dense X: the two logits differ by summation
    order only (each within logit_rounding of the exact ones)."""
    X, y = _problem(seed=11)
    D = dense_of(X)
    model = SoftmaxRegression(alpha=ALPHA).fit(D, y)
    Xf = X.asformat(fmt)
    snap = snapshot(Xf) if fmt != "lil" else None
    rounding = 2 * logit_rounding(D, model.coef_, model.intercept_)
    Z_s, Z_d = model.decision_function(Xf), model.decision_function(D)
    assert np.all(np.abs(Z_s - Z_d).max(axis=1) <= rounding)
    # log-softmax of logits within `rounding`: within 2 * rounding, plus its own evaluation
    assert np.all(
        np.abs(model.predict_log_proba(Xf) - model.predict_log_proba(D)).max(axis=1)
        <= 2 * rounding + 8 * EPS * (1 + np.abs(Z_d).max(axis=1))
    )
    P_s, P_d = model.predict_proba(Xf), model.predict_proba(D)
    # softmax(z + d) / softmax(z) within exp(+-2 max|d|), plus K + 4 roundings of each softmax
    bound = np.expm1(2 * rounding)[:, None] * np.maximum(P_s, P_d) + 2 * (4 + 4) * EPS
    assert np.all(np.abs(P_s - P_d) <= bound)
    assert_predictions_agree(model.predict(Xf), model.predict(D), Z_s, Z_d, rounding, MIN_DECIDED)
    decided = logit_columns(Z_d)
    assert decided.shape == (X.shape[0], 4)
    assert abs(model.score(Xf, y) - model.score(D, y)) <= 1 - MIN_DECIDED
    if snap is not None:
        assert_unchanged(Xf, snap)


def test_sparse_rows_with_nan_are_refused():
    X, y = _problem(m=50, seed=12)
    X = X.copy()
    X.data[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SoftmaxRegression().fit(X, y)


def test_out_of_range_column_index_is_refused():
    X, y = _problem(m=50, seed=13)
    bad = sp.csr_matrix((X.data.copy(), X.indices.copy(), X.indptr.copy()), shape=X.shape)
    bad.indices[0] = X.shape[1] + 5
    with pytest.raises(ValueError, match=r"X: column index"):
        SoftmaxRegression().fit(bad, y)


def _corpus(n_docs=240, seed=0):
    """A small synthetic corpus: three topics, each with its own frequent words."""
    rng = np.random.default_rng(seed)
    common = [f"w{i}" for i in range(60)]
    topics = [[f"t{k}_{i}" for i in range(10)] for k in range(3)]
    docs, labels = [], []
    for _ in range(n_docs):
        k = int(rng.integers(3))
        words = list(rng.choice(common, 30)) + list(rng.choice(topics[k], 6))
        docs.append(" ".join(words))
        labels.append(["sport", "politics", "science"][k])
    return docs, np.array(labels)


@pytest.mark.parametrize(
    "vectorizer",
    # (small vocabularies: the certificate's curvature bound is O(m n^2) memory)
    [TfidfVectorizer(), HashingVectorizer(n_features=2**6, alternate_sign=False)],
    ids=["tfidf", "hashing"],
)
def test_text_pipeline(vectorizer, no_densifying):
    docs, labels = _corpus()
    pipe = make_pipeline(vectorizer, SoftmaxRegression(alpha=1e-3, tol=1e-10, max_iter=10_000))
    pipe.fit(docs[:180], labels[:180])
    assert pipe.score(docs[180:], labels[180:]) >= 0.9
    Xt = pipe[0].transform(docs[:180])
    assert sp.issparse(Xt)
    # the pipeline's model is the model of the transformed matrix, dense
    dense_fit = SoftmaxRegression(alpha=1e-3, tol=1e-10, max_iter=10_000)
    D = dense_of(Xt)
    dense_fit.fit(D, labels[:180])
    y_idx = np.searchsorted(dense_fit.classes_, labels[:180])
    _certified_same_model(D, y_idx, pipe[-1], dense_fit)


def test_one_hot_pipeline(no_densifying):
    rng = np.random.default_rng(4)
    cats = rng.integers(0, 6, size=(400, 3))
    y = (cats[:, 0] + cats[:, 1] % 3 + rng.integers(0, 2, 400)) % 3
    pipe = make_pipeline(OneHotEncoder(), SoftmaxRegression(alpha=1e-3, tol=1e-10))
    pipe.fit(cats, y)
    assert sp.issparse(pipe[0].transform(cats))
    D = dense_of(pipe[0].transform(cats))
    dense_fit = SoftmaxRegression(alpha=1e-3, tol=1e-10).fit(D, y)
    _certified_same_model(D, y, pipe[-1], dense_fit)
    assert (
        pipe.score(cats, y) == dense_fit.score(D, y)
        or abs(pipe.score(cats, y) - dense_fit.score(D, y)) <= 1 - MIN_DECIDED
    )


def test_the_tags_say_sparse():
    estimator = SoftmaxRegression()
    if not hasattr(estimator, "__sklearn_tags__") or not callable(
        getattr(super(SoftmaxRegression, estimator), "__sklearn_tags__", None)
    ):
        pytest.skip("scikit-learn < 1.6 has no input tag for sparse data")
    assert estimator.__sklearn_tags__().input_tags.sparse

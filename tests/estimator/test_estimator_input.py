"""SoftmaxRegression's parameters and data: every bad parameter value is refused at fit and
partial_fit with an exception naming the parameter, bad data (non-finite X, overflowing logits,
bad y, bad sample weights, the wrong number of features, an unfitted model) with one naming the
argument, leaving the estimator unfitted; odd but valid data (weights near the float64 limits, a
class of zero weight, float16 X) fit as their plain equivalents.  Every case checks that the
caller's arrays are unchanged afterwards, on the error path too.  (The ``softmax-fast`` command's
user mistakes are in cli/test_cli.py, the model files' in io/test_model_io.py.)
"""

import re
import warnings

import numpy as np
import pytest
from kernel_test_helpers import Snapshot
from optimum_bounds import compare
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from softmax_fast import SoftmaxRegression


def word(name):
    return rf"(?<![\w.]){re.escape(name)}\b"


def _problem(m=40, n=3, seed=7):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, n))
    y = np.arange(m) % 3
    return X + y[:, None], y


# Every parameter's bad values: (params, exception, the name the message must hold as a word).
BAD_PARAMS = [
    ({"alpha": -1.0}, ValueError, "alpha"),
    ({"alpha": np.nan}, ValueError, "alpha"),
    ({"alpha": np.inf}, ValueError, "alpha"),
    ({"alpha": "big"}, TypeError, "alpha"),
    ({"alpha": True}, TypeError, "alpha"),
    ({"alpha": None}, TypeError, "alpha"),
    ({"tol": -1e-3}, ValueError, "tol"),
    ({"tol": np.nan}, ValueError, "tol"),
    ({"tol": "0"}, TypeError, "tol"),
    ({"learning_rate": 0.0}, ValueError, "learning_rate"),
    ({"learning_rate": -0.1}, ValueError, "learning_rate"),
    ({"learning_rate": np.inf}, ValueError, "learning_rate"),
    ({"learning_rate": "fast"}, TypeError, "learning_rate"),
    ({"max_iter": 0}, ValueError, "max_iter"),
    ({"max_iter": -3}, ValueError, "max_iter"),
    ({"max_iter": 1.5}, TypeError, "max_iter"),
    ({"max_iter": True}, TypeError, "max_iter"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"batch_size": -1}, ValueError, "batch_size"),
    ({"batch_size": 1.0}, TypeError, "batch_size"),
    ({"n_threads": 0}, ValueError, "n_threads"),
    ({"n_threads": -2}, ValueError, "n_threads"),
    ({"n_threads": 1.5}, TypeError, "n_threads"),
    ({"n_threads": True}, TypeError, "n_threads"),
    ({"solver": "bfgs"}, ValueError, "solver"),
    ({"solver": None}, ValueError, "solver"),
    ({"solver": ["lbfgs"]}, ValueError, "solver"),
    ({"fit_intercept": "yes"}, TypeError, "fit_intercept"),
    ({"fit_intercept": None}, TypeError, "fit_intercept"),
    ({"warm_start": "no"}, TypeError, "warm_start"),
    ({"verbose": "loud"}, TypeError, "verbose"),
    ({"verbose": 1.5}, TypeError, "verbose"),
    ({"verbose": -1}, ValueError, "verbose"),
    ({"random_state": "seed", "solver": "sgd"}, TypeError, "random_state"),
    ({"random_state": 1.5}, TypeError, "random_state"),
    ({"random_state": -1}, ValueError, "random_state"),
    ({"reference_class": 7}, ValueError, "reference_class"),
    ({"reference_class": [1]}, TypeError, "reference_class"),
    ({"reference_class": np.nan}, ValueError, "reference_class"),
    ({"class_weight": "uniform"}, ValueError, "class_weight"),
    ({"class_weight": {9: 2.0}}, ValueError, "class_weight"),
    ({"class_weight": {0: -1.0}}, ValueError, "class_weight"),
    ({"class_weight": {0: np.nan}}, ValueError, "class_weight"),
    ({"class_weight": {0: np.inf}}, ValueError, "class_weight"),
    ({"class_weight": {0: "heavy"}}, TypeError, "class_weight"),
    ({"class_weight": {0: 0, 1: 0, 2: 0}}, ValueError, "class_weight"),
    ({"class_weight": ["balanced"]}, ValueError, "class_weight"),
]


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize(("params", "exc", "name"), BAD_PARAMS, ids=lambda v: repr(v)[:40])
def test_estimator_bad_parameters(params, exc, name, method):
    X, y = _problem()
    snap = Snapshot(X=X, y=y)
    model = SoftmaxRegression(**params)  # __init__ stores, fit validates
    kwargs = {"classes": [0, 1, 2]} if method == "partial_fit" else {}
    with pytest.raises(exc, match=word(name)):
        getattr(model, method)(X, y, **kwargs)
    snap.assert_unchanged()
    assert not hasattr(model, "classes_") and not hasattr(model, "coef_")


def _nonfinite(X, value):
    X = X.copy()
    X[3, 1] = value
    return X


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_estimator_non_finite_x_everywhere(value):
    X, y = _problem()
    Xb = _nonfinite(X, value)
    snap = Snapshot(Xb=Xb)
    with pytest.raises(ValueError, match=r"\bX\b"):
        SoftmaxRegression(n_threads=1).fit(Xb, y)
    with pytest.raises(ValueError, match=r"\bX\b"):
        SoftmaxRegression(n_threads=1).partial_fit(Xb, y, classes=[0, 1, 2])
    model = SoftmaxRegression(n_threads=1).fit(X, y)
    for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        with pytest.raises(ValueError, match=r"\bX\b"):
            getattr(model, method)(Xb)
    with pytest.raises(ValueError, match=r"\bX\b"):
        model.score(Xb, y)
    snap.assert_unchanged()


@pytest.mark.filterwarnings("error")  # an error naming X, not a RuntimeWarning and inf/NaN
@pytest.mark.parametrize("n_classes", [2, 3])
def test_estimator_overflowing_logits_name_x(n_classes):
    X, y = _problem()
    keep = y < n_classes
    X, y = X[keep], y[keep]
    model = SoftmaxRegression(n_threads=1).fit(X, y)
    methods = ("predict", "predict_proba", "predict_log_proba", "decision_function")
    for dtype in (np.float64, np.float32):
        bad = np.full((2, X.shape[1]), np.finfo(dtype).max, dtype=dtype)
        bad[0] = 1.0  # row 0 is fine: the first bad row is named
        bad *= np.sign(model.coef_[0]).astype(dtype)
        for method in methods:
            with pytest.raises(ValueError, match=r"^X: .*row 1"):
                getattr(model, method)(bad)


@pytest.mark.parametrize(
    "make_y, exc, match",
    [
        (lambda y: np.where(np.arange(y.size) == 4, np.nan, y), ValueError, r"\by\b.*NaN"),
        (lambda y: np.where(np.arange(y.size) == 4, np.inf, y), ValueError, r"\by\b.*infinity"),
        (lambda y: np.c_[y, y], ValueError, r"\by\b.*shape"),
        (lambda y: y[:-1], ValueError, "inconsistent numbers of samples"),
        (lambda y: np.array([1, "a"] * (y.size // 2), dtype=object), ValueError, "label type"),
        (lambda y: None, ValueError, r"\by\b"),
        (lambda y: np.zeros_like(y), ValueError, "class"),
        (lambda y: np.linspace(0, 1, y.size), ValueError, "Unknown label type"),
    ],
    ids=["nan", "inf", "2-D", "short", "mixed-types", "None", "one-class", "continuous"],
)
def test_estimator_bad_y(make_y, exc, match):
    X, y = _problem()
    bad = make_y(y)
    with pytest.raises(exc, match=match):
        SoftmaxRegression(n_threads=1).fit(X, bad)


def test_partial_fit_single_class_names_classes():
    X, y = _problem()
    with pytest.raises(ValueError, match=r"^classes: "):
        SoftmaxRegression(n_threads=1).partial_fit(X, y, classes=[0])


@pytest.mark.parametrize(
    "sw, match",
    [
        (np.where(np.arange(40) == 3, np.nan, 1.0), "sample_weight"),
        (np.where(np.arange(40) == 3, np.inf, 1.0), "sample_weight"),
        (np.ones(39), "sample_weight"),
        (np.ones((40, 1)), "[Ss]ample[ _]weight"),
        (np.zeros(40), "[Ss]ample[ _]weight"),  # scikit-learn's message, or ours (older ones)
        (-np.ones(40), "sample_weight"),
    ],
    ids=["nan", "inf", "short", "2-D", "zeros", "negative"],
)
def test_estimator_bad_sample_weight(sw, match):
    X, y = _problem()
    for method, kw in (("fit", {}), ("partial_fit", {"classes": [0, 1, 2]})):
        model = SoftmaxRegression()
        with pytest.raises(ValueError, match=match):
            getattr(model, method)(X, y, sample_weight=sw, **kw)
        assert not hasattr(model, "coef_")


@pytest.mark.parametrize("scale", [1e307, 1e-320])
@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
def test_estimator_weights_near_the_float_limits(solver, scale):
    """The objective only depends on the weights' ratios: weights of 1e307 (whose sum overflows)
    and subnormal ones (whose sum's reciprocal does) fit as unit weights, with no
    RuntimeWarning."""
    X, y = _problem()
    kw = {"solver": solver, "random_state": 0, "batch_size": 8, "max_iter": 30, "n_threads": 1}
    if solver == "lbfgs":  # to the optimum: the two fits stop at different points near it
        kw.update(max_iter=1000, tol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("error", RuntimeWarning)
        scaled = SoftmaxRegression(**kw).fit(X, y, sample_weight=np.full(40, scale))
        plain = SoftmaxRegression(**kw).fit(X, y)
    if solver == "lbfgs":
        # one objective: the plain fit's certificate, then strong convexity and the local
        # curvature bound the distance between the two (optimum_bounds.compare)
        a, b = (plain.coef_, plain.intercept_), (scaled.coef_, scaled.intercept_)
        comparison = compare(X, y, plain.alpha, a, b)
        assert comparison.excess_a <= 1e-10 * comparison.loss_a, comparison
        assert comparison.w_dist <= comparison.w_radius, comparison
        assert comparison.dist <= comparison.radius, comparison
    else:
        # the same seeded steps on weights whose ratios are 1 within an ulp: the iterates stay
        # within rounding of each other (sgd's decaying steps do not amplify it)
        np.testing.assert_allclose(scaled.coef_, plain.coef_, rtol=1e-9, atol=1e-12)


def test_balanced_class_weight_with_a_class_of_zero_weight():
    # Every sample of class 0 has weight 0, so its balanced weight total / (K * 0) is inf: class
    # 0 must simply carry no weight (no 0 * inf = NaN reaching the kernels).
    X, y = _problem()
    sw = (y != 0).astype(float)
    model = SoftmaxRegression(class_weight="balanced", n_threads=1).fit(X, y, sample_weight=sw)
    counts = np.bincount(y, weights=sw)
    by_hand = sw * counts.sum() / (3 * np.maximum(counts[y], 1))
    expected = SoftmaxRegression(n_threads=1).fit(X, y, sample_weight=by_hand)
    np.testing.assert_allclose(model.coef_, expected.coef_, rtol=1e-7, atol=1e-9)


def test_estimator_float16_x_is_the_float64_fit():
    X, y = _problem()
    X16 = X.astype(np.float16)
    a = SoftmaxRegression(n_threads=1).fit(X16, y)
    b = SoftmaxRegression(n_threads=1).fit(X16.astype(np.float64), y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert a.predict_proba(X16).dtype == np.float64
    np.testing.assert_array_equal(a.predict_proba(X16), b.predict_proba(X16.astype(np.float64)))


def test_estimator_not_fitted_and_wrong_feature_count():
    X, y = _problem()
    methods = ("predict", "predict_proba", "predict_log_proba", "decision_function")
    for method in methods:
        with pytest.raises(NotFittedError):
            getattr(SoftmaxRegression(), method)(X)
    with pytest.raises(NotFittedError):
        SoftmaxRegression(n_threads=1).score(X, y)
    model = SoftmaxRegression(n_threads=1).fit(X, y)
    wrong_features = "X has 2 features, but SoftmaxRegression is expecting 3"
    for method in methods:
        with pytest.raises(ValueError, match=wrong_features):
            getattr(model, method)(X[:, :2])
    with pytest.raises(ValueError, match=wrong_features):
        model.partial_fit(X[:, :2], y)
    coef = model.coef_.copy()
    with pytest.raises(ValueError, match=wrong_features):
        model.score(X[:, :2], y)
    np.testing.assert_array_equal(model.coef_, coef)


def test_whole_number_float_labels_are_classes_and_fractions_are_not():
    """Float labels that are whole numbers are class labels (as scikit-learn's
    check_classification_targets has them), in fit and partial_fit; one fraction makes y
    continuous, refused with scikit-learn's message."""
    X, y = _problem()
    model = SoftmaxRegression(n_threads=1).fit(X, y.astype(np.float64))
    np.testing.assert_array_equal(model.classes_, np.unique(y).astype(np.float64))
    fractional = y.astype(np.float64)
    fractional[7] += 0.5
    for fit in (
        lambda m: m.fit(X, fractional),
        lambda m: m.partial_fit(X, fractional, classes=np.unique(fractional)),
    ):
        with pytest.raises(ValueError, match="Unknown label type: continuous"):
            fit(SoftmaxRegression(n_threads=1))


# ----------------------------------------------------------------------------- fit's fast path


def _slow_validation(monkeypatch):
    """Send every fit through scikit-learn's validate_data (the fast path off)."""
    from softmax_fast import estimator

    def slow(est, X, y):
        return estimator._validate_data(
            est,
            X,
            y,
            reset=True,
            dtype=estimator._DTYPES,
            order="C",
            accept_sparse=estimator._SPARSE,
        )

    monkeypatch.setattr(estimator, "_validate_fit_data", slow)


@pytest.mark.parametrize(
    "make_y",
    [
        lambda m: np.arange(m) % 3,
        lambda m: (np.arange(m) % 4).astype(np.int8) - 2,  # negative, narrow: y - min overflows
        lambda m: (np.arange(m) % 3).astype(np.uint64) + 2**40,  # far from 0
        lambda m: np.uint64(2**64 - 1) - (np.arange(m) % 3).astype(np.uint64),  # beyond int64
        lambda m: np.int64(-(2**63)) + (np.arange(m) % 3),  # the int64 minimum
        lambda m: (np.arange(m) % 3) * 10**9,  # too sparse a range to count
        lambda m: np.where(np.arange(m) % 2, 7, -7),
    ],
    ids=[
        "0-2",
        "int8 negative",
        "uint64 offset",
        "uint64 top",
        "int64 bottom",
        "wide range",
        "two classes",
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fit_fast_path_equals_scikit_learn_validation(make_y, dtype, monkeypatch):
    """fit on a plain C-contiguous float X and an integer y (checked without validate_data, the
    labels coded by counting) gives the same model bit for bit as through scikit-learn's
    validation and np.unique, and the same fitted attributes."""
    X, _ = _problem(m=60, n=4)
    X = np.ascontiguousarray(X, dtype=dtype)
    y = make_y(60)
    before = Snapshot(X=X, y=y)
    fast = SoftmaxRegression(alpha=1e-2).fit(X, y)
    before.assert_unchanged()
    with monkeypatch.context() as patch:
        _slow_validation(patch)
        slow = SoftmaxRegression(alpha=1e-2).fit(X, y)
    assert fast.classes_.dtype == slow.classes_.dtype == y.dtype
    np.testing.assert_array_equal(fast.classes_, np.unique(y))
    np.testing.assert_array_equal(fast.coef_, slow.coef_)
    np.testing.assert_array_equal(fast.intercept_, slow.intercept_)
    assert fast.n_features_in_ == slow.n_features_in_ == 4
    assert fast.n_iter_ == slow.n_iter_
    np.testing.assert_array_equal(fast.predict(X), slow.predict(X))


def test_fit_fast_path_forgets_the_feature_names_of_a_previous_fit():
    """As scikit-learn's validation does for X without column names (the names stand here for
    a previous fit on a DataFrame)."""
    X, y = _problem()
    est = SoftmaxRegression().fit(X, y)
    est.feature_names_in_ = np.array(["a", "b", "c"], dtype=object)
    est.fit(X, y)
    assert not hasattr(est, "feature_names_in_") and est.n_features_in_ == 3


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_fit_fast_path_leaves_non_finite_x_to_the_full_check(bad):
    """A NaN or infinite value makes X's sum non-finite: scikit-learn's validation names X."""
    X, y = _problem()
    X[5, 1] = bad
    with pytest.raises(ValueError, match=word("X")):
        SoftmaxRegression().fit(X, y)
    assert not hasattr(SoftmaxRegression(), "coef_")

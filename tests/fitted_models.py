"""What one optimum implies for two fitted classifiers (tests of SoftmaxRegression against
scikit-learn, another solver, another formulation or another input format of the same data):
the assertions built on ``optimum_bounds``."""

import numpy as np
from optimum_bounds import (
    EPS,
    assert_predictions_agree,
    augmented_norms,
    logit_rounding,
    probability_tolerance,
)

# a prediction comparison must decide at least this fraction of the rows (their top-two logit
# gap exceeds twice the two models' logit difference): near one optimum the logits differ by far
# less than the typical top-two gap, so that almost every row is decided
MIN_DECIDED = 0.99


def logit_columns(Z):
    """decision_function as K columns: for two classes it is the one logit z of classes_[1]
    against classes_[0], whose softmax and argmax are those of (0, z)."""
    return np.column_stack([np.zeros_like(Z), Z]) if Z.ndim == 1 else Z


def assert_same_predictions(X, a, b, params_a, params_b):
    """Models ``a`` and ``b`` (coefficients ``params`` = (coef, intercept), all K rows; for two
    classes in the reference form, row 0 zero) predict alike wherever their logits decide."""
    rounding = logit_rounding(X, *params_a) + logit_rounding(X, *params_b)
    Z_a = logit_columns(a.decision_function(X))
    Z_b = logit_columns(b.decision_function(X))
    assert_predictions_agree(a.predict(X), b.predict(X), Z_a, Z_b, rounding, MIN_DECIDED)


def assert_same_model(X, a, b, params_a, params_b, comparison):
    """What one optimum implies for the two fitted models (optimum_bounds' module docstring):
    the coefficients within the strong-convexity radius sqrt(2 gap / alpha), coefficients and
    centred intercepts within the local-curvature radius, each logit (common intercept shift
    removed) within radius * ||(x_i, 1)||, the predictions alike on the decided rows, and the
    probabilities within the factor exp(+-osc) of their logit difference."""
    if np.isfinite(comparison.w_radius):  # alpha > 0: modulus alpha in W
        assert comparison.w_dist <= comparison.w_radius, comparison
    assert comparison.dist <= comparison.radius, comparison
    rounding = logit_rounding(X, *params_a) + logit_rounding(X, *params_b)
    Z_a = logit_columns(a.decision_function(X))
    Z_b = logit_columns(b.decision_function(X))
    # the common intercept shift the comparison removed (0 for a reference-class form)
    shift = np.asarray(params_a[1]) - np.asarray(params_b[1]) - comparison.delta_b
    # (the two subtractions round by <= eps (|dz| + |shift|) each)
    logit_bound = comparison.radius * augmented_norms(X) + rounding + 2 * EPS * np.abs(shift).max()
    assert np.all(np.abs(Z_a - Z_b - shift).max(axis=1) <= logit_bound)
    assert_predictions_agree(a.predict(X), b.predict(X), Z_a, Z_b, rounding, MIN_DECIDED)
    P_a, P_b = a.predict_proba(X), b.predict_proba(X)
    assert np.all(np.abs(P_a - P_b) <= probability_tolerance(P_a, P_b, Z_a, Z_b, rounding))

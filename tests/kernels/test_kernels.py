"""Every public kernel against the NumPy reference, plus the contract's special cases.

The truth is always the reference evaluated in float64 on the exact input values (float32 inputs
upcast), and results are compared with the dtype's tolerance scaled by the size of the result
(see kernel_test_helpers.assert_close).  Inputs are checked to be unchanged after every call.
"""

import numpy as np
import pytest
from kernel_test_helpers import (
    FLOATS,
    LAYOUTS,
    Snapshot,
    as64,
    assert_close,
    central_diff,
    gemm_allowances,
    logit_rounding,
    make_layout,
    one_hot,
    proba_gemm_factor,
    random_labels,
    random_logits,
    random_problem,
    random_weights,
    soft_targets,
    tol,
)

import softmax_fast as sf
from softmax_fast import reference as ref

MS = (1, 7, 1000)
KS = (1, 2, 3, 10, 1000)
NS = (1, 5, 300)
ROWWISE = ("softmax", "log_softmax", "logsumexp")
YFORMS = ("labels", "onehot", "soft")
REDUCTIONS = ("mean", "sum", "none")
DT_IDS = {np.float32: "f32", np.float64: "f64"}


def dtype_id(dt):
    if isinstance(dt, type) and issubclass(dt, np.generic):
        return DT_IDS.get(dt, np.dtype(dt).name)
    return str(dt)


def make_targets(rng, yform, m, K, dtype):
    """Labels (int64), one-hot rows or Dirichlet soft rows (in ``dtype``)."""
    if yform == "labels":
        return random_labels(rng, m, K)
    if yform == "onehot":
        return one_hot(random_labels(rng, m, K), K, dtype)
    return soft_targets(rng, m, K, dtype)


def y64(y):
    y = np.asarray(y)
    return y.astype(np.int64) if y.ndim == 1 else y.astype(np.float64)


def targets_matrix(y, K):
    y = np.asarray(y)
    return one_hot(y, K) if y.ndim == 1 else y.astype(np.float64)


def weight_sum(w, m):
    return float(m) if w is None else float(np.sum(np.asarray(w, dtype=np.float64)))


def check_cross_entropy(Z, y, w, Z64, dtype, what=""):
    """sf.cross_entropy for every reduction against the float64 reference."""
    m = Z64.shape[0]
    wmax = 1.0 if w is None else float(np.max(w))
    for reduction in REDUCTIONS:
        kwargs = {} if w is None else {"sample_weight": w}
        got = sf.cross_entropy(Z, y, reduction=reduction, **kwargs)
        exp = ref.cross_entropy(Z64, y64(y), sample_weight=as64(w), reduction=reduction)
        label = f"{what} cross_entropy[{reduction}]"
        if reduction == "none":
            assert isinstance(got, np.ndarray) and got.dtype == np.float64, label
            assert got.shape == (m,), label
            # Per-row losses are accurate to ~tol * (|loss| + 1): scale by at least w_max.
            scale = max(float(np.max(np.abs(exp))), wmax)
            assert_close(got, exp, dtype, scale=scale, what=label)
        else:
            # A mean of log-probabilities: absolute accuracy ~tol per unit weight.
            floor = 1.0 if reduction == "mean" else weight_sum(w, m)
            _assert_loss(got, exp, dtype, floor, label)
    # The default reduction is "mean".
    default = sf.cross_entropy(Z, y) if w is None else sf.cross_entropy(Z, y, sample_weight=w)
    _assert_loss(default, ref.cross_entropy(Z64, y64(y), as64(w)), dtype, 1.0, what + " default")


def _assert_loss(got, exp, dtype, floor, what, factor=1.0):
    assert isinstance(got, float), f"{what}: expected a Python float, got {type(got)}"
    t = factor * tol(dtype)
    assert abs(got - exp) <= t * max(abs(exp), floor), f"{what}: got {got!r}, expected {exp!r}"


def check_cross_entropy_grad(Z, y, w, Z64, dtype, what=""):
    kwargs = {} if w is None else {"sample_weight": w}
    loss, dZ = sf.cross_entropy_grad(Z, y, **kwargs)
    eloss, edZ = ref.cross_entropy_grad(Z64, y64(y), as64(w))
    _assert_loss(loss, eloss, dtype, 1.0, what + " cross_entropy_grad loss")
    assert isinstance(dZ, np.ndarray) and dZ.dtype == dtype, what
    scale = float(np.max(abs_residual(Z64, y64(y), as64(w)), initial=0.0))
    assert_close(dZ, edZ, dtype, scale=scale, what=what + " cross_entropy_grad dZ")


def abs_residual(Z64, y, w):
    """(|softmax(Z)| + |Y|) * w_i / sum(w): the size of the terms that cancel in dZ.

    dZ = (A - Y) * w_i / sum(w); rounding in A (relative eps) cannot be resolved below this
    scale, e.g. where a_iy ~ 1 = y_iy.
    """
    wn = np.ones(Z64.shape[0]) if w is None else np.asarray(w, dtype=np.float64)
    R = np.abs(ref.softmax(Z64)) + np.abs(targets_matrix(y, Z64.shape[1]))
    return R * (wn / wn.sum())[:, None]


def grad_scales(X64, y, W64, b64, alpha, w):
    """Conditioning scales for dW and db: max of R^T |X| + alpha |W| and of sum_i R_i."""
    Z = X64 @ W64.T + (0.0 if b64 is None else b64)
    R = abs_residual(Z, y, w)
    sW = float(np.max(R.T @ np.abs(X64) + alpha * np.abs(W64)))
    sb = float(np.max(R.sum(axis=0)))
    return sW, sb


def check_loss_and_grad(X, y, W, b, alpha, w, dtype, what=""):
    """sf.loss_and_grad against the reference on the float64 upcast of the (dtype-cast) inputs."""
    kwargs = {"alpha": alpha}
    if w is not None:
        kwargs["sample_weight"] = w
    snap = Snapshot(X=X, y=y, W=W, b=b, w=w)
    loss, dW, db = sf.loss_and_grad(X, y, W, b, **kwargs)
    snap.assert_unchanged()
    X64 = as64(X)
    W64 = as64(np.asarray(W).astype(dtype))
    b64 = None if b is None else as64(np.asarray(b).astype(dtype))
    eloss, edW, edb = ref.loss_and_grad(X64, y64(y), W64, b64, alpha=alpha, sample_weight=as64(w))
    sW, sb = grad_scales(X64, y64(y), W64, b64, alpha, as64(w))
    # the logits are a GEMM in the kernel and in the reference: allow its rounding too
    a_loss, a_dW, a_db = gemm_allowances(X64, y64(y), W64, b64, as64(w))
    t = tol(dtype)
    _assert_loss(loss, eloss, dtype, 1.0, what + " loss", 1 + a_loss / (t * max(abs(eloss), 1)))
    assert isinstance(dW, np.ndarray) and dW.dtype == dtype and dW.shape == W64.shape, what
    assert_close(dW, edW, dtype, scale=sW, factor=1 + a_dW / (t * sW), what=what + " dW")
    if b is None:
        assert db is None, what
    else:
        assert isinstance(db, np.ndarray) and db.dtype == dtype and db.shape == b64.shape, what
        assert_close(db, edb, dtype, scale=sb, factor=1 + a_db / (t * sb), what=what + " db")


# ---------------------------------------------------------------------------------------------
# softmax / log_softmax / logsumexp
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS, ids=dtype_id)
@pytest.mark.parametrize("K", KS)
@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("name", ROWWISE)
def test_rowwise_against_reference(name, m, K, dtype, layout, rng):
    Z0 = random_logits(rng, m, K, dtype)
    Z = make_layout(Z0, layout)
    snap = Snapshot(Z=Z)
    got = getattr(sf, name)(Z)
    snap.assert_unchanged()
    expected = getattr(ref, name)(as64(Z0))
    assert isinstance(got, np.ndarray)
    assert got.dtype == dtype
    assert got.shape == expected.shape
    assert_close(got, expected, dtype, elementwise=name == "softmax", what=name)
    if name == "softmax":
        np.testing.assert_allclose(got.sum(axis=1, dtype=np.float64), 1.0, rtol=K * tol(dtype))


@pytest.mark.parametrize("dtype", FLOATS, ids=dtype_id)
def test_log_softmax_is_not_log_of_softmax(dtype):
    # exp(-800) (float64) / exp(-200) (float32) underflow, yet log_softmax stays exact and finite.
    gap = 800.0 if dtype == np.float64 else 200.0
    Z = np.array([[0.0, -gap, 5.0, -3 * gap], [1.0, 1.0, -gap, 1.0]], dtype=dtype)
    got = sf.log_softmax(Z)
    assert np.isfinite(got).all()
    assert_close(got, ref.log_softmax(as64(Z)), dtype, what="log_softmax")


# ---------------------------------------------------------------------------------------------
# cross_entropy / cross_entropy_grad
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("yform", YFORMS)
@pytest.mark.parametrize("dtype", FLOATS, ids=dtype_id)
@pytest.mark.parametrize("K", KS)
@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("kernel", ["cross_entropy", "cross_entropy_grad"])
def test_cross_entropy_against_reference(kernel, m, K, dtype, yform, weighted, rng):
    Z = random_logits(rng, m, K, dtype)
    y = make_targets(rng, yform, m, K, dtype)
    w = random_weights(rng, m) if weighted else None
    snap = Snapshot(Z=Z, y=y, w=w)
    check = check_cross_entropy if kernel == "cross_entropy" else check_cross_entropy_grad
    check(Z, y, w, as64(Z), dtype, f"m={m} K={K}")
    snap.assert_unchanged()


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("yform", YFORMS)
@pytest.mark.parametrize("dtype", FLOATS, ids=dtype_id)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_cross_entropy_layouts(layout, dtype, yform, weighted, rng):
    m, K = 41, 7
    Z0 = random_logits(rng, m, K, dtype)
    y0 = make_targets(rng, yform, m, K, dtype)
    w0 = random_weights(rng, m) if weighted else None
    Z, y = make_layout(Z0, layout), make_layout(y0, layout)
    w = None if w0 is None else make_layout(w0, layout)
    snap = Snapshot(Z=Z, y=y, w=w)
    check_cross_entropy(Z, y, w, as64(Z0), dtype, layout)
    check_cross_entropy_grad(Z, y, w, as64(Z0), dtype, layout)
    snap.assert_unchanged()


LABEL_DTYPES = [
    (np.int8, 10),
    (np.uint8, 10),
    (np.int16, 1000),
    (np.uint16, 1000),
    (np.int32, 1000),
    (np.uint32, 10),
    (np.int64, 10),
    (np.uint64, 1000),
    (np.intp, 10),
]


@pytest.mark.parametrize("layout", ["C", "sliced"])
@pytest.mark.parametrize(("label_dtype", "K"), LABEL_DTYPES, ids=lambda v: dtype_id(v))
def test_integer_label_dtypes(label_dtype, K, layout, rng):
    m, n = 60, 4
    labels = random_labels(rng, m, K)
    labels[:3] = [0, K - 1, K // 2]
    y = make_layout(labels.astype(label_dtype), layout)
    Z = random_logits(rng, m, K)
    w = random_weights(rng, m)
    snap = Snapshot(y=y)
    check_cross_entropy(Z, y, w, Z, np.float64, str(np.dtype(label_dtype)))
    check_cross_entropy_grad(Z, y, w, Z, np.float64, str(np.dtype(label_dtype)))
    X, W, b = random_problem(rng, m, K, n)
    check_loss_and_grad(X, y, W, b, 0.1, w, np.float64, str(np.dtype(label_dtype)))
    snap.assert_unchanged()


@pytest.mark.parametrize("zdtype", FLOATS, ids=dtype_id)
@pytest.mark.parametrize(
    "ydtype", [np.int8, np.uint8, np.int64, np.float16, np.float32, np.float64], ids=dtype_id
)
def test_one_hot_targets_of_any_real_dtype(ydtype, zdtype, rng):
    m, K, n = 30, 6, 3
    labels = random_labels(rng, m, K)
    Y = one_hot(labels, K, ydtype)
    Z = random_logits(rng, m, K, zdtype)
    check_cross_entropy(Z, Y, None, as64(Z), zdtype, f"Y {np.dtype(ydtype)}")
    check_cross_entropy_grad(Z, Y, None, as64(Z), zdtype, f"Y {np.dtype(ydtype)}")
    # One-hot rows give exactly the label-form losses (up to rounding).
    assert_close(
        sf.cross_entropy(Z, Y, reduction="none"),
        sf.cross_entropy(Z, labels, reduction="none"),
        zdtype,
        what="one-hot vs labels",
    )
    X, W, b = random_problem(rng, m, K, n, zdtype)
    check_loss_and_grad(X, Y, W, b, 0.0, None, zdtype, f"Y {np.dtype(ydtype)}")


@pytest.mark.parametrize("dtype", FLOATS, ids=dtype_id)
def test_reductions_are_consistent(dtype, rng):
    m, K = 200, 5
    Z = random_logits(rng, m, K, dtype)
    y = random_labels(rng, m, K)
    w = random_weights(rng, m)
    none = sf.cross_entropy(Z, y, sample_weight=w, reduction="none")
    total = sf.cross_entropy(Z, y, sample_weight=w, reduction="sum")
    mean = sf.cross_entropy(Z, y, sample_weight=w, reduction="mean")
    # "none" is w_i * l_i (zero where w_i = 0), "sum" its total, "mean" the weighted mean.
    unweighted = ref.cross_entropy(as64(Z), y, reduction="none")
    assert_close(none, w * unweighted, dtype, scale=max(np.max(np.abs(w * unweighted)), 3.0))
    assert np.all(none[w == 0] == 0)
    assert abs(total - float(np.sum(none))) <= tol(dtype) * abs(total)
    assert abs(mean - total / float(np.sum(w))) <= tol(dtype) * abs(mean)
    # Weights of ones equal no weights; scaling all weights leaves the mean unchanged.
    ones = sf.cross_entropy(Z, y, sample_weight=np.ones(m))
    assert abs(ones - sf.cross_entropy(Z, y)) <= tol(dtype) * abs(ones)
    scaled = sf.cross_entropy(Z, y, sample_weight=7.5 * w)
    assert abs(scaled - mean) <= tol(dtype) * abs(mean)


# ---------------------------------------------------------------------------------------------
# loss_and_grad
# ---------------------------------------------------------------------------------------------

# variant -> (intercept, alpha, weighted)
VARIANTS = {
    "plain": (False, 0.0, False),
    "b": (True, 0.0, False),
    "alpha_w": (False, 0.5, True),
    "b_alpha_w": (True, 0.5, True),
}


def _lag_grid():
    for m in MS:
        for K in KS:
            for n in NS:
                big = m * K * n >= 10**8
                for variant in ("plain", "b_alpha_w") if big else tuple(VARIANTS):
                    for yform in ("labels",) if big else ("labels", "soft"):
                        yield pytest.param(
                            m, K, n, variant, yform, id=f"{m}-{K}-{n}-{variant}-{yform}"
                        )


@pytest.mark.parametrize("dtype", FLOATS, ids=dtype_id)
@pytest.mark.parametrize(("m", "K", "n", "variant", "yform"), list(_lag_grid()))
def test_loss_and_grad_against_reference(m, K, n, variant, yform, dtype, rng):
    intercept, alpha, weighted = VARIANTS[variant]
    X, W, b = random_problem(rng, m, K, n, dtype)
    y = make_targets(rng, yform, m, K, dtype)
    w = random_weights(rng, m) if weighted else None
    check_loss_and_grad(X, y, W, b if intercept else None, alpha, w, dtype, f"{m}x{K}x{n}")


def test_alpha_accepts_python_int_and_numpy_scalars(rng):
    X, W, b = random_problem(rng, 30, 4, 5)
    y = random_labels(rng, 30, 4)
    expected = sf.loss_and_grad(X, y, W, b, alpha=2.0)
    for alpha in (2, np.float32(2.0), np.int64(2), np.float64(2.0)):
        loss, dW, db = sf.loss_and_grad(X, y, W, b, alpha=alpha)
        assert loss == expected[0]
        np.testing.assert_array_equal(dW, expected[1])
        np.testing.assert_array_equal(db, expected[2])
    check_loss_and_grad(X, y, W, b, 2, None, np.float64, "alpha=2")


@pytest.mark.parametrize("yform", ["labels", "soft"])
@pytest.mark.parametrize("dtype", FLOATS, ids=dtype_id)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_loss_and_grad_layouts(layout, dtype, yform, rng):
    m, K, n = 61, 7, 9
    X0, W0, b0 = random_problem(rng, m, K, n, dtype)
    y0 = make_targets(rng, yform, m, K, dtype)
    w0 = random_weights(rng, m)
    X, W, b, y, w = (make_layout(a, layout) for a in (X0, W0, b0, y0, w0))
    check_loss_and_grad(X, y, W, b, 0.25, w, dtype, layout)


@pytest.mark.parametrize("dtype", FLOATS, ids=dtype_id)
def test_loss_and_grad_mixed_layouts(dtype, rng):
    m, K, n = 50, 4, 6
    X0, W0, b0 = random_problem(rng, m, K, n, dtype)
    y0 = random_labels(rng, m, K, np.int32)
    w0 = random_weights(rng, m)
    X = make_layout(X0, "F")
    W = make_layout(W0, "sliced")
    b = make_layout(b0, "negstride")
    y = make_layout(y0, "sliced")
    w = make_layout(w0, "readonly")
    check_loss_and_grad(X, y, W, b, 0.1, w, dtype, "mixed")
    Xt = np.ascontiguousarray(X0.T).T  # F-ordered via a transpose of a C array
    check_loss_and_grad(Xt, y0, make_layout(W0, "F"), b0, 0.0, None, dtype, "transposed")


# ---------------------------------------------------------------------------------------------
# predict_proba / predict
# ---------------------------------------------------------------------------------------------


def _mkn_grid():
    for m in MS:
        for K in KS:
            for n in NS:
                yield pytest.param(m, K, n, id=f"{m}-{K}-{n}")


@pytest.mark.parametrize("intercept", [False, True], ids=["nob", "b"])
@pytest.mark.parametrize("dtype", FLOATS, ids=dtype_id)
@pytest.mark.parametrize(("m", "K", "n"), list(_mkn_grid()))
def test_predict_proba_against_reference(m, K, n, dtype, intercept, rng):
    X, W, b = random_problem(rng, m, K, n, dtype)
    b = b if intercept else None
    snap = Snapshot(X=X, W=W, b=b)
    P = sf.predict_proba(X, W, b)
    snap.assert_unchanged()
    expected = ref.predict_proba(as64(X), as64(W), as64(b))
    assert isinstance(P, np.ndarray) and P.dtype == dtype
    # float32 logits X @ W.T carry ~eps32 * sum|x w| absolute error, hence the factor 3; plus
    # the float64 rounding of the logits (a GEMM) in the kernel and the reference
    factor = (3.0 if n == 300 else 1.0) + proba_gemm_factor(as64(X), as64(W), as64(b), dtype) - 1
    assert_close(P, expected, dtype, elementwise=True, factor=factor)


def _clear_rows(X, W, b, dtype):
    """Rows whose top two logits differ by more than the rounding can close: the kernel's
    logits (in ``dtype``) and the reference's (float64) are each within logit_rounding of the
    exact ones (any summation order), so the argmax agrees where the float64 top-two gap
    exceeds twice their sum (plus the reference's own error on that gap)."""
    X64, W64, b64 = as64(X), as64(W), as64(b)
    Z = X64 @ W64.T + (0.0 if b64 is None else b64)
    if Z.shape[1] < 2:
        return np.ones(Z.shape[0], dtype=bool)
    top2 = np.sort(Z, axis=1)[:, -2:]
    gap = top2[:, 1] - top2[:, 0]
    kernel = logit_rounding(X64, W64, b64, eps=float(np.finfo(dtype).eps))
    return gap > 2 * kernel + 4 * logit_rounding(X64, W64, b64)


@pytest.mark.parametrize("intercept", [False, True], ids=["nob", "b"])
@pytest.mark.parametrize("dtype", FLOATS, ids=dtype_id)
@pytest.mark.parametrize(("m", "K", "n"), list(_mkn_grid()))
def test_predict_against_reference(m, K, n, dtype, intercept, rng):
    X, W, b = random_problem(rng, m, K, n, dtype)
    b = b if intercept else None
    clear = _clear_rows(X, W, b, dtype)
    assert clear.mean() >= 0.9 or m < 10
    snap = Snapshot(X=X, W=W, b=b)
    pred = sf.predict(X, W, b)
    snap.assert_unchanged()
    assert isinstance(pred, np.ndarray) and pred.dtype == np.intp and pred.shape == (m,)
    expected = np.argmax(as64(X) @ as64(W).T + (0.0 if b is None else as64(b)), axis=1)
    np.testing.assert_array_equal(pred[clear], expected[clear])
    assert ((pred >= 0) & (pred < K)).all()


@pytest.mark.parametrize("dtype", FLOATS, ids=dtype_id)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_predict_layouts(layout, dtype, rng):
    m, K, n = 80, 6, 7
    X0, W0, b0 = random_problem(rng, m, K, n, dtype)
    X, W, b = (make_layout(a, layout) for a in (X0, W0, b0))
    snap = Snapshot(X=X, W=W, b=b)
    P = sf.predict_proba(X, W, b)
    pred = sf.predict(X, W, b)
    snap.assert_unchanged()
    factor = proba_gemm_factor(as64(X0), as64(W0), as64(b0), dtype)
    expected_proba = ref.predict_proba(as64(X0), as64(W0), as64(b0))
    assert_close(P, expected_proba, dtype, elementwise=True, factor=factor)
    clear = _clear_rows(X0, W0, b0, dtype)
    expected = ref.predict(as64(X0), as64(W0), as64(b0))
    np.testing.assert_array_equal(pred[clear], expected[clear])


@pytest.mark.parametrize("dtype", FLOATS, ids=dtype_id)
def test_predict_ties_go_to_lowest_index(dtype, rng):
    # Small integers: every logit is exact under any summation order, and ties are frequent.
    X = rng.integers(-2, 3, size=(500, 3)).astype(dtype)
    W = rng.integers(-1, 2, size=(6, 3)).astype(dtype)
    b = rng.integers(-1, 2, size=6).astype(dtype)
    Z = as64(X) @ as64(W).T + as64(b)
    top = np.sort(Z, axis=1)
    assert (top[:, -1] == top[:, -2]).sum() > 50  # the test really exercises ties
    np.testing.assert_array_equal(sf.predict(X, W, b), np.argmax(Z, axis=1))
    # All-equal logits -> class 0; a tie between classes 1 and 2 above the rest -> class 1.
    zeros = np.zeros((6, 3), dtype=dtype)
    assert (sf.predict(X, zeros) == 0).all()
    assert (sf.predict(X, zeros[:4], np.array([1, 3, 3, 2], dtype=dtype)) == 1).all()


# ---------------------------------------------------------------------------------------------
# dtype policy
# ---------------------------------------------------------------------------------------------

OTHER_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint64, np.float16]


@pytest.mark.parametrize("in_dtype", OTHER_DTYPES, ids=dtype_id)
def test_non_float_inputs_compute_in_float64(in_dtype, rng):
    m, K, n = 20, 5, 3
    Z = rng.integers(0, 30, size=(m, K)).astype(in_dtype)
    Z64 = Z.astype(np.float64)
    for name in ROWWISE:
        got = getattr(sf, name)(Z)
        assert got.dtype == np.float64, name
        assert_close(got, getattr(ref, name)(Z64), np.float64, what=name)
    y = random_labels(rng, m, K)
    loss, dZ = sf.cross_entropy_grad(Z, y)
    assert dZ.dtype == np.float64
    eloss, edZ = ref.cross_entropy_grad(Z64, y)
    _assert_loss(loss, eloss, np.float64, 1.0, "cross_entropy_grad")
    assert_close(dZ, edZ, np.float64, what="dZ")
    none = sf.cross_entropy(Z, y, reduction="none")
    assert none.dtype == np.float64
    assert_close(none, ref.cross_entropy(Z64, y, reduction="none"), np.float64, scale=1.0)

    X = rng.integers(0, 4, size=(m, n)).astype(in_dtype)
    W = rng.standard_normal((K, n)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    X64, W64, b64 = as64(X), as64(W), as64(b)
    loss, dW, db = sf.loss_and_grad(X, y, W, b, alpha=0.1)
    assert dW.dtype == np.float64 and db.dtype == np.float64
    eloss, edW, edb = ref.loss_and_grad(X64, y, W64, b64, alpha=0.1)
    _assert_loss(loss, eloss, np.float64, 1.0, "loss_and_grad")
    assert_close(dW, edW, np.float64, what="dW")
    assert_close(db, edb, np.float64, what="db")
    P = sf.predict_proba(X, W, b)
    assert P.dtype == np.float64
    assert_close(P, ref.predict_proba(X64, W64, b64), np.float64, elementwise=True)
    assert sf.predict(X, W, b).dtype == np.intp


@pytest.mark.parametrize("dtype", FLOATS, ids=dtype_id)
def test_float_inputs_keep_their_dtype(dtype, rng):
    m, K = 9, 4
    Z = random_logits(rng, m, K, dtype)
    y = random_labels(rng, m, K)
    for name in ROWWISE:
        assert getattr(sf, name)(Z).dtype == dtype, name
    assert sf.cross_entropy_grad(Z, y)[1].dtype == dtype
    assert sf.cross_entropy(Z, y, reduction="none").dtype == np.float64
    assert isinstance(sf.cross_entropy(Z, y, reduction="mean"), float)
    assert isinstance(sf.cross_entropy(Z, y, reduction="sum"), float)


@pytest.mark.parametrize(
    ("xdtype", "wdtype"),
    [(np.float32, np.float64), (np.float64, np.float32), (np.float32, np.int32)],
    ids=lambda v: dtype_id(v),
)
def test_x_dtype_decides_and_w_b_are_cast(xdtype, wdtype, rng):
    m, K, n = 40, 5, 6
    X = rng.standard_normal((m, n)).astype(xdtype)
    W = (rng.standard_normal((K, n)) * 2).astype(wdtype)
    b = (rng.standard_normal(K) * 2).astype(wdtype)
    y = random_labels(rng, m, K)
    # The truth: W and b first cast to X's dtype, then everything evaluated in float64.
    Wc, bc = as64(W.astype(xdtype)), as64(b.astype(xdtype))
    loss, dW, db = sf.loss_and_grad(X, y, W, b, alpha=0.2)
    assert dW.dtype == xdtype and db.dtype == xdtype
    eloss, edW, edb = ref.loss_and_grad(as64(X), y, Wc, bc, alpha=0.2)
    sW, sb = grad_scales(as64(X), y, Wc, bc, 0.2, None)
    _assert_loss(loss, eloss, xdtype, 1.0, "loss")
    assert_close(dW, edW, xdtype, scale=sW, what="dW")
    assert_close(db, edb, xdtype, scale=sb, what="db")
    P = sf.predict_proba(X, W, b)
    assert P.dtype == xdtype
    assert_close(P, ref.predict_proba(as64(X), Wc, bc), xdtype, elementwise=True)


# ---------------------------------------------------------------------------------------------
# out=
# ---------------------------------------------------------------------------------------------


def _out_buffer(m, K, dtype, layout):
    """(out, base, mask): an output array in ``layout``, its base buffer (poisoned with NaN
    outside the view) and a boolean mask of the view's positions in the base."""
    if layout == "C":
        out = np.full((m, K), np.nan, dtype=dtype)
        return out, out, np.ones((m, K), dtype=bool)
    if layout == "F":
        out = np.full((m, K), np.nan, dtype=dtype, order="F")
        return out, out, np.ones((m, K), dtype=bool)
    if layout == "sliced":
        base = np.full((2 * m + 1, 3 * K), np.nan, dtype=dtype)
        mask = np.zeros(base.shape, dtype=bool)
        mask[1::2, ::3] = True
        return base[1::2, ::3], base, mask
    if layout == "negstride":
        base = np.full((m, K), np.nan, dtype=dtype)
        return base[::-1, ::-1], base, np.ones((m, K), dtype=bool)
    raise ValueError(layout)


@pytest.mark.parametrize("out_layout", ["C", "F", "sliced", "negstride"])
@pytest.mark.parametrize("zdtype", [np.float32, np.float64, np.int32], ids=dtype_id)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_out_is_written_in_place(name, zdtype, out_layout, rng):
    m, K = 33, 9
    Z = random_logits(rng, m, K, np.float64, spread=10).astype(zdtype)
    rdtype = np.float64 if zdtype == np.int32 else zdtype
    out, base, mask = _out_buffer(m, K, rdtype, out_layout)
    snap = Snapshot(Z=Z)
    res = getattr(sf, name)(Z, out=out)
    snap.assert_unchanged()
    assert res is out
    assert_close(out, getattr(ref, name)(as64(Z)), rdtype, elementwise=name == "softmax")
    assert np.isnan(base[~mask]).all(), "wrote outside the out view"


@pytest.mark.parametrize("layout", ["C", "F", "sliced", "negstride"])
@pytest.mark.parametrize("dtype", FLOATS, ids=dtype_id)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_out_is_z_in_place(name, dtype, layout, rng):
    m, K = 57, 8
    Z0 = random_logits(rng, m, K, dtype)
    Z = make_layout(Z0, layout)
    base = Z.base if Z.base is not None else Z
    poison = np.isnan(base)
    res = getattr(sf, name)(Z, out=Z)
    assert res is Z
    assert_close(Z, getattr(ref, name)(as64(Z0)), dtype, elementwise=name == "softmax")
    assert np.isnan(base[poison]).all(), "wrote outside the view"


def test_out_with_large_rows_in_place(rng):
    Z0 = random_logits(rng, 3000, 40)
    Z = Z0.copy()
    sf.softmax(Z, out=Z, n_threads=2)
    assert_close(Z, ref.softmax(Z0), np.float64, elementwise=True)


# ---------------------------------------------------------------------------------------------
# Gradients against central finite differences of the kernels' own losses (float64)
# ---------------------------------------------------------------------------------------------


def _assert_fd(analytic, fd, what):
    err = np.max(np.abs(analytic - fd))
    assert err <= 1e-6 * np.max(np.abs(fd)) + 1e-8, f"{what}: max |analytic - fd| = {err:.3e}"


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("yform", ["labels", "soft"])
@pytest.mark.parametrize(("intercept", "alpha"), [(False, 0.0), (True, 0.0), (True, 0.7)])
def test_loss_and_grad_finite_differences(intercept, alpha, yform, weighted, rng):
    m, K, n = 25, 4, 3
    X, W, b = random_problem(rng, m, K, n)
    b = b if intercept else None
    y = make_targets(rng, yform, m, K, np.float64)
    w = random_weights(rng, m) if weighted else None

    def loss():
        return sf.loss_and_grad(X, y, W, b, alpha=alpha, sample_weight=w)[0]

    _, dW, db = sf.loss_and_grad(X, y, W, b, alpha=alpha, sample_weight=w)
    _assert_fd(dW, central_diff(loss, W), "dW")
    if intercept:
        _assert_fd(db, central_diff(loss, b), "db")


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("yform", ["labels", "soft"])
def test_cross_entropy_grad_finite_differences(yform, weighted, rng):
    m, K = 7, 5
    Z = random_logits(rng, m, K, spread=5)
    y = make_targets(rng, yform, m, K, np.float64)
    w = random_weights(rng, m) if weighted else None
    loss, dZ = sf.cross_entropy_grad(Z, y, sample_weight=w)
    assert abs(loss - sf.cross_entropy(Z, y, sample_weight=w)) <= 1e-13 * abs(loss)
    _assert_fd(dZ, central_diff(lambda: sf.cross_entropy(Z, y, sample_weight=w), Z), "dZ")
    _assert_fd(
        dZ, central_diff(lambda: sf.cross_entropy_grad(Z, y, sample_weight=w)[0], Z), "dZ/own"
    )


# ---------------------------------------------------------------------------------------------
# Integer weights are repeated rows
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("yform", ["labels", "soft"])
@pytest.mark.parametrize("dtype", FLOATS, ids=dtype_id)
def test_integer_weights_equal_repeated_rows(dtype, yform, rng):
    m, K, n = 40, 5, 4
    X, W, b = random_problem(rng, m, K, n, dtype)
    y = make_targets(rng, yform, m, K, dtype)
    w = rng.integers(0, 4, size=m)
    w[0] = 2
    Xr, yr = np.repeat(X, w, axis=0), np.repeat(y, w, axis=0)
    t = tol(dtype)

    l1, dW1, db1 = sf.loss_and_grad(X, y, W, b, alpha=0.3, sample_weight=w)
    l2, dW2, db2 = sf.loss_and_grad(Xr, yr, W, b, alpha=0.3)
    assert abs(l1 - l2) <= t * abs(l2)
    assert_close(dW1, dW2, dtype, scale=max(np.max(np.abs(dW2)), 1.0), what="dW")
    assert_close(db1, db2, dtype, scale=max(np.max(np.abs(db2)), 1.0), what="db")

    Z = as64(X @ W.T).astype(dtype)
    Zr = np.repeat(Z, w, axis=0)
    mean_w = sf.cross_entropy(Z, y, sample_weight=w)
    assert abs(mean_w - sf.cross_entropy(Zr, yr)) <= t * abs(mean_w)
    sum_w = sf.cross_entropy(Z, y, sample_weight=w, reduction="sum")
    assert abs(sum_w - sf.cross_entropy(Zr, yr, reduction="sum")) <= t * abs(sum_w)
    none_w = sf.cross_entropy(Z, y, sample_weight=w, reduction="none")
    none_r = sf.cross_entropy(Zr, yr, reduction="none")
    owner = np.repeat(np.arange(m), w)
    expected_none = np.bincount(owner, none_r, minlength=m)
    assert_close(none_w, expected_none, dtype, scale=max(np.max(expected_none), 1.0))

    lg1, dZ1 = sf.cross_entropy_grad(Z, y, sample_weight=w)
    lg2, dZ2 = sf.cross_entropy_grad(Zr, yr)
    assert abs(lg1 - lg2) <= t * abs(lg2)
    summed = np.zeros((m, K))
    np.add.at(summed, owner, dZ2.astype(np.float64))
    assert_close(dZ1, summed, dtype, what="dZ")


# ---------------------------------------------------------------------------------------------
# Numerical stability
# ---------------------------------------------------------------------------------------------


def _extreme_logits(rng, m, K, big, dtype):
    Z = rng.choice([-1.0, 1.0], size=(m, K)) * big * rng.uniform(0.25, 1.0, size=(m, K))
    Z[rng.random((m, K)) < 0.2] = 0.0
    Z[0] = big  # all equal and huge: uniform
    Z[1] = -big  # all equal and hugely negative: uniform
    Z[2, :] = -big
    Z[2, :2] = big  # two tied maxima
    return Z.astype(dtype)


EXTREMES = [(np.float64, 1e4), (np.float64, 1e300), (np.float32, 1e4), (np.float32, 1e38)]


def extreme_id(v):
    return f"{v:g}" if isinstance(v, float) else dtype_id(v)


@pytest.mark.parametrize(("dtype", "big"), EXTREMES, ids=extreme_id)
def test_extreme_logits_rowwise(dtype, big, rng):
    m, K = 64, 10
    Z = _extreme_logits(rng, m, K, big, dtype)
    Z64 = as64(Z)
    P = sf.softmax(Z)
    assert np.isfinite(P).all()
    np.testing.assert_allclose(P.sum(axis=1, dtype=np.float64), 1.0, rtol=K * tol(dtype))
    assert_close(P, ref.softmax(Z64), dtype, elementwise=True, what="softmax")
    np.testing.assert_allclose(P[0], 1.0 / K, rtol=tol(dtype))
    np.testing.assert_allclose(P[2, :2], 0.5, rtol=tol(dtype))

    shifted = Z64 - Z64.max(axis=1, keepdims=True)
    L = sf.log_softmax(Z)
    expected = ref.log_softmax(shifted)
    np.testing.assert_array_equal(np.isfinite(L), np.isfinite(expected))
    assert_close(L, expected, dtype, what="log_softmax")

    lse = sf.logsumexp(Z)
    assert np.isfinite(lse).all()
    assert_close(lse, ref.logsumexp(Z64), dtype, what="logsumexp")


@pytest.mark.parametrize("yform", ["labels", "soft"])
@pytest.mark.parametrize(("dtype", "big"), EXTREMES, ids=extreme_id)
def test_extreme_logits_losses(dtype, big, yform, rng):
    m, K = 64, 10
    Z = _extreme_logits(rng, m, K, big, dtype)
    Z64 = as64(Z)
    y = make_targets(rng, yform, m, K, np.float64)
    for reduction in REDUCTIONS:
        got = sf.cross_entropy(Z, y, reduction=reduction)
        assert np.isfinite(got).all(), reduction
        exp = ref.cross_entropy(Z64, y, reduction=reduction)
        if reduction == "none":
            assert_close(got, exp, dtype, scale=max(np.max(np.abs(exp)), 1.0), what=reduction)
        else:
            _assert_loss(got, exp, dtype, 1.0, reduction)
    loss, dZ = sf.cross_entropy_grad(Z, y)
    assert np.isfinite(loss) and np.isfinite(dZ).all()
    eloss, edZ = ref.cross_entropy_grad(Z64, y)
    _assert_loss(loss, eloss, dtype, 1.0, "cross_entropy_grad")
    assert_close(dZ, edZ, dtype, what="dZ")


@pytest.mark.parametrize(
    ("dtype", "big", "n"), [(np.float64, 1e4, 5), (np.float32, 1e4, 5), (np.float64, 1e300, 2)]
)
def test_extreme_logits_loss_and_grad(dtype, big, n, rng):
    m, K = 50, 6
    X = rng.choice([-1.0, 1.0], size=(m, n)) * rng.uniform(0.5, 1.0, (m, n)) * big / n
    W = rng.uniform(-1.0, 1.0, size=(K, n))
    b = rng.uniform(-1.0, 1.0, size=K)
    X, W, b = X.astype(dtype), W.astype(dtype), b.astype(dtype)
    y = random_labels(rng, m, K)
    loss, dW, db = sf.loss_and_grad(X, y, W, b, alpha=0.1)
    assert np.isfinite(loss) and np.isfinite(dW).all() and np.isfinite(db).all()
    check_loss_and_grad(X, y, W, b, 0.1, None, dtype, f"big={big:g}")
    P = sf.predict_proba(X, W, b)
    assert np.isfinite(P).all()
    np.testing.assert_allclose(P.sum(axis=1, dtype=np.float64), 1.0, rtol=K * tol(dtype))


# ---------------------------------------------------------------------------------------------
# -inf masks
# ---------------------------------------------------------------------------------------------


def _masked_logits(rng, m, K, dtype):
    Z = random_logits(rng, m, K, np.float64)
    mask = rng.random((m, K)) < 0.4
    mask[np.arange(m), rng.integers(0, K, m)] = False  # every row keeps a finite logit
    mask[0] = True
    mask[0, 3] = False  # a row with a single finite logit
    Z[mask] = -np.inf
    return Z.astype(dtype), mask


@pytest.mark.parametrize("dtype", FLOATS, ids=dtype_id)
def test_masked_logits_rowwise(dtype, rng):
    m, K = 40, 6
    Z, mask = _masked_logits(rng, m, K, dtype)
    Z64 = as64(Z)
    snap = Snapshot(Z=Z)
    P = sf.softmax(Z)
    assert (P[mask] == 0).all(), "probability of a -inf logit must be exactly 0"
    assert (P[~mask] > 0).all()
    assert P[0, 3] == 1.0
    assert_close(P, ref.softmax(Z64), dtype, elementwise=True, what="softmax")
    L = sf.log_softmax(Z)
    assert (L[mask] == -np.inf).all() and np.isfinite(L[~mask]).all()
    assert L[0, 3] == 0.0
    assert_close(L, ref.log_softmax(Z64), dtype, what="log_softmax")
    assert_close(sf.logsumexp(Z), ref.logsumexp(Z64), dtype, what="logsumexp")
    snap.assert_unchanged()


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("dtype", FLOATS, ids=dtype_id)
def test_masked_logits_cross_entropy(dtype, rng):
    m, K = 40, 6
    Z, mask = _masked_logits(rng, m, K, dtype)
    Z64 = as64(Z)
    w = random_weights(rng, m, zeros=False)

    # Soft targets with zero probability on the masked classes: finite.
    Y = rng.dirichlet(np.ones(K), size=m) * ~mask
    Y /= Y.sum(axis=1, keepdims=True)
    Y[mask] = 0.0
    check_cross_entropy(Z, Y, w, Z64, dtype, "soft masked")
    check_cross_entropy_grad(Z, Y, w, Z64, dtype, "soft masked")
    assert np.isfinite(sf.cross_entropy(Z, Y, reduction="none")).all()

    # Labels on finite classes: finite.
    allowed = [np.flatnonzero(~mask[i]) for i in range(m)]
    y = np.array([rng.choice(a) for a in allowed])
    check_cross_entropy(Z, y, w, Z64, dtype, "labels masked")
    check_cross_entropy_grad(Z, y, w, Z64, dtype, "labels masked")

    # Labels (and one-hot rows) pointing at a -inf class: +inf loss for those rows, no NaN.
    bad_rows = np.array([i for i in range(1, m) if mask[i].any()][:5])
    y_bad = y.copy()
    y_bad[bad_rows] = [np.flatnonzero(mask[i])[0] for i in bad_rows]
    for targets in (y_bad, one_hot(y_bad, K, dtype)):
        none = sf.cross_entropy(Z, targets, reduction="none")
        assert (none[bad_rows] == np.inf).all()
        good = np.setdiff1d(np.arange(m), bad_rows)
        assert np.isfinite(none[good]).all()
        assert sf.cross_entropy(Z, targets) == np.inf
        assert sf.cross_entropy(Z, targets, reduction="sum") == np.inf
        assert sf.cross_entropy(Z, targets, sample_weight=w) == np.inf
        loss, dZ = sf.cross_entropy_grad(Z, targets)
        assert loss == np.inf
        # dZ = (softmax(Z) - Y) / m is still finite and well defined.
        expected = (ref.softmax(Z64) - targets_matrix(targets, K)) / m
        assert_close(dZ, expected, dtype, what="dZ with +inf loss")


@pytest.mark.parametrize("dtype", FLOATS, ids=dtype_id)
def test_two_classes_one_masked(dtype):
    Z = np.array([[-np.inf, 3.0], [7.0, -np.inf]], dtype=dtype)
    np.testing.assert_array_equal(sf.softmax(Z), [[0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_array_equal(sf.log_softmax(Z), [[-np.inf, 0.0], [0.0, -np.inf]])
    np.testing.assert_allclose(sf.logsumexp(Z), [3.0, 7.0], rtol=tol(dtype))
    assert sf.cross_entropy(Z, np.array([1, 0])) == 0.0


# ---------------------------------------------------------------------------------------------
# K = 1 and m = 0
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS, ids=dtype_id)
def test_single_class(dtype, rng):
    m, n = 30, 4
    eps = np.finfo(dtype).eps
    Z = random_logits(rng, m, 1, dtype)
    np.testing.assert_allclose(sf.softmax(Z), 1.0, rtol=4 * eps)
    np.testing.assert_allclose(sf.log_softmax(Z), 0.0, atol=4 * eps)
    np.testing.assert_allclose(sf.logsumexp(Z), Z[:, 0], rtol=4 * eps)
    y = np.zeros(m, dtype=np.int64)
    for targets in (y, np.ones((m, 1), dtype=dtype)):
        assert abs(sf.cross_entropy(Z, targets)) <= 4 * eps
        np.testing.assert_allclose(sf.cross_entropy(Z, targets, reduction="none"), 0, atol=4 * eps)
        loss, dZ = sf.cross_entropy_grad(Z, targets)
        assert abs(loss) <= 4 * eps
        np.testing.assert_allclose(dZ, 0.0, atol=4 * eps)
    X, W, b = random_problem(rng, m, 1, n, dtype)
    loss, dW, db = sf.loss_and_grad(X, y, W, b, alpha=0.5)
    expected_loss = 0.25 * float(np.sum(as64(W) ** 2))
    assert abs(loss - expected_loss) <= 10 * eps * (1 + expected_loss)
    np.testing.assert_allclose(dW, 0.5 * W, rtol=10 * eps, atol=10 * eps)
    np.testing.assert_allclose(db, 0.0, atol=10 * eps)
    np.testing.assert_allclose(sf.predict_proba(X, W, b), 1.0, rtol=4 * eps)
    np.testing.assert_array_equal(sf.predict(X, W, b), 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32], ids=dtype_id)
def test_zero_rows_give_empty_results(dtype):
    rdtype = np.float32 if dtype == np.float32 else np.float64
    K, n = 3, 4
    Z = np.zeros((0, K), dtype=dtype)
    for name in ("softmax", "log_softmax"):
        got = getattr(sf, name)(Z)
        assert got.shape == (0, K) and got.dtype == rdtype, name
        out = np.zeros((0, K), dtype=rdtype)
        assert getattr(sf, name)(Z, out=out) is out
    lse = sf.logsumexp(Z)
    assert lse.shape == (0,) and lse.dtype == rdtype
    X = np.zeros((0, n), dtype=dtype)
    W = np.ones((K, n), dtype=dtype)
    b = np.ones(K, dtype=dtype)
    for bb in (None, b):
        P = sf.predict_proba(X, W, bb)
        assert P.shape == (0, K) and P.dtype == rdtype
        pred = sf.predict(X, W, bb)
        assert pred.shape == (0,) and pred.dtype == np.intp

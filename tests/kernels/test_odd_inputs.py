"""Accepted-but-odd inputs of every public kernel function equal an independent reference.

The contract converts other real dtypes to float64 and takes lists and views as arrays: float16,
long double, lists, memoryviews, matrices, masked arrays without masked entries, subclasses,
big-endian and uint8 arrays give exactly the float64 call on the same values, a plain ndarray
(never a matrix), and match the NumPy reference.  So do the limits that must not turn into NaN
or a crash: huge or subnormal weights, rows of weight 0 with an infinite loss, n = 0 features,
huge n_threads, a matrix, overlapping or strided ``out``; and the nastiest of them again in a
fresh interpreter, so that a crash shows as a failed test.  Every case checks that the caller's
arrays are unchanged afterwards.

Bad inputs and the exceptions they raise are in test_bad_input.py.
"""

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from kernel_test_helpers import PUBLIC_ARRAY_ARGS, Snapshot

import softmax_fast as sf
from softmax_fast import reference

pytestmark = pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")

M, K, N = 6, 4, 3

ARRAYS = PUBLIC_ARRAY_ARGS
POSITIONAL = {"Z", "X", "y", "W", "b"}
FUNCS = tuple(ARRAYS)


def data(m=M):
    rng = np.random.default_rng(6)
    return {
        "Z": rng.normal(0, 2, size=(m, K)),
        "y": rng.integers(0, K, size=m),
        "X": rng.normal(size=(m, N)),
        "W": rng.normal(size=(K, N)),
        "b": rng.normal(size=K),
        "sample_weight": rng.uniform(0.5, 2.0, size=m),
    }


def call(fname, values, **options):
    """Call ``fname`` with its array arguments taken from ``values`` (plus ``options``)."""
    args = [values[a] for a in ARRAYS[fname] if a in POSITIONAL]
    kwargs = {a: values[a] for a in ARRAYS[fname] if a not in POSITIONAL}
    kwargs.update(options)
    return getattr(sf, fname)(*args, **kwargs)


def reference_call(fname, values, **options):
    """The NumPy reference of ``fname`` on the same values, in float64."""
    v = {k: None if a is None else np.asarray(a) for k, a in values.items()}
    v = {k: a.astype(np.float64) if a is not None and k != "y" else a for k, a in v.items()}
    args = [v[a] for a in ARRAYS[fname] if a in POSITIONAL]
    kwargs = {a: v[a] for a in ARRAYS[fname] if a not in POSITIONAL}
    kwargs.update(options)
    if fname == "cross_entropy_grad":
        return reference.cross_entropy_grad(*args, **kwargs)
    return getattr(reference, fname)(*args, **kwargs)


def as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


def assert_same(got, expected, rtol=1e-12, what=""):
    """Results equal (to rtol) with no NaN that the expectation does not have."""
    got, expected = as_tuple(got), as_tuple(expected)
    assert len(got) == len(expected), what
    for g, e in zip(got, expected, strict=True):
        if e is None:
            assert g is None, what
            continue
        g, e = np.asarray(g, dtype=np.float64), np.asarray(e, dtype=np.float64)
        assert g.shape == e.shape, (what, g.shape, e.shape)
        assert not np.isnan(g).any(), f"{what}: unannounced NaN"
        np.testing.assert_allclose(g, e, rtol=rtol, atol=rtol * max(1.0, np.abs(e).max(initial=0)))


class Tagged(np.ndarray):
    """An ndarray subclass (as a library might hand over)."""


def _small_uints(a):
    a = np.asarray(a)
    return a.astype(np.uint8) if a.dtype.kind == "i" else np.round(np.abs(a) * 3).astype(np.uint8)


ODD_VARIANTS = {
    "float16": lambda a: np.asarray(a, dtype=np.float16),
    "longdouble": lambda a: np.asarray(a, dtype=np.longdouble),
    "list": lambda a: np.asarray(a).tolist(),
    "memoryview": lambda a: memoryview(np.ascontiguousarray(a)),
    "matrix": np.matrix,
    "masked-no-entries": np.ma.masked_array,
    "subclass": lambda a: np.asarray(a).view(Tagged),
    "big-endian": lambda a: np.asarray(a).astype(np.asarray(a).dtype.newbyteorder(">")),
    "uint8": _small_uints,
}


def _odd_cases():
    cases = []
    for fname, arrays in ARRAYS.items():
        for arg in arrays:
            for kind, make in ODD_VARIANTS.items():
                if arg == "y" and kind in ("float16", "longdouble"):
                    continue  # 1-D float labels are refused by the contract
                if kind == "matrix" and arg in ("y", "b", "sample_weight"):
                    continue  # a matrix is 2-D
                cases.append(pytest.param(fname, arg, kind, make, id=f"{fname}-{arg}-{kind}"))
    return cases


@pytest.mark.parametrize(("fname", "arg", "kind", "make"), _odd_cases())
def test_odd_but_accepted_inputs_equal_the_float64_call(fname, arg, kind, make):
    """The contract: other real dtypes become float64, lists and views are arrays.  The result
    must be exactly the float64 call on the same values, and match the NumPy reference."""
    values = data()
    odd = make(values[arg])
    values[arg] = odd
    plain = dict(values)
    plain[arg] = np.asarray(odd).astype(np.float64) if arg != "y" else np.asarray(odd)
    snap = Snapshot(**{k: v for k, v in values.items() if isinstance(v, (np.ndarray, list))})
    got = call(fname, values)
    snap.assert_unchanged()
    expected = call(fname, plain)
    for g, e in zip(as_tuple(got), as_tuple(expected), strict=True):
        if e is None:
            assert g is None
            continue
        assert type(g) is type(e), (type(g), type(e))  # plain ndarray / float, never a matrix
        g, e = np.asarray(g), np.asarray(e)
        # Every odd dtype here computes in float64 (a big-endian float32 would stay float32).
        assert g.dtype == e.dtype, (g.dtype, e.dtype)
        np.testing.assert_array_equal(g, e)
    assert_same(got, reference_call(fname, plain), rtol=1e-10, what=f"{fname} {arg} {kind}")


def test_float16_becomes_float64_not_float32():
    Z16 = data()["Z"].astype(np.float16)
    for fname in ("softmax", "log_softmax", "logsumexp"):
        assert getattr(sf, fname)(Z16).dtype == np.float64
    X16 = data()["X"].astype(np.float16)
    assert sf.predict_proba(X16, data()["W"].astype(np.float32)).dtype == np.float64
    _, dW, db = sf.loss_and_grad(X16, data()["y"], data()["W"], data()["b"])
    assert dW.dtype == db.dtype == np.float64


def test_big_endian_float32_stays_float32():
    Z = data()["Z"].astype(">f4")
    P = sf.softmax(Z)
    assert P.dtype == np.float32
    np.testing.assert_array_equal(P, sf.softmax(Z.astype(np.float32)))


@pytest.mark.parametrize("scale", [1e300, 1e307, 1e-300, 1e-320], ids=lambda s: f"{s:g}")
@pytest.mark.parametrize("fname", ["cross_entropy", "cross_entropy_grad", "loss_and_grad"])
def test_huge_and_subnormal_sample_weights(fname, scale):
    """A weighted mean does not depend on the weights' scale: weights near the float64 limits
    give the reference's loss and gradient, without sum(w) or 1 / sum(w) overflowing to inf
    (a NaN loss or gradient) and without an overflow warning."""
    values = data()
    w = values["sample_weight"]
    values["sample_weight"] = w * scale
    snap = Snapshot(w=values["sample_weight"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning either
        got = call(fname, values)
    snap.assert_unchanged()
    # The same weights times an exact power of two (subnormal weights hold few digits, so
    # not simply w): an equally weighted problem the reference computes without overflow.
    exact = np.ldexp(values["sample_weight"], -int(np.frexp(values["sample_weight"].max())[1]))
    normal = dict(values, sample_weight=exact)
    assert_same(got, reference_call(fname, normal), rtol=1e-10, what=fname)


def test_sum_reduction_with_huge_weights_is_inf_not_nan():
    values = data()
    values["sample_weight"] = np.full(M, 1e308)
    total = call("cross_entropy", values, reduction="sum")
    assert total == np.inf


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_weight_zero_row_with_infinite_loss_counts_zero(reduction):
    """Row 2's target class has a -inf logit (loss +inf) but weight 0: it must count 0, not
    0 * inf = NaN.  Expected: the reference on the other rows."""
    values = data()
    Z = values["Z"].copy()
    y = values["y"]
    Z[2, y[2]] = -np.inf
    w = values["sample_weight"].copy()
    w[2] = 0.0
    got = sf.cross_entropy(Z, y, sample_weight=w, reduction=reduction)
    keep = np.arange(M) != 2
    expected = reference.cross_entropy(Z[keep], y[keep], sample_weight=w[keep], reduction=reduction)
    if reduction == "none":
        assert got[2] == 0.0
        got = got[keep]
    assert_same(got, expected, what=reduction)
    loss, dZ = sf.cross_entropy_grad(Z, y, sample_weight=w)
    ref_loss, ref_dZ = reference.cross_entropy_grad(Z[keep], y[keep], sample_weight=w[keep])
    assert_same(loss, ref_loss)
    assert_same(dZ[keep], ref_dZ)
    assert np.all(dZ[2] == 0)


def test_weight_zero_row_with_infinite_loss_in_loss_and_grad():
    # Row 0's logits X @ W.T overflow to -inf for class 0 (its label) and stay finite for
    # class 1: a valid row whose loss is +inf.  With weight 0 it must not turn the loss NaN.
    X = np.array([[1e308, 1.0], [0.5, 1.0], [0.1, -1.0], [2.0, 0.3]])
    W = np.array([[-10.0, 0.0], [0.0, 1.0]])
    b = np.array([0.1, -0.2])
    y = np.array([0, 1, 0, 1])
    w = np.array([0.0, 1.0, 2.0, 0.5])
    loss, dW, db = sf.loss_and_grad(X, y, W, b, alpha=0.1, sample_weight=w)
    ref = reference.loss_and_grad(X[1:], y[1:], W, b, alpha=0.1, sample_weight=w[1:])
    assert_same((loss, dW, db), ref)
    assert sf.loss_and_grad(X, y, W, b)[0] == np.inf  # with weight 1 it is +inf, not NaN


@pytest.mark.parametrize("fname", ["loss_and_grad", "predict_proba", "predict"])
def test_no_features(fname):
    values = data()
    values["X"] = np.zeros((M, 0))
    values["W"] = np.zeros((K, 0))
    got = call(fname, values)
    assert_same(got, reference_call(fname, values), what=fname)


@pytest.mark.parametrize("n_threads", [np.int64(2), 2**31, 10**6, 2**63])
@pytest.mark.parametrize("fname", FUNCS)
def test_huge_n_threads_is_capped_not_a_crash(fname, n_threads):
    """Any positive n_threads is accepted and capped: the kernels never start more threads than
    rows (nor than 1024), so a huge count neither aborts OpenMP nor overflows a C int (2**31,
    2**63), and the results are the reference's."""
    values = data()
    assert_same(call(fname, values, n_threads=n_threads), reference_call(fname, values), 1e-10)


def test_out_as_matrix_overlapping_or_strided():
    Z = data()["Z"]
    expected = reference.softmax(Z)
    out = np.matrix(np.zeros((M, K)))
    assert sf.softmax(Z, out=out) is out
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-12)
    # out overlapping Z by one row (neither the same array nor disjoint)
    buf = np.zeros((M + 1) * K)
    Zv = buf[:-K].reshape(M, K)
    Zv[...] = Z
    outv = buf[K:].reshape(M, K)
    sf.log_softmax(Zv, out=outv)
    np.testing.assert_allclose(outv, reference.log_softmax(Z), rtol=1e-12)
    # out a strided view; Z left alone
    big = np.full((M, 2 * K), np.nan)
    snap = Snapshot(Z=Z)
    assert sf.softmax(Z, out=big[:, ::2]).base is big
    snap.assert_unchanged()
    np.testing.assert_allclose(big[:, ::2], expected, rtol=1e-12)
    assert np.isnan(big[:, 1::2]).all()
    # in place on an F-ordered array
    F = np.asfortranarray(Z)
    sf.softmax(F, out=F)
    np.testing.assert_allclose(F, expected, rtol=1e-12)


# ============================================================================================
# The nastiest cases in a fresh interpreter: a crash is a failed test, not a dead test run
# ============================================================================================

NASTY_SCRIPT = textwrap.dedent(
    """
    import numpy as np, softmax_fast as sf
    from softmax_fast import reference as R
    rng = np.random.default_rng(0)
    # huge K, one row
    K = 10**6
    Z = rng.normal(size=(1, K))
    X, W, b = rng.normal(size=(1, 3)), rng.normal(size=(K, 3)), rng.normal(size=K)
    assert np.allclose(sf.softmax(Z), R.softmax(Z), rtol=1e-9, atol=1e-300)
    assert np.allclose(sf.logsumexp(Z), R.logsumexp(Z), rtol=1e-12)
    assert np.isclose(sf.cross_entropy(Z, [K - 1]), R.cross_entropy(Z, [K - 1]), rtol=1e-12)
    assert np.allclose(sf.predict_proba(X, W, b, n_threads=2), R.predict_proba(X, W, b),
                       rtol=1e-9, atol=1e-300)
    assert sf.predict(X, W, b) == R.predict(X, W, b)
    loss, dW, db = sf.loss_and_grad(X, [7], W, b, n_threads=2)
    rl, rdW, rdb = R.loss_and_grad(X, [7], W, b)
    assert np.isclose(loss, rl, rtol=1e-12) and np.allclose(dW, rdW, rtol=1e-9, atol=1e-300)
    # misaligned (odd byte offset) float64 views of every argument
    def misaligned(a):
        raw = np.zeros(a.nbytes + 1, np.uint8)
        v = raw[1:].view(a.dtype).reshape(a.shape)
        v[...] = a
        assert not v.flags.aligned
        return v
    Z, y = rng.normal(size=(50, 7)), rng.integers(0, 7, 50)
    X, W, b, w = rng.normal(size=(50, 5)), rng.normal(size=(7, 5)), rng.normal(size=7), \\
        rng.uniform(0.5, 2, 50)
    args = [misaligned(a) for a in (Z, y, X, W, b, w)]
    assert np.allclose(sf.softmax(args[0]), R.softmax(Z), rtol=1e-12)
    assert np.isclose(sf.cross_entropy(args[0], args[1], sample_weight=args[5]),
                      R.cross_entropy(Z, y, sample_weight=w), rtol=1e-12)
    got = sf.loss_and_grad(args[2], args[1], args[3], args[4], sample_weight=args[5])
    ref = R.loss_and_grad(X, y, W, b, sample_weight=w)
    assert all(np.allclose(g, r, rtol=1e-10) for g, r in zip(got, ref))
    # labels near 2**63, huge thread counts
    for bad in (2**63 - 1, -(2**63), 2**63 - 2):
        try:
            sf.cross_entropy(Z, np.where(np.arange(50) == 9, bad, y).astype(np.int64))
        except ValueError as exc:
            assert "row 9" in str(exc)
        else:
            raise AssertionError("label accepted")
    for t in (10**5, 10**6, 2**62):
        assert np.allclose(sf.softmax(Z, n_threads=t), R.softmax(Z), rtol=1e-12)
        assert np.isclose(sf.loss_and_grad(X, y, W, b, n_threads=t)[0],
                          R.loss_and_grad(X, y, W, b)[0], rtol=1e-12)
    print("survived")
    """
)


def test_nastiest_cases_in_a_subprocess():
    result = subprocess.run(
        [sys.executable, "-c", NASTY_SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, (result.returncode, result.stderr[-3000:])
    assert "survived" in result.stdout

"""Property-based tests (hypothesis): every public kernel against the NumPy reference.

For random shapes (m, K, n = 1 included, K up to 2000), dtypes, memory layouts, thread counts,
sample weights, targets (class indices, one-hot and soft rows) and logits from subnormal to
+-1e300 (float64) / +-1.7e38 (float32) with random -inf masks, every kernel agrees with
``softmax_fast.reference`` evaluated in ``np.longdouble`` on the shifted logits, within an error
bound derived from the kernel's arithmetic (see "Error bounds").  Exact invariants: softmax in
[0, 1], exactly 0 on -inf logits, rows summing to 1; log_softmax <= 0; logsumexp >= row max;
losses >= 0, and +inf exactly where a target class with positive mass has a -inf logit;
predict is an argmax of the logits, the most probable class of predict_proba, ties to the lowest
index; inputs are never modified.  Gradients match central finite differences of the kernels'
own losses (float64, moderate logits).

Example counts
--------------
By default each test runs a fixed number of examples with ``derandomize=True`` and no example
database, so every run (CI included) tries the same inputs, and the file takes 10-20 s on two
cores.  To search harder set ``SOFTMAX_FAST_HYPOTHESIS_EXAMPLES``: each test then runs that many
examples, drawn at random (a different search every run; a failure prints the example and a
``@reproduce_failure`` blob)::

    SOFTMAX_FAST_HYPOTHESIS_EXAMPLES=2000 python -m pytest tests/kernels/test_properties.py

Error bounds
------------
u = eps/2 is the unit roundoff of the compute dtype, u64 that of float64.  The kernels compute
d = z - max z in the compute dtype (error <= u|d|), e = exp(d) within 1 ulp (<= 2u relative),
s = sum e in float64, then p = e * fl(1/s), log-softmax = d - log s, logsumexp = max + log s and
row losses l = log s * sum(y) - sum(y d) in float64.  The relative error of s is an average of
the errors of the e_k weighted by p_k, and sum_k p_k |d_k| = H(p) - log s <= ln K (H: entropy),
so it is at most u (ln K + 2) + K u64.  To first order that gives

* softmax, elementwise:  |p~ - p| <= p (u (|d| + ln K + 6) + (K + 1) u64)
* log_softmax:           |L~ - L| <= u (2|L| + ln K + 2) + (K + ln K + |L|) u64   (|d| <= |L|)
* logsumexp:             |lse~ - lse| <= u (2|lse| + ln K + 2) + (K + ln K + |lse|) u64
* row loss l = sum_k y_k |L_k| (a sum of terms >= 0: no cancellation):
                         |l~ - l| <= u (l + (ln K + 2) sum(y)) + O(K u64 (l + sum(y)))

and the tests apply each with eps = 2u in place of u (a safety factor of 2), plus an absolute
slack of the dtype's smallest normal number where a result underflows.  In the log domain the
bounds grow with |L| ~ |z|: with logits of 1e300 the absolute errors are ~eps * 1e300 (relative
~eps), so they are compared relative to |L|, never to 1.  Where the kernel computes the logits
(X W^T + b in the compute dtype) each carries an error of at most
delta_ij = (n + 2) eps (sum_k |x_ik w_jk| + |b_j|); this scales every probability of row i by a
factor within exp(+-2 delta_i), moves its loss by at most delta_i (1 + sum(y_i)), and the
gradient products add the (m + 2) eps |G|^T |X| of dot products of length m.

The truth is evaluated in long double (64-bit mantissa on x86-64, error ~5e-20); where long
double is plain float64 (Windows, macOS on arm64) its own error is covered by adding its eps to
the compute dtype's in every bound.
"""

import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from kernel_test_helpers import LAYOUTS, Snapshot, make_layout

import softmax_fast as sf
from softmax_fast import reference as ref

LD = np.longdouble
EPS_LD = float(np.finfo(LD).eps)
EPS64 = float(np.finfo(np.float64).eps) + EPS_LD  # float64 sums, plus the truth's own error
FLOATS = (np.float32, np.float64)

# --------------------------------------------------------------------------- example counts

_ENV = "SOFTMAX_FAST_HYPOTHESIS_EXAMPLES"
try:
    _EXPLORE = int(os.environ.get(_ENV, "0") or 0)
except ValueError:  # pragma: no cover - a user error, reported at collection
    raise ValueError(f"{_ENV} must be a positive integer, got {os.environ[_ENV]!r}") from None

_COMMON = {
    "deadline": None,
    "database": None,
    "print_blob": True,
    # Big arrays are drawn from a seeded numpy Generator, so examples are cheap to draw but some
    # calls take a while: the size and speed health checks do not apply.
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
}
settings.register_profile("softmax_fast_ci", derandomize=True, **_COMMON)
settings.register_profile("softmax_fast_explore", derandomize=False, **_COMMON)
_PROFILE = settings.get_profile("softmax_fast_explore" if _EXPLORE > 0 else "softmax_fast_ci")


def examples(n_ci):
    """Settings for one test: ``n_ci`` examples in CI, $SOFTMAX_FAST_HYPOTHESIS_EXAMPLES if set."""
    return settings(_PROFILE, max_examples=_EXPLORE if _EXPLORE > 0 else n_ci)


# --------------------------------------------------------------------------- comparisons

# The largest error / bound ratio seen per quantity (how tight the bounds are; see _report()).
WORST = {}


def eps_of(dtype):
    """eps of the compute dtype plus the truth's own."""
    return float(np.finfo(dtype).eps) + EPS_LD


def tiny_of(dtype):
    return float(np.finfo(dtype).tiny)


def as_f64(a):
    """A long-double truth or bound term as float64 (for computing bounds)."""
    with np.errstate(over="ignore", under="ignore"):
        return np.asarray(a).astype(np.float64)


def check_within(got, truth, bound, what):
    """|got - truth| <= bound elementwise.  Infinite truths must be matched exactly; no NaN."""
    got = np.asarray(got)
    truth = np.asarray(truth, dtype=LD)
    bound = np.broadcast_to(np.asarray(bound, dtype=np.float64), truth.shape)
    assert got.shape == truth.shape, f"{what}: shape {got.shape} != {truth.shape}"
    nan = np.isnan(got)
    assert not nan.any(), f"{what}: NaN at {np.argwhere(nan)[:5].tolist()}"
    inf = np.isinf(truth)
    wrong_inf = inf & (got.astype(LD) != truth)
    assert not wrong_inf.any(), (
        f"{what}: expected {truth[wrong_inf][:3]} at {np.argwhere(wrong_inf)[:3].tolist()}, "
        f"got {got[wrong_inf][:3]}"
    )
    fin = ~inf
    unexpected = fin & np.isinf(got)
    assert not unexpected.any(), (
        f"{what}: infinite where the truth is {truth[unexpected][:3]} "
        f"(at {np.argwhere(unexpected)[:3].tolist()})"
    )
    if not fin.any():
        return
    err = as_f64(np.abs(got[fin].astype(LD) - truth[fin]))
    b = bound[fin]
    assert (b > 0).all() and not np.isnan(b).any(), f"{what}: bad bound"
    ratio = err / b
    worst = int(np.argmax(ratio))
    key = what.split("[")[0]
    WORST[key] = max(WORST.get(key, 0.0), float(ratio[worst]))
    assert ratio[worst] <= 1.0, (
        f"{what}: |got - truth| = {err[worst]:.3e} > bound {b[worst]:.3e} "
        f"(got {got[fin][worst]!r}, truth {float(truth[fin][worst])!r}, at flat index "
        f"{np.flatnonzero(fin)[worst]})"
    )


def compute_dtype(dtype):
    return np.dtype(np.float32) if np.dtype(dtype) == np.float32 else np.dtype(np.float64)


# --------------------------------------------------------------------------- error bounds


def softmax_rel(D, dtype, extra=0.0):
    """Relative error bound of each softmax entry given the exact shifted logits D (<= 0) and an
    extra uncertainty ``extra`` (per row, (m, 1)) on |d|."""
    K = D.shape[1]
    absd = np.where(np.isfinite(D), -as_f64(D), 0.0) + extra
    return 2 * (0.5 * eps_of(dtype) * (absd + math.log(K) + 6) + (K + 1) * 0.5 * EPS64)


def rowsum_bound(K, dtype):
    """|sum_j p~_j - 1|: sum_j p_j rel_j with sum_j p_j |d_j| <= ln K, the outputs' own rounding,
    K possibly underflowed entries and the float64 sum of the check itself."""
    return eps_of(dtype) * (2 * math.log(K) + 7) + (2 * K + 2) * EPS64 + K * tiny_of(dtype)


def log_bound(T, K, dtype):
    """log_softmax (T = L) and logsumexp (T = lse) error bound; T in long double."""
    absT = np.where(np.isfinite(T), np.abs(as_f64(T)), 0.0)
    e = eps_of(dtype)
    return e * (2 * absT + math.log(K) + 2) + (K + math.log(K) + absT) * EPS64 + tiny_of(dtype)


def row_loss_bound(loss, ysum, K, dtype):
    """Bound on one row's cross-entropy from its truth ``loss`` (finite) and target mass."""
    e = eps_of(dtype)
    lk = math.log(K)
    return e * (loss + (lk + 2) * ysum) + (K + 4) * EPS64 * (2 * loss + ysum * (lk + 2))


# --------------------------------------------------------------------------- truths


def rowwise_truth(Zc):
    """Long-double truth for compute-dtype logits Zc: shifted D = z - max z, P, L, lse."""
    Zl = np.asarray(Zc).astype(LD)
    zmax = Zl.max(axis=1, keepdims=True)
    D = Zl - zmax  # the shift in long double: exact to 2^-64 relative
    with np.errstate(invalid="ignore", divide="ignore", under="ignore"):
        return D, ref.softmax(D), ref.log_softmax(D), zmax[:, 0] + ref.logsumexp(D)


def target_matrix(y, K, dtype):
    """Targets as the kernel sees them: labels -> one-hot, rows cast to the compute dtype."""
    y = np.asarray(y)
    if y.ndim == 1:
        return ref.one_hot(y.astype(np.intp), K, LD)
    return y.astype(dtype).astype(LD)


def kernel_targets(y, dtype):
    """y as the kernel sees it: labels as intp, target rows cast to the compute dtype (then to
    long double, for the reference)."""
    y = np.asarray(y)
    return y.astype(np.intp) if y.ndim == 1 else y.astype(dtype).astype(LD)


def weights_truth(w, m):
    return np.ones(m, dtype=LD) if w is None else np.asarray(w).astype(np.float64).astype(LD)


def quiet(f, *args, **kwargs):
    """Call the reference with NumPy's 0 * -inf and underflow warnings silenced."""
    with np.errstate(invalid="ignore", divide="ignore", under="ignore", over="ignore"):
        return f(*args, **kwargs)


# --------------------------------------------------------------------------- strategies

SEEDS = st.integers(0, 2**32 - 1)
N_THREADS = st.sampled_from([None, 1, 2, 3])
# Decimal exponents of the finite magnitudes drawn for each dtype: from the smallest subnormal
# up to 1e300 (float64, the contract's range), half the largest float32 (differences of two
# float32 logits must not overflow: test_float32_logits_spanning_more_than_the_range), and the
# float16 range (converted to float64 by the dtype policy).
_EXP_RANGE = {
    np.dtype(np.float64): (math.log10(5e-324), 300.0),
    np.dtype(np.float32): (math.log10(1.4e-45), math.log10(float(np.finfo(np.float32).max) / 2)),
    np.dtype(np.float16): (math.log10(6e-8), math.log10(65504 / 2)),
}
_LIMIT = {dt: 10.0**hi for dt, (lo, hi) in _EXP_RANGE.items()}


def ks(kmax=2000):
    """Class counts: mostly small, K = 1 and kmax always in reach."""
    return st.one_of(st.integers(1, 6), st.sampled_from([1, 2, kmax]), st.integers(1, kmax))


@st.composite
def exponent_ranges(draw, dtype):
    """(lo, hi) decimal exponents of magnitudes: moderate, tiny, huge or spanning everything."""
    lo_d, hi_d = _EXP_RANGE[np.dtype(dtype)]
    hi = draw(st.one_of(st.sampled_from([0.0, 1.0, 2.5, hi_d]), st.floats(lo_d, hi_d)))
    lo = draw(st.one_of(st.sampled_from([hi - 1.0, hi - 3.0, lo_d]), st.floats(lo_d, hi)))
    return max(lo, lo_d), hi


def signed_magnitudes(rng, shape, lo, hi):
    mags = 10.0 ** rng.uniform(lo, hi, size=shape)
    return np.where(rng.random(shape) < 0.5, -mags, mags)


@st.composite
def logit_arrays(draw, m, K, in_dtype, masks=True):
    """(Z, mask): (m, K) logits of ``in_dtype``; ``mask`` marks the -inf entries (each row keeps
    a finite logit).  Values are drawn from a seeded numpy Generator (fast for big arrays); the
    regime (magnitudes, row offsets, zeros, exact ties, planted extremes, mask density) is drawn
    by hypothesis."""
    in_dtype = np.dtype(in_dtype)
    rng = np.random.default_rng(draw(SEEDS, label="seed"))
    if in_dtype.kind in "iu":
        bits = draw(st.sampled_from([2, 8, 31]), label="integer bits")
        Z = rng.integers(-(2**bits), 2**bits, size=(m, K)).astype(in_dtype)
        return Z, np.zeros((m, K), dtype=bool)
    lo, hi = draw(exponent_ranges(in_dtype), label="exponents")
    Z = signed_magnitudes(rng, (m, K), lo, hi)
    if draw(st.booleans(), label="row offsets"):
        # Rows clustered around an offset: large |z| with small differences (or exact ties).
        olo, ohi = draw(exponent_ranges(in_dtype), label="offset exponents")
        Z = Z + signed_magnitudes(rng, (m, 1), olo, ohi)
    Z[rng.random((m, K)) < draw(st.sampled_from([0.0, 0.0, 0.2, 0.9]), label="zeros")] = 0.0
    ties = draw(st.sampled_from([0.0, 0.0, 0.3, 1.0]), label="ties with the row max")
    if ties:
        Z = np.where(rng.random((m, K)) < ties, Z.max(axis=1, keepdims=True), Z)
    limit = _LIMIT[in_dtype]
    tiny = float(np.finfo(in_dtype).smallest_subnormal)
    extremes = [0.0, -0.0, tiny, -tiny, 1.0, limit, -limit, -limit / 3]
    for i, k, v in draw(
        st.lists(
            st.tuples(st.integers(0, m - 1), st.integers(0, K - 1), st.sampled_from(extremes)),
            max_size=4,
        ),
        label="planted extremes",
    ):
        Z[i, k] = v
    Z = np.clip(Z, -limit, limit).astype(in_dtype)
    density = (
        draw(st.sampled_from([0.0, 0.0, 0.1, 0.5, 0.95]), label="mask density") if masks else 0
    )
    mask = rng.random((m, K)) < density
    mask[np.arange(m), rng.integers(0, K, size=m)] = False  # every row keeps a finite logit
    Z[mask] = -np.inf
    return Z, mask


@st.composite
def targets(draw, rng, mask, dtype, hit_masked):
    """Labels (various integer dtypes), one-hot or soft rows (compute dtype or float64) for
    logits with -inf mask ``mask``; unless ``hit_masked``, no target mass on a masked class."""
    m, K = mask.shape
    allowed = np.ones_like(mask) if hit_masked else ~mask
    yform = draw(st.sampled_from(["labels", "onehot", "soft"]), label="y form")
    if yform in ("labels", "onehot"):
        # A random allowed class per row.
        keys = np.where(allowed, rng.random((m, K)), -1.0)
        labels = np.argmax(keys, axis=1)
        if yform == "labels":
            ldt = [np.int64, np.int32, np.intp, np.uint16] + (
                [np.uint8, np.int8] if K < 127 else []
            )
            return labels.astype(draw(st.sampled_from(ldt), label="label dtype"))
        Y = np.zeros((m, K))
        Y[np.arange(m), labels] = 1.0
    else:
        conc = draw(st.sampled_from([0.02, 0.5, 5.0]), label="dirichlet concentration")
        Y = rng.gamma(conc, size=(m, K)) * allowed
        Y[Y.sum(axis=1) == 0, :] = allowed[Y.sum(axis=1) == 0, :]  # all-zero rows (underflow)
        Y /= Y.sum(axis=1, keepdims=True)
    ydt = draw(st.sampled_from([dtype, np.float64]), label="y dtype")
    return Y.astype(ydt)


@st.composite
def sample_weights(draw, rng, m):
    """None, or positive weights over a range of scales with some exact zeros (sum > 0)."""
    if not draw(st.booleans(), label="weighted"):
        return None
    scale = 10.0 ** draw(st.sampled_from([0.0, -30.0, -3.0, 0.0]), label="weight scale")
    w = rng.uniform(0.1, 3.0, size=m) * scale
    if m > 1 and draw(st.booleans(), label="zero weights"):
        w[rng.random(m) < 0.3] = 0.0
        w[rng.integers(m)] = scale
    return w


def drawn_layout(data, a, what):
    return make_layout(a, data.draw(st.sampled_from(LAYOUTS), label=f"{what} layout"))


# --------------------------------------------------------------------------- softmax family


@examples(60)
@given(data=st.data())
def test_rowwise_kernels_against_reference(data):
    draw = data.draw
    in_dtype = draw(
        st.sampled_from([np.float64, np.float32] * 3 + [np.float16, np.int32]), label="dtype"
    )
    dtype = compute_dtype(in_dtype)
    K = draw(ks(), label="K")
    m = draw(st.one_of(st.integers(1, 8), st.integers(1, min(5000, 200_000 // K))), label="m")
    Z0, mask = draw(logit_arrays(m, K, in_dtype))
    Z = drawn_layout(data, Z0, "Z")
    nt = draw(N_THREADS, label="n_threads")
    out_mode = draw(st.sampled_from([None, None, "out", "in place"]), label="out")
    D, P, L, lse = rowwise_truth(Z0.astype(dtype))
    snap = Snapshot(Z=Z)

    def call(name):
        if out_mode is None:
            return getattr(sf, name)(Z, n_threads=nt)
        if out_mode == "out" or Z.dtype != dtype or not Z.flags.writeable:
            out = np.full((m, K), np.nan, dtype=dtype, order=draw(st.sampled_from("CF")))
            assert getattr(sf, name)(Z, out=out, n_threads=nt) is out
            return out
        Zw = Z.copy(order="K")  # in place on a writable array of the compute dtype
        assert getattr(sf, name)(Zw, out=Zw, n_threads=nt) is Zw
        return Zw

    # softmax: in [0, 1], exactly 0 on -inf logits, rows sum to 1, entries within the bound.
    got = call("softmax")
    assert got.dtype == dtype and got.shape == (m, K)
    assert np.all((got >= 0) & (got <= 1)), "softmax outside [0, 1]"
    assert np.all(got[mask] == 0), "softmax of a -inf logit is not exactly 0"
    rowsum = got.sum(axis=1, dtype=np.float64)
    check_within(rowsum, np.ones(m, LD), rowsum_bound(K, dtype), "softmax row sums")
    rel = softmax_rel(D, dtype)
    check_within(got, P, rel * as_f64(P) + tiny_of(dtype), "softmax")

    # log_softmax: <= 0, -inf exactly on -inf logits, finite elsewhere, within the bound.
    got = call("log_softmax")
    assert got.dtype == dtype and got.shape == (m, K)
    assert np.all(got <= 0), "log_softmax > 0"
    assert np.all(got[mask] == -np.inf) and np.isfinite(got[~mask]).all()
    check_within(got, L, log_bound(L, K, dtype), "log_softmax")

    # logsumexp: finite, >= the row max (exactly), within the bound.
    got = sf.logsumexp(Z, n_threads=nt)
    assert got.dtype == dtype and got.shape == (m,)
    assert np.isfinite(got).all()
    assert np.all(got >= Z0.astype(dtype).max(axis=1)), "logsumexp < row max"
    check_within(got, lse, log_bound(lse, K, dtype), "logsumexp")
    snap.assert_unchanged()


# --------------------------------------------------------------------------- cross-entropy


def cross_entropy_truth(Z0, y, w, dtype):
    """Per-row losses, their bounds and the weights, all from the long-double truth."""
    m, K = Z0.shape
    D, P, L, _ = rowwise_truth(Z0.astype(dtype))
    Y = target_matrix(y, K, dtype)
    losses = quiet(ref.cross_entropy, D, kernel_targets(y, dtype), reduction="none")
    ysum = as_f64(Y.sum(axis=1))
    lb = row_loss_bound(np.where(np.isfinite(losses), as_f64(losses), 0.0), ysum, K, dtype)
    return D, P, Y, losses, lb, weights_truth(w, m)


@examples(60)
@given(data=st.data())
def test_cross_entropy_and_grad_against_reference(data):
    draw = data.draw
    dtype = np.dtype(draw(st.sampled_from(FLOATS), label="dtype"))
    K = draw(ks(), label="K")
    m = draw(st.one_of(st.integers(1, 8), st.integers(1, min(2000, 100_000 // K))), label="m")
    Z0, mask = draw(logit_arrays(m, K, dtype))
    rng = np.random.default_rng(draw(SEEDS, label="target seed"))
    hit_masked = mask.any() and draw(st.booleans(), label="targets on -inf logits")
    y0 = draw(targets(rng, mask, dtype, hit_masked))
    w0 = draw(sample_weights(rng, m))
    D, P, Y, losses, lb, wl = cross_entropy_truth(Z0, y0, w0, dtype)
    infinite = np.isinf(losses)
    # A row of weight 0 counts 0 even when its loss is +inf (not 0 * inf = NaN).
    note(f"rows with an infinite loss: {np.flatnonzero(infinite)[:10].tolist()}")
    Z = drawn_layout(data, Z0, "Z")
    y = drawn_layout(data, y0, "y")
    w = None if w0 is None else drawn_layout(data, w0, "sample_weight")
    nt = draw(N_THREADS, label="n_threads")
    kw = {} if w is None else {"sample_weight": w}
    snap = Snapshot(Z=Z, y=y, w=w)

    wf = as_f64(wl)
    lf = np.where(infinite, 0.0, as_f64(losses))
    yk = kernel_targets(y0, dtype)
    # Row losses: w_i l_i, the products rounded in float64 (+ u64 w l; tiny: underflow).
    none_truth = quiet(ref.cross_entropy, D, yk, sample_weight=wl, reduction="none")
    none_bound = wf * (lb + EPS64 * lf) + tiny_of(np.float64)
    # The sum of m terms >= 0 in float64 (chunk sums added in order): (m + 1) u64 relative.
    wsum = float(as_f64(wl.sum()))
    sum_truth = none_truth.sum()
    sum_bound = float(np.sum(wf * lb) + (m + 2) * EPS64 * np.sum(wf * lf)) + tiny_of(np.float64)
    mean_truth = sum_truth / wl.sum()
    mean_bound = sum_bound / wsum + (m + 2) * EPS64 * float(as_f64(np.abs(mean_truth)))
    if np.isinf(sum_truth):
        mean_bound = 1.0  # unused: the infinity must be matched exactly

    got = sf.cross_entropy(Z, y, reduction="none", n_threads=nt, **kw)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64 and got.shape == (m,)
    assert np.all(got >= 0), "negative row loss"
    # +inf exactly on the rows (of positive weight) with target mass on a -inf logit.
    expected_inf = (np.asarray(Y > 0) & mask).any(axis=1) & (wf > 0)
    assert np.array_equal(np.isinf(got), expected_inf), "wrong rows with an infinite loss"
    check_within(got, none_truth, none_bound, "cross_entropy[none]")
    for reduction, truth, bound in (
        ("sum", sum_truth, sum_bound),
        ("mean", mean_truth, mean_bound),
    ):
        got = sf.cross_entropy(Z, y, reduction=reduction, n_threads=nt, **kw)
        assert isinstance(got, float) and got >= 0, reduction
        check_within(got, truth, bound, f"cross_entropy[{reduction}]")
    got = sf.cross_entropy(Z, y, n_threads=nt, **kw)  # the default reduction is the mean
    check_within(got, mean_truth, mean_bound, "cross_entropy[default]")

    loss, dZ = sf.cross_entropy_grad(Z, y, n_threads=nt, **kw)
    assert isinstance(loss, float)
    check_within(loss, mean_truth, mean_bound, "cross_entropy_grad loss")
    assert isinstance(dZ, np.ndarray) and dZ.dtype == dtype and dZ.shape == (m, K)
    assert np.isfinite(dZ).all(), "dZ not finite"
    # dZ = (p - y) s_i with s_i = w_i / sum(w): the softmax bound scaled by s_i, plus rounding
    # of the difference, of the scale and of the product (3 eps |g|, safety 2 included), and
    # the float64 sum of the m weights in s_i (< m u64 relative in any summation order).
    _, G = quiet(ref.cross_entropy_grad, D, yk, sample_weight=wl)
    sf64 = as_f64(wl / wl.sum())[:, None]
    e = eps_of(dtype)
    bound = sf64 * (softmax_rel(D, dtype) * as_f64(P) + tiny_of(dtype))
    bound = bound + (3 * e + m * EPS64) * np.abs(as_f64(G)) + tiny_of(dtype)
    check_within(dZ, G, bound, "cross_entropy_grad dZ")
    snap.assert_unchanged()


# --------------------------------------------------------------------------- linear model


@st.composite
def linear_problems(draw, max_mkn=300_000, max_m=400, max_n=40, intercept=None):
    """(X, W, b, dtype, rng) of a softmax-regression problem whose logits stay finite: X and W
    are scaled so that sum_k |x_ik w_jk| + |b_j| <= ~1e300 (float64) / ~1e37 (float32); the
    Generator drew them and can draw the targets."""
    dtype = np.dtype(draw(st.sampled_from(FLOATS), label="dtype"))
    K = draw(ks(), label="K")
    n = draw(st.one_of(st.integers(0, 4), st.integers(1, max_n)), label="n")
    m_hi = max(1, min(max_m, max_mkn // max(1, K * max(n, 1))))
    m = draw(st.one_of(st.integers(1, 8), st.integers(1, m_hi)), label="m")
    rng = np.random.default_rng(draw(SEEDS, label="seed"))
    lo_d, hi_d = _EXP_RANGE[dtype]
    lo_d = max(lo_d, -300.0)
    top = 300.0 if dtype == np.float64 else 37.0
    room = top - math.log10(n + 2)
    # Decimal scales of X and W with sx + sw <= room, and spreads below them (subnormals too).
    moderate = st.sampled_from([0.0, 0.0, -1.0, 1.0])
    sx = draw(st.one_of(moderate, st.floats(lo_d, min(hi_d, room - lo_d))), label="X scale")
    sw = draw(st.one_of(moderate, st.floats(lo_d, min(hi_d, room - sx))), label="W scale")
    sw = min(sw, hi_d, room - sx)
    spread = st.sampled_from([0.0, 1.0, 1.0, 10.0, 400.0])
    X = signed_magnitudes(rng, (m, n), sx - draw(spread, label="X spread"), sx)
    W = signed_magnitudes(rng, (K, n), sw - draw(spread, label="W spread"), sw)
    with_b = draw(st.booleans(), label="intercept") if intercept is None else intercept
    b = None
    if with_b:
        sb = draw(st.one_of(moderate, st.floats(lo_d, top - 1)), label="b scale")
        b = signed_magnitudes(rng, K, sb - draw(spread, label="b spread"), sb)
    X, W = X.astype(dtype), W.astype(dtype)
    b = None if b is None else b.astype(dtype)
    return X, W, b, dtype, rng


def linear_truth(X, W, b, dtype):
    """Long-double logits Z, shifted D, P, L and the per-row logit error bound delta (m, 1)."""
    Xl = X.astype(LD)
    Wl = W.astype(LD)
    Z = Xl @ Wl.T
    C = np.abs(Xl) @ np.abs(Wl).T
    if b is not None:
        Z = Z + b.astype(LD)
        C = C + np.abs(b.astype(LD))
    n = X.shape[1]
    delta = (n + 2) * eps_of(dtype) * as_f64(C) + (n + 2) * tiny_of(dtype)
    delta = delta.max(axis=1, keepdims=True)
    D, P, L, _ = rowwise_truth(Z)
    return Z, D, P, L, delta


def perturbed_softmax_bound(D, P, delta, dtype):
    """|p~ - p| when the kernel works on logits off by <= delta (each): a factor within
    exp(+-2 delta) on p, then the softmax rounding bound; never more than 1.

    Evaluated in long double, where p (down to ~1e-4950) times exp(2 delta) (capped at
    exp(11000) ~ 1e4777, beyond which the bound is 1 anyway) neither underflows nor overflows
    into 0 * inf."""
    two_delta = 2 * delta
    amp = np.expm1(np.minimum(two_delta, 11000.0).astype(LD))
    rel = softmax_rel(D, dtype, extra=two_delta)
    with np.errstate(over="ignore", under="ignore"):
        b = as_f64(np.minimum(P * amp + P * (1 + amp) * rel, 1))
    return np.where(two_delta >= 11000.0, 1.0, b) + tiny_of(dtype)


@examples(50)
@given(data=st.data())
def test_loss_and_grad_against_reference(data):
    draw = data.draw
    X0, W0, b0, dtype, rng = draw(linear_problems())
    m, n = X0.shape
    K = W0.shape[0]
    y0 = draw(targets(rng, np.zeros((m, K), dtype=bool), dtype, False))
    w0 = draw(sample_weights(rng, m))
    alpha = draw(st.sampled_from([0.0, 0.0, 0.5, 1e-3, 7.0]), label="alpha")
    if np.abs(W0.astype(np.float64)).max(initial=0) > 1e150:
        alpha = 0.0  # alpha/2 ||W||^2 would overflow float64
    X, W = drawn_layout(data, X0, "X"), drawn_layout(data, W0, "W")
    b = None if b0 is None else drawn_layout(data, b0, "b")
    y = drawn_layout(data, y0, "y")
    w = None if w0 is None else drawn_layout(data, w0, "sample_weight")
    nt = draw(N_THREADS, label="n_threads")
    snap = Snapshot(X=X, W=W, b=b, y=y, w=w)
    loss, dW, db = sf.loss_and_grad(X, y, W, b, alpha=alpha, sample_weight=w, n_threads=nt)
    snap.assert_unchanged()

    Z, D, P, L, delta = linear_truth(X0, W0, b0, dtype)
    Y = target_matrix(y0, K, dtype)
    yk = kernel_targets(y0, dtype)
    losses = quiet(ref.cross_entropy, Z, yk, reduction="none")
    wl = weights_truth(w0, m)
    loss_truth, dW_truth, db_truth = quiet(
        ref.loss_and_grad,
        X0.astype(LD),
        yk,
        W0.astype(LD),
        None if b0 is None else b0.astype(LD),
        alpha=alpha,
        sample_weight=wl,
    )
    s = wl / wl.sum()
    e = eps_of(dtype)
    ysum = as_f64(Y.sum(axis=1))
    lf = as_f64(losses)
    # Loss: each row's logits off by <= delta_i moves its loss by <= delta_i (1 + sum y), then
    # the row-loss rounding bound at the perturbed loss; the weighted mean in float64; the
    # penalty alpha/2 ||W||^2 as a float64 dot product of K n terms.
    d1 = delta[:, 0] * (1 + ysum)
    row_b = d1 + row_loss_bound(lf + d1, ysum, K, dtype)
    W64 = W0.astype(np.float64)
    penalty = 0.5 * alpha * float(np.sum(W64**2)) if alpha else 0.0
    sf64 = as_f64(s)
    loss_bound = float(np.sum(sf64 * row_b) + (2 * m + 2) * EPS64 * np.sum(sf64 * lf))
    loss_bound += (K * n + 2) * EPS64 * penalty + tiny_of(np.float64)
    assert isinstance(loss, float) and loss >= 0
    check_within(loss, loss_truth, loss_bound, "loss_and_grad loss")

    # G = (P - Y) s_i off by s_i |p~ - p| and the rounding of difference and scale (3 eps),
    # and of the sum of the weights in s_i (m u64).
    G = (P - Y) * s[:, None]
    Gf = as_f64(G)
    dG = sf64[:, None] * perturbed_softmax_bound(D, P, delta, dtype) * (1 + 3 * e)
    dG = dG + (3 * e + m * EPS64) * np.abs(Gf) + tiny_of(dtype)
    absX = np.abs(X0.astype(np.float64))
    with np.errstate(over="ignore"):
        dW_bound = dG.T @ absX + (m + 2) * e * ((np.abs(Gf) + dG).T @ absX)
    dW_bound = dW_bound + e * np.abs(as_f64(dW_truth)) + 2 * e * alpha * np.abs(W64)
    dW_bound = dW_bound + (m + 2) * tiny_of(dtype)
    assert isinstance(dW, np.ndarray) and dW.dtype == dtype and dW.shape == (K, n)
    assert np.isfinite(dW).all()
    check_within(dW, dW_truth, dW_bound, "loss_and_grad dW")
    if b0 is None:
        assert db is None
    else:
        assert isinstance(db, np.ndarray) and db.dtype == dtype and db.shape == (K,)
        db_bound = dG.sum(axis=0) + (m + 2) * EPS64 * np.abs(Gf).sum(axis=0)
        db_bound = db_bound + e * np.abs(as_f64(db_truth)) + tiny_of(dtype)
        check_within(db, db_truth, db_bound, "loss_and_grad db")


@examples(50)
@given(data=st.data())
def test_predict_proba_and_predict_against_reference(data):
    draw = data.draw
    X0, W0, b0, dtype, _ = draw(linear_problems(max_m=2000))
    m, K = X0.shape[0], W0.shape[0]
    X, W = drawn_layout(data, X0, "X"), drawn_layout(data, W0, "W")
    b = None if b0 is None else drawn_layout(data, b0, "b")
    nt = draw(N_THREADS, label="n_threads")
    snap = Snapshot(X=X, W=W, b=b)
    proba = sf.predict_proba(X, W, b, n_threads=nt)
    pred = sf.predict(X, W, b, n_threads=nt)
    snap.assert_unchanged()

    Z, D, P, _, delta = linear_truth(X0, W0, b0, dtype)
    assert proba.dtype == dtype and proba.shape == (m, K)
    assert np.all((proba >= 0) & (proba <= 1))
    rowsum = proba.sum(axis=1, dtype=np.float64)
    check_within(rowsum, np.ones(m, LD), rowsum_bound(K, dtype), "predict_proba row sums")
    check_within(proba, P, perturbed_softmax_bound(D, P, delta, dtype), "predict_proba")

    assert pred.dtype == np.intp and pred.shape == (m,)
    assert np.all((pred >= 0) & (pred < K))
    # The predicted class's true logit is within the logits' rounding of the true maximum...
    rows = np.arange(m)
    gap = as_f64(Z.max(axis=1) - Z[rows, pred])
    assert np.all(gap <= 2 * delta[:, 0]), "predict is not an argmax of the logits"
    # ... and it is a most probable class of predict_proba (both see the same logits, and exp
    # and the scaling by 1/s are monotonic); where that maximum is unique it is the class.
    top = proba.max(axis=1)
    assert np.all(proba[rows, pred] == top), "predict is not the argmax of predict_proba"
    unique = (proba == top[:, None]).sum(axis=1) == 1
    assert np.array_equal(pred[unique], np.argmax(proba[unique], axis=1))


@examples(40)
@given(data=st.data())
def test_predict_ties_go_to_the_lowest_index(data):
    """Small-integer problems: every logit is exact in any summation order, so ties are exact
    and the contract pins the answer: the lowest index among the maximal logits."""
    draw = data.draw
    dtype = draw(st.sampled_from(FLOATS), label="dtype")
    K = draw(st.one_of(st.integers(1, 6), st.integers(1, 70)), label="K")
    n = draw(st.integers(0, 12), label="n")
    m = draw(st.integers(1, 300), label="m")
    rng = np.random.default_rng(draw(SEEDS, label="seed"))
    r = draw(st.sampled_from([1, 2, 3]), label="value range")
    X = rng.integers(-r, r + 1, size=(m, n)).astype(dtype)
    W = rng.integers(-r, r + 1, size=(K, n)).astype(dtype)
    b = rng.integers(-r, r + 1, size=K).astype(dtype) if draw(st.booleans()) else None
    Zx = X.astype(np.int64) @ W.astype(np.int64).T + (0 if b is None else b.astype(np.int64))
    X, W = drawn_layout(data, X, "X"), drawn_layout(data, W, "W")
    b = None if b is None else drawn_layout(data, b, "b")
    nt = draw(N_THREADS, label="n_threads")
    expected = np.argmax(Zx, axis=1)  # numpy: first occurrence of the maximum
    np.testing.assert_array_equal(sf.predict(X, W, b, n_threads=nt), expected)
    proba = sf.predict_proba(X, W, b, n_threads=nt)
    np.testing.assert_array_equal(np.argmax(proba, axis=1), expected)


# --------------------------------------------------------------------------- finite differences


def central_differences(f, x, h):
    """Central differences of the scalar f() in every finite entry of x (in place, restored),
    dividing by the step actually taken ((x + h) - (x - h) in floating point)."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        if not np.isfinite(old):
            continue
        x[idx] = old + h
        up, fp = x[idx], f()
        x[idx] = old - h
        down, fm = x[idx], f()
        x[idx] = old
        g[idx] = (fp - fm) / (up - down)
    return g


def assert_fd(analytic, fd, f0, what):
    # Truncation h^2/6 |f'''| ~ 1e-12 (moderate logits, |x| <= ~10) and rounding noise
    # ~ eps |f| / h ~ 1e-10 |f| are far below this; a wrong gradient is off by O(|g|).
    tol = 1e-7 * (1 + abs(f0)) + 1e-6 * np.max(np.abs(fd), initial=0.0)
    err = np.max(np.abs(analytic - fd), initial=0.0)
    assert err <= tol, f"{what}: max |analytic - finite difference| = {err:.3e} > {tol:.3e}"


@examples(60)
@given(data=st.data())
def test_cross_entropy_grad_matches_finite_differences(data):
    draw = data.draw
    m = draw(st.integers(1, 6), label="m")
    K = draw(st.integers(1, 6), label="K")
    rng = np.random.default_rng(draw(SEEDS, label="seed"))
    scale = draw(st.sampled_from([0.1, 1.0, 5.0]), label="logit scale")
    Z = scale * rng.standard_normal((m, K)) + rng.uniform(-20, 20, size=(m, 1))
    mask = rng.random((m, K)) < draw(st.sampled_from([0.0, 0.3]), label="mask density")
    mask[np.arange(m), rng.integers(0, K, size=m)] = False
    Z[mask] = -np.inf
    y = draw(targets(rng, mask, np.float64, False))
    w = draw(sample_weights(rng, m))
    kw = {"n_threads": 1} if w is None else {"sample_weight": w, "n_threads": 1}
    loss, dZ = sf.cross_entropy_grad(Z, y, **kw)
    assert np.all(dZ[mask] == 0)
    fd = central_differences(lambda: sf.cross_entropy(Z, y, **kw), Z, 1e-6)
    assert_fd(dZ, fd, loss, "dZ")


@examples(60)
@given(data=st.data())
def test_loss_and_grad_matches_finite_differences(data):
    draw = data.draw
    m = draw(st.integers(1, 8), label="m")
    K = draw(st.integers(1, 5), label="K")
    n = draw(st.integers(0, 4), label="n")
    rng = np.random.default_rng(draw(SEEDS, label="seed"))
    sx = draw(st.sampled_from([0.3, 1.0, 3.0]), label="X scale")
    X = sx * rng.standard_normal((m, n))
    W = rng.standard_normal((K, n)) * (2.0 / math.sqrt(max(n, 1)))
    b = rng.standard_normal(K) if draw(st.booleans(), label="intercept") else None
    y = draw(targets(rng, np.zeros((m, K), dtype=bool), np.float64, False))
    w = draw(sample_weights(rng, m))
    alpha = draw(st.sampled_from([0.0, 0.0, 0.3, 2.0]), label="alpha")

    def f():
        return sf.loss_and_grad(X, y, W, b, alpha=alpha, sample_weight=w, n_threads=1)[0]

    loss, dW, db = sf.loss_and_grad(X, y, W, b, alpha=alpha, sample_weight=w, n_threads=1)
    assert_fd(dW, central_differences(f, W, 1e-6), loss, "dW")
    if b is not None:
        assert_fd(db, central_differences(f, b, 1e-6), loss, "db")


# --------------------------------------------------------------------------- float32 extremes
# (log_softmax of such logits is -inf: the true value is beyond the float32 range, correctly)


def _float32_overflow_cases():
    Z = np.array([[3e38, -3e38, 0.0]], dtype=np.float32)
    y = np.array([1])
    X = np.ones((1, 1), dtype=np.float32)
    W = np.array([[2e38], [-2e38]], dtype=np.float32)  # logits 2e38 and -2e38
    return {
        "cross_entropy": (lambda: sf.cross_entropy(Z, y), ref.cross_entropy(as_f64(Z), y)),
        "cross_entropy_grad": (
            lambda: sf.cross_entropy_grad(Z, y)[0],
            ref.cross_entropy(as_f64(Z), y),
        ),
        "loss_and_grad": (
            lambda: sf.loss_and_grad(X, y, W)[0],
            ref.loss_and_grad(as_f64(X), y, as_f64(W))[0],
        ),
    }


# Finite float32 logits further apart than the float32 range have a finite loss: z - max must not
# overflow to -inf in float32 (the kernels form the loss's shifted logits in float64).
@pytest.mark.parametrize("kernel", ["cross_entropy", "cross_entropy_grad", "loss_and_grad"])
def test_float32_logits_spanning_more_than_the_range(kernel):
    # The logits are finite float32 numbers; the loss, a float64, is finite (4e38 and 6e38).
    call, truth = _float32_overflow_cases()[kernel]
    assert np.isfinite(truth)
    assert call() == pytest.approx(truth, rel=1e-6)

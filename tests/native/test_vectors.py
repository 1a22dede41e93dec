"""softmax_fast._native.vectors: the L-BFGS history passes, the trial point, the penalized
gradient and the tiled transpose, against NumPy on the same values; float32 and float64
histories, 1-3 threads, lengths around the block size; bit-identical repeats; every bad shape a
ValueError.

The sums are float64 sums of n products of float64 values (float32 rows are exact in float64):
each is within n eps sum|u_i v_i| of the exact sum (Higham's bound for any summation order), and
so is NumPy's, which gives the tolerances below (2 n eps sum|u_i v_i|, both errors together).
"""

import numpy as np
import pytest

from softmax_fast._native import vectors

EPS = float(np.finfo(np.float64).eps)
BLOCK = vectors.HISTORY_BLOCK
LENGTHS = [1, 17, BLOCK - 1, BLOCK, 3 * BLOCK + 5]
DTYPES = [np.float32, np.float64]


def _history(rng, n_rows, n, dtype):
    """A history of n_rows random rows in the blocked layout, and the same rows as (R, n)."""
    rows = rng.standard_normal((n_rows, n)).astype(dtype)
    Z = np.full(vectors.history_shape(n_rows, n), np.nan, dtype=dtype)  # padding never read
    flat = Z.transpose(1, 0, 2).reshape(n_rows, -1)
    flat[:, :n] = rows
    Z[...] = flat.reshape(n_rows, Z.shape[0], BLOCK).transpose(1, 0, 2)
    np.testing.assert_array_equal(vectors.history_rows(Z, n), rows)
    return Z, rows.astype(np.float64)


def _dot_bound(u, v):
    return 2 * u.size * EPS * float(np.abs(u * v).sum()) + 1e-300


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_history_dots_against_numpy(dtype, n, n_threads, rng):
    Z, rows64 = _history(rng, 6, n, dtype)
    g = rng.standard_normal(n)
    rows = np.array([4, 0, 5, 2], dtype=np.intp)
    out_g, out_y = np.full(4, np.nan), np.full(4, np.nan)
    vectors.history_dots(Z, rows, g, 3, out_g, out_y, n_threads)
    for r, row in enumerate(rows):
        assert abs(out_g[r] - rows64[row] @ g) <= _dot_bound(rows64[row], g)
        y = rows64[3]
        assert abs(out_y[r] - rows64[row] @ y) <= _dot_bound(rows64[row], y)
    again_g, again_y = np.empty(4), np.empty(4)
    vectors.history_dots(Z, rows, g, 3, again_g, again_y, n_threads)
    np.testing.assert_array_equal(again_g, out_g)
    np.testing.assert_array_equal(again_y, out_y)
    # without y_row, out_y is left alone
    untouched = np.full(4, 7.0)
    vectors.history_dots(Z, rows, g, -1, again_g, untouched, n_threads)
    np.testing.assert_array_equal(again_g, out_g)
    assert (untouched == 7.0).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_history_combine_against_numpy(dtype, n, n_threads, rng):
    Z, rows64 = _history(rng, 5, n, dtype)
    g = rng.standard_normal(n)
    rows = np.array([1, 4, 3], dtype=np.intp)
    coef = rng.standard_normal(3)
    d = np.full(n, np.nan)
    gd = vectors.history_combine(Z, rows, coef, 0.75, g, d, n_threads)
    terms = np.vstack([0.75 * g, coef[:, None] * rows64[rows]])
    expected = -terms.sum(axis=0)
    # each element a sum of 4 products: within 8 eps of the sum of their magnitudes
    assert (np.abs(d - expected) <= 8 * EPS * np.abs(terms).sum(axis=0)).all()
    assert abs(gd - g @ d) <= _dot_bound(g, d)
    d2 = np.empty(n)
    assert vectors.history_combine(Z, rows, coef, 0.75, g, d2, n_threads) == gd
    np.testing.assert_array_equal(d2, d)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_history_store_pair_rounds_stores_and_sums_the_stored_values(dtype, n, n_threads, rng):
    Z, rows64 = _history(rng, 4, n, dtype)
    d, g_new, g = rng.standard_normal((3, n))
    g_before = g.copy()
    sy, yy, g_max = vectors.history_store_pair(Z, 2, 1, d, 0.3, g_new, g, n_threads)
    s = (0.3 * d).astype(dtype)
    y = (g_new - g_before).astype(dtype)
    stored = vectors.history_rows(Z, n)
    np.testing.assert_array_equal(stored[2], s)
    np.testing.assert_array_equal(stored[1], y)
    np.testing.assert_array_equal(stored[[0, 3]], rows64[[0, 3]].astype(dtype))  # others kept
    np.testing.assert_array_equal(g, g_new)
    s64, y64 = s.astype(np.float64), y.astype(np.float64)
    assert abs(sy - s64 @ y64) <= _dot_bound(s64, y64)
    assert abs(yy - y64 @ y64) <= _dot_bound(y64, y64)
    assert g_max == np.abs(g_new).max()


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_axpy_to_and_penalized_gradient_against_numpy(n, n_threads, rng):
    x, d, w, dw = rng.standard_normal((4, n))
    xt = np.full(n, np.nan)
    vectors.axpy_to(x, d, -0.4, xt, n_threads)
    # one or two roundings (a fused multiply-add where the compiled version has one)
    assert (np.abs(xt - (x + -0.4 * d)) <= 2 * EPS * (np.abs(x) + np.abs(0.4 * d))).all()
    out = np.full(n, np.nan)
    ww = vectors.penalized_gradient(w, dw, 0.25, out, n_threads)
    assert (np.abs(out - (dw + 0.25 * w)) <= 2 * EPS * (np.abs(dw) + np.abs(0.25 * w))).all()
    assert abs(ww - w @ w) <= _dot_bound(w, w)
    out2 = np.empty(n)
    assert vectors.penalized_gradient(w, dw, 0.25, out2, n_threads) == ww
    np.testing.assert_array_equal(out2, out)
    # alpha = 0: the data term exactly, and ||w||^2 still
    assert vectors.penalized_gradient(w, dw, 0.0, out2, n_threads) == ww
    np.testing.assert_array_equal(out2, dw)
    # in place (out is dw itself): the same values
    in_place = dw.copy()
    assert vectors.penalized_gradient(w, in_place, 0.25, in_place, n_threads) == ww
    np.testing.assert_array_equal(in_place, out)


def test_threads_split_whole_blocks_and_give_the_same_values_as_one(rng):
    """Results depend on the thread count only through the order of the block sums: within the
    rounding bound of each other, and each count bit-identical on repeats (above)."""
    n = 8 * BLOCK + 3
    Z, rows64 = _history(rng, 3, n, np.float32)
    g = rng.standard_normal(n)
    rows = np.arange(3, dtype=np.intp)
    results = []
    for n_threads in (1, 2, 4):
        out_g, out_y = np.empty(3), np.empty(3)
        vectors.history_dots(Z, rows, g, 0, out_g, out_y, n_threads)
        results.append(out_g)
    # each within n eps sum|z_i g_i| of the exact sum, so within twice that of each other
    bound = [_dot_bound(rows64[r], g) for r in range(3)]
    for other in results[1:]:
        assert (np.abs(other - results[0]) <= bound).all()


def _bad_calls(rng):
    n = 50
    Z = np.zeros(vectors.history_shape(4, n), dtype=np.float32)
    g, d = np.zeros(n), np.zeros(n)
    buf = np.zeros(n)
    rows = np.array([0, 1], dtype=np.intp)
    two = np.zeros(2)
    return [
        (
            "rows: index 4",
            lambda: vectors.history_dots(Z, np.array([4], np.intp), g, -1, two[:1], two[:1]),
        ),
        (
            "rows: index -1",
            lambda: vectors.history_dots(Z, np.array([-1], np.intp), g, -1, two[:1], two[:1]),
        ),
        ("row index 4", lambda: vectors.history_dots(Z, rows, g, 4, two, two)),
        ("Z: shape", lambda: vectors.history_dots(Z, rows, np.zeros(n + BLOCK), -1, two, two)),
        ("out_g: length", lambda: vectors.history_dots(Z, rows, g, -1, np.zeros(3), two)),
        ("n_threads", lambda: vectors.history_dots(Z, rows, g, -1, two, two, 0)),
        ("coef: length", lambda: vectors.history_combine(Z, rows, np.zeros(3), 1.0, g, d)),
        ("d: length", lambda: vectors.history_combine(Z, rows, two, 1.0, g, np.zeros(n - 1))),
        ("d: must not share", lambda: vectors.history_combine(Z, rows, two, 1.0, g, g)),
        ("s_row, y_row", lambda: vectors.history_store_pair(Z, 1, 1, d, 1.0, g, d.copy())),
        ("index 9", lambda: vectors.history_store_pair(Z, 0, 9, d, 1.0, g, d.copy())),
        ("g: must not share", lambda: vectors.history_store_pair(Z, 0, 1, d, 1.0, g, g)),
        ("g_new: length", lambda: vectors.history_store_pair(Z, 0, 1, d, 1.0, g[:-1], d.copy())),
        ("xt: must not share", lambda: vectors.axpy_to(g, d, 1.0, d)),
        ("xt: length", lambda: vectors.axpy_to(g, d, 1.0, np.zeros(n + 1))),
        ("out: must not share", lambda: vectors.penalized_gradient(g, d, 1.0, g)),
        # out overlapping dw without being dw itself (in place is allowed, a shift is not)
        ("out: must not share", lambda: vectors.penalized_gradient(g[1:], buf[:-1], 1.0, buf[1:])),
        ("dw: length", lambda: vectors.penalized_gradient(g, d[:-1], 1.0, np.zeros(n))),
    ]


@pytest.mark.parametrize("index", range(18))
def test_bad_shapes_and_indices_are_value_errors(index, rng):
    match, call = _bad_calls(rng)[index]
    with pytest.raises(ValueError, match=match.replace("(", r"\(")):
        call()


def test_wrong_dtypes_are_type_or_value_errors():
    n = 10
    Z = np.zeros(vectors.history_shape(2, n), dtype=np.float16)
    with pytest.raises((TypeError, ValueError)):
        vectors.history_dots(Z, np.zeros(1, np.intp), np.zeros(n), -1, np.zeros(1), np.zeros(1))
    Z = np.zeros(vectors.history_shape(2, n), dtype=np.float32)
    with pytest.raises((TypeError, ValueError)):
        vectors.history_dots(
            Z, np.zeros(1, np.intp), np.zeros(n, np.float32), -1, np.zeros(1), np.zeros(1)
        )


# shapes around the transpose's 64 x 64 tiles: one row or column, a partial tile, whole tiles,
# and the (K, n) coefficients of a wide model
TRANSPOSE_SHAPES = [(1, 1), (1, 130), (130, 1), (20, 63), (64, 64), (65, 129), (20, 1000)]


@pytest.mark.parametrize("out_dtype", DTYPES)
@pytest.mark.parametrize("src_dtype", DTYPES)
@pytest.mark.parametrize("shape", TRANSPOSE_SHAPES)
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_transpose_is_numpys_rounded_once(shape, src_dtype, out_dtype, n_threads, rng):
    src = rng.standard_normal(shape).astype(src_dtype)
    before = src.copy()
    out = np.full(shape[::-1], np.nan, dtype=out_dtype)
    vectors.transpose(src, out, n_threads)
    # every element moved and rounded once to out's dtype: exactly NumPy's cast of src.T
    np.testing.assert_array_equal(out, src.T.astype(out_dtype))
    np.testing.assert_array_equal(src, before)


def test_transpose_of_empty_and_bad_outputs():
    vectors.transpose(np.zeros((0, 5)), np.zeros((5, 0)))  # nothing to move
    src = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"out: shape \(3, 4\), expected \(4, 3\)"):
        vectors.transpose(src, np.zeros((3, 4)))
    square = np.zeros((4, 4))
    with pytest.raises(ValueError, match="out: must not share"):
        vectors.transpose(square, square)

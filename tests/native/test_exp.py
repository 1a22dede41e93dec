"""Accuracy of the kernels' own vectorized exp and log against correctly rounded references."""

import numpy as np
import pytest

from softmax_fast._native import testing as hooks


def _ulp_error(got, exact, dtype):
    """|got - exact| in units of the last place of the result's dtype (exact in long double)."""
    spacing = np.spacing(np.abs(exact).astype(dtype)).astype(np.longdouble)
    spacing = np.maximum(spacing, np.longdouble(np.finfo(dtype).smallest_subnormal))
    return (np.abs(got.astype(np.longdouble) - exact) / spacing).astype(np.float64)


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(20261123)


def test_exp_float64_within_1_ulp(rng):
    x = np.concatenate(
        [
            rng.uniform(-745.0, 709.7, 400_000),  # whole finite range
            rng.uniform(-40.0, 0.0, 400_000),  # where softmax lives
            rng.uniform(-1e-3, 1e-3, 50_000),
            rng.uniform(-745.1, -708.0, 50_000),  # subnormal results
        ]
    )
    got = x.copy()
    hooks.vexp(got)
    exact = np.exp(x.astype(np.longdouble))
    assert _ulp_error(got, exact, np.float64).max() <= 1.1


def test_exp_float32_within_1_ulp(rng):
    x = np.concatenate(
        [rng.uniform(-103.0, 88.7, 400_000), rng.uniform(-20.0, 0.0, 400_000)]
    ).astype(np.float32)
    got = x.copy()
    hooks.vexp(got)
    exact = np.exp(x.astype(np.float64)).astype(np.longdouble)
    assert _ulp_error(got, exact, np.float32).max() <= 1.1


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_exp_special_values(dtype):
    big = 710.0 if dtype == np.float64 else 89.0
    x = np.array([-np.inf, np.inf, np.nan, 0.0, 1.0, -1e4, big, -big * 1.5], dtype=dtype)
    got = x.copy()
    hooks.vexp(got)
    assert got[0] == 0.0
    assert got[1] == np.inf
    assert np.isnan(got[2])
    assert got[3] == 1.0
    assert got[4] == np.exp(dtype(1.0)) or abs(got[4] - np.e) < 2 * np.finfo(dtype).eps * np.e
    assert got[5] == 0.0
    assert got[6] == np.inf
    assert got[7] == 0.0


def test_exp_handles_lengths_that_are_not_vector_multiples(rng):
    for n in range(0, 19):
        x = rng.uniform(-5, 5, n)
        got = x.copy()
        hooks.vexp(got)
        np.testing.assert_allclose(got, np.exp(x), rtol=3e-16, atol=0)


def test_log_ge1_within_1_ulp(rng):
    x = np.concatenate(
        [
            rng.uniform(1.0, 2.0, 300_000),
            rng.uniform(1.0, 1e4, 300_000),
            np.exp(rng.uniform(0.0, 700.0, 300_000)),
            1.0 + rng.uniform(0.0, 1e-9, 10_000),
        ]
    )
    out = np.empty_like(x)
    hooks.vlog_ge1(x, out)
    exact = np.log(x.astype(np.longdouble))
    err = _ulp_error(out, exact, np.float64)
    assert err.max() <= 1.0
    one = np.ones(3)
    hooks.vlog_ge1(one, out[:3])
    assert np.all(out[:3] == 0.0)

"""DaskSoftmaxRegression without a distributed.Client: Dask's default (threaded) scheduler runs
the blocks, with the same results as the in-memory fit (the tolerances of test_dask.py)."""

import numpy as np
import pytest
import scipy.sparse as sp

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

from softmax_fast import SoftmaxRegression  # noqa: E402
from softmax_fast import dask as sf_dask  # noqa: E402
from softmax_fast.dask import DaskSoftmaxRegression  # noqa: E402


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("persist", [True, False])
def test_fit_on_the_threaded_scheduler(monkeypatch, sparse, persist):
    monkeypatch.setattr(sf_dask, "_distributed_client", lambda: None)
    rng = np.random.default_rng(11)
    X = rng.standard_normal((900, 8))
    y = np.argmax(X @ rng.standard_normal((3, 8)).T + rng.gumbel(size=(900, 3)), axis=1)
    w = rng.uniform(0.5, 2.0, 900)
    if sparse:
        X[np.abs(X) < 0.7] = 0.0
        X = sp.csr_matrix(X)
    Xd = da.from_array(X, chunks=(250, 8), asarray=False)
    params = dict(alpha=0.05, tol=1e-10, max_iter=500)
    with dask.config.set(scheduler="threads"):
        model = DaskSoftmaxRegression(**params, persist=persist).fit(Xd, y, sample_weight=w)
        lazy = model.predict(Xd)
        assert isinstance(lazy, da.Array)
        predicted = lazy.compute()
    local = SoftmaxRegression(**params, n_threads=1).fit(X, y, sample_weight=w)
    assert abs(model.loss_curve_[-1] - local.loss_curve_[-1]) <= 1e-8 * local.loss_curve_[-1]
    np.testing.assert_allclose(model.coef_, local.coef_, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(predicted, local.predict(X))

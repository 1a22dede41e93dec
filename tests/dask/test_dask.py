"""softmax_fast.dask.DaskSoftmaxRegression on a real distributed.LocalCluster (2 worker
processes, one thread each, started and closed by this module).

Parity: the Dask fit against the in-memory SoftmaxRegression on the same data, dense and CSR
blocks, even and uneven chunks, weights, class weights, intercept and reference class.  Both
stop on the same rules (gtol ``tol``, and a relative decrease of at most 64 eps), so both end
near the one minimizer of the strongly convex objective (alpha > 0): with the gradient below
``tol`` = 1e-10 and the Hessian's eigenvalues at least ``alpha`` = 0.05, each iterate is within
``tol / alpha`` = 2e-9 of it, and each objective within ``tol**2 / alpha`` of the minimum; the
asserted 1e-6 (coefficients) and 1e-8 relative (objective) leave room for a stop by the
relative-decrease rule.  Lazy predictions against the in-memory estimator's; determinism (the
same chunking, the same bits); a worker killed during a fit; bad input before any work.
"""

import logging
import os
import signal

import numpy as np
import pytest
import scipy.sparse as sp

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from softmax_fast import SoftmaxRegression  # noqa: E402
from softmax_fast import dask as sf_dask  # noqa: E402
from softmax_fast.dask import DaskSoftmaxRegression  # noqa: E402

ALPHA, TOL = 0.05, 1e-10


def _local_cluster(**options):
    """2 worker processes of one thread each, quiet, on free ports."""
    return distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
        **options,
    )


@pytest.fixture(scope="module")
def client():
    cluster = _local_cluster()
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def _problem(seed, m=1500, n=12, K=4, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, n)).astype(dtype)
    W = rng.standard_normal((K, n))
    y = np.argmax(X @ W.T + rng.gumbel(size=(m, K)), axis=1)
    return X, y


CASES = {
    "dense_even": dict(chunks=500),
    "dense_uneven": dict(chunks=(200, 700, 1, 599)),
    "dense_weights": dict(chunks=(600, 900), weights=True),
    "dense_balanced": dict(chunks=(400, 1100), class_weight="balanced"),
    "dense_reference": dict(chunks=(750, 750), reference_class=2),
    "dense_no_intercept": dict(chunks=(300, 1200), fit_intercept=False),
    "dense_float32": dict(chunks=(500, 1000), dtype=np.float32),
    "csr_even": dict(chunks=500, sparse=True),
    "csr_weights_reference": dict(chunks=(900, 600), sparse=True, weights=True, reference_class=0),
    "csr_float32_dict_weights": dict(
        chunks=(1000, 500), sparse=True, dtype=np.float32, class_weight={1: 3.0}
    ),
}


def _fit_both(case, client, seed=0, solver="auto"):
    spec = CASES[case]
    X, y = _problem(seed, dtype=spec.get("dtype", np.float64))
    if spec.get("sparse"):
        X[np.abs(X) < 0.8] = 0.0  # about half the entries
        Xl = sp.csr_matrix(X)
        Xd = da.from_array(Xl, chunks=(spec["chunks"], X.shape[1]), asarray=False)
    else:
        Xl = X
        Xd = da.from_array(X, chunks=(spec["chunks"], X.shape[1]))
    sw = None
    if spec.get("weights"):
        sw = np.random.default_rng(seed + 1).uniform(0.0, 3.0, size=X.shape[0])
    params = dict(
        alpha=ALPHA,
        tol=TOL,
        max_iter=500,
        fit_intercept=spec.get("fit_intercept", True),
        reference_class=spec.get("reference_class"),
        class_weight=spec.get("class_weight"),
        solver=solver,
    )
    yd = da.from_array(y, chunks=(Xd.chunks[0],))
    swd = None if sw is None else da.from_array(sw, chunks=(Xd.chunks[0],))
    dask_model = DaskSoftmaxRegression(**params).fit(Xd, yd, sample_weight=swd)
    local_model = SoftmaxRegression(**params, n_threads=1).fit(Xl, y, sample_weight=sw)
    return dask_model, local_model, Xd, Xl, y


def _coef_tolerance(X, coef):
    """1e-6 for float64 X.  For float32 X the kernels see W rounded to float32, so each
    gradient is that of a point up to eps32 |W| away: off by up to L eps32 max|W| (L, the
    Hessian's largest eigenvalue, at most mean ||x_i||^2 / 2 + alpha), and a fit stops within
    that over alpha of the minimizer; twice that for the two fits, twice again for margin."""
    if X.dtype != np.float32:
        return 1e-6
    sq = X.multiply(X).sum(axis=1) if sp.issparse(X) else np.sum(X.astype(np.float64) ** 2, 1)
    L = float(np.mean(sq)) / 2 + ALPHA
    return max(1e-6, 4 * (L / ALPHA) * float(np.finfo(np.float32).eps) * np.abs(coef).max())


@pytest.mark.parametrize("case", sorted(CASES))
def test_fit_matches_the_in_memory_fit(client, case):
    dask_model, local_model, _, Xl, _ = _fit_both(case, client)
    np.testing.assert_array_equal(dask_model.classes_, local_model.classes_)
    j_dask, j_local = dask_model.loss_curve_[-1], local_model.loss_curve_[-1]
    assert abs(j_dask - j_local) <= 1e-8 * abs(j_local)
    atol = _coef_tolerance(Xl, local_model.coef_)
    np.testing.assert_allclose(dask_model.coef_, local_model.coef_, rtol=0, atol=atol)
    np.testing.assert_allclose(dask_model.intercept_, local_model.intercept_, rtol=0, atol=atol)
    assert isinstance(dask_model.coef_, np.ndarray) and dask_model.coef_.dtype == np.float64
    assert dask_model.n_iter_ == len(dask_model.loss_curve_) >= 1
    ref = CASES[case].get("reference_class")
    if ref is not None:
        k = list(dask_model.classes_).index(ref)
        assert not dask_model.coef_[k].any() and dask_model.intercept_[k] == 0.0


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg", "newton"])
@pytest.mark.parametrize("case", ["dense_uneven", "dense_reference", "csr_weights_reference"])
def test_every_solver_matches_the_in_memory_fit(client, case, solver):
    """Each solver runs on the Dask objective: the Hessian-vector products and the full
    Hessian are block sums like the gradient's, so the fit ends where the in-memory one does
    (within what the stopping tolerance leaves open)."""
    dask_model, local_model, _, Xl, _ = _fit_both(case, client, solver=solver)
    assert dask_model.solver_ == local_model.solver_ == solver
    atol = _coef_tolerance(Xl, local_model.coef_)
    np.testing.assert_allclose(dask_model.coef_, local_model.coef_, rtol=0, atol=atol)
    np.testing.assert_allclose(dask_model.intercept_, local_model.intercept_, rtol=0, atol=atol)
    if solver != "lbfgs":  # the Newton methods: a handful of outer iterations
        assert dask_model.n_iter_ <= 30


def test_the_same_chunking_gives_the_same_bits(client):
    first, *_ = _fit_both("dense_uneven", client)
    again, *_ = _fit_both("dense_uneven", client)
    np.testing.assert_array_equal(first.coef_, again.coef_)
    np.testing.assert_array_equal(first.intercept_, again.intercept_)
    assert first.loss_curve_ == again.loss_curve_


@pytest.mark.parametrize("case", ["dense_uneven", "csr_even", "dense_float32"])
def test_predictions_are_lazy_and_equal_the_in_memory_ones(client, case):
    dask_model, _, Xd, Xl, y = _fit_both(case, client)
    local = dask_model.to_local()
    assert isinstance(local, SoftmaxRegression)
    np.testing.assert_array_equal(local.coef_, dask_model.coef_)
    for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        lazy = getattr(dask_model, method)(Xd)
        assert isinstance(lazy, da.Array), method
        assert lazy.chunks[0] == Xd.chunks[0]
        got = lazy.compute()
        expected = getattr(local, method)(Xl)
        assert got.shape == expected.shape and got.dtype == expected.dtype, method
        if method == "predict":
            np.testing.assert_array_equal(got, expected)
        else:
            # row by row the same kernels; BLAS may block a block's rows differently from the
            # whole X's (a few ulps of the logits)
            scale = 1e-5 if Xl.dtype == np.float32 else 1e-12
            np.testing.assert_allclose(got, expected, rtol=scale, atol=scale)
        # in-memory input gives in-memory output
        assert isinstance(getattr(dask_model, method)(Xl), np.ndarray)
    assert dask_model.score(Xd, y) == pytest.approx(local.score(Xl, y), abs=1e-12)
    assert dask_model.score(Xl, y) == local.score(Xl, y)


def test_columns_in_chunks_are_rechunked(client):
    X, y = _problem(3, m=600)
    by_rows = DaskSoftmaxRegression(alpha=ALPHA, tol=TOL).fit(da.from_array(X, chunks=(300, 12)), y)
    both = DaskSoftmaxRegression(alpha=ALPHA, tol=TOL).fit(da.from_array(X, chunks=(300, 5)), y)
    np.testing.assert_array_equal(both.coef_, by_rows.coef_)


def test_a_worker_killed_during_the_fit_does_not_change_the_result(client, monkeypatch):
    """The worker holding blocks dies (SIGKILL) in the middle of the fit; its nanny restarts
    it, Dask recomputes the lost blocks from their source, and the fit ends with the bits of
    an undisturbed one."""
    X, y = _problem(4, m=2000)
    Xd = da.from_array(X, chunks=(250, 12))
    undisturbed = DaskSoftmaxRegression(alpha=ALPHA, tol=TOL).fit(Xd, y)

    real = sf_dask.DaskDesign.loss_grad
    calls = {"n": 0}

    def loss_grad_killing_a_worker(self, *args):
        calls["n"] += 1
        if calls["n"] == 4:
            victim = sorted(client.scheduler_info()["workers"])[0]
            pid = client.run(os.getpid, workers=[victim])[victim]
            os.kill(pid, signal.SIGKILL)
        return real(self, *args)

    monkeypatch.setattr(sf_dask.DaskDesign, "loss_grad", loss_grad_killing_a_worker)
    disturbed = DaskSoftmaxRegression(alpha=ALPHA, tol=TOL).fit(Xd, y)
    assert calls["n"] > 4
    np.testing.assert_array_equal(disturbed.coef_, undisturbed.coef_)
    np.testing.assert_array_equal(disturbed.intercept_, undisturbed.intercept_)
    client.wait_for_workers(2, timeout=60)


def test_bad_input_is_refused_before_any_work(client):
    X, y = _problem(5, m=100)
    Xd = da.from_array(X, chunks=(50, 12))
    model = DaskSoftmaxRegression()
    with pytest.raises(TypeError, match="X: must be a dask.array.Array"):
        model.fit(X, y)
    with pytest.raises(ValueError, match=r"y: its row chunks \(40, 60\) do not match X's"):
        model.fit(Xd, da.from_array(y, chunks=((40, 60),)))
    with pytest.raises(ValueError, match="y: has 99 rows but X has 100"):
        model.fit(Xd, y[:99])
    unknown = Xd[Xd[:, 0] > -10]  # row count known only after computing
    with pytest.raises(ValueError, match="X: unknown chunk sizes"):
        model.fit(unknown, y)
    csc = da.from_array(sp.csc_matrix(X), chunks=(50, 12), asarray=False)
    with pytest.raises(TypeError, match="format 'csc' are not supported"):
        model.fit(csc, y)
    with pytest.raises(ValueError, match='solver: "sgd" is not supported'):
        DaskSoftmaxRegression(solver="sgd").fit(Xd, y)
    with pytest.raises(ValueError, match='solver: "saga" is not supported'):
        DaskSoftmaxRegression(solver="saga").fit(Xd, y)
    with pytest.raises(ValueError, match="y: needs samples of at least 2 classes"):
        model.fit(Xd, np.zeros(100))
    with pytest.raises(ValueError, match="sample_weight: must be non-negative"):
        model.fit(Xd, y, sample_weight=-np.ones(100))
    with pytest.raises(ValueError, match="alpha"):
        DaskSoftmaxRegression(alpha=-1.0).fit(Xd, y)
    with pytest.raises(TypeError, match="persist: must be a bool"):
        DaskSoftmaxRegression(persist="yes").fit(Xd, y)


def test_persist_false_gives_the_same_result(client):
    X, y = _problem(6, m=800)
    Xd = da.from_array(X, chunks=(200, 12))
    kept = DaskSoftmaxRegression(alpha=ALPHA, tol=TOL).fit(Xd, y)
    reread = DaskSoftmaxRegression(alpha=ALPHA, tol=TOL, persist=False).fit(Xd, y)
    np.testing.assert_array_equal(reread.coef_, kept.coef_)


def _reset_peak_rss():
    """Reset this process's peak resident memory (Linux: VmHWM); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss():
    """This process's peak resident memory in bytes since the last reset (Linux), else 0."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def test_out_of_core_fit_rereads_blocks_within_the_memory_limits(tmp_path):
    """X in .npy blocks on disk, larger than the memory limits of all the workers together, fitted
    with persist=False: every evaluation reads the blocks again, no worker goes over its limit
    (none restarted; on Linux, each one's peak resident memory during the fit below it), and
    the coefficients are the in-memory fit's."""
    import dask

    # 10 MB a block, 880 MB in all; a worker process alone takes about 140 MB, and one running
    # a block holds two or three blocks at a time
    rows, n, n_blocks = 12_500, 100, 88
    limit = 384 * 2**20
    rng = np.random.default_rng(7)
    W = rng.standard_normal((3, n)) * 0.3
    paths, labels = [], []
    for i in range(n_blocks):
        block = rng.standard_normal((rows, n))
        labels.append(np.argmax(block @ W.T + rng.gumbel(size=(rows, 3)), axis=1))
        paths.append(tmp_path / f"X{i}.npy")
        np.save(paths[-1], block)
    del block
    y = np.concatenate(labels)
    load = dask.delayed(np.load, pure=True)
    X = da.concatenate(
        [da.from_delayed(load(str(p)), shape=(rows, n), dtype=np.float64) for p in paths]
    )
    assert X.nbytes > 2 * limit
    cluster = _local_cluster(memory_limit=limit)
    with distributed.Client(cluster) as c:
        pids = c.run(os.getpid)
        measured = all(c.run(_reset_peak_rss).values())
        model = DaskSoftmaxRegression(alpha=ALPHA, tol=1e-8, persist=False).fit(X, y)
        assert c.run(os.getpid) == pids  # no worker was restarted
        peaks = c.run(_peak_rss)
    cluster.close()
    if measured:  # the kernel's own peak of each worker's resident memory during the fit
        assert max(peaks.values()) < limit
    X_local = np.concatenate([np.load(p) for p in paths])
    local = SoftmaxRegression(alpha=ALPHA, tol=1e-8, n_threads=2).fit(X_local, y)
    np.testing.assert_allclose(model.coef_, local.coef_, rtol=0, atol=1e-6)


def test_binary_decision_function_is_the_difference_of_the_logits(client):
    X, y = _problem(8, m=600, K=2)
    Xd = da.from_array(X.astype(np.float32), chunks=(200, 12))
    model = DaskSoftmaxRegression(alpha=ALPHA, tol=TOL).fit(Xd, y)
    lazy = model.decision_function(Xd)
    assert isinstance(lazy, da.Array) and lazy.ndim == 1 and lazy.dtype == np.float32
    expected = model.to_local().decision_function(X.astype(np.float32))
    np.testing.assert_allclose(lazy.compute(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(
        model.predict(Xd).compute(), model.to_local().predict(X.astype(np.float32))
    )

"""DaskSoftmaxRegression on a LocalCluster against the in-memory kernel and fit, in one run.

Parts (``--part``):

* ``compare``: X of ``--rows`` x 100 float64 (2,000,000 by default, 1.6 GB), K = 10, labels from
  a softmax model, in ``--blocks`` row blocks persisted on a LocalCluster of 2 single-threaded
  worker processes; against the same X in this process with the kernels on 2 threads.  One
  objective evaluation each (alternating, median of ``--repeats``), then a full lbfgs fit each
  (same parameters; time, iterations, objective).
* ``overhead``: the per-evaluation cost outside the kernels: evaluations of tiny blocks (one row
  each) for 2 to 64 blocks and coefficients of 1,000 to 2,000,000 values, the median of 7 each,
  from which a model ``t = a + blocks * (b + c * coefficient MB)`` is fitted (least squares).
* ``reread``: X in ``.npy`` blocks on disk (8 x 50,000 x 100), one evaluation with the blocks'
  designs persisted against one that reads them again (``persist=False``), alternating.

    python benchmarks/dask_fit.py --part compare [--rows 2000000] [--blocks 8] [--repeats 5]
    python benchmarks/dask_fit.py --part overhead
    python benchmarks/dask_fit.py --part reread
"""

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

N_FEATURES, K = 100, 10
SETTLE_SECONDS = 0.3


def _cluster():
    import distributed

    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    )
    return cluster, distributed.Client(cluster)


def _labels_of(block, W):
    rng = np.random.default_rng(int(abs(block[0, 0]) * 1e6) % 2**32)
    return np.argmax(block @ W.T + rng.gumbel(size=(block.shape[0], W.shape[0])), axis=1)


def _dask_problem(rows, blocks, seed=0):
    """X (rows x 100, generated on the workers) and y, persisted in ``blocks`` row chunks."""
    import dask.array as da

    W = np.random.default_rng(seed).standard_normal((K, N_FEATURES)) * 0.3
    X = da.random.default_rng(seed).standard_normal(
        (rows, N_FEATURES), chunks=(-(-rows // blocks), N_FEATURES)
    )
    y = X.map_blocks(_labels_of, W, drop_axis=1, dtype=np.intp)
    X, y = X.persist(), y.persist()
    return X, y


def _timed(fn):
    time.sleep(SETTLE_SECONDS)
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def part_compare(rows, blocks, repeats):
    import dask

    from softmax_fast import SoftmaxRegression
    from softmax_fast._design import DenseDesign
    from softmax_fast.dask import DaskDesign, DaskSoftmaxRegression, _block_state, _place

    cluster, client = _cluster()
    X, y = _dask_problem(rows, blocks)
    X_local, y_local = dask.compute(X, y)
    classes = np.unique(y_local)
    rng = np.random.default_rng(1)
    W = rng.standard_normal((K, N_FEATURES)) * 0.1
    b = rng.standard_normal(K) * 0.1

    # the Dask design of a fit (its blocks' states placed on the workers), and the in-memory one
    state = dask.delayed(_block_state, pure=True)
    states = [
        state(xb, yb, None, classes, None, 1.0, 1)
        for xb, yb in zip(X.to_delayed().ravel(), y.to_delayed().ravel(), strict=True)
    ]
    dask_design = DaskDesign(_place(states), rows, N_FEATURES, np.float64, False, 2)
    local_design = DenseDesign(X_local, 2)
    y_idx = np.searchsorted(classes, y_local).astype(np.intp)
    contenders = {
        "in-memory, 2 threads": lambda: local_design.loss_grad(W, b, y_idx, None, None, 1 / rows),
        "Dask, 2 workers x 1 thread": lambda: dask_design.loss_grad(
            W, b, None, None, None, 1 / rows
        ),
    }
    times = {name: [] for name in contenders}
    results = {}
    for _ in range(repeats):
        for name, fn in contenders.items():
            t, results[name] = _timed(fn)
            times[name].append(t)
    a, d = results.values()
    print(
        f"one evaluation, {rows} x {N_FEATURES}, K = {K}, {blocks} blocks "
        f"(median of {repeats}); loss relative difference "
        f"{abs(a[0] - d[0]) / abs(a[0]):.1e}, dW max difference {np.abs(a[1] - d[1]).max():.1e}"
    )
    base = statistics.median(times["in-memory, 2 threads"])
    for name, ts in times.items():
        t = statistics.median(ts)
        print(f"  {name:28s} {t * 1e3:8.1f} ms  {t / base:5.2f}x in-memory")

    params = dict(alpha=1e-4, tol=1e-6, max_iter=200)
    t_local, local = _timed(lambda: SoftmaxRegression(**params, n_threads=2).fit(X_local, y_local))
    t_dask, model = _timed(lambda: DaskSoftmaxRegression(**params).fit(X, y))
    print(
        f"lbfgs fit: in-memory {t_local:.2f} s ({local.n_iter_} iterations, objective "
        f"{local.loss_curve_[-1]:.10f}); Dask {t_dask:.2f} s ({model.n_iter_} iterations, "
        f"objective {model.loss_curve_[-1]:.10f}): {t_dask / t_local:.2f}x in-memory; "
        f"max |coef difference| {np.abs(model.coef_ - local.coef_).max():.1e}"
    )
    client.close()
    cluster.close()


def part_overhead():
    import dask

    from softmax_fast.dask import DaskDesign, _block_state, _place

    cluster, client = _cluster()
    state = dask.delayed(_block_state, pure=True)
    rng = np.random.default_rng(2)
    rows_of = []
    print("per-evaluation time of one-row blocks (median of 7), ms")
    print(f"{'blocks':>7s} " + " ".join(f"{n:>12d}" for n in (100, 10_000, 200_000)))
    samples = []
    for n_blocks in (2, 4, 8, 16, 32, 64):
        row = []
        for n in (100, 10_000, 200_000):  # coefficients: 10 x n float64
            X = rng.standard_normal((n_blocks, n))
            y = np.arange(n_blocks) % K
            classes = np.arange(K)
            states = [
                state(X[i : i + 1], y[i : i + 1], None, classes, None, 1.0, 1)
                for i in range(n_blocks)
            ]
            design = DaskDesign(_place(states), n_blocks, n, np.float64, False, 1)
            W, b = np.zeros((K, n)), np.zeros(K)
            design.loss_grad(W, b, None, None, None, 1.0)  # warm
            ts = []
            for _ in range(7):
                start = time.perf_counter()
                design.loss_grad(W, b, None, None, None, 1.0)
                ts.append(time.perf_counter() - start)
            t = statistics.median(ts)
            row.append(t)
            samples.append((n_blocks, W.nbytes, t))
        rows_of.append(row)
        print(f"{n_blocks:7d} " + " ".join(f"{t * 1e3:12.1f}" for t in row))
    # every block's partial sums (the size of the coefficients) travel up the reduction tree
    A = np.array([[1.0, nb, nb * nbytes / 1e6] for nb, nbytes, _ in samples])
    t = np.array([s[2] for s in samples])
    (a, b_, c), *_ = np.linalg.lstsq(A, t, rcond=None)
    print(
        f"model: t = {a * 1e3:.1f} ms + blocks x ({b_ * 1e3:.2f} ms + {c * 1e3:.2f} ms per MB of "
        f"coefficients); largest misfit {np.abs(A @ [a, b_, c] - t).max() * 1e3:.1f} ms"
    )
    client.close()
    cluster.close()


def part_reread(repeats):
    import dask
    import dask.array as da

    from softmax_fast.dask import DaskDesign, _block_state, _place

    cluster, client = _cluster()
    rows, n_blocks = 50_000, 8
    W = np.random.default_rng(3).standard_normal((K, N_FEATURES)) * 0.3
    with tempfile.TemporaryDirectory() as tmp:
        paths, ys = [], []
        rng = np.random.default_rng(4)
        for i in range(n_blocks):
            block = rng.standard_normal((rows, N_FEATURES))
            ys.append(_labels_of(block, W))
            paths.append(Path(tmp) / f"X{i}.npy")
            np.save(paths[-1], block)
        y = np.concatenate(ys)
        load = dask.delayed(np.load, pure=True)
        X = da.concatenate(
            [
                da.from_delayed(load(str(p)), shape=(rows, N_FEATURES), dtype=np.float64)
                for p in paths
            ]
        )
        classes = np.arange(K)
        state = dask.delayed(_block_state, pure=True)
        yd = da.from_array(y, chunks=(X.chunks[0],))
        pairs = list(zip(X.to_delayed().ravel(), yd.to_delayed().ravel(), strict=True))
        kept = _place([state(xb, yb, None, classes, None, 1.0, 1) for xb, yb in pairs])
        # (keys of their own: the placed states' keys are held in memory, and a graph asking
        # for them again would be given those)
        reread = dask.delayed(_block_state, pure=False)
        fresh = [reread(xb, yb, None, classes, None, 1.0, 1) for xb, yb in pairs]
        m = rows * n_blocks
        designs = {
            "persisted": DaskDesign(kept, m, N_FEATURES, np.float64, False, 2),
            "re-read (persist=False)": DaskDesign(fresh, m, N_FEATURES, np.float64, False, 2),
        }
        Wc, b = np.zeros((K, N_FEATURES)), np.zeros(K)
        times = {name: [] for name in designs}
        for _ in range(repeats):
            for name, design in designs.items():
                t, _ = _timed(lambda d=design: d.loss_grad(Wc, b, None, None, None, 1 / m))
                times[name].append(t)
        mb = m * N_FEATURES * 8 / 2**20
        print(f"one evaluation of {m} x {N_FEATURES} ({mb:.0f} MiB in {n_blocks} .npy blocks)")
        base = statistics.median(times["persisted"])
        for name, ts in times.items():
            t = statistics.median(ts)
            print(f"  {name:26s} {t * 1e3:8.1f} ms  {t / base:5.2f}x")
    client.close()
    cluster.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["compare", "overhead", "reread"], default="compare")
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.part == "compare":
        part_compare(args.rows, args.blocks, args.repeats)
    elif args.part == "overhead":
        part_overhead()
    else:
        part_reread(args.repeats)


if __name__ == "__main__":
    main()

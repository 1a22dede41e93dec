"""Sparse (CSR) input: the kernel, the fit and the memory, on text-like data, in one run.

Five parts (``--part``):

* ``kernel``: one ``loss_and_grad`` on the 20-newsgroups-shaped tf-idf corpus of
  ``softmax_fast._synthetic.text_corpus`` (11,314 x 130,107, ~180 non-zeros a row, K = 20),
  against the ``scipy.sparse`` reference (``X @ W.T``, ``G.T @ X``), alternating, median of
  the repeats.  Ours both as a public call (validation and the CSC copy included; on 2 threads
  also with the "rows" strategy forced) and as the fit's evaluation (the design built once, as
  in a fit), on 1 and 2 threads; with each call's page faults and system time.
* ``public``: the public call on 2 threads and the reference alone in the process,
  alternating (a user's loop of one-off calls, without the other contenders' memory).
* ``fit``: ``SoftmaxRegression(solver="lbfgs")`` against scikit-learn's
  ``LogisticRegression(solver="lbfgs")`` on the same corpus at equal objective
  (``C = 1 / (alpha m)``), each fit in a fresh child process that reports its time, objective
  and peak resident memory (``ru_maxrss``; both children build the same corpus first).
  Whichever ends more than EQUAL_OBJECTIVE_RTOL above the other refits with its tolerance
  divided by ``--tol-step`` (10 unless given; up to eight refits).
* ``buffers``: the first 26-iteration fit of a fresh process on the corpus, with the L-BFGS
  buffers in our own memory maps (as shipped) and in NumPy's huge-page-advised memory,
  alternating, ``--repeats`` times: time, system time and page faults.
* ``hashed``: m = 1,000,000, n = 2**20, 50 non-zeros a row (uniform hashed term ids, unit-norm
  rows), K = 20, float32: one ``loss_and_grad`` call and a 20-iteration fit, with the peak
  resident memory above the data's (the extra memory of the kernels and the solver).

    python benchmarks/sparse_text.py --part kernel [--repeats 5]
    python benchmarks/sparse_text.py --part public [--repeats 7]
    python benchmarks/sparse_text.py --part fit [--alpha 1e-4]
    python benchmarks/sparse_text.py --part hashed
    python benchmarks/sparse_text.py --part buffers [--repeats 3]
"""

import argparse
import json
import multiprocessing
import resource
import statistics
import time
import warnings

import numpy as np

EQUAL_OBJECTIVE_RTOL = 1e-6
K = 20


# Idle time before each timed kernel call (see part_kernel).
SETTLE_SECONDS = 0.3


def corpus(dtype=np.float64):
    from softmax_fast._synthetic import text_corpus

    return text_corpus(dtype=dtype)


def hashed(m=1_000_000, n=2**20, nnz_per_row=50, seed=0):
    """Hashed bag-of-words: uniform term ids (repeats within a row add up), unit-norm rows,
    float32, labels from a sparse softmax model."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    indices = rng.integers(0, n, size=m * nnz_per_row, dtype=np.int32)
    data = np.full(m * nnz_per_row, 1.0 / np.sqrt(nnz_per_row), dtype=np.float32)
    indptr = np.arange(0, m * nnz_per_row + 1, nnz_per_row, dtype=np.int64).astype(np.int32)
    X = sp.csr_matrix((data, indices, indptr), shape=(m, n))
    topic = rng.integers(0, K, size=n)  # each term votes for one class
    votes = np.zeros((m, K), dtype=np.float32)
    np.add.at(votes, (np.repeat(np.arange(m), nnz_per_row), topic[indices]), 1.0)
    y = np.argmax(votes + rng.gumbel(size=(m, K)).astype(np.float32), axis=1)
    return X, y


def _median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _with_strategy(strategy, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with every CSRDesign taking ``strategy`` (a one-off call's
    alternative to the "columns" strategy: no CSC copy)."""
    from softmax_fast._design import CSRDesign

    real = CSRDesign.strategy
    CSRDesign.strategy = lambda self, K: strategy
    try:
        return fn(*args, **kwargs)
    finally:
        CSRDesign.strategy = real


def part_kernel(repeats):
    from softmax_fast import kernels, reference
    from softmax_fast._design import CSRDesign
    from softmax_fast._validation import as_csr_arrays

    X, y = corpus()
    rng = np.random.default_rng(1)
    W = rng.standard_normal((K, X.shape[1])) * 0.1
    b = rng.standard_normal(K) * 0.1
    alpha = 1e-4
    m = X.shape[0]
    Wt = np.ascontiguousarray(W.T)  # a fit's coefficients: feature-major for CSR X
    designs = {t: CSRDesign(as_csr_arrays(X), t) for t in (1, 2)}
    for design in designs.values():
        design.loss_grad(Wt, b, y, None, None, 1.0 / m)  # builds its CSC copy, as a fit's does
    contenders = {
        "reference (scipy.sparse)": lambda: reference.loss_and_grad(X, y, W, b, alpha=alpha),
        "public call, 1 thread": lambda: kernels.loss_and_grad(
            X, y, W, b, alpha=alpha, n_threads=1
        ),
        "public call, 2 threads": lambda: kernels.loss_and_grad(
            X, y, W, b, alpha=alpha, n_threads=2
        ),
        "public call, 2 threads, rows": lambda: _with_strategy(
            "rows", kernels.loss_and_grad, X, y, W, b, alpha=alpha, n_threads=2
        ),
        "fit evaluation, 1 thread": lambda: designs[1].loss_grad(Wt, b, y, None, None, 1.0 / m),
        "fit evaluation, 2 threads": lambda: designs[2].loss_grad(Wt, b, y, None, None, 1.0 / m),
    }
    times = {name: [] for name in contenders}
    faults = {name: [] for name in contenders}
    system = {name: [] for name in contenders}
    for _ in range(repeats):  # alternate the contenders, repeat by repeat
        for name, fn in contenders.items():
            # (after a pause: the previous contender's idle BLAS and OpenMP worker threads spin
            # for up to about 0.1 s, and a call started then shares the 2 cores with them)
            time.sleep(SETTLE_SECONDS)
            before = resource.getrusage(resource.RUSAGE_SELF)
            times[name].append(_median_time(fn, 1))
            after = resource.getrusage(resource.RUSAGE_SELF)
            # a call's fresh arrays cost page faults, whose price depends on the process's
            # allocation history (glibc returning freed memory, NumPy's huge-page advice)
            faults[name].append(after.ru_minflt - before.ru_minflt)
            system[name].append(after.ru_stime - before.ru_stime)
    base = statistics.median(times["reference (scipy.sparse)"])
    print(
        f"loss_and_grad on {X.shape[0]} x {X.shape[1]}, nnz {X.nnz}, K = {K} "
        f"(strategy {designs[2].strategy(K)}); median of {repeats}"
    )
    print(f"{'':28s} {'ms':>8s} {'reference / this':>17s} {'page faults':>12s} {'sys ms':>7s}")
    for name, ts in times.items():
        t = statistics.median(ts)
        print(
            f"{name:28s} {t * 1e3:8.1f} {base / t:17.2f} {statistics.median(faults[name]):12.0f}"
            f" {statistics.median(system[name]) * 1e3:7.1f}"
        )


def part_public(repeats):
    """The public one-off call and the reference alone in this process, alternating: what a
    user's loop of such calls sees, without the other contenders' memory in the process."""
    from softmax_fast import kernels, reference

    X, y = corpus()
    rng = np.random.default_rng(1)
    W = rng.standard_normal((K, X.shape[1])) * 0.1
    b = rng.standard_normal(K) * 0.1
    contenders = {
        "reference (scipy.sparse)": lambda: reference.loss_and_grad(X, y, W, b, alpha=1e-4),
        "public call, 2 threads": lambda: kernels.loss_and_grad(
            X, y, W, b, alpha=1e-4, n_threads=2
        ),
    }
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            time.sleep(SETTLE_SECONDS)
            times[name].append(_median_time(fn, 1))
    base = statistics.median(times["reference (scipy.sparse)"])
    print(f"one-off loss_and_grad, median of {repeats}")
    for name, ts in times.items():
        t = statistics.median(ts)
        print(f"{name:28s} {t * 1e3:8.1f} ms {base / t:6.2f}x")


def _fit_child(lib, alpha, tol, queue):
    warnings.simplefilter("ignore")
    from softmax_fast import kernels

    X, y = corpus()
    m = X.shape[0]
    if lib == "softmax_fast":
        from softmax_fast import SoftmaxRegression

        model = SoftmaxRegression(alpha=alpha, tol=tol, max_iter=10_000)
    else:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=1.0 / (alpha * m), tol=tol, max_iter=10_000)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    model.fit(X, y)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    labels = np.searchsorted(model.classes_, y)
    J = kernels.loss_and_grad(X, labels, model.coef_, model.intercept_, alpha=alpha)[0]
    n_iter = int(np.max(model.n_iter_))
    queue.put(
        {
            "lib": lib,
            "seconds": seconds,
            "objective": float(J),
            "n_iter": n_iter,
            "tol": tol,
            "peak_rss_mb": peak / 1024,
            "rss_before_fit_mb": rss_before / 1024,
        }
    )


def _fit_in_child(lib, alpha, tol):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_fit_child, args=(lib, alpha, tol, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def part_fit(alpha, tol, tol_step=10.0):
    """Both fits from ``tol``; whichever ends more than EQUAL_OBJECTIVE_RTOL above the other
    refits with its tol divided by ``tol_step`` (a finer step finds the loosest tol at which each
    library reaches the other's objective more closely)."""
    results = {lib: _fit_in_child(lib, alpha, tol) for lib in ("softmax_fast", "sklearn")}
    for _ in range(8):
        best = min(r["objective"] for r in results.values())
        behind = [
            lib for lib, r in results.items() if r["objective"] > best * (1 + EQUAL_OBJECTIVE_RTOL)
        ]
        if not behind:
            break
        for lib in behind:
            results[lib] = _fit_in_child(lib, alpha, results[lib]["tol"] / tol_step)
    for r in results.values():
        print(json.dumps(r))
    ours, theirs = results["softmax_fast"], results["sklearn"]
    print(
        f"fit at equal objective (alpha = {alpha:g}): softmax_fast {ours['seconds']:.2f} s "
        f"({ours['n_iter']} iterations, tol {ours['tol']:g}), scikit-learn "
        f"{theirs['seconds']:.2f} s ({theirs['n_iter']} iterations, tol {theirs['tol']:g}): "
        f"{theirs['seconds'] / ours['seconds']:.2f}x; objectives {ours['objective']:.10g} / "
        f"{theirs['objective']:.10g}; peak RSS {ours['peak_rss_mb']:.0f} MB / "
        f"{theirs['peak_rss_mb']:.0f} MB (after building the corpus: "
        f"{ours['rss_before_fit_mb']:.0f} / {theirs['rss_before_fit_mb']:.0f} MB)"
    )


def _rss_now_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _hashed_child(queue):
    warnings.simplefilter("ignore")
    from softmax_fast import SoftmaxRegression, kernels
    from softmax_fast._design import CSRDesign
    from softmax_fast._threads import effective_n_threads
    from softmax_fast._validation import as_csr_arrays

    X, y = hashed()
    data_mb = _rss_now_mb()
    out = {"shape": X.shape, "nnz": int(X.nnz), "rss_with_data_mb": data_mb}
    design = CSRDesign(as_csr_arrays(X), effective_n_threads(None))
    out["strategy"] = design.strategy(K)
    W = np.zeros((K, X.shape[1]), dtype=np.float32)
    start = time.perf_counter()
    kernels.loss_and_grad(X, y, W, np.zeros(K, np.float32), alpha=1e-6)
    out["loss_and_grad_s"] = time.perf_counter() - start
    model = SoftmaxRegression(alpha=1e-6, max_iter=20, tol=1e-12)
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    model.fit(X, y)
    out["fit_20_iterations_s"] = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    out["fit_system_s"] = after.ru_stime - before.ru_stime
    out["fit_page_faults"] = after.ru_minflt - before.ru_minflt
    out["fit_n_iter"] = int(model.n_iter_)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["extra_peak_mb"] = out["peak_rss_mb"] - data_mb
    out["train_accuracy"] = float(model.score(X[:100_000], y[:100_000]))
    queue.put(out)


def part_hashed():
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_hashed_child, args=(queue,))
    child.start()
    result = queue.get()
    child.join()
    print(json.dumps(result))


def _buffers_child(mode, queue):
    """One 26-iteration fit on the corpus in a fresh process, the L-BFGS buffers from our own
    memory maps (as shipped) or from NumPy (``mode == "numpy"``: huge pages advised)."""
    import math

    warnings.simplefilter("ignore")
    import softmax_fast._lbfgs as lbfgs
    from softmax_fast import SoftmaxRegression

    if mode == "numpy":
        lbfgs._OWN_MAP_BYTES = math.inf
    X, y = corpus()
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    SoftmaxRegression(alpha=1e-4, tol=1e-6, max_iter=26).fit(X, y)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    queue.put(
        {
            "buffers": mode,
            "fit_s": seconds,
            "system_s": after.ru_stime - before.ru_stime,
            "page_faults": after.ru_minflt - before.ru_minflt,
        }
    )


def part_buffers(repeats):
    """The first fit of a process with the L-BFGS buffers in our maps and in NumPy's memory,
    alternating, each in a fresh process (their first touch is what differs)."""
    context = multiprocessing.get_context("spawn")
    for _ in range(repeats):
        for mode in ("numpy", "maps"):
            queue = context.Queue()
            child = context.Process(target=_buffers_child, args=(mode, queue))
            child.start()
            print(json.dumps(queue.get()), flush=True)
            child.join()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--part", choices=("kernel", "public", "fit", "hashed", "buffers"), default="kernel"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--alpha", type=float, default=1e-4)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument(
        "--tol-step", type=float, default=10.0, help="refit tol divisor (fit part; e.g. 3.1623)"
    )
    args = parser.parse_args()
    if args.part == "kernel":
        part_kernel(args.repeats)
    elif args.part == "public":
        part_public(args.repeats)
    elif args.part == "fit":
        part_fit(args.alpha, args.tol, args.tol_step)
    elif args.part == "buffers":
        part_buffers(args.repeats)
    else:
        part_hashed()


if __name__ == "__main__":
    main()

"""Solvers at equal objective: softmax_fast's against scikit-learn's, the time to a relative gap.

Both libraries minimize J = mean cross-entropy + alpha/2 ||W||^2 (intercepts unpenalized);
scikit-learn's ``LogisticRegression(C=1 / (alpha m))`` (multinomial) has the same objective.
Per case:

1. a reference optimum J* from a tight solve in a child process: softmax_fast ``"newton"`` with
   ``tol=1e-12`` where the installed estimator has it and takes the case, else ``"lbfgs"`` with
   ``tol=1e-10`` and a large ``max_iter`` (``--reference``; the JSON records which, and its
   time);
2. for each solver, scikit-learn's (``--sklearn-solvers``: lbfgs, newton-cg, newton-cholesky,
   sag, saga) and softmax_fast's (``--solvers``: auto, lbfgs, newton-cg, newton, saga), a ladder
   of fits from loose to tight ``tol`` (``--tols``: 1e-3 down to 1e-10, in half decades down to
   1e-7; scikit-learn's tol and softmax_fast's, a bound on the largest gradient component for
   its gradient solvers).  The
   first fit of the ladder whose objective meets ``J - J* <= rel_gap * J*`` (``--rel-gap``,
   1e-6) is the solver's result: its wall time, iterations and gap.

Every objective is evaluated by one function, softmax_fast's ``loss_and_grad`` on the fitted
``coef_`` and ``intercept_``, in this (the parent) process, never from a solver's own report.
Each solver's ladder runs in a fresh child process (spawned; it imports only its own library)
that loads the case's data once from a temporary file and makes one untimed one-iteration fit
on 500 rows (the first fit of a process pays for lazy imports and thread pools).  Each fit of
the ladder follows an idle pause of SETTLE_SECONDS and has a wall-clock limit
(``--time-limit``: 300 s, 5 s with ``--quick``): the parent kills the child when a fit runs past
it, and the solver is reported as "> limit".  A fit that fails (an exception, or the child
killed, e.g. for memory) ends its ladder and is reported as such; a ladder that never meets the
gap is "not reached".  softmax_fast solver names that the installed estimator refuses with
ValueError (or cannot run) on a tiny problem are skipped with a note.  scikit-learn's
ConvergenceWarnings are expected and silenced.  Both libraries use all cores
(``n_threads=None``; scikit-learn's BLAS and OpenMP defaults).

Cases (seeded, float64): ``dense`` (200,000 x 100, K = 10, correlated Gaussian features, labels
from a multinomial model), ``mnist`` (60,000 x 784, K = 10, pixel-like: class templates plus
smooth and pixel noise, shifted, clipped to [0, 1], about 68% exact zeros, kept dense),
``onehot`` (100,000 rows, 10 categorical columns of 50 levels one-hot in CSR, 500 columns, 10
non-zeros a row, K = 7, labels from a multinomial model on the levels) and ``text`` (the tf-idf
corpus of ``sparse_text.py``, 11,314 x 130,107, K = 20, CSR).  ``--quick``, a smoke run: a tenth
of the rows (mnist also 14 x 14 pixels with half the noise; text a tenth of the vocabulary),
a decade ladder of every other decade, and the 5 s limit.

    python benchmarks/solvers.py [--cases dense,mnist,onehot,text] [--alpha 1e-4]
        [--solvers auto,lbfgs,newton-cg,newton,saga] [--sklearn-solvers lbfgs,...,saga]
        [--rel-gap 1e-6] [--time-limit 300] [--quick] [--out benchmarks/runs/DATE-solvers.json]
    python benchmarks/solvers.py --quick                          # the smoke run
    python benchmarks/solvers.py --solvers "" --cases mnist       # scikit-learn's side alone

Output: per case a Markdown table (solver, library, time, iterations, tol, gap, and the ratio
of scikit-learn's best time to each solver's time), the ratio of softmax_fast "auto" to the best
softmax_fast solver, and a JSON of everything (each ladder's fits included), rewritten after
every case (``--quick``: ``DATE-solvers-quick.json``).
"""

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

SKLEARN_SOLVERS = "lbfgs,newton-cg,newton-cholesky,sag,saga"
SOFTMAX_FAST_SOLVERS = "auto,lbfgs,newton-cg,newton,saga"
# Half decades down to 1e-7: a solver's time is that of the first rung whose fit meets the gap,
# so a decade ladder can charge a solver for a fit ten times tighter than the gap needs (the
# gap a tol gives differs between solvers); both libraries get the same rungs.
TOLS = "1e-3,3e-4,1e-4,3e-5,1e-5,3e-6,1e-6,3e-7,1e-7,1e-8,1e-9,1e-10"
QUICK_TOLS = "1e-3,1e-5,1e-7,1e-9"  # --quick: every other decade
CASES = ("dense", "mnist", "onehot", "text")
MAX_ITER = 100_000  # iterations (epochs for sag/saga): the tol and the time limit decide
# Idle time before each timed fit: the previous fit's BLAS and OpenMP worker threads (or the
# data loading's) keep spinning for up to about 0.1 s after their last call (fit_sizes.py).
SETTLE_SECONDS = 0.3
# Wall-clock limit of what a child does outside the timed fits: loading the data, evaluating J.
SETUP_LIMIT = 600.0


# ------------------------------------------------------------------------------------- cases
def dense_case(m=200_000, n=100, K=10, rho=0.6, seed=0):
    """Gaussian features with an AR(1) correlation ``rho^|i - j|`` (eigenvalues spread 16x for
    rho = 0.6), labels from a multinomial model (Gumbel noise: not separable)."""
    rng = np.random.default_rng(seed)
    lags = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    L = np.linalg.cholesky(rho**lags)
    X = rng.standard_normal((m, n)) @ L.T
    W = rng.standard_normal((K, n)) * (1.5 / np.sqrt(n))
    b = rng.standard_normal(K) * 0.5
    y = np.argmax(X @ W.T + b + rng.gumbel(size=(m, K)), axis=1)
    return np.ascontiguousarray(X), y


def _blurred_strokes(rng, count, side, density, sigma):
    """``count`` images of blurred random dots inside a margin of side / 7 (4 pixels of 28),
    peak 1; ``sigma`` in pixels of a 28-pixel side."""
    from scipy.ndimage import gaussian_filter

    margin = side // 7
    inner = side - 2 * margin
    img = np.zeros((count, side, side))
    img[:, margin:-margin, margin:-margin] = rng.random((count, inner, inner)) < density
    scale = sigma * side / 28
    img = gaussian_filter(img, sigma=(0, scale, scale))
    return img / img.max(axis=(1, 2), keepdims=True)


def mnist_case(m=60_000, side=28, K=10, n_basis=40, noise=1.0, seed=1, chunk=10_000):
    """MNIST-shaped pixels: a class template plus a random mix of smooth stroke images plus
    pixel noise, shifted by up to one pixel each way, then offset and clipped to [0, 1]
    (the background becomes exact zeros; neighbouring pixels are correlated)."""
    rng = np.random.default_rng(seed)
    n = side * side
    templates = _blurred_strokes(rng, K, side, 0.10, 1.6).reshape(K, n)
    basis = _blurred_strokes(rng, n_basis, side, 0.06, 1.3).reshape(n_basis, n)
    y = rng.integers(0, K, m)
    X = np.empty((m, n))
    for start in range(0, m, chunk):  # in row blocks: a few m x n temporaries would be GBs
        rows = slice(start, min(start + chunk, m))
        count = rows.stop - rows.start
        block = templates[y[rows]] + rng.standard_normal((count, n_basis)) * (0.45 * noise) @ basis
        block += rng.standard_normal((count, n)) * (0.08 * noise)
        images = block.reshape(count, side, side)
        shifts = rng.integers(-1, 2, size=(count, 2))
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                sel = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
                images[sel] = np.roll(images[sel], (dy, dx), axis=(1, 2))
        X[rows] = np.clip((block - 0.3) * 1.5, 0.0, 1.0)
    return X, y


def onehot_case(m=100_000, n_columns=10, levels=50, K=7, seed=2):
    """10 categorical columns of 50 levels (Zipf-like frequencies, a different order per
    column) one-hot in CSR (exactly 10 non-zeros a row, sorted indices); labels from a
    multinomial model with one effect per level and class."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    p = (np.arange(levels) + 1.0) ** -0.8
    p /= p.sum()
    codes = np.empty((m, n_columns), dtype=np.int64)
    for c in range(n_columns):
        codes[:, c] = rng.permutation(levels)[rng.choice(levels, size=m, p=p)]
    effects = rng.standard_normal((n_columns, levels, K)) * 0.5
    logits = effects[np.arange(n_columns), codes].sum(axis=1)
    y = np.argmax(logits + rng.gumbel(size=(m, K)), axis=1)
    indices = (codes + levels * np.arange(n_columns)).astype(np.int32).ravel()
    indptr = np.arange(0, m * n_columns + 1, n_columns, dtype=np.int32)
    X = sp.csr_matrix((np.ones(m * n_columns), indices, indptr), shape=(m, n_columns * levels))
    return X, y


def text_case(quick=False):
    """The tf-idf corpus of sparse_text.py (its benchmark size), or a tenth of it."""
    if not quick:
        import sparse_text

        return sparse_text.corpus()
    from softmax_fast._synthetic import text_corpus

    return text_corpus(n_docs=1_131, n_terms=13_011)


def build_case(name, quick):
    if name == "text":
        return text_case(quick)
    if name == "mnist":  # quick: 14 x 14 "pixels" too (a tenth of the rows alone is slow)
        return mnist_case(m=6_000, side=14, noise=0.5) if quick else mnist_case()
    sizes = {"dense": 200_000, "onehot": 100_000}
    m = sizes[name] // 10 if quick else sizes[name]
    return {"dense": dense_case, "onehot": onehot_case}[name](m=m)


def save_case(X, y, directory):
    import scipy.sparse as sp

    directory.mkdir(parents=True, exist_ok=True)
    if sp.issparse(X):
        sp.save_npz(directory / "X.npz", sp.csr_matrix(X), compressed=False)
    else:
        np.save(directory / "X.npy", X)
    np.save(directory / "y.npy", y)


def load_case(directory):
    import scipy.sparse as sp

    directory = Path(directory)
    y = np.load(directory / "y.npy")
    if (directory / "X.npz").exists():
        return sp.load_npz(directory / "X.npz").tocsr(), y
    return np.load(directory / "X.npy"), y


# ------------------------------------------------------------------------------------- fits
def objective(coef, intercept, classes, X, y, alpha):
    """J of fitted coefficients (either library's), by softmax_fast's fused kernel."""
    from softmax_fast import kernels

    labels = np.searchsorted(classes, y)
    coef = np.asarray(coef, dtype=np.float64)
    intercept = np.asarray(intercept, dtype=np.float64)
    return float(kernels.loss_and_grad(X, labels, coef, intercept, alpha=alpha)[0])


def make_model(lib, solver, alpha, m, tol, max_iter=MAX_ITER):
    if lib == "softmax_fast":
        from softmax_fast import SoftmaxRegression

        return SoftmaxRegression(
            alpha=alpha, solver=solver, tol=tol, max_iter=max_iter, n_threads=None
        )
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0 / (alpha * m), solver=solver, tol=tol, max_iter=max_iter)


def _warm_up(lib, solver, alpha, X, y):
    """One untimed iteration on a few hundred rows: the first fit of a process pays for lazy
    imports, thread pools and first calls, which the ladder's first rung would otherwise bear."""
    rows = np.linspace(0, X.shape[0] - 1, min(X.shape[0], 500)).astype(np.intp)
    try:
        make_model(lib, solver, alpha, rows.size, 1e-3, max_iter=1).fit(X[rows], y[rows])
    except Exception:  # noqa: S110  (the timed fits report what fails)
        pass


def _ladder_child(conn, data_dir, lib, solver, alpha, tols, max_iter):
    """Fits of ``solver`` at each tol in turn, each reported to the parent (its coefficients
    with it), which evaluates J and answers "next" or "stop".  Only the fit's library is
    imported here (a scikit-learn child never loads softmax_fast's OpenMP runtime)."""
    warnings.simplefilter("ignore")
    if lib == "softmax_fast":
        import softmax_fast  # noqa: F401
    else:
        import sklearn.linear_model  # noqa: F401

    X, y = load_case(data_dir)
    _warm_up(lib, solver, alpha, X, y)
    for tol in tols:
        model = make_model(lib, solver, alpha, X.shape[0], tol, max_iter)
        time.sleep(SETTLE_SECONDS)
        conn.send(("start", tol))
        start = time.perf_counter()
        try:
            model.fit(X, y)
        except Exception as exc:  # reported, with the refusals (ValueError) told apart
            kind = "refused" if isinstance(exc, ValueError) else "failed"
            conn.send((kind, tol, f"{type(exc).__name__}: {str(exc)[:300]}"))
            return
        seconds = time.perf_counter() - start
        fit = {"tol": tol, "seconds": seconds, "n_iter": int(np.max(model.n_iter_))}
        chosen = getattr(model, "solver_", None)  # what "auto" chose, where it says
        if isinstance(chosen, str):
            fit["solver_used"] = chosen
        conn.send(("fit", fit, model.coef_, model.intercept_, model.classes_))
        if conn.recv() == "stop":
            break
    conn.send(("done",))


def run_ladder(data, lib, solver, alpha, tols, target, time_limit, max_iter=MAX_ITER):
    """The fits of one solver's ladder in a fresh child process, each under ``time_limit``,
    until one's objective (evaluated here, on ``data = (directory, X, y)``) is at most
    ``target``.  Returns ``{"fits": [...], "end": "done" | "timeout" | "failed" | "refused"}``
    (with "tol" and "message" for the last three)."""
    data_dir, X, y = data
    context = multiprocessing.get_context("spawn")
    here, there = context.Pipe()
    child = context.Process(
        target=_ladder_child,
        args=(there, str(data_dir), lib, solver, alpha, list(tols), max_iter),
        daemon=True,
    )
    child.start()
    there.close()  # the child's end: its exit shows here as EOF
    out = {"fits": [], "end": None}
    deadline = time.monotonic() + SETUP_LIMIT
    tol = None
    while out["end"] is None:
        if here.poll(max(0.0, min(1.0, deadline - time.monotonic()))):
            try:
                message = here.recv()
            except EOFError:
                child.join(timeout=5)
                out.update(end="failed", tol=tol, message=f"child exited ({child.exitcode})")
                break
            kind = message[0]
            if kind == "start":
                tol = message[1]
                deadline = time.monotonic() + time_limit
            elif kind == "fit":
                fit, coef, intercept, classes = message[1:]
                fit["objective"] = objective(coef, intercept, classes, X, y, alpha)
                out["fits"].append(fit)
                here.send("stop" if fit["objective"] <= target else "next")
                deadline = time.monotonic() + SETUP_LIMIT
            elif kind == "done":
                out["end"] = "done"
            else:
                out.update(end=kind, tol=message[1], message=message[2])
        elif time.monotonic() >= deadline:
            child.kill()
            out.update(end="timeout", tol=tol, message=f"> {time_limit:g} s")
    child.join(timeout=30)
    if child.is_alive():
        child.kill()
        child.join()
    here.close()
    return out


def refused_solvers(names):
    """``{name: message}`` for the softmax_fast solvers the installed estimator refuses
    (ValueError), or cannot run (another exception), on a tiny problem."""
    from softmax_fast import SoftmaxRegression

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((30, 3)), np.arange(30) % 3
    refused = {}
    for name in names:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                SoftmaxRegression(solver=name, max_iter=2, n_threads=1).fit(X, y)
        except ValueError as exc:
            refused[name] = f"refused: {exc}"
        except Exception as exc:  # e.g. a solver whose extension is not built
            refused[name] = f"unavailable: {type(exc).__name__}: {exc}"
    return refused


def reference_optimum(data, alpha, choice, accepted, time_limit):
    """J* from a tight softmax_fast solve: "newton" (tol 1e-12) where accepted and it ends,
    else "lbfgs" (tol 1e-10).  Returns the record of the solve used (and of any tried)."""
    plans = {"newton": ("newton", 1e-12, 1_000), "lbfgs": ("lbfgs", 1e-10, MAX_ITER)}
    order = ["newton", "lbfgs"] if choice == "auto" else [choice]
    tried = []
    for key in order:
        solver, tol, max_iter = plans[key]
        if solver not in accepted:
            tried.append({"solver": solver, "end": "refused"})
            continue
        run = run_ladder(data, "softmax_fast", solver, alpha, [tol], -np.inf, time_limit, max_iter)
        if run["fits"]:
            fit = run["fits"][0]
            return {"solver": solver, **fit, "tried": tried}
        tried.append({"solver": solver, "end": run["end"], "message": run.get("message")})
    raise RuntimeError(f"no reference optimum: {tried}")


# ------------------------------------------------------------------------------------- report
def summarize(run, J_star, rel_gap):
    """The solver's result from its ladder: the first fit within the gap, or why none is."""
    for fit in run["fits"]:
        fit["gap"] = (fit["objective"] - J_star) / J_star
    reached = [f for f in run["fits"] if f["gap"] <= rel_gap]
    if reached:
        return {"status": "reached", **reached[0]}
    last = run["fits"][-1] if run["fits"] else {}
    if run["end"] == "done":
        return {"status": "not reached", **last}
    status = {"timeout": "timeout", "refused": "refused"}.get(run["end"], "failed")
    return {"status": status, "message": run.get("message"), "at_tol": run.get("tol"), **last}


def _fmt_row(r, sk_best):
    s = r["summary"]
    name = r["solver"]
    if s.get("solver_used", name) != name:
        name += f" ({s['solver_used']})"
    lib = "scikit-learn" if r["lib"] == "sklearn" else "softmax_fast"
    iters = str(s["n_iter"]) if "n_iter" in s else ""
    gap = f"{s['gap']:.1e}" if "gap" in s else ""
    tol = f"{s['tol']:.0e}" if "tol" in s else ""
    if s["status"] == "reached":
        time_cell = f"{s['seconds']:.2f}"
        ratio = f"{sk_best / s['seconds']:.2f}x" if sk_best else ""
    else:
        ratio = ""
        if s["status"] == "timeout":
            time_cell = f"{s['message']} (tol {s['at_tol']:.0e})"
        elif s["status"] == "not reached":
            time_cell = "not reached"
        else:
            time_cell = f"{s['status']}: {s['message']}"
        if s["status"] != "not reached":
            iters = gap = tol = ""  # the last fit that ended is not the result
            if "gap" in s:
                time_cell += f"; last ended: tol {s['tol']:.0e}, gap {s['gap']:.1e}"
    return f"| {name} | {lib} | {time_cell} | {iters} | {tol} | {gap} | {ratio} |"


def case_markdown(case):
    lines = []
    ref = case["reference"]
    shape = case["shape"]
    lines.append(
        f"### {case['name']}: {shape[0]:,} x {shape[1]:,}, K = {case['n_classes']}, "
        f"{case['format']}{', nnz ' + format(case['nnz'], ',') if case['nnz'] else ''}"
    )
    lines.append("")
    lines.append(
        f"J* = {ref['objective']:.12g} (softmax_fast {ref['solver']}, tol {ref['tol']:g}, "
        f"{ref['n_iter']} iterations, {ref['seconds']:.2f} s); alpha = {case['alpha']:g}; "
        f"target gap (J - J*) / J* <= {case['rel_gap']:g}"
    )
    lines.append("")
    lines.append(
        "| solver | library | time (s) | iterations | tol | gap | scikit-learn best / this |"
    )
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    sk_best = case["sklearn_best_seconds"]
    for r in case["results"]:
        lines.append(_fmt_row(r, sk_best))
    for name, message in case["skipped"].items():
        lines.append(f"| {name} | softmax_fast | skipped, {message} | | | | |")
    lines.append("")
    best = case.get("sklearn_best_solver")
    lines.append(
        f"scikit-learn's best: {best} ({sk_best:.2f} s)." if best else "scikit-learn's best: none."
    )
    if case.get("auto_over_best") is not None:
        lines.append(
            f"softmax_fast auto / best softmax_fast solver ({case['softmax_fast_best_solver']}): "
            f"{case['auto_over_best']:.2f}x (time ratio; 1.00x: auto is the best)."
        )
    below = case.get("below_reference")
    if below:
        lines.append(f"Note: objectives below J* (the reference was not tight): {below}.")
    return "\n".join(lines)


def finish_case(case):
    reached = [r for r in case["results"] if r["summary"]["status"] == "reached"]
    sk = [r for r in reached if r["lib"] == "sklearn"]
    sf = [r for r in reached if r["lib"] == "softmax_fast"]
    best_sk = min(sk, key=lambda r: r["summary"]["seconds"], default=None)
    case["sklearn_best_solver"] = best_sk["solver"] if best_sk else None
    case["sklearn_best_seconds"] = best_sk["summary"]["seconds"] if best_sk else None
    for r in sf:
        if best_sk:
            r["summary"]["sklearn_best_over_this"] = (
                best_sk["summary"]["seconds"] / r["summary"]["seconds"]
            )
    best_sf = min(
        (r for r in sf if r["solver"] != "auto"),
        key=lambda r: r["summary"]["seconds"],
        default=None,
    )
    auto = next((r for r in sf if r["solver"] == "auto"), None)
    if best_sf and auto:
        if auto["summary"]["seconds"] < best_sf["summary"]["seconds"]:
            best_sf = auto
        case["softmax_fast_best_solver"] = best_sf["solver"]
        case["auto_over_best"] = auto["summary"]["seconds"] / best_sf["summary"]["seconds"]
    J_star = case["reference"]["objective"]
    below = [
        f"{r['lib']} {r['solver']} tol {f['tol']:g}: {f['gap']:.1e}"
        for r in case["results"]
        for f in r["fits"]
        if f["gap"] < -1e-9
    ]
    case["below_reference"] = below
    case["J_star"] = J_star


def versions():
    import scipy
    import sklearn

    import softmax_fast

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "softmax_fast": getattr(softmax_fast, "__version__", "?"),
        "softmax_fast_path": os.path.dirname(softmax_fast.__file__),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated")
    parser.add_argument("--solvers", default=SOFTMAX_FAST_SOLVERS, help="softmax_fast's")
    parser.add_argument("--sklearn-solvers", default=SKLEARN_SOLVERS)
    parser.add_argument("--alpha", type=float, default=1e-4)
    parser.add_argument("--rel-gap", type=float, default=1e-6)
    parser.add_argument(
        "--tols", default=None, help=f"the ladder, loose to tight ({TOLS}; --quick: {QUICK_TOLS})"
    )
    parser.add_argument(
        "--time-limit", type=float, default=None, help="seconds a fit (300; 5 with --quick)"
    )
    parser.add_argument("--reference", choices=("auto", "newton", "lbfgs"), default="auto")
    parser.add_argument(
        "--reference-time-limit", type=float, default=None, help="seconds (4x --time-limit)"
    )
    parser.add_argument("--quick", action="store_true", help="sizes / 10: a smoke run")
    parser.add_argument("--out", default=None, help="JSON (benchmarks/runs/DATE-solvers.json)")
    parser.add_argument("--data-dir", default=None, help="where the cases' data go (a tmp dir)")
    args = parser.parse_args(argv)

    cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown cases {unknown}; choose among {CASES}")
    sf_names = [s for s in args.solvers.split(",") if s]
    sk_names = [s for s in args.sklearn_solvers.split(",") if s]
    tols = [float(t) for t in (args.tols or (QUICK_TOLS if args.quick else TOLS)).split(",")]
    time_limit = args.time_limit or (5.0 if args.quick else 300.0)
    ref_limit = args.reference_time_limit or 4 * time_limit
    today = datetime.date.today().isoformat()
    default_out = (
        Path(__file__).parent / "runs" / f"{today}-solvers{'-quick' if args.quick else ''}.json"
    )
    out_path = Path(args.out) if args.out else default_out

    skipped = refused_solvers(sf_names + ["newton", "lbfgs"])
    accepted = {s for s in sf_names + ["newton", "lbfgs"] if s not in skipped}
    for name in sf_names:
        if name in skipped:
            print(f"note: softmax_fast solver {name!r} skipped, {skipped[name]}", file=sys.stderr)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "args": vars(args) | {"time_limit": time_limit, "reference_time_limit": ref_limit},
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        },
        "versions": versions(),
        "settle_seconds": SETTLE_SECONDS,
        "cases": {},
    }
    markdown = []
    with tempfile.TemporaryDirectory(dir=args.data_dir) as tmp:
        for name in cases:
            started = time.perf_counter()
            X, y = build_case(name, args.quick)
            data_dir = Path(tmp) / name
            save_case(X, y, data_dir)
            import scipy.sparse as sp

            case = {
                "name": name,
                "shape": list(X.shape),
                "n_classes": int(np.unique(y).size),
                "format": "CSR" if sp.issparse(X) else "dense",
                "nnz": int(X.nnz) if sp.issparse(X) else None,
                "zero_fraction": None if sp.issparse(X) else float(np.mean(X == 0)),
                "alpha": args.alpha,
                "rel_gap": args.rel_gap,
                "skipped": {s: skipped[s] for s in sf_names if s in skipped},
                "results": [],
            }
            data = (data_dir, X, y)  # J of every fit is evaluated here
            print(
                f"[{name}] data ready ({time.perf_counter() - started:.1f} s); reference...",
                file=sys.stderr,
                flush=True,
            )
            ref = reference_optimum(data, args.alpha, args.reference, accepted, ref_limit)
            case["reference"] = ref
            J_star = ref["objective"]
            target = J_star * (1 + args.rel_gap)
            print(
                f"[{name}] J* = {J_star:.12g} ({ref['solver']}, {ref['seconds']:.2f} s)",
                file=sys.stderr,
                flush=True,
            )
            plan = [("sklearn", s) for s in sk_names] + [
                ("softmax_fast", s) for s in sf_names if s not in skipped
            ]
            for lib, solver in plan:
                run = run_ladder(data, lib, solver, args.alpha, tols, target, time_limit)
                summary = summarize(run, J_star, args.rel_gap)
                case["results"].append({"lib": lib, "solver": solver, "summary": summary, **run})
                brief = (
                    f"{summary['seconds']:.2f} s, tol {summary['tol']:g}"
                    if summary["status"] == "reached"
                    else summary.get("message") or ""
                )
                print(
                    f"[{name}] {lib} {solver}: {summary['status']} {brief}",
                    file=sys.stderr,
                    flush=True,
                )
            finish_case(case)
            report["cases"][name] = case
            markdown.append(case_markdown(case))
            print(markdown[-1] + "\n", flush=True)
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(json.dumps(report, indent=1, default=float) + "\n")
    print(f"JSON: {out_path}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()

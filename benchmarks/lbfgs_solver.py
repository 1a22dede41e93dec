"""Our L-BFGS (``softmax_fast._lbfgs``) against SciPy's L-BFGS-B: the solver's own cost.

Three objectives, each solver run for the same number of iterations (gtol = ftol = 0, so that
neither stops early; the same history of 10 pairs, at most 50 evaluations a line search):

* ``softmax 63``: the real objective (``SoftmaxObjective``) of ``fit_sizes.problem(2000, 20, 3)``,
  alpha = 1/m: 63 parameters, the estimator's small-fit case;
* ``quadratic 1,000`` and ``quadratic 2,600,000``: f(x) = 1/2 sum d_i x_i^2 - c'x with d spread
  over [1, 1e3] (logarithmically), whose evaluation is a few vector passes, so that the solver's
  own cost shows.

For each: the **overhead per iteration** (total time minus the time inside the objective,
divided by the iterations) and the total time, each solver's median over ``--repeats``, and the
median of the paired ratios SciPy / ours (the two alternate within each repeat, in alternating
order); at 2.6 million also ours with its float32 native history (the large models' one)
against ours with the float64 BLAS one of small models.  ``--memory`` also compares the
compact representation (the one kept) with the plain two-loop recursion, both inside our solver
and on the float64 history, at 1,000 and 2.6 million parameters.  Last, the
estimator: ``SoftmaxRegression(alpha=1/m, tol=1e-6).fit`` on the same 2,000 x 20, K = 3 problem
with each solver (``_solvers.lbfgs`` is ours; ``_solvers._scipy_lbfgs`` is SciPy's).

BLAS is held at one thread, as during a fit (``one_blas_thread``), and the objective's kernels
run on one thread; times are CPU times (``time.process_time``: the machines are shared), the
estimator's fits also wall-clock.

    python benchmarks/lbfgs_solver.py [--repeats 3] [--memory] [--quick]
"""

import argparse
import contextlib
import math
import time
import warnings

import numpy as np
from fit_sizes import problem
from scipy.linalg import blas
from scipy.optimize import minimize

from softmax_fast import SoftmaxRegression, _lbfgs, _solvers
from softmax_fast._design import DenseDesign
from softmax_fast._objective import SoftmaxObjective
from softmax_fast._threads import one_blas_thread

# CPU time of this process: the machines these run on are shared, and a process that is
# descheduled for a while would otherwise charge that time to whichever solver was running (every
# timed computation here runs on one thread: BLAS held at one, the objective's kernels at one)
CLOCK = time.process_time
HISTORY = _lbfgs.HISTORY
MAX_LINE_SEARCH = _lbfgs.MAX_LINE_SEARCH


class Timed:
    """``fun`` with the time spent inside it and the number of calls counted."""

    def __init__(self, fun):
        self.fun = fun
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, x):
        start = CLOCK()
        out = self.fun(x)
        self.seconds += CLOCK() - start
        self.calls += 1
        return out


def quadratic(n):
    """f(x) = 1/2 sum d_i x_i^2 - c'x, d log-spaced over [1, 1e3], c = 1: two vector passes for
    the gradient, one more for the value (out= buffers, as lean as an objective gets)."""
    d = np.logspace(0, 3, n)
    c = np.ones(n)

    def fun(x):
        g = np.multiply(d, x)
        value = 0.5 * float(np.dot(g, x)) - float(np.sum(x))
        g -= c
        return value, g

    return fun


def softmax_objective(m=2000, n=20, K=3):
    X, y = problem(m, n, K)
    objective = SoftmaxObjective(DenseDesign(X, 1), y.astype(np.intp), None, K, 1.0 / m, True, None)
    return objective.value_and_grad, objective.n_params


def run_ours(fun, x0, n_iter):
    res = _lbfgs.minimize_lbfgs(fun, x0, max_iter=n_iter, gtol=0.0, ftol=0.0)
    return res.n_iter


def run_scipy(fun, x0, n_iter):
    res = minimize(
        fun,
        x0,
        jac=True,
        method="L-BFGS-B",
        options={
            "maxiter": n_iter,
            "gtol": 0.0,
            "ftol": 0.0,
            "maxls": MAX_LINE_SEARCH,
            "maxcor": HISTORY,
        },
    )
    return int(res.nit)


class TwoLoopMemory:
    """The plain two-loop recursion (Nocedal & Wright, Alg. 7.4) behind the interface of
    ``_lbfgs._CompactMemory``, with the same lean BLAS calls: the alternative measured by
    ``--memory``."""

    def __init__(self, n, m):
        self.m = m
        self.S = np.zeros((m, n))
        self.Y = np.zeros((m, n))
        self.g = np.zeros(n)
        self.rho = [0.0] * m
        self.alpha = [0.0] * m
        self.k = 0
        self.head = 0
        self.gamma = 1.0

    def reset(self):
        self.k = 0
        self.head = 0

    def push(self, step, d, y, sy, yy):
        if self.k == self.m:
            slot = self.head
            self.head = (slot + 1) % self.m
        else:
            slot = self.k
            self.k += 1
        blas.dcopy(d, self.S[slot])
        blas.dscal(step, self.S[slot])
        blas.dcopy(y, self.Y[slot])
        self.rho[slot] = 1.0 / sy
        self.gamma = sy / yy

    def trial(self, x, d, step, xt):
        _lbfgs._trial_blas(x, d, step, xt)

    def update(self, step, d, g_new, sy):
        y = g_new - self.g
        blas.dcopy(g_new, self.g)
        yy = float(y @ y)
        if sy > _lbfgs._CURVATURE_EPS * yy:
            self.push(step, d, y, sy, yy)
        return float(np.abs(self.g).max())

    def direction(self, d):
        n = d.size
        order = [(self.head + j) % self.m for j in range(self.k)]
        blas.dcopy(self.g, d)
        for i in reversed(order):
            a = self.rho[i] * blas.ddot(self.S[i], d)
            self.alpha[i] = a
            blas.daxpy(self.Y[i], d, n, -a)
        blas.dscal(self.gamma, d)
        for i in order:
            b = self.rho[i] * blas.ddot(self.Y[i], d)
            blas.daxpy(self.S[i], d, n, self.alpha[i] - b)
        blas.dscal(-1.0, d)
        return blas.ddot(self.g, d)


@contextlib.contextmanager
def memory_class(cls):
    """Our solver with ``cls`` as its history at every size (the float64 history's interface;
    the native float32 history of large models off)."""
    saved = _lbfgs._CompactMemory, _lbfgs.NATIVE_HISTORY_MIN
    _lbfgs._CompactMemory, _lbfgs.NATIVE_HISTORY_MIN = cls, math.inf
    try:
        yield
    finally:
        _lbfgs._CompactMemory, _lbfgs.NATIVE_HISTORY_MIN = saved


def run_float64_history(fun, x0, n_iter):
    """Ours with the float64 BLAS history also for large models."""
    with memory_class(_lbfgs._CompactMemory):
        return run_ours(fun, x0, n_iter)


def paired(cases, repeats, inner=1):
    """``cases``: {name: (run, fun, x0, n_iter)}; runs them alternately, in alternating order,
    each measurement ``inner`` runs in a row (for the cheap objectives).  Returns {name:
    [(overhead per iteration, total per run, iterations, evaluations per run), ...]}."""
    out = {name: [] for name in cases}
    names = list(cases)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            run, fun, x0, n_iter = cases[name]
            timed = Timed(fun)
            iterations = 0
            start = CLOCK()
            for _ in range(inner):
                iterations += run(timed, x0.copy(), n_iter)
            total = CLOCK() - start
            out[name].append(
                (
                    (total - timed.seconds) / iterations,
                    total / inner,
                    iterations // inner,
                    timed.calls // inner,
                )
            )
    return out


def _median(values):
    return float(np.median(values))


def compare(title, builds, repeats, labels=("ours", "scipy")):
    """Prints one table row per objective: each solver's median overhead and total, and the
    median of the paired ratios labels[1] / labels[0]."""
    print(f"\n{title}\n")
    print(
        f"| objective | iterations | {labels[0]} overhead / iteration | {labels[1]} overhead / "
        f"iteration | {labels[1]} / {labels[0]} (overhead) | {labels[0]} total | {labels[1]} "
        f"total | {labels[1]} / {labels[0]} (total) | evaluations ({labels[0]}, {labels[1]}) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, cases, inner in builds:
        res = paired(cases, repeats, inner)
        a, b = (res[label] for label in labels)
        over = [y[0] / x[0] for x, y in zip(a, b, strict=True)]
        tot = [y[1] / x[1] for x, y in zip(a, b, strict=True)]

        def fmt(seconds):
            return f"{seconds * 1e6:,.1f} us" if seconds < 1e-2 else f"{seconds * 1e3:,.1f} ms"

        print(
            f"| {name} | {a[0][2]}, {b[0][2]} | {fmt(_median([x[0] for x in a]))} | "
            f"{fmt(_median([x[0] for x in b]))} | {_median(over):.2f}x | "
            f"{fmt(_median([x[1] for x in a]))} | {fmt(_median([x[1] for x in b]))} | "
            f"{_median(tot):.2f}x | {a[0][3]}, {b[0][3]} |",
            flush=True,
        )


def direction_times(sizes, calls):
    """One direction (-H g) with a full history of 10 pairs, compact vs two-loop, the two
    alternating call by call: median and minimum over ``calls(n)`` calls each."""
    print("\nOne direction with 10 pairs stored (median, min over the calls; alternating)\n")
    print("| parameters | calls | compact | two-loop | two-loop / compact (medians) |")
    print("|---:|---:|---:|---:|---:|")
    for n in sizes:
        rng = np.random.default_rng(0)
        memories = {
            "compact": _lbfgs._CompactMemory(n, HISTORY),
            "two-loop": TwoLoopMemory(n, HISTORY),
        }
        d = np.empty(n)
        for memory in memories.values():
            g = rng.standard_normal(n)
            for _ in range(HISTORY + 3):  # wrapped around: the ring buffer's general case
                memory.g[:] = g
                if memory.k:
                    memory.direction(d)
                s = rng.standard_normal(n)
                y = 1.5 * s
                g = g + y
                memory.g[:] = g
                memory.push(1.0, s, y, float(s @ y), float(y @ y))
        times = {name: [] for name in memories}
        for r in range(calls(n)):
            for name, memory in list(memories.items())[:: 1 if r % 2 == 0 else -1]:
                start = CLOCK()
                memory.direction(d)
                times[name].append(CLOCK() - start)
        a, b = times["compact"], times["two-loop"]

        def fmt(v):
            t = _median(v)
            return (
                f"{t * 1e6:,.1f} us ({min(v) * 1e6:,.1f})"
                if t < 1e-2
                else f"{t * 1e3:,.1f} ms ({min(v) * 1e3:,.1f})"
            )

        print(f"| {n:,} | {len(a)} | {fmt(a)} | {fmt(b)} | {_median(b) / _median(a):.2f}x |")
        del memories


def fit_times(repeats, m=2000, n=20, K=3):
    """The estimator on fit_sizes.problem(m, n, K), alpha = 1/m, tol = 1e-6, with each solver,
    alternating; median CPU and wall-clock fit times, the paired ratios, iterations and the
    objective reached."""
    from fit_sizes import objective

    X, y = problem(m, n, K)
    alpha = 1.0 / m
    solvers = {"ours": _solvers.lbfgs, "scipy": _solvers._scipy_lbfgs}
    real = _solvers.lbfgs
    times = {name: [] for name in solvers}
    fitted = {}
    try:
        for name in solvers:  # warm-up (first-call costs of either code path)
            _solvers.lbfgs = solvers[name]
            SoftmaxRegression(alpha=alpha, tol=1e-6).fit(X, y)
        for r in range(repeats):
            for name in solvers if r % 2 == 0 else list(solvers)[::-1]:
                _solvers.lbfgs = solvers[name]
                model = SoftmaxRegression(alpha=alpha, tol=1e-6)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    cpu, wall = CLOCK(), time.perf_counter()
                    model.fit(X, y)
                    times[name].append((CLOCK() - cpu, time.perf_counter() - wall))
                fitted[name] = model
    finally:
        _solvers.lbfgs = real
    print(
        f"\nSoftmaxRegression(alpha=1/m, tol=1e-6).fit, fit_sizes.problem({m}, {n}, {K}), "
        f"{repeats} fits each\n"
    )
    print("| solver | CPU time (median) | wall-clock (median) | iterations | objective |")
    print("|---|---:|---:|---:|---|")
    for name, model in fitted.items():
        cpu = _median([t[0] for t in times[name]])
        wall = _median([t[1] for t in times[name]])
        print(
            f"| {name} | {cpu * 1e3:.2f} ms | {wall * 1e3:.2f} ms | {model.n_iter_} | "
            f"{objective(model, X, y, alpha):.12g} |"
        )
    for i, what in enumerate(("CPU time", "wall-clock")):
        ratios = [s[i] / o[i] for o, s in zip(times["ours"], times["scipy"], strict=True)]
        print(f"\nscipy / ours fit {what} (median of the paired ratios): {_median(ratios):.2f}x")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory", action="store_true", help="also compact vs two-loop")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    args = parser.parse_args(argv)
    big = 26_000 if args.quick else 2_600_000
    softmax_fun, n_softmax = softmax_objective()
    # (name, fun, n, iterations, runs per measurement): iterations the line searches of both
    # solvers complete normally (the softmax fit converges in ~13), enough at 2.6 million for
    # the history to be full in two thirds of them
    objectives = [
        (f"softmax {n_softmax}", softmax_fun, n_softmax, 12, 20),
        ("quadratic 1,000", quadratic(1000), 1000, 200, 5),
        (f"quadratic {big:,}", quadratic(big), big, 30, 1),
    ]
    with one_blas_thread():
        compare(
            "Per-iteration overhead (total minus time in the objective) and total time, "
            "ours vs SciPy's L-BFGS-B",
            [
                (
                    name,
                    {
                        label: (run, fun, np.zeros(n), it)
                        for label, run in (("ours", run_ours), ("scipy", run_scipy))
                    },
                    inner,
                )
                for name, fun, n, it, inner in objectives
            ],
            args.repeats,
        )
        compare(
            "The history of large models: float32 rows, native passes (kept from "
            f"{_lbfgs.NATIVE_HISTORY_MIN:,} parameters) vs float64 rows, BLAS passes",
            [
                (
                    name,
                    {
                        "native float32": (run_ours, fun, np.zeros(n), it),
                        "BLAS float64": (run_float64_history, fun, np.zeros(n), it),
                    },
                    inner,
                )
                for name, fun, n, it, inner in objectives
                if n >= _lbfgs.NATIVE_HISTORY_MIN
            ],
            args.repeats,
            labels=("native float32", "BLAS float64"),
        )
        if args.memory:

            def run_two_loop(fun, x0, n_iter):
                with memory_class(TwoLoopMemory):
                    return run_ours(fun, x0, n_iter)

            compare(
                "Direction: compact representation (kept) vs two-loop recursion, both in ours",
                [
                    (
                        name,
                        {
                            "compact": (run_ours, fun, np.zeros(n), it),
                            "two-loop": (run_two_loop, fun, np.zeros(n), it),
                        },
                        inner,
                    )
                    for name, fun, n, it, inner in objectives
                ],
                args.repeats,
                labels=("compact", "two-loop"),
            )
            direction_times(
                [n_softmax, 1000, big], lambda n: 7 * args.repeats if n > 100_000 else 1000
            )
        fit_times(10 * args.repeats)


if __name__ == "__main__":
    main()

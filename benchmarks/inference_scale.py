"""Inference at scale: fit + inference() + get_margeff() for softmax_fast and for statsmodels'
MNLogit (fit by Newton, get_margeff), side by side, each in a child process of its own.

    python benchmarks/inference_scale.py [--rows 1000000] [--features 10] [--classes 14]
        [--time-limit 600] [--memory-limit-gb 16] [--out benchmarks/runs/DATE-inference.json]

The data: unscaled survey-like regressors (tests/softmax_problems.survey_problem's kind, widened
to ``--features`` columns) and labels from a true multinomial model, generated once and handed to
both children as .npy files.  Each child reports the wall time of each step and its peak
resident memory beyond what it held after loading X (VmHWM, reset after the load); a child that
runs past ``--time-limit`` is killed and reported as such, and its address space is capped at
``--memory-limit-gb`` (a MemoryError is reported as exceeding it).
"""

import argparse
import datetime
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_data(m, n, K, seed=0):
    rng = np.random.default_rng(seed)
    scales = np.tile([40.0, 50.0, 12.0, 1.0, 1.0], n // 5 + 1)[:n]
    X = rng.standard_normal((m, n)) * scales * 0.3 + scales
    X[:, 3::5] = rng.random((m, len(range(3, n, 5)))) < 0.5
    X[:, 4::5] = rng.random((m, len(range(4, n, 5)))) < 0.4
    B = rng.standard_normal((K, n)) * (0.3 / scales)
    B[0] = 0.0
    Z = (X - X.mean(axis=0)) @ B.T
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    y = (P.cumsum(axis=1) > rng.random((m, 1))).argmax(axis=1)
    return X, y


def _status_mb(field):
    """A memory figure of /proc/self/status (VmRSS, VmHWM) in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak():
    """Reset the peak resident memory (VmHWM) to the current one (Linux: clear_refs 5).
    (``ru_maxrss`` would not do: it keeps the parent's peak across fork and exec.)"""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _child(library, directory, memory_limit, queue):
    if memory_limit:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    X = np.load(Path(directory) / "X.npy")
    y = np.load(Path(directory) / "y.npy")
    base = _status_mb("VmRSS")
    _reset_peak()
    times = {}
    try:
        if library == "softmax_fast":
            from softmax_fast import SoftmaxRegression

            t = time.perf_counter()
            model = SoftmaxRegression(solver="newton", alpha=0.0, reference_class=0, tol=1e-10)
            model.fit(X, y)
            times["fit"] = time.perf_counter() - t
            t = time.perf_counter()
            results = model.inference(X, y)
            times["inference"] = time.perf_counter() - t
            t = time.perf_counter()
            margins = results.get_margeff()
            times["margeff"] = time.perf_counter() - t
            params, bse, me = results.params, results.bse, margins.margeff
        else:
            import warnings

            import statsmodels.api as sm

            warnings.simplefilter("ignore")
            t = time.perf_counter()
            fitted = sm.MNLogit(y, sm.add_constant(X, prepend=False)).fit(
                method="newton", maxiter=100, disp=0
            )
            times["fit"] = time.perf_counter() - t
            t = time.perf_counter()
            bse = np.asarray(fitted.bse)
            times["inference"] = time.perf_counter() - t
            t = time.perf_counter()
            me = np.asarray(fitted.get_margeff().margeff)
            times["margeff"] = time.perf_counter() - t
            params = np.asarray(fitted.params)
        queue.put(
            {
                "end": "done",
                "seconds": times,
                "total_seconds": sum(times.values()),
                "peak_mb_beyond_X": _status_mb("VmHWM") - base,
                "params": np.asarray(params).tolist(),
                "bse": np.asarray(bse).tolist(),
                "margeff": np.asarray(me).tolist(),
            }
        )
    except MemoryError as exc:
        queue.put({"end": "memory", "seconds": times, "message": str(exc)[:200]})


def run(library, directory, time_limit, memory_limit):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_child, args=(library, directory, memory_limit, queue))
    start = time.perf_counter()
    process.start()
    process.join(time_limit)
    if process.is_alive():
        process.kill()
        process.join()
        return {"end": "timeout", "wall_seconds": time.perf_counter() - start}
    if queue.empty():
        return {"end": f"died (exit code {process.exitcode})"}
    return queue.get()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--classes", type=int, default=14)
    parser.add_argument("--time-limit", type=float, default=600.0)
    parser.add_argument("--memory-limit-gb", type=float, default=16.0)
    parser.add_argument("--libraries", default="softmax_fast,statsmodels")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    X, y = make_data(args.rows, args.features, args.classes)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/inference_scale.py " + " ".join(sys.argv[1:]),
        "shape": list(X.shape),
        "classes": args.classes,
        "X_mb": X.nbytes / 2**20,
        "results": {},
    }
    with tempfile.TemporaryDirectory() as directory:
        np.save(Path(directory) / "X.npy", X)
        np.save(Path(directory) / "y.npy", y)
        del X
        for library in args.libraries.split(","):
            result = run(library, directory, args.time_limit, int(args.memory_limit_gb * 2**30))
            report["results"][library] = result
            brief = {k: v for k, v in result.items() if k not in ("params", "bse", "margeff")}
            print(library, json.dumps(brief), flush=True)
    results = report["results"]
    if all(results.get(lib, {}).get("end") == "done" for lib in ("softmax_fast", "statsmodels")):
        ours, theirs = results["softmax_fast"], results["statsmodels"]
        for name in ("params", "bse", "margeff"):
            a, b = np.asarray(ours[name]), np.asarray(theirs[name])
            report[f"max_relative_difference_{name}"] = float(np.max(np.abs(a - b) / np.abs(b)))
            print(name, "max relative difference", report[f"max_relative_difference_{name}"])
    out = Path(args.out or f"benchmarks/runs/{datetime.date.today()}-inference.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    for result in results.values():
        for name in ("params", "bse", "margeff"):
            result.pop(name, None)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print("JSON:", out)


if __name__ == "__main__":
    main()

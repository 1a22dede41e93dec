"""What a fit costs beyond its objective evaluations, and float32 against float64.

On 200,000 x 100, K = 10 (``make_classification``, alpha = 1/m, tol = 1e-6), for float64 and
float32 data:

* **overhead**: the fit's time divided by (number of objective evaluations x the time of one
  standalone ``softmax_fast.loss_and_grad`` call on the same data): 1.0 means the fit is its
  evaluations and nothing else (validation once, the solver's own work negligible);
* **float32 vs float64**: the objective the float32 fit reaches (evaluated in float64) against
  the float64 fit's, and the two numbers of evaluations;
* **vs scikit-learn** on the same float32 data, at equal objective (``fit_sizes.py``'s rule).

Standalone calls and fits alternate; each figure is the median over ``--repeats``.

    python benchmarks/fit_overhead.py [--repeats 3] [--rows 200000]
"""

import argparse
import time

import numpy as np
from fit_sizes import equal_objective_times

import softmax_fast as sf
from softmax_fast import SoftmaxRegression
from softmax_fast._objective import SoftmaxObjective


def _data(m, dtype):
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=m, n_features=100, n_informative=60, n_classes=10, random_state=0
    )
    return np.ascontiguousarray(X, dtype=dtype), y


def _counted_fit(X, y, alpha, values=None):
    """(seconds, number of objective evaluations, model); ``values`` (a list) receives the
    objective of every evaluation, in order."""
    count = [0]
    real = SoftmaxObjective.value_and_grad

    def counting(self, theta):
        count[0] += 1
        value, grad = real(self, theta)
        if values is not None:
            values.append(value)
        return value, grad

    SoftmaxObjective.value_and_grad = counting
    try:
        start = time.perf_counter()
        model = SoftmaxRegression(alpha=alpha, tol=1e-6, max_iter=10_000).fit(X, y)
        seconds = time.perf_counter() - start
    finally:
        SoftmaxObjective.value_and_grad = real
    return seconds, count[0], model


def _standalone(X, y, model, calls=10):
    W = model.coef_.astype(X.dtype)
    b = model.intercept_.astype(X.dtype)
    sf.loss_and_grad(X, y, W, b, alpha=1.0 / X.shape[0])
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        sf.loss_and_grad(X, y, W, b, alpha=1.0 / X.shape[0])
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args(argv)
    m = args.rows
    alpha = 1.0 / m
    X64, y = _data(m, np.float64)
    X32 = X64.astype(np.float32)
    rows = {}
    trajectories = {}
    for dtype, X in (("float64", X64), ("float32", X32)):
        overheads, evals = [], []
        for _ in range(args.repeats):
            trajectories[dtype] = []
            seconds, n_evals, model = _counted_fit(X, y, alpha, trajectories[dtype])
            # the standalone call timed right after the fit (median of 10 calls)
            call = _standalone(X, y, model)
            overheads.append(seconds / (n_evals * call))
            evals.append(n_evals)
        J = sf.loss_and_grad(X64, y, model.coef_, model.intercept_, alpha=alpha)[0]
        rows[dtype] = (float(np.median(overheads)), int(np.median(evals)), J, seconds, call)
        print(
            f"{dtype}: fit {seconds:.2f} s, {int(np.median(evals))} evaluations x "
            f"{call * 1e3:.1f} ms standalone; overhead ratio (median of {args.repeats}) "
            f"{np.median(overheads):.3f} {sorted(np.round(overheads, 3))}; objective (float64) "
            f"{J:.12g}",
            flush=True,
        )
    J64, J32 = rows["float64"][2], rows["float32"][2]
    print(
        f"float32 objective vs float64: {(J32 - J64) / J64:+.2e} relative; evaluations "
        f"{rows['float32'][1]} vs {rows['float64'][1]} "
        f"({rows['float32'][1] / rows['float64'][1]:.3f}x)"
    )
    # the evaluations each fit needs to come within 1e-6 relative of the float64 fit's objective
    # (the solver's own values: float32 logits for float32 data, accurate to ~1e-8 here)
    target = J64 * (1 + 1e-6)
    reach = {
        dtype: next(i + 1 for i, v in enumerate(values) if v <= target)
        for dtype, values in trajectories.items()
    }
    print(
        f"evaluations to reach the float64 objective within 1e-6: float32 {reach['float32']}, "
        f"float64 {reach['float64']} ({reach['float32'] / reach['float64']:.3f}x)"
    )
    ratios = []
    for r in range(args.repeats):
        order = ("softmax_fast", "sklearn") if r % 2 == 0 else ("sklearn", "softmax_fast")
        res = equal_objective_times(X32, y, alpha, order=order)
        ratios.append(res["sklearn"][0] / res["softmax_fast"][0])
        print(
            f"float32 vs scikit-learn (equal objective): ours {res['softmax_fast'][0]:.2f} s "
            f"(tol {res['softmax_fast'][2]:.0e}), sklearn {res['sklearn'][0]:.2f} s "
            f"(tol {res['sklearn'][2]:.0e}): {ratios[-1]:.2f}x",
            flush=True,
        )
    print(f"float32 vs scikit-learn: median {np.median(ratios):.2f}x")


if __name__ == "__main__":
    main()

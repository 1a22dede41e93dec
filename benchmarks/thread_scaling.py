"""2 threads vs 1 thread on the fused loss_and_grad, measured as paired ratios.

On a noisy machine, timing the 1-thread and 2-thread variants minutes apart (as separate
pytest-benchmark cases are) mixes the machine's mood into the ratio.  Here the two variants
alternate call by call, and the ratio is taken pair by pair: the median of the pairs' ratios is
the scaling, and its spread is printed too.

    python benchmarks/thread_scaling.py [--pairs 31]
"""

import argparse
import time

import numpy as np

import softmax_fast as sf


def paired_scaling(X, y, W, b, pairs):
    sf.loss_and_grad(X, y, W, b, n_threads=1)
    sf.loss_and_grad(X, y, W, b, n_threads=2)
    ratios, one, two = [], [], []
    for _ in range(pairs):
        t0 = time.perf_counter()
        sf.loss_and_grad(X, y, W, b, n_threads=1)
        t1 = time.perf_counter()
        sf.loss_and_grad(X, y, W, b, n_threads=2)
        t2 = time.perf_counter()
        one.append(t1 - t0)
        two.append(t2 - t1)
        ratios.append((t1 - t0) / (t2 - t1))
    return np.median(ratios), np.percentile(ratios, [25, 75]), np.median(one), np.median(two)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=31)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print("| case | 1 thread (ms) | 2 threads (ms) | scaling: median of paired ratios [IQR] |")
    print("|---|---:|---:|---:|")
    for dtype in ("float64", "float32"):
        X = rng.standard_normal((args.rows, 100)).astype(dtype)
        W = (rng.standard_normal((10, 100)) * 0.1).astype(dtype)
        b = np.zeros(10, dtype)
        y = rng.integers(0, 10, args.rows)
        ratio, (q1, q3), one, two = paired_scaling(X, y, W, b, args.pairs)
        print(
            f"| loss_and_grad {args.rows}x100 K=10 {dtype} | {one * 1e3:.1f} | {two * 1e3:.1f} | "
            f"{ratio:.2f}x [{q1:.2f}, {q3:.2f}] |"
        )


if __name__ == "__main__":
    main()

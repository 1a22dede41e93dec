"""Where a second thread starts to pay: the work threshold of the thread policy, measured.

``softmax_fast._threads.team_for_work`` gives a kernel call one more thread per
``MIN_WORK_PER_THREAD`` units of work (m * (n + 1) * K multiply-adds for the fused kernels,
m * K * ROWWISE_WORK_PER_LOGIT for the row-wise ones).  This script times calls of growing work
on 1 and on 2 threads, alternating the two call by call (paired ratios, robust to a noisy
machine), with BLAS held at one thread as during a fit, and prints, per shape, the smallest work
where 2 threads are faster.

    python benchmarks/thread_threshold.py [--pairs 41]
"""

import argparse
import time

import numpy as np

import softmax_fast as sf
from softmax_fast import _threads


def _paired(call_one, call_two, pairs):
    call_one(), call_two()
    ratios = []
    for _ in range(pairs):
        t0 = time.perf_counter()
        call_one()
        t1 = time.perf_counter()
        call_two()
        t2 = time.perf_counter()
        ratios.append((t1 - t0) / (t2 - t1))
    return float(np.median(ratios))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=41)
    args = parser.parse_args(argv)
    _threads.MIN_WORK_PER_THREAD = 1  # the thread counts asked for are the ones that run
    rng = np.random.default_rng(0)
    print("| kernel | shape (n, K) | m | work | 1 thread / 2 threads (median of pairs) |")
    print("|---|---|---:|---:|---:|")
    with _threads.one_blas_thread():
        for n, K in [(20, 3), (64, 10), (100, 10)]:
            for m in [250, 500, 1000, 2000, 4000, 8000, 16000]:
                X = rng.standard_normal((m, n))
                W, b = rng.standard_normal((K, n)) * 0.1, np.zeros(K)
                y = rng.integers(0, K, m)
                ratio = _paired(
                    lambda X=X, y=y, W=W, b=b: sf.loss_and_grad(X, y, W, b, n_threads=1),
                    lambda X=X, y=y, W=W, b=b: sf.loss_and_grad(X, y, W, b, n_threads=2),
                    args.pairs,
                )
                work = m * (n + 1) * K
                print(f"| loss_and_grad | ({n}, {K}) | {m} | {work:,} | {ratio:.2f} |")
        for K in [3, 10]:
            for m in [2000, 8000, 32000, 128000]:
                Z = rng.standard_normal((m, K))
                ratio = _paired(
                    lambda Z=Z: sf.softmax(Z, n_threads=1),
                    lambda Z=Z: sf.softmax(Z, n_threads=2),
                    args.pairs,
                )
                work = m * K * _threads.ROWWISE_WORK_PER_LOGIT
                print(f"| softmax | (-, {K}) | {m} | {work:,} | {ratio:.2f} |")


if __name__ == "__main__":
    main()

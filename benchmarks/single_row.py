"""predict_proba and predict on a single row: softmax_fast against scikit-learn, paired.

Both estimators are fitted on the standardized digits (1,797 x 64, 10 classes); the two
libraries' calls on the same row alternate call by call, and the figure is the median of the
per-pair ratios sklearn / softmax_fast (above 1: softmax_fast is faster).  Both validate their
input (scikit-learn's ``validate_data``); softmax_fast then runs its predict kernel on one row.

    python benchmarks/single_row.py [--pairs 2001]
"""

import argparse
import time

import numpy as np


def _paired(ours, theirs, pairs):
    for _ in range(50):
        ours(), theirs()
    t_ours, t_theirs = [], []
    for _ in range(pairs):
        t0 = time.perf_counter()
        ours()
        t1 = time.perf_counter()
        theirs()
        t2 = time.perf_counter()
        t_ours.append(t1 - t0)
        t_theirs.append(t2 - t1)
    ratio = np.median(np.array(t_theirs) / np.array(t_ours))
    return float(np.median(t_ours)), float(np.median(t_theirs)), float(ratio)


def main(argv=None):
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from softmax_fast import SoftmaxRegression

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2001)
    args = parser.parse_args(argv)
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    ours = SoftmaxRegression(alpha=1e-3).fit(X, y)
    theirs = LogisticRegression(C=1.0 / (1e-3 * len(y)), max_iter=1000).fit(X, y)
    row = X[:1]
    print("| call (1 row) | softmax_fast (us) | scikit-learn (us) | sklearn / softmax_fast |")
    print("|---|---:|---:|---:|")
    for name in ("predict_proba", "predict"):
        a, b, r = _paired(
            lambda n=name: getattr(ours, n)(row), lambda n=name: getattr(theirs, n)(row), args.pairs
        )
        print(f"| {name} | {a * 1e6:.1f} | {b * 1e6:.1f} | {r:.2f}x |")


if __name__ == "__main__":
    main()

"""``softmax-fast demo``: scikit-learn's digits, then speed on a large synthetic problem against
the NumPy reference solver and scikit-learn's LogisticRegression (from :mod:`._peers`)."""

import sys
import time

import numpy as np

from . import _peers


def _synthetic_problem(m, n, K, seed=0):
    """A well-posed K-class problem: Gaussian features, labels drawn from a true softmax model."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, n))
    W_true = rng.standard_normal((K, n)) * (2.0 / np.sqrt(n))
    logits = X @ W_true.T
    P = np.exp(logits - logits.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    y = (P.cumsum(axis=1) > rng.random((m, 1))).argmax(axis=1)
    return X, y


def _confusion_summary(y_true, y_pred):
    """The most frequent confusions, as 'true -> predicted: count' strings."""
    pairs: dict[tuple, int] = {}
    for t, p in zip(y_true, y_pred, strict=True):
        if t != p:
            pairs[(t, p)] = pairs.get((t, p), 0) + 1
    worst = sorted(pairs.items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{t} -> {p}: {c}" for (t, p), c in worst) or "none"


def demo(quick=False, plot=None, out=None):
    """Digits first, then speed on a large synthetic problem; returns the timing rows.

    Parameters
    ----------
    quick : bool, default=False
        A 20,000 x 50 synthetic problem instead of 200,000 x 100.
    plot : str or path-like, optional
        Write the loss curves to this PNG (needs matplotlib).
    out : file-like, optional
        Where to print (default: standard output).

    Returns
    -------
    list of (name, seconds, iterations, accuracy)
    """
    out = sys.stdout if out is None else out
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from .estimator import SoftmaxRegression

    def say(*parts):
        print(*parts, file=out, flush=True)

    digits = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    start = time.perf_counter()
    digits_model = SoftmaxRegression(alpha=1e-3, max_iter=500).fit(X_train, y_train)
    seconds = time.perf_counter() - start
    predicted = digits_model.predict(X_test)
    say("Handwritten digits (scikit-learn's bundled copy: 1,797 8x8 images, 10 classes)")
    say(
        f"  train accuracy {digits_model.score(X_train, y_train):.4f}   "
        f"test accuracy {np.mean(predicted == y_test):.4f}   "
        f"{digits_model.n_iter_} iterations in {seconds:.2f} s"
    )
    say(f"  most frequent confusions (true -> predicted): {_confusion_summary(y_test, predicted)}")

    m, n, K = (20_000, 50, 10) if quick else (200_000, 100, 10)
    alpha, max_iter = 1e-4, 100
    X, y = _synthetic_problem(m, n, K)
    say(
        f"\nSynthetic problem: {m:,} x {n}, K = {K}, alpha = {alpha} "
        f"(the same objective everywhere; L-BFGS, at most {max_iter} iterations)"
    )
    rows, curves = [], {}

    start = time.perf_counter()
    fast = SoftmaxRegression(alpha=alpha, max_iter=max_iter, tol=1e-6).fit(X, y)
    rows.append(
        (
            "softmax_fast SoftmaxRegression",
            time.perf_counter() - start,
            fast.n_iter_,
            fast.score(X, y),
        )
    )
    curves[f"synthetic {m:,} x {n}"] = list(fast.loss_curve_)

    start = time.perf_counter()
    W, b, res = _peers.reference_lbfgs_fit(X, y, K, alpha, max_iter)
    rows.append(
        (
            "NumPy reference + L-BFGS",
            time.perf_counter() - start,
            res.nit,
            float(np.mean(np.argmax(X @ W.T + b, axis=1) == y)),
        )
    )

    start = time.perf_counter()
    sk = _peers.sklearn_logistic_regression_fit(X, y, alpha, max_iter, tol=1e-6)
    rows.append(
        (
            "scikit-learn LogisticRegression",
            time.perf_counter() - start,
            int(np.max(sk.n_iter_)),
            sk.score(X, y),
        )
    )

    base = rows[0][1]
    say(f"  {'':34} {'time (s)':>9} {'iterations':>10} {'accuracy':>9} {'vs softmax_fast':>16}")
    for name, seconds, iters, acc in rows:
        say(f"  {name:34} {seconds:9.2f} {iters:10d} {acc:9.4f} {seconds / base:15.1f}x")
    say(
        "  (wall-clock, threads as configured. NumPy and SciPy each ship an OpenBLAS whose\n"
        "   thread pools can slow each other down on small machines, which inflates the\n"
        "   reference's time; OPENBLAS_NUM_THREADS=1 shows it without that)"
    )
    if plot:
        curves["digits"] = list(digits_model.loss_curve_)  # both: SoftmaxRegression, lbfgs
        _plot_curves(curves, plot)
        say(f"\nloss curves written to {plot}")
    return rows


def _plot_curves(curves, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        ax.plot(np.arange(1, len(curve) + 1), curve, label=name)
    ax.set_xlabel("iteration")
    ax.set_ylabel("objective of SoftmaxRegression (lbfgs)")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

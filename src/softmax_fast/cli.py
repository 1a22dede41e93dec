"""The ``softmax-fast`` command.

    softmax-fast demo [--quick] [--plot FILE.png]
        train on scikit-learn's bundled digits, then time a 200,000 x 100, 10-class problem
        against scikit-learn's LogisticRegression and the NumPy reference solver
    softmax-fast fit DATA --target COLUMN --model MODEL [--alpha A] [--solver S] [--max-iter N]
                     [--test-size F] [--seed S]
    softmax-fast predict MODEL DATA [--proba] [-o OUT.csv]
    softmax-fast bench [--quick] [--plot FILE.png]
    softmax-fast info

DATA is CSV with a header row, .npz with arrays X and y, or svmlight/libsvm text.  Model files
are versioned .npz archives read without pickle (see softmax_fast._model_io).  Mistakes in the
command line or the data are reported on stderr with exit status 1, without a traceback.
"""

import argparse
import csv
import sys
import time

import numpy as np


class UserError(Exception):
    """A mistake in the command line or the input files: reported without a traceback."""


def _say(args, *parts):
    if not getattr(args, "quiet", False):
        print(*parts, flush=True)


# ----------------------------------------------------------------------------- demo


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


def _fit_reference_lbfgs(X, y, K, alpha, max_iter):
    """The same objective and solver as SoftmaxRegression(solver="lbfgs"), on NumPy's reference."""
    from scipy.optimize import minimize

    from . import reference

    n = X.shape[1]

    def fun(theta):
        W, b = theta[: K * n].reshape(K, n), theta[K * n :]
        loss, dW, db = reference.loss_and_grad(X, y, W, b, alpha=alpha)
        return loss, np.concatenate([dW.ravel(), db])

    res = minimize(
        fun, np.zeros(K * (n + 1)), jac=True, method="L-BFGS-B", options={"maxiter": max_iter}
    )
    return res.x[: K * n].reshape(K, n), res.x[K * n :], res


def _confusion_summary(y_true, y_pred):
    """The most frequent confusions, as 'true -> predicted: count' strings."""
    pairs = {}
    for t, p in zip(y_true, y_pred, strict=True):
        if t != p:
            pairs[(t, p)] = pairs.get((t, p), 0) + 1
    worst = sorted(pairs.items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{t} -> {p}: {c}" for (t, p), c in worst) or "none"


def demo(quick=False, plot=None, out=None):
    """Digits first, then speed on a large synthetic problem; returns the timing rows."""
    out = sys.stdout if out is None else out
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
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
    W, b, res = _fit_reference_lbfgs(X, y, K, alpha, max_iter)
    rows.append(
        (
            "NumPy reference + L-BFGS",
            time.perf_counter() - start,
            res.nit,
            float(np.mean(np.argmax(X @ W.T + b, axis=1) == y)),
        )
    )

    # scikit-learn minimizes sum of losses / (C m) ... + 1/2 ||W||^2: alpha = 1 / (C m).
    start = time.perf_counter()
    sk = LogisticRegression(C=1.0 / (alpha * m), max_iter=max_iter, tol=1e-6).fit(X, y)
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


def _require_matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError(
            "--plot needs matplotlib: pip install 'softmax-fast[plot]' (or matplotlib)"
        ) from None
    return plt


def _plot_curves(curves, path):
    plt = _require_matplotlib()
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


# ----------------------------------------------------------------------------- fit / predict


def _split(X, y, test_size, seed):
    from sklearn.model_selection import train_test_split

    if not 0 <= test_size < 1:
        raise UserError(f"--test-size must be in [0, 1), got {test_size}")
    if not 0 <= seed < 2**32:
        raise UserError(f"--seed must be in [0, 2**32 - 1], got {seed}")
    if test_size == 0:
        return X, X[:0], y, y[:0]
    _, counts = np.unique(y, return_counts=True)
    # Stratify only where each side can hold every class (scikit-learn refuses otherwise).
    n_test = int(np.ceil(test_size * len(y)))
    stratify = y if counts.min() >= 2 and min(n_test, len(y) - n_test) >= len(counts) else None
    return train_test_split(X, y, test_size=test_size, random_state=seed, stratify=stratify)


def cmd_fit(args):
    from ._model_io import read_data, save_model
    from .estimator import SoftmaxRegression

    X, y, names = read_data(args.data, target=args.target)
    if y is None:
        raise UserError(f"{args.data}: name the label column with --target")
    if len(np.unique(y)) < 2:
        raise UserError(f"{args.data}: the target has a single class; nothing to learn")
    X_train, X_test, y_train, y_test = _split(X, y, args.test_size, args.seed)
    model = SoftmaxRegression(
        alpha=args.alpha, solver=args.solver, max_iter=args.max_iter, verbose=0 if args.quiet else 1
    )
    _say(
        args,
        f"fitting on {len(y_train):,} rows x {X.shape[1]} features, "
        f"{len(np.unique(y_train))} classes ({args.solver})",
    )
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    save_model(model, args.model, feature_names=names)
    summary = f"{model.n_iter_} iterations in {seconds:.2f} s; model written to {args.model}"
    if len(y_test):
        summary = (
            f"held-out accuracy {model.score(X_test, y_test):.4f} ({len(y_test):,} rows); "
            + summary
        )
    print(summary)
    return 0


def cmd_predict(args):
    from ._model_io import load_model, read_data

    model, names = load_model(args.model)
    # CSV: read the model's feature columns by name, in its order; others (a label) are ignored.
    X, _, _ = read_data(args.data, columns=names)
    if X.shape[1] != model.n_features_in_:
        raise UserError(
            f"{args.data}: {X.shape[1]} feature columns, the model was fitted on "
            f"{model.n_features_in_}"
        )
    if args.proba:
        header = [f"p({c})" for c in model.classes_]
        rows = model.predict_proba(X).tolist()
    else:
        header = ["prediction"]
        rows = [[label] for label in model.predict(X).tolist()]
    stream = open(args.output, "w", newline="") if args.output else sys.stdout
    try:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)
    finally:
        if args.output:
            stream.close()
    if args.output:
        _say(args, f"{len(rows):,} predictions written to {args.output}")
    return 0


# ----------------------------------------------------------------------------- bench


def _time(fn, repeats):
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench(quick=False, plot=None, out=None):
    """softmax_fast's kernels against the NumPy reference and the installed peers."""
    out = sys.stdout if out is None else out
    import softmax_fast as sf

    from . import reference

    rng = np.random.default_rng(0)
    m_z, m_x = (100_000, 20_000) if quick else (1_000_000, 200_000)
    repeats = 3 if quick else 5
    Z = rng.standard_normal((m_z, 10))
    yz = rng.integers(0, 10, m_z)
    X = rng.standard_normal((m_x, 100))
    W = rng.standard_normal((10, 100)) * 0.1
    b = np.zeros(10)
    y = rng.integers(0, 10, m_x)
    cases = {
        f"softmax {m_z:,}x10": {
            "softmax_fast": lambda: sf.softmax(Z),
            "reference": lambda: reference.softmax(Z),
        },
        f"cross_entropy_grad {m_z:,}x10": {
            "softmax_fast": lambda: sf.cross_entropy_grad(Z, yz),
            "reference": lambda: reference.cross_entropy_grad(Z, yz),
        },
        f"loss_and_grad {m_x:,}x100 K=10": {
            "softmax_fast": lambda: sf.loss_and_grad(X, y, W, b),
            "reference": lambda: reference.loss_and_grad(X, y, W, b),
        },
    }
    _add_peers(cases, Z, yz, X, y, W, b, m_z, m_x)
    results = []
    print(f"{'case':34} {'implementation':22} {'time (ms)':>10} {'softmax_fast is':>16}", file=out)
    for case, impls in cases.items():
        times = {name: _time(fn, repeats) for name, fn in impls.items()}
        for name, t in times.items():
            ratio = t / times["softmax_fast"]
            label = "" if name == "softmax_fast" else f"{ratio:.1f}x faster"
            print(f"{case:34} {name:22} {t * 1e3:10.2f} {label:>16}", file=out, flush=True)
            results.append((case, name, t))
    if plot:
        _plot_bench(results, plot)
        print(f"\nchart written to {plot}", file=out)
    return results


def _add_peers(cases, Z, yz, X, y, W, b, m_z, m_x):
    """Peers that are installed join the cases they implement (skipped silently otherwise)."""
    try:
        import scipy.special

        cases[f"softmax {m_z:,}x10"]["scipy.special"] = lambda: scipy.special.softmax(Z, axis=1)
    except ImportError:  # pragma: no cover - scipy is a dependency
        pass
    try:
        from sklearn._loss.loss import HalfMultinomialLoss

        loss = HalfMultinomialLoss(n_classes=10)
        yf = yz.astype(np.float64)
        cases[f"cross_entropy_grad {m_z:,}x10"]["scikit-learn loss"] = lambda: loss.loss_gradient(
            y_true=yf, raw_prediction=Z
        )
    except ImportError:
        pass
    try:
        import torch

        tX, ty = torch.from_numpy(X), torch.from_numpy(y)

        def torch_step():
            tW = torch.tensor(W, requires_grad=True)
            tb = torch.tensor(b, requires_grad=True)
            torch.nn.functional.cross_entropy(tX @ tW.T + tb, ty).backward()

        cases[f"loss_and_grad {m_x:,}x100 K=10"]["PyTorch CPU"] = torch_step
    except ImportError:
        pass


def _plot_bench(results, path):
    plt = _require_matplotlib()
    cases = list(dict.fromkeys(case for case, _, _ in results))
    fig, axes = plt.subplots(1, len(cases), figsize=(4 * len(cases), 3.5))
    for ax, case in zip(np.atleast_1d(axes), cases, strict=True):
        entries = [(name, t * 1e3) for c, name, t in results if c == case]
        ax.barh([name for name, _ in entries], [t for _, t in entries])
        ax.set_title(case, fontsize=9)
        ax.set_xlabel("ms (lower is better)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ----------------------------------------------------------------------------- main


def _parser():
    parser = argparse.ArgumentParser(prog="softmax-fast", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="show the build and runtime configuration")
    p = sub.add_parser("demo", help="digits, then a large synthetic problem against peers")
    p.add_argument("--quick", action="store_true", help="a smaller synthetic problem")
    p.add_argument("--plot", metavar="FILE.png", help="draw the loss curves (needs matplotlib)")
    p = sub.add_parser("fit", help="fit a model on a data file and write it")
    p.add_argument("data", help="CSV (header row), .npz (X, y) or svmlight file")
    p.add_argument("--target", help="the label column (CSV) or array (npz)")
    p.add_argument("--model", required=True, help="where to write the model (.npz)")
    p.add_argument("--alpha", type=float, default=1e-4, help="L2 penalty (default 1e-4)")
    p.add_argument("--solver", default="lbfgs", choices=["lbfgs", "gd", "sgd"])
    p.add_argument("--max-iter", type=int, default=200)
    p.add_argument("--test-size", type=float, default=0.2, help="held-out fraction (0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/test split")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p = sub.add_parser("predict", help="predict with a model file")
    p.add_argument("model", help="a model written by 'softmax-fast fit'")
    p.add_argument("data", help="CSV, .npz or svmlight file with the same features")
    p.add_argument("--proba", action="store_true", help="class probabilities, not labels")
    p.add_argument("-o", "--output", help="write CSV here instead of standard output")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p = sub.add_parser("bench", help="kernel timings against the reference and installed peers")
    p.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the timings (needs matplotlib)")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        if args.command == "info":
            import softmax_fast

            softmax_fast.show_config()
        elif args.command == "demo":
            if args.plot:
                _require_matplotlib()
            demo(quick=args.quick, plot=args.plot)
        elif args.command == "fit":
            return cmd_fit(args)
        elif args.command == "predict":
            return cmd_predict(args)
        else:
            if args.plot:
                _require_matplotlib()
            bench(quick=args.quick, plot=args.plot)
        return 0
    except (UserError, ValueError, OSError) as exc:  # OSError: missing, unreadable, a directory
        print(f"softmax-fast: error: {exc}", file=sys.stderr)
        return 1
    except MemoryError as exc:
        print(f"softmax-fast: error: not enough memory ({exc})", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

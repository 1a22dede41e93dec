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
are versioned .npz archives read without pickle (see softmax_fast.io.model_file).  Mistakes in the
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


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError(
            "--plot needs matplotlib: pip install 'softmax-fast[plot]' (or matplotlib)"
        ) from None


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
    from .estimator import SoftmaxRegression
    from .io.data_files import read_data
    from .io.model_file import save_model

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
    from .io.data_files import read_data
    from .io.model_file import load_model

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
            from ._demo import demo

            demo(quick=args.quick, plot=args.plot)
        elif args.command == "fit":
            return cmd_fit(args)
        elif args.command == "predict":
            return cmd_predict(args)
        else:
            if args.plot:
                _require_matplotlib()
            from ._bench import bench

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

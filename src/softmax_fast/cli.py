"""The ``softmax-fast`` command: argparse and dispatch.

The commands' work lives elsewhere: data and model files in :mod:`softmax_fast.io`, the demo in
:mod:`softmax_fast._demo`, the bench in :mod:`softmax_fast._bench`.  Mistakes in the command line
or the data are reported on stderr as one ``softmax-fast: error: ...`` line with exit status 1,
never a traceback; syntax errors exit with status 2 (argparse).  The help texts below are plain
text: they are what ``--help`` prints.

Output of ``fit``: the result line on stdout; progress on stderr, a tqdm bar when stderr is a
terminal (replaced by a summary line when the fit ends), or the estimator's per-iteration lines
on stdout with ``-v``; a convergence problem is one ``softmax-fast: warning: ...`` line on stderr
saying what to try.  ``--quiet`` keeps only errors and the result line.
"""

import argparse
import csv
import os
import sys
import time
import warnings

import numpy as np

DESCRIPTION = """\
Softmax regression (multinomial logistic regression) on the CPU.

DATA is a CSV file with a header row, an .npz archive (a dense array X, or a
sparse matrix written by scipy.sparse.save_npz, and the labels y), or an
svmlight/libsvm text file (.svm, .svmlight, .libsvm). Sparse data (svmlight, a
sparse .npz) stays sparse from the file to the model: it is never densified.
Model files are versioned .npz archives, read without pickle: loading one
cannot run code. Mistakes in the command line or the data are reported on
stderr, exit status 1."""

EPILOG = """\
examples:
  softmax-fast fit wine.csv --target label --model wine.npz --standardize
  softmax-fast predict wine.npz new.csv --proba -o proba.csv
  softmax-fast demo --quick

'softmax-fast COMMAND --help' describes each command."""

FIT_DESCRIPTION = """\
Fit a softmax regression model on a data file and write it to a model file.
A fraction of the rows (--test-size) is held out to report the accuracy; the
model is fitted on the others. Progress is a bar on stderr when stderr is a
terminal (-v: one line per iteration instead). If the solver stops before it
converges, a warning says what to try (often --standardize)."""

FIT_EPILOG = """\
examples:
  softmax-fast fit data.csv --target label --model model.npz --standardize
  softmax-fast fit data.svm --model model.npz --alpha 1e-3 --max-iter 500 -v
  softmax-fast fit sparse.npz --model model.npz --standardize   # CSR arrays and y
  softmax-fast fit data.libsvm --model model.npz --one-based     # indices from 1"""

PREDICT_DESCRIPTION = """\
Predict with a model file written by 'softmax-fast fit': one CSV row per data
row, the predicted label (or, with --proba, one probability column per
class). A CSV data file's feature columns are read by name, in any order;
other columns (a label) are ignored. An svmlight file may lack the model's
last features (it does not record its width): they are taken as zeros; its
feature indices are read with the base of the model's training file (stored
in the model), whatever indices it happens to hold. A model fitted with
--standardize applies its stored scaling first."""

STANDARDIZE_HELP = (
    "scale each feature to mean 0 and variance 1 before fitting (a StandardScaler, fitted on "
    "the training rows, stored in the model file and applied again by 'predict'). Use it when "
    "the features are on very different scales, e.g. raw CSV columns such as income beside age: "
    "the solver then converges in far fewer iterations. Constant columns are left unscaled. "
    "Sparse data (svmlight, a sparse .npz) is scaled to variance 1 without centring "
    "(StandardScaler(with_mean=False)): subtracting the means would make it dense."
)


INDEX_BASE_HELP = {
    "fit": (
        "the svmlight file's feature indices count from 0 (--zero-based: index 0 is the first "
        "feature) or from 1 (--one-based: index 1 is). Default: guessed as scikit-learn does, "
        "zero-based when some index is 0, else one-based, which is wrong for zero-based data "
        "that never uses feature 0: say it when you know it. The base is stored in the model "
        "file, and 'predict' reads svmlight files with it"
    ),
    "predict": (
        "read the svmlight file's feature indices as counting from 0 or from 1. Default: the "
        "base of the model's training file, stored in the model file (for a model without one, "
        "fitted on CSV or npz data or by an earlier softmax_fast: guessed from the file, "
        "zero-based when some index is 0, else one-based, with a warning)"
    ),
}


class UserError(Exception):
    """A mistake in the command line or the input files: reported without a traceback."""


def _say(args, *parts):
    if not getattr(args, "quiet", False):
        print(*parts, flush=True)


def _warn(message):
    print(f"softmax-fast: warning: {message}", file=sys.stderr, flush=True)


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError(
            "--plot needs matplotlib: pip install 'softmax-fast[plot]' (or matplotlib)"
        ) from None


# ----------------------------------------------------------------------------- fit / predict


class _ProgressBar:
    """A tqdm bar on stderr, driven by the estimator's ``SolverStep`` reports.

    Shown only when stderr is a terminal (tqdm's ``disable=None``); when the fit ends the bar
    is replaced by one summary line.  ``last`` is the latest report (None before the first).
    """

    def __init__(self, max_iter, unit, desc):
        from tqdm import tqdm

        self.file = sys.stderr
        self.last = None
        self.bar = tqdm(
            total=max_iter,
            desc=desc,
            unit="it" if unit == "iteration" else unit,
            file=self.file,
            leave=False,
            disable=None,
            dynamic_ncols=True,
        )

    def __call__(self, step):
        self.last = step
        self.bar.set_postfix_str(
            f"objective={step.objective:.6g}, max|grad|={step.grad_max:.2e}", refresh=False
        )
        self.bar.update(step.iteration - self.bar.n)

    def close(self, summary=None):
        shown = not self.bar.disable
        self.bar.close()
        if shown and summary:
            print(summary, file=self.file, flush=True)


class _LastStep:
    """Remembers the latest ``SolverStep`` (the callback when no bar is shown)."""

    last = None

    def __call__(self, step):
        self.last = step

    def close(self, summary=None):
        pass


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


def _not_converged_advice(args, model, step, unit):
    """The one-line warning for a fit that stopped at max_iter, with what to try."""
    if step is not None and model.solver_ != "sgd":
        above = f" > tol {model.tol:.0e}" if step.grad_max > model.tol else ""
        why = f" (max|grad| = {step.grad_max:.1e}{above})"
    elif step is not None:
        why = f" (the objective still improved by more than tol {model.tol:.0e} per epoch)"
    else:
        why = ""
    tries = [] if args.standardize else ["--standardize"]
    tries.append(f"--max-iter {5 * args.max_iter}")
    return f"not converged in {model.max_iter} {unit}s{why}; try {', or '.join(tries)}"


def _fit_catching_warnings(model, X, y, callback):
    """``model.fit`` with its warnings caught: ``(converged, other warning messages)``.

    Warnings the filters in force would hide (e.g. deprecations) stay hidden.
    """
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(X, y, callback=callback)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    others = [
        str(w.message).splitlines()[0]
        for w in caught
        if not issubclass(w.category, ConvergenceWarning)
    ]
    return converged, list(dict.fromkeys(others))


def _no_labels(args, sparse):
    """The error for a data file read without labels."""
    if not str(args.data).lower().endswith(".npz"):
        return UserError(f"{args.data}: name the label column with --target")
    message = f"{args.data}: the npz archive has no labels (an array 'y', or name it with --target)"
    if sparse:
        message += (
            "; scipy.sparse.save_npz writes none: save the matrix's arrays and y together with "
            "np.savez (see the README)"
        )
    return UserError(message)


def _is_svmlight(path):
    from .io.data_files import SVMLIGHT_SUFFIXES

    return str(path).lower().endswith(SVMLIGHT_SUFFIXES)


def _check_index_base_option(args):
    """--zero-based / --one-based name the base of an svmlight file: refused for other data."""
    if args.zero_based is not None and not _is_svmlight(args.data):
        option = "--zero-based" if args.zero_based else "--one-based"
        raise UserError(f"{option} applies to svmlight files only, not to {args.data}")


def cmd_fit(args):
    import scipy.sparse
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from .estimator import SoftmaxRegression
    from .io.data_files import read_data_file
    from .io.model_file import save_model

    _check_index_base_option(args)
    # Sparse data (svmlight, a save_npz archive) arrives as a CSR matrix and stays one: the split,
    # the scaler and the estimator all take it as it is.
    X, y, names, zero_based = read_data_file(
        args.data, target=args.target, zero_based=args.zero_based
    )
    if zero_based is False and args.zero_based is None:
        _say(
            args,
            f"{args.data}: no feature index 0, so its indices are read as counting from 1 "
            f"(index 1 is the first feature); if they count from 0, fit again with --zero-based",
        )
    sparse = isinstance(X, scipy.sparse.csr_matrix)
    if y is None:
        raise _no_labels(args, sparse)
    if len(np.unique(y)) < 2:
        raise UserError(f"{args.data}: the target has a single class; nothing to learn")
    X_train, X_test, y_train, y_test = _split(X, y, args.test_size, args.seed)
    reference = _reference_label(args, y)
    if args.summary and (reference is None or args.alpha != 0.0):
        raise UserError(
            "--summary: maximum-likelihood standard errors need --reference-class LABEL and "
            "--alpha 0 (a penalized fit has none)"
        )
    model = SoftmaxRegression(
        alpha=args.alpha,
        solver=args.solver,
        max_iter=args.max_iter,
        verbose=int(args.verbose),
        reference_class=reference,
    )
    unit = "epoch" if args.solver in ("sgd", "saga") else "iteration"
    scaling = ""
    if args.standardize:
        scaling = ", standardized without centring" if sparse else ", standardized"
    stored = f" (sparse, {X_train.nnz:,} stored values)" if sparse else ""
    _say(
        args,
        f"fitting on {len(y_train):,} rows x {X.shape[1]} features{stored}, "
        f"{len(np.unique(y_train))} classes ({args.solver}{scaling})",
    )
    start = time.perf_counter()
    # Centring would densify sparse data: it is scaled only (the model file stores means of 0).
    scaler = StandardScaler(with_mean=not sparse).fit(X_train) if args.standardize else None
    X_fit = X_train if scaler is None else scaler.transform(X_train)
    show_bar = not (args.quiet or args.verbose)
    progress = (
        _ProgressBar(args.max_iter, unit, f"fit ({args.solver})") if show_bar else _LastStep()
    )
    try:
        converged, others = _fit_catching_warnings(model, X_fit, y_train, progress)
    except BaseException:
        progress.close()
        raise
    seconds = time.perf_counter() - start
    step = progress.last
    if step is not None:
        state = "converged" if converged else "not converged"
        progress.close(
            f"fit ({model.solver_}): {model.n_iter_} {unit}s in {seconds:.2f} s, objective "
            f"{step.objective:.6g}, max|grad| {step.grad_max:.2e} ({state})"
        )
    else:
        progress.close()
    if not args.quiet:
        for message in others:
            _warn(message)
        if not converged:
            _warn(_not_converged_advice(args, model, step, unit))
    estimator = model if scaler is None else make_pipeline(scaler, model)
    # The training file's index base: predict reads svmlight files with it.
    save_model(estimator, args.model, feature_names=names, svmlight_zero_based=zero_based)
    done = f"{model.n_iter_} {unit}s in {seconds:.2f} s" + ("" if converged else " (not converged)")
    summary = f"{done}; model written to {args.model}"
    if len(y_test):
        accuracy = estimator.score(X_test, y_test)
        summary = f"held-out accuracy {accuracy:.4f} ({len(y_test):,} rows); {summary}"
    print(summary, flush=True)
    if args.summary:
        try:
            results = model.inference(X_fit, y_train)
        except ValueError as exc:
            raise UserError(f"--summary: {exc}") from None
        if names is not None:
            results.row_names = [str(v) for v in names] + results.row_names[len(names) :]
        print(results.summary(), flush=True)
    return 0


def _reference_label(args, y):
    """--reference-class as one of y's labels (compared as text: a CSV's labels may be
    numbers or names), or None."""
    if args.reference_class is None:
        return None
    labels = np.unique(y)
    for label in labels:
        if str(label) == args.reference_class:
            return label
    raise UserError(
        f"--reference-class: {args.reference_class!r} is not one of the labels "
        f"{[str(v) for v in labels]}"
    )


def _read_svmlight_to_predict(args, model_base):
    """The svmlight file to predict on, its indices read with the option's base, else the model's
    (the training file's), else guessed (with a warning where the guess is one-based)."""
    from .io.data_files import IndexBaseError, read_data_file

    base = model_base if args.zero_based is None else args.zero_based
    try:
        data = read_data_file(args.data, zero_based=base)
    except IndexBaseError as exc:
        # Only the model's base (or --one-based) reads a file as one-based here.
        if args.zero_based is not None:
            raise UserError(str(exc)) from None
        raise UserError(
            f"{exc}: the model was fitted on an svmlight file read as one-based. If the "
            f"training file counts from 0 as well, fit again with --zero-based; if only this "
            f"file does, pass --zero-based here"
        ) from None
    if base is None and data.zero_based is False:
        _warn(
            f"{args.data}: the model file does not record its training file's index base, and "
            f"this file has no feature index 0: its indices are read as counting from 1; pass "
            f"--zero-based if they count from 0"
        )
    return data.X


def cmd_predict(args):
    import scipy.sparse

    from .io.data_files import read_data
    from .io.model_file import load_model_file

    _check_index_base_option(args)
    model, names, model_base = load_model_file(args.model)
    # CSV: read the model's feature columns by name, in its order; others (a label) are ignored.
    # Sparse data stays a CSR matrix: the stored scaler (which does not centre it) and the
    # model take it as it is.
    svmlight = _is_svmlight(args.data)
    if svmlight:
        X = _read_svmlight_to_predict(args, model_base)
    else:
        X, _, _ = read_data(args.data, columns=names)
    if svmlight and isinstance(X, scipy.sparse.csr_matrix) and X.shape[1] < model.n_features_in_:
        # An svmlight file's width is its highest feature index: the features after it are
        # zeros (the same arrays, a wider shape: no copy).
        X = scipy.sparse.csr_matrix(
            (X.data, X.indices, X.indptr), shape=(X.shape[0], model.n_features_in_), copy=False
        )
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


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written (paragraphs, example blocks); option help wrapped."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=32)


def _index_base_options(p, help):
    """--zero-based / --one-based (svmlight files): ``args.zero_based`` True, False or None."""
    base = p.add_mutually_exclusive_group()
    base.add_argument(
        "--zero-based", dest="zero_based", action="store_true", default=None, help=help
    )
    base.add_argument(
        "--one-based",
        dest="zero_based",
        action="store_false",
        default=None,
        help="see --zero-based",
    )


def _parser():
    parser = argparse.ArgumentParser(
        prog="softmax-fast", description=DESCRIPTION, epilog=EPILOG, formatter_class=_Formatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, help, description=None, epilog=None):
        return sub.add_parser(
            name,
            help=help,
            description=description or help[0].upper() + help[1:] + ".",
            epilog=epilog,
            formatter_class=_Formatter,
        )

    command("info", "show the build and runtime configuration (OpenMP, threads, BLAS)")

    p = command(
        "fit",
        "fit a model on a data file and write it to a model file",
        FIT_DESCRIPTION,
        FIT_EPILOG,
    )
    p.add_argument(
        "data",
        metavar="DATA",
        help="CSV (header row), .npz (X or a scipy.sparse.save_npz matrix, and y) or svmlight file",
    )
    p.add_argument(
        "--target",
        metavar="COLUMN",
        help="the label column (CSV; required) or array (npz; default: y)",
    )
    p.add_argument(
        "--model", required=True, metavar="FILE.npz", help="where to write the model (required)"
    )
    p.add_argument("--standardize", action="store_true", help=STANDARDIZE_HELP)
    p.add_argument(
        "--alpha",
        type=float,
        default=1e-4,
        metavar="A",
        help="L2 penalty: the objective is mean cross-entropy + (A/2) ||W||^2 (default: 1e-4)",
    )
    p.add_argument(
        "--solver",
        default="auto",
        choices=["auto", "lbfgs", "newton-cg", "newton", "saga", "gd", "sgd"],
        metavar="NAME",
        help="auto (chosen from the data's shape), lbfgs, newton-cg (truncated Newton), newton, "
        "saga, gd (gradient descent) or sgd (averaged SGD) (default: auto)",
    )
    p.add_argument(
        "--reference-class",
        metavar="LABEL",
        help="fix this class's logits at 0 (the K - 1 form of multinomial logit)",
    )
    p.add_argument(
        "--summary",
        action="store_true",
        help="print coefficients with standard errors, z, p-values and confidence intervals "
        "(needs --reference-class and --alpha 0)",
    )
    p.add_argument(
        "--max-iter",
        type=int,
        default=200,
        metavar="N",
        help="at most N iterations, or epochs for saga and sgd (default: 200)",
    )
    p.add_argument(
        "--test-size",
        type=float,
        default=0.2,
        metavar="F",
        help="fraction of the rows held out to report accuracy; 0 fits on all (default: 0.2)",
    )
    p.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed of the train/test split (default: 0)"
    )
    _index_base_options(p, INDEX_BASE_HELP["fit"])
    loud = p.add_mutually_exclusive_group()
    loud.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print the objective and max|grad| of every iteration instead of a progress bar",
    )
    loud.add_argument(
        "--quiet",
        action="store_true",
        help="no progress, no warnings: only errors and the result line",
    )

    p = command("predict", "predict with a model file", PREDICT_DESCRIPTION)
    p.add_argument("model", metavar="MODEL", help="a model file written by 'softmax-fast fit'")
    p.add_argument(
        "data",
        metavar="DATA",
        help="CSV, .npz (dense X or a scipy.sparse.save_npz matrix) or svmlight file with the "
        "same features",
    )
    p.add_argument("--proba", action="store_true", help="class probabilities, not labels")
    _index_base_options(p, INDEX_BASE_HELP["predict"])
    p.add_argument(
        "-o", "--output", metavar="FILE.csv", help="write the CSV here (default: standard output)"
    )
    p.add_argument("--quiet", action="store_true", help="no message after writing -o FILE.csv")

    p = command(
        "demo",
        "digits, then large dense and sparse problems against scikit-learn and NumPy",
        "Train on scikit-learn's bundled handwritten digits, then time a 200,000 x\n"
        "100, 10-class problem against scikit-learn's LogisticRegression and the\n"
        "NumPy reference solver (L-BFGS, the same objective), then a sparse\n"
        "text-like tf-idf corpus shaped like 20 newsgroups (11,314 x 130,107, 20\n"
        "classes, CSR, never densified) against LogisticRegression (C = 10 for\n"
        "both), with the objective each reached and the held-out accuracy.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a 20,000 x 50 problem and a 1,000 x 10,000 corpus (seconds)",
    )
    p.add_argument("--plot", metavar="FILE.png", help="draw the loss curves (needs matplotlib)")

    p = command(
        "bench",
        "kernel timings against the NumPy reference and installed peers",
        "Time softmax, cross_entropy_grad and the fused loss_and_grad against the\n"
        "NumPy reference and the installed peers (scipy.special, scikit-learn's\n"
        "loss, PyTorch CPU).",
    )
    p.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the timings (needs matplotlib)")
    return parser


def main(argv=None):
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
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
    except BrokenPipeError:  # stdout's reader left (e.g. '| head'): stop quietly
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # a stdout without a descriptor
            pass
        return 1
    except (UserError, ValueError, OSError) as exc:  # OSError: missing, unreadable, a directory
        print(f"softmax-fast: error: {exc}", file=sys.stderr)
        return 1
    except MemoryError as exc:
        print(f"softmax-fast: error: not enough memory ({exc})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("softmax-fast: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``softmax-fast demo``: scikit-learn's digits, then speed on a large synthetic problem against
the NumPy reference solver and scikit-learn's LogisticRegression (from :mod:`._peers`), then a
sparse part: a text-like tf-idf corpus (:func:`._synthetic.text_corpus`, 20 newsgroups' shape)
as a CSR matrix, fitted by both libraries on the same objective, never densified."""

import sys
import time

import numpy as np

from . import _peers

# The sparse part's penalty, as scikit-learn's C: alpha = 1 / (C m).  C = 10 (alpha ~ 1.2e-5 on
# the full corpus's 8,485 training rows) reaches tol 1e-6 in about 50 L-BFGS iterations in both
# libraries, on the full corpus and on the quick one; C = 1 penalizes more (fewer iterations,
# a worse fit), C = 100 takes a few hundred iterations.
SPARSE_C = 10.0
SPARSE_TOL, SPARSE_MAX_ITER = 1e-6, 500
# (n_docs, n_terms): the defaults of text_corpus, 20 newsgroups' shape; --quick's corpus (the
# same ~180 distinct terms a row and 20 classes) takes about a second per library.
SPARSE_FULL, SPARSE_QUICK = (11_314, 130_107), (1_000, 10_000)


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


def _sparse_comparison(quick, say):
    """The sparse part: a text-like corpus fitted by SoftmaxRegression and scikit-learn.

    Both minimize the same objective on the same CSR matrix (a held-out quarter of the rows
    aside): mean cross-entropy + (alpha / 2) ||W||^2 with alpha = 1 / (C m), which is
    scikit-learn's sum / (C m) + ||W||^2 / 2 with C = SPARSE_C.  The objective each reached is
    evaluated once more by :func:`softmax_fast.loss_and_grad` on the sparse X; nothing here
    densifies X.

    Returns ``(rows, curve_name, loss_curve)``, ``rows`` a list of
    ``(name, seconds, iterations, objective, held_out_accuracy)``.
    """
    from sklearn.model_selection import train_test_split

    from ._synthetic import text_corpus
    from .estimator import SoftmaxRegression
    from .kernels import loss_and_grad

    n_docs, n_terms = SPARSE_QUICK if quick else SPARSE_FULL
    X, y = text_corpus(n_docs, n_terms)
    K = int(y.max()) + 1
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    m = X_train.shape[0]
    alpha = 1.0 / (SPARSE_C * m)
    say(
        f"\nSparse text-like corpus: {n_docs:,} x {n_terms:,} tf-idf, K = {K} (CSR: {X.nnz:,} "
        f"stored values, {X.nnz / n_docs:.0f} a row)"
    )
    say(
        f"  fitted on {m:,} rows, {len(y_test):,} held out; C = {SPARSE_C:g}, i.e. "
        f"alpha = 1 / (C m) = {alpha:.3g}\n"
        f"  (the same objective for both; L-BFGS, tol {SPARSE_TOL:g}, at most "
        f"{SPARSE_MAX_ITER} iterations)"
    )

    def objective(model):
        codes = np.searchsorted(model.classes_, y_train)  # labels as class indices
        return float(loss_and_grad(X_train, codes, model.coef_, model.intercept_, alpha=alpha)[0])

    rows = []
    start = time.perf_counter()
    fast = SoftmaxRegression(
        alpha=alpha, solver="lbfgs", max_iter=SPARSE_MAX_ITER, tol=SPARSE_TOL
    ).fit(X_train, y_train)
    seconds = time.perf_counter() - start
    rows.append(
        (
            "softmax_fast SoftmaxRegression",
            seconds,
            fast.n_iter_,
            objective(fast),
            fast.score(X_test, y_test),
        )
    )
    start = time.perf_counter()
    sk = _peers.sklearn_logistic_regression_fit(
        X_train, y_train, alpha, SPARSE_MAX_ITER, tol=SPARSE_TOL
    )
    seconds = time.perf_counter() - start
    rows.append(
        (
            "scikit-learn LogisticRegression",
            seconds,
            int(np.max(sk.n_iter_)),
            objective(sk),
            sk.score(X_test, y_test),
        )
    )

    base = rows[0][1]
    say(
        f"  {'':34} {'time (s)':>9} {'iterations':>10} {'objective':>11} {'accuracy':>9} "
        f"{'vs softmax_fast':>16}"
    )
    for name, seconds, iters, value, acc in rows:
        say(
            f"  {name:34} {seconds:9.2f} {iters:10d} {value:11.8f} {acc:9.4f} "
            f"{seconds / base:15.1f}x"
        )
    say(
        "  (objective: the training objective each reached, evaluated by\n"
        "   softmax_fast.loss_and_grad on the sparse X; accuracy: on the held-out rows, which\n"
        "   the classes' topic words make easy to tell apart in this synthetic corpus)"
    )
    return rows, f"text corpus {n_docs:,} x {n_terms:,} (sparse)", list(fast.loss_curve_)


def demo(quick=False, plot=None, out=None):
    """Digits first, then speed on a large synthetic problem, then on a sparse text-like corpus.

    Parameters
    ----------
    quick : bool, default=False
        A 20,000 x 50 synthetic problem instead of 200,000 x 100, and a 1,000 x 10,000 corpus
        instead of 11,314 x 130,107.
    plot : str or path-like, optional
        Write the loss curves to this PNG (needs matplotlib).
    out : file-like, optional
        Where to print (default: standard output).

    Returns
    -------
    dict
        ``"synthetic"``: the dense problem's rows, ``(name, seconds, iterations, accuracy)``;
        ``"sparse"``: the corpus's, ``(name, seconds, iterations, objective, accuracy)``.
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
    sparse_rows, name, curve = _sparse_comparison(quick, say)
    curves[name] = curve
    if plot:
        curves["digits"] = list(digits_model.loss_curve_)  # both: SoftmaxRegression, lbfgs
        _plot_curves(curves, plot)
        say(f"\nloss curves written to {plot}")
    return {"synthetic": rows, "sparse": sparse_rows}


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

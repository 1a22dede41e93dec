"""``softmax-fast bench``: softmax_fast's kernels against the NumPy reference and the installed
peers of :mod:`._peers` (scipy.special, scikit-learn's loss, PyTorch CPU)."""

import sys
import time
from collections.abc import Callable

import numpy as np

from . import _peers


def _time(fn, repeats):
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench(quick=False, plot=None, out=None):
    """Time softmax_fast's kernels against the reference and the installed peers.

    Parameters
    ----------
    quick : bool, default=False
        Small sizes (seconds).
    plot : str or path-like, optional
        Write a bar chart of the timings to this PNG (needs matplotlib).
    out : file-like, optional
        Where to print (default: standard output).

    Returns
    -------
    list of (case, implementation, seconds)
    """
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
    softmax_case = f"softmax {m_z:,}x10"
    grad_case = f"cross_entropy_grad {m_z:,}x10"
    loss_case = f"loss_and_grad {m_x:,}x100 K=10"
    cases = {
        softmax_case: {
            "softmax_fast": lambda: sf.softmax(Z),
            "reference": lambda: reference.softmax(Z),
        },
        grad_case: {
            "softmax_fast": lambda: sf.cross_entropy_grad(Z, yz),
            "reference": lambda: reference.cross_entropy_grad(Z, yz),
        },
        loss_case: {
            "softmax_fast": lambda: sf.loss_and_grad(X, y, W, b),
            "reference": lambda: reference.loss_and_grad(X, y, W, b),
        },
    }
    # Installed peers join the cases they implement; the others are left out silently.
    peers: list[tuple[str, str, Callable, tuple]] = [
        (softmax_case, "scipy.special", _peers.scipy_softmax, (Z,)),
        (grad_case, "scikit-learn loss", _peers.sklearn_cross_entropy_grad, (Z, yz)),
        (loss_case, "PyTorch CPU", _peers.torch_loss_and_grad, (X, y, W, b)),
    ]
    for case, name, make, args in peers:
        try:
            cases[case][name] = make(*args)
        except _peers.PeerUnavailable:
            pass
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


def _plot_bench(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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

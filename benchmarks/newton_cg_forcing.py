"""newton-cg's forcing term: passes over the data to an objective within ``--rel-gap`` of the
optimum, per forcing term, on the cases of ``solvers.py``.

For each case, J* comes from one newton-cg fit with ``tol=1e-10`` (forcing 0.1); then, for each
forcing term of ``--forcing``, one newton-cg fit from zero with ``tol=1e-9`` whose progress
reports record, after every outer iteration, J and the passes so far: Hessian-vector products
(float64 and float32 alike), gradient evaluations (the line search's included) and the outer
iterations themselves (each computes the probabilities and the diagonal: two passes).  The
result per forcing term is the first iteration with ``(J - J*) / J* <= rel_gap``: its products,
gradients, iterations and ``passes = products + gradients + 2 iterations``.  The counts do not
depend on the machine's noise (the time is reported too, for scale).  The forcing term is
set through ``softmax_fast._solvers.NEWTON_CG_FORCING``, which newton-cg reads at each call.

    python benchmarks/newton_cg_forcing.py [--cases onehot,dense,text,mnist]
        [--forcing 0.3,0.2,0.1,0.05] [--rel-gap 1e-6] [--alpha 1e-4] [--quick]
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from solvers import build_case  # noqa: E402


class _Counts:
    def __init__(self):
        self.products = 0
        self.gradients = 0


class _CountingOperator:
    """A HessianOperator that counts its products."""

    def __init__(self, operator, counts):
        self._operator, self._counts = operator, counts

    @property
    def has_float32(self):
        return self._operator.has_float32

    def matvec(self, v):
        self._counts.products += 1
        return self._operator.matvec(v)

    def matvec_float32(self, v):
        self._counts.products += 1
        return self._operator.matvec_float32(v)

    def diagonal(self):
        return self._operator.diagonal()


class _CountingObjective:
    """The solver's side of a SoftmaxObjective, counting gradients and products."""

    def __init__(self, objective, counts):
        self._objective, self._counts = objective, counts

    def __getattr__(self, name):
        return getattr(self._objective, name)

    def value_and_grad(self, theta):
        self._counts.gradients += 1
        return self._objective.value_and_grad(theta)

    def hessian_operator(self, theta, **kwargs):
        return _CountingOperator(self._objective.hessian_operator(theta, **kwargs), self._counts)


def _objective(X, y, alpha):
    import scipy.sparse as sp

    from softmax_fast._design import CSRDesign, DenseDesign
    from softmax_fast._objective import SoftmaxObjective
    from softmax_fast._validation import as_csr_arrays

    threads = os.cpu_count() or 1
    if sp.issparse(X):
        design = CSRDesign(as_csr_arrays(sp.csr_matrix(X)), threads)
    else:
        design = DenseDesign(np.ascontiguousarray(X, dtype=np.float64), threads)
    labels = np.unique(y, return_inverse=True)[1].astype(np.intp)
    K = int(labels.max()) + 1
    return SoftmaxObjective(design, labels, None, K, alpha, True, None)


def _run(objective, forcing, tol, J_star, rel_gap):
    from softmax_fast import _solvers

    counts = _Counts()
    reached = []

    def progress(step):
        if J_star is None or reached:
            return
        if step.objective - J_star <= rel_gap * abs(J_star):
            reached.append((step.iteration, counts.products, counts.gradients, step.objective))

    previous = _solvers.NEWTON_CG_FORCING
    _solvers.NEWTON_CG_FORCING = forcing
    try:
        start = time.perf_counter()
        result = _solvers.newton_cg(
            _CountingObjective(objective, counts),
            np.zeros(objective.n_params),
            max_iter=100,
            tol=tol,
            progress=progress,
        )
        seconds = time.perf_counter() - start
    finally:
        _solvers.NEWTON_CG_FORCING = previous
    return result, reached, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="onehot,dense,text,mnist")
    parser.add_argument("--forcing", default="0.3,0.2,0.1,0.05")
    parser.add_argument("--rel-gap", type=float, default=1e-6)
    parser.add_argument("--alpha", type=float, default=1e-4)
    parser.add_argument("--quick", action="store_true", help="the cases' tenth-size versions")
    args = parser.parse_args(argv)
    print("| case | forcing | products | gradients | iterations | passes | seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.cases.split(","):
        X, y = build_case(name, args.quick)
        objective = _objective(X, y, args.alpha)
        reference, _, _ = _run(objective, 0.1, 1e-10, None, 0.0)
        J_star = objective.value_and_grad(reference.theta)[0]
        for forcing in (float(f) for f in args.forcing.split(",")):
            _, reached, seconds = _run(objective, forcing, 1e-9, J_star, args.rel_gap)
            if not reached:
                print(f"| {name} | {forcing:g} | not reached | | | | {seconds:.2f} |")
                continue
            iterations, products, gradients, _ = reached[0]
            passes = products + gradients + 2 * iterations
            print(
                f"| {name} | {forcing:g} | {products} | {gradients} | {iterations} | {passes} "
                f"| {seconds:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

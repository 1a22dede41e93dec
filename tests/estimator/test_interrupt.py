"""Ctrl-C during a long ``SoftmaxRegression`` fit raises ``KeyboardInterrupt`` within a second and
leaves the estimator as it was before the call: unfitted, or with its previous (mutually consistent)
attributes.

How it is tested: a child Python process starts a long fit (each solver; a fresh estimator, one
already fitted on other classes and features, a ``warm_start`` refit, a first and a later
``partial_fit``), prints ``STARTED`` from inside the fit (the first ``loss_and_grad`` call), and the
parent sends it SIGINT a little later.  The child catches the ``KeyboardInterrupt``, reports how
long after the ``kill`` it arrived (``time.monotonic`` is one clock for all the processes of the
machine) and what state the estimator is in.

Why a second is enough: CPython only runs the SIGINT handler (which raises ``KeyboardInterrupt``) in
the main thread between bytecodes, so the interrupt waits for the kernel call under way to return
(the kernels run without the GIL and cannot be stopped half way).  The solvers call the kernel once
per objective evaluation, so the latency is at most one ``loss_and_grad`` call plus one solver step.
On this test's data (20,000 x 60 float64, 10 classes) one call takes about 5-60 ms on a busy 2-core
machine (the child reports the longest it saw), far below a second.  With a single call on data
of several GB a call -- and so the latency -- can take seconds: interrupting then needs a smaller
``batch_size`` (sgd) or smaller data.

Once the fit is under way each call is padded to at least 5 ms, so that no scenario can end before
the SIGINT arrives on a fast machine; the parent reports the child's stderr whenever the child
did not answer as expected.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from softmax_fast import SoftmaxRegression
from softmax_fast._design import DenseDesign

# The child: runs the scenarios given on its command line one after the other; for each prints
# STARTED once the interrupted call is inside the kernels, then RESULT <json> after the interrupt.
_CHILD = r"""
import copy, json, signal, sys, time, traceback, warnings
import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from softmax_fast import SoftmaxRegression
from softmax_fast._design import DenseDesign

signal.signal(signal.SIGINT, signal.default_int_handler)
warnings.simplefilter("ignore")  # ConvergenceWarning of the short preparatory fits

rng = np.random.default_rng(0)
n, K = 60, 10

def data(m):
    # Columns on very different scales: an ill-conditioned problem that keeps lbfgs busy.
    X = rng.standard_normal((m, n)) * np.logspace(0, 2, n)
    return X, np.argmax(X @ rng.standard_normal((K, n)).T / 30 + rng.standard_normal((m, K)), 1)

X, y = data(20_000)
X_other = rng.standard_normal((300, 7))  # other features and other classes
y_other = rng.integers(0, 4, 300) * 10

kernel = DenseDesign.loss_grad  # every objective evaluation of a fit goes through it
armed = False
started = False
longest = 0.0
# Once STARTED is printed, every kernel call lasts at least this long (a Python busy-wait after
# the call, where the interrupt can land too, as in any solver code).  On a fast machine the
# interrupted fit could otherwise end before the SIGINT arrives (an sgd epoch of 1,250 batches
# takes about 0.2 s on an idle core): this bounds the calls made in the parent's wait, whatever
# the machine's speed, far below the 1,250+ calls each scenario needs to end.
MIN_CALL_SECONDS = 0.005

def watched_loss_and_grad(*args, **kwargs):
    global armed, started, longest
    if armed:
        armed = False
        started = True
        print("STARTED", flush=True)
    t0 = time.perf_counter()
    result = kernel(*args, **kwargs)
    longest = max(longest, time.perf_counter() - t0)
    while started and time.perf_counter() - t0 < MIN_CALL_SECONDS:
        pass
    return result

DenseDesign.loss_grad = watched_loss_and_grad

def fitted_state(clf):
    return {k: copy.deepcopy(v) for k, v in vars(clf).items()
            if k.endswith("_") or k == "_samples_seen"}

def same(a, b):
    if a.keys() != b.keys():
        return False
    return all(np.array_equal(a[k], b[k]) if isinstance(a[k], np.ndarray) else a[k] == b[k]
               for k in a)

def report(clf, before, exc, started_at):
    frames = traceback.extract_tb(exc.__traceback__)
    out = {"latency": time.monotonic() - started_at,
           "in_fit": any(f.name in ("fit", "partial_fit") for f in frames),
           "longest_call": longest, "unchanged": same(fitted_state(clf), before)}
    try:
        check_is_fitted(clf)
        out["fitted"] = True
    except NotFittedError:
        out["fitted"] = False
    if out["fitted"]:
        try:
            Xc = X_other if clf.n_features_in_ == X_other.shape[1] else X
            logits = Xc @ clf.coef_.T + clf.intercept_
            out.update(
                classes=clf.classes_.tolist(), coef_shape=list(clf.coef_.shape),
                intercept_shape=list(clf.intercept_.shape), n_features_in=clf.n_features_in_,
                predict_ok=bool(np.array_equal(clf.predict(Xc),
                                               clf.classes_[np.argmax(logits, 1)])),
            )
        except Exception as e:  # half-fitted: attributes missing or of mismatched shapes
            out["broken"] = repr(e)
    # the estimator must still work afterwards
    out["refit_ok"] = SoftmaxRegression(max_iter=2).fit(X_other, y_other).coef_.shape == (4, 7)
    return out

for item in sys.argv[1:]:
    solver, scenario = item.split(":")
    clf = SoftmaxRegression(solver=solver, alpha=0.0, tol=0.0, max_iter=10**6, learning_rate=1e-4,
                            n_threads=2, random_state=0)
    if scenario == "refit":
        clf.set_params(max_iter=5).fit(X_other, y_other).set_params(max_iter=10**6)
    elif scenario == "warm_start":
        clf.set_params(max_iter=1, warm_start=True).fit(X, y).set_params(max_iter=10**6)
    elif scenario.startswith("partial_fit"):
        # 1,250 mini-batches an epoch: a partial_fit call long enough to be interrupted
        clf.set_params(batch_size=16)
    if scenario == "partial_fit_later":
        clf.partial_fit(X[:1000], y[:1000], classes=np.arange(K))
    before = fitted_state(clf)
    armed, started = True, False
    try:
        if scenario.startswith("partial_fit"):
            while True:
                before = fitted_state(clf)
                clf.partial_fit(X, y, classes=np.arange(K))
                if scenario == "partial_fit_first":
                    break
        else:
            clf.fit(X, y)
        print("RESULT " + json.dumps({"finished": True}), flush=True)
    except KeyboardInterrupt as exc:
        started_at = float(sys.stdin.readline())
        print("RESULT " + json.dumps(report(clf, before, exc, started_at)), flush=True)
"""


def _run_child(scenarios, wait=0.2):
    """Start the child, interrupt each scenario ``wait`` s after it started; return the results."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, *scenarios],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    results = []

    def child_failed(scenario, what):
        # The child died or said something unexpected: fail with its own account of why.
        proc.kill()
        proc.wait()
        return AssertionError(f"{scenario}: {what}; the child's stderr:\n{proc.stderr.read()}")

    try:
        for scenario in scenarios:
            line = proc.stdout.readline()
            if line != "STARTED\n":
                raise child_failed(scenario, f"the child said {line!r} instead of STARTED")
            time.sleep(wait)
            sent = time.monotonic()
            os.kill(proc.pid, signal.SIGINT)
            try:
                proc.stdin.write(f"{sent!r}\n")  # the child computes the latency on one clock
                proc.stdin.flush()
            except BrokenPipeError:
                raise child_failed(scenario, "the child was gone when interrupted") from None
            line = proc.stdout.readline()
            if not line.startswith("RESULT "):
                raise child_failed(scenario, f"the child said {line!r} instead of RESULT")
            results.append(json.loads(line[len("RESULT ") :]))
            if results[-1].get("finished"):
                # the SIGINT then lands in the next scenario's set-up: stop here
                raise child_failed(scenario, "the fit ended before the interrupt")
        proc.stdin.close()
        if proc.wait() != 0:
            raise child_failed("(exit)", f"the child exited with {proc.returncode}")
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait()
    return dict(zip(scenarios, results, strict=True))


def _check_interrupted(scenario, r):
    assert not r.get("finished"), f"{scenario}: the fit ended before the interrupt"
    assert r["in_fit"], f"{scenario}: the KeyboardInterrupt did not come out of fit/partial_fit"
    assert "broken" not in r, f"{scenario}: inconsistent attributes: {r['broken']}"
    assert r["latency"] < 1.0, f"{scenario}: KeyboardInterrupt {r['latency']:.3f} s after SIGINT"
    # Not half updated: exactly the attributes before the interrupted call.
    assert r["unchanged"], f"{scenario}: attributes changed by the interrupted call"
    assert r["refit_ok"]


_SCENARIOS = [
    f"{solver}:{what}"
    for solver in ("lbfgs", "gd", "sgd")
    for what in ("fresh", "refit", "warm_start")
] + ["sgd:partial_fit_first", "sgd:partial_fit_later"]


@pytest.fixture(scope="module")
def interrupted():
    """Every scenario, interrupted in one child process (one import of the package)."""
    return _run_child(_SCENARIOS)


@pytest.mark.parametrize("scenario", _SCENARIOS)
def test_ctrl_c_during_fit(interrupted, scenario):
    r = interrupted[scenario]
    _check_interrupted(scenario, r)
    what = scenario.split(":")[1]
    if what in ("fresh", "partial_fit_first"):
        assert r["fitted"] is False
    elif what == "refit":  # the previous model (4 classes, 7 features), whole
        assert r["fitted"] and r["predict_ok"]
        assert r["classes"] == [0, 10, 20, 30]
        assert r["coef_shape"] == [4, 7] and r["intercept_shape"] == [4]
        assert r["n_features_in"] == 7
    else:  # warm_start, partial_fit_later: the model of the previous call
        assert r["fitted"] and r["predict_ok"]
        assert r["classes"] == list(range(10))
        assert r["coef_shape"] == [10, 60] and r["n_features_in"] == 60


# ----------------------------------------------------------------------------- in process
# The same all-or-nothing property without signals: an exception raised from inside the n-th
# kernel call of a fit (any exception takes the same path as KeyboardInterrupt).


class _Interrupt(KeyboardInterrupt):
    pass


def _interrupt_after(monkeypatch, calls):
    kernel = DenseDesign.loss_grad
    count = [0]

    def fake(*args, **kwargs):
        count[0] += 1
        if count[0] > calls:
            raise _Interrupt
        return kernel(*args, **kwargs)

    monkeypatch.setattr(DenseDesign, "loss_grad", fake)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["lbfgs", "gd", "sgd"])
@pytest.mark.parametrize("calls", [0, 3])
def test_interrupted_refit_keeps_previous_model(monkeypatch, rng, solver, calls):
    X_old, y_old = rng.standard_normal((200, 4)), rng.integers(0, 3, 200)
    clf = SoftmaxRegression(solver=solver, max_iter=20, learning_rate=0.1, random_state=0)
    clf.fit(X_old, y_old)
    before = {k: v for k, v in vars(clf).items()}
    X, y = rng.standard_normal((300, 6)), rng.integers(0, 5, 300)
    _interrupt_after(monkeypatch, calls)
    with pytest.raises(_Interrupt):
        clf.fit(X, y)
    assert vars(clf).keys() == before.keys()
    for k, v in before.items():
        assert vars(clf)[k] is v, k  # the very same objects: nothing reassigned
    assert clf.coef_.shape == (3, 4) and clf.n_features_in_ == 4
    monkeypatch.undo()
    assert clf.predict(X_old).shape == (200,)


def test_interrupted_first_fit_and_partial_fit_leave_estimator_unfitted(monkeypatch, rng):
    from sklearn.exceptions import NotFittedError

    X, y = rng.standard_normal((300, 6)), rng.integers(0, 5, 300)
    _interrupt_after(monkeypatch, 2)
    for call in (
        lambda c: c.fit(X, y),
        lambda c: c.partial_fit(X, y, classes=np.arange(5)),
    ):
        clf = SoftmaxRegression()
        params = clf.get_params()
        with pytest.raises(_Interrupt):
            call(clf)
        with pytest.raises(NotFittedError):
            clf.predict(X)
        assert not hasattr(clf, "classes_") and not hasattr(clf, "n_features_in_")
        assert clf.get_params() == params


def test_failed_refit_with_bad_labels_keeps_previous_model(rng):
    # A ValueError raised after classes_ / n_features_in_ are recomputed still leaves the
    # previous model.
    X_old, y_old = rng.standard_normal((100, 4)), rng.integers(0, 3, 100)
    clf = SoftmaxRegression(reference_class=2).fit(X_old, y_old)
    coef = clf.coef_
    with pytest.raises(ValueError, match="reference_class"):
        clf.fit(rng.standard_normal((50, 6)), rng.integers(5, 8, 50))
    assert clf.coef_ is coef and clf.n_features_in_ == 4 and clf.classes_.tolist() == [0, 1, 2]

"""The softmax-fast command: fit/predict round trips, bad input, demo, bench, info."""

import csv
import shutil
import subprocess
import sys

import numpy as np
import pytest

from softmax_fast import _bench, _demo, cli

pytest.importorskip("sklearn")


def _separable(rng, m=300):
    """Three well-separated Gaussian blobs in 4 features."""
    centers = np.array([[3, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 0]], dtype=float)
    y = rng.integers(0, 3, m)
    return centers[y] + 0.5 * rng.standard_normal((m, 4)), y


def _write_csv(path, X, labels, names=("f1", "f2", "f3", "f4"), target="label", target_at=2):
    header = list(names)
    header.insert(target_at, target)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row, label in zip(X.tolist(), labels, strict=True):
            cells = [repr(v) for v in row]
            cells.insert(target_at, label)
            writer.writerow(cells)


def _read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_fit_then_predict_round_trip_on_csv(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X, y = _separable(rng)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    data, model = tmp_path / "train.csv", tmp_path / "model.npz"
    _write_csv(data, X, names)
    assert cli.main(["fit", str(data), "--target", "label", "--model", str(model), "--quiet"]) == 0
    printed = capsys.readouterr().out
    accuracy = float(printed.split("held-out accuracy ")[1].split()[0])
    assert accuracy > 0.95
    # Predict on a file whose columns come in another order, with the label column left in.
    other = tmp_path / "other.csv"
    _write_csv(other, X[:, [3, 1, 0, 2]], names, names=("f4", "f2", "f1", "f3"), target_at=0)
    out = tmp_path / "pred.csv"
    assert cli.main(["predict", str(model), str(other), "-o", str(out), "--quiet"]) == 0
    header, rows = _read_csv(out)
    assert header == ["prediction"]
    predicted = np.array([r[0] for r in rows])
    assert np.mean(predicted == names) > 0.95
    assert cli.main(["predict", str(model), str(data), "--proba", "-o", str(out)]) == 0
    header, rows = _read_csv(out)
    assert header == ["p(setosa)", "p(versicolor)", "p(virginica)"]
    proba = np.array(rows, dtype=float)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(
        np.array(header)[proba.argmax(axis=1)], [f"p({p})" for p in predicted]
    )


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fit_then_predict_round_trip_on_svmlight_and_npz(tmp_path, capsys):
    from sklearn.datasets import dump_svmlight_file

    rng = np.random.default_rng(1)
    X, y = _separable(rng)
    svm, model = tmp_path / "train.svm", tmp_path / "model.npz"
    dump_svmlight_file(X, y, str(svm))
    assert cli.main(["fit", str(svm), "--model", str(model), "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["predict", str(model), str(svm)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "prediction"
    assert np.mean(np.array(lines[1:], dtype=int) == y) > 0.95
    npz = tmp_path / "train.npz"
    np.savez(npz, X=X, y=y)
    assert (
        cli.main(
            [
                "fit",
                str(npz),
                "--model",
                str(model),
                "--quiet",
                "--solver",
                "gd",
                "--max-iter",
                "300",
            ]
        )
        == 0
    )
    assert "held-out accuracy" in capsys.readouterr().out


@pytest.mark.parametrize(
    "make_args, message",
    [
        (
            lambda d, m: ["fit", str(d / "absent.csv"), "--target", "y", "--model", m],
            "no such data file",
        ),
        (
            lambda d, m: ["fit", str(d / "train.csv"), "--target", "nope", "--model", m],
            "no column named 'nope'",
        ),
        (
            lambda d, m: ["fit", str(d / "text.csv"), "--target", "y", "--model", m],
            "is not numeric",
        ),
        (lambda d, m: ["fit", str(d / "one.csv"), "--target", "y", "--model", m], "single class"),
        (lambda d, m: ["fit", str(d / "train.csv"), "--model", m], "--target"),
        (
            lambda d, m: [
                "fit",
                str(d / "train.csv"),
                "--target",
                "y",
                "--model",
                m,
                "--alpha",
                "-1",
            ],
            "alpha",
        ),
        (
            lambda d, m: ["predict", str(d / "garbage.npz"), str(d / "train.csv")],
            "not a valid softmax_fast model file",
        ),
        (
            lambda d, m: ["predict", str(d / "absent.npz"), str(d / "train.csv")],
            "no such model file",
        ),
        (
            lambda d, m: ["fit", str(d / "train.xlsx"), "--target", "y", "--model", m],
            "unknown data format",
        ),
    ],
)
def test_user_mistakes_exit_1_with_a_message_and_no_traceback(tmp_path, capsys, make_args, message):
    (tmp_path / "train.csv").write_text("a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n9,1,0\n2,2,1\n")
    (tmp_path / "text.csv").write_text("a,b,y\n1,red,0\n3,4,1\n")
    (tmp_path / "one.csv").write_text("a,b,y\n1,2,0\n3,4,0\n")
    (tmp_path / "garbage.npz").write_bytes(b"not a zip file at all")
    (tmp_path / "train.xlsx").write_text("x")
    code = cli.main(make_args(tmp_path, str(tmp_path / "m.npz")))
    err = capsys.readouterr().err
    assert code == 1
    assert message in err and "Traceback" not in err


def test_wrong_number_of_features_at_predict(tmp_path, capsys):
    rng = np.random.default_rng(2)
    X, y = _separable(rng)
    np.savez(tmp_path / "train.npz", X=X, y=y)
    np.savez(tmp_path / "narrow.npz", X=X[:, :3])
    model = str(tmp_path / "m.npz")
    assert cli.main(["fit", str(tmp_path / "train.npz"), "--model", model, "--quiet"]) == 0
    assert cli.main(["predict", model, str(tmp_path / "narrow.npz")]) == 1
    assert "3 feature columns, the model was fitted on 4" in capsys.readouterr().err


def test_console_script_reports_errors_without_traceback(tmp_path):
    exe = shutil.which("softmax-fast")
    if exe is None:
        pytest.skip("console script not on PATH (package not installed with pip)")
    result = subprocess.run(
        [
            exe,
            "fit",
            str(tmp_path / "absent.csv"),
            "--target",
            "y",
            "--model",
            str(tmp_path / "m.npz"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "no such data file" in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run([exe, "info"], capture_output=True, text=True, check=True)
    assert "OpenMP compiled in" in result.stdout


def test_unknown_command_is_a_usage_error():
    result = subprocess.run(
        [sys.executable, "-m", "softmax_fast.cli", "nonsense"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_demo_quick(capsys):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):  # CI time: see the demo's footnote
        rows = _demo.demo(quick=True)
    out = capsys.readouterr().out
    assert "test accuracy" in out and "most frequent confusions" in out
    digits_accuracy = float(out.split("test accuracy ")[1].split()[0])
    assert digits_accuracy > 0.93
    names = [r[0] for r in rows]
    assert names == [
        "softmax_fast SoftmaxRegression",
        "NumPy reference + L-BFGS",
        "scikit-learn LogisticRegression",
    ]
    accuracies = [r[3] for r in rows]
    assert max(accuracies) - min(accuracies) < 0.01  # the same model, three ways


def test_plot_without_matplotlib_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cli.main(["bench", "--quick", "--plot", str(tmp_path / "b.png")]) == 1
    assert "--plot needs matplotlib" in capsys.readouterr().err


def test_bench_quick_lists_every_case(capsys):
    results = _bench.bench(quick=True)
    cases = {case for case, _, _ in results}
    assert len(cases) == 3
    assert {name for _, name, _ in results} >= {"softmax_fast", "reference"}
    assert "faster" in capsys.readouterr().out


def test_bench_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "bench.png"
    assert cli.main(["bench", "--quick", "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "chart written to" in capsys.readouterr().out

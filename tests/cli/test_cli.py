"""The softmax-fast command as a user meets it: fit/predict round trips, the wine scenario
(progress, convergence advice, --standardize), --help, user mistakes, demo, bench, info."""

import csv
import os
import re
import shutil
import subprocess
import sys
import warnings

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


# ----------------------------------------------------------------------------- sparse data


def _sparse_blobs(rng, m=300, n=20, K=3):
    """K classes, one informative feature each, in n mostly-zero features (~25 % stored)."""
    y = rng.integers(0, K, m)
    X = 0.5 * rng.standard_normal((m, n)) * (rng.random((m, n)) < 0.2)
    X[np.arange(m), y] += 3.0
    return X, y


@pytest.fixture
def estimator_inputs(monkeypatch):
    """The types of X that SoftmaxRegression's fit, predict and predict_proba receive from their
    caller (calls they make to one another are not counted)."""
    from softmax_fast import SoftmaxRegression

    seen = []
    depth = [0]
    for name in ("fit", "predict", "predict_proba"):
        original = getattr(SoftmaxRegression, name)

        def spy(self, X, *args, _original=original, _name=name, **kwargs):
            if depth[0] == 0:
                seen.append((_name, type(X)))
            depth[0] += 1
            try:
                return _original(self, X, *args, **kwargs)
            finally:
                depth[0] -= 1

        monkeypatch.setattr(SoftmaxRegression, name, spy)
    return seen


def _dense_fit(X, y, alpha, standardize=False):
    """The estimator fitted on the same data, dense (a Pipeline with the same scaler)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from softmax_fast import SoftmaxRegression

    model = SoftmaxRegression(alpha=alpha)
    if standardize:
        return make_pipeline(StandardScaler(with_mean=False), model).fit(X, y)
    return model.fit(X, y)


def _predict_csv(model, data, tmp_path, *extra):
    out = tmp_path / "out.csv"
    assert cli.main(["predict", str(model), str(data), "-o", str(out), "--quiet", *extra]) == 0
    header, rows = _read_csv(out)
    return header, rows


# alpha = 0.1: the objective is 0.1-strongly convex in W, so two fits stopped at max|grad| <=
# 1e-6 (the solver's tol) differ by at most ~2 sqrt(K (n + 1)) 1e-6 / 0.1 ~ 2e-4 in W; the
# probabilities (gradient in W at most ~|x| / 2, |x| a few units here) by well under 1e-3.
SPARSE_ALPHA, SPARSE_PROBA_ATOL = "0.1", 1e-3


def test_fit_and_predict_keep_svmlight_data_sparse(tmp_path, capsys, estimator_inputs):
    import scipy.sparse as sp
    from sklearn.datasets import dump_svmlight_file

    from softmax_fast.io.data_files import read_data

    rng = np.random.default_rng(11)
    X, y = _sparse_blobs(rng)
    data, model = tmp_path / "train.svm", tmp_path / "m.npz"
    dump_svmlight_file(X, y, str(data))
    X_file = read_data(data)[0]  # what the command reads: X as the file holds it
    assert sp.issparse(X_file)
    # with a held-out split (the split of a CSR matrix)
    assert cli.main(["fit", str(data), "--model", str(model)]) == 0
    out = capsys.readouterr().out
    assert re.match(
        r"fitting on 240 rows x 20 features \(sparse, [1-9][\d,]* stored values\), 3 classes "
        r"\(auto\)\n",
        out,
    ), out
    assert float(out.split("held-out accuracy ")[1].split()[0]) > 0.95
    # on every row, against the estimator fitted on the same data dense
    expected = _dense_fit(X_file.toarray(), y, float(SPARSE_ALPHA))
    labels, proba = expected.predict(X), expected.predict_proba(X)
    estimator_inputs.clear()
    argv = ["fit", str(data), "--model", str(model), "--test-size", "0", "--alpha", SPARSE_ALPHA]
    assert cli.main([*argv, "--quiet"]) == 0
    capsys.readouterr()
    _, rows = _predict_csv(model, data, tmp_path)
    np.testing.assert_array_equal(np.array([r[0] for r in rows], dtype=int), labels)
    header, rows = _predict_csv(model, data, tmp_path, "--proba")
    assert header == ["p(0)", "p(1)", "p(2)"]
    np.testing.assert_allclose(np.array(rows, dtype=float), proba, atol=SPARSE_PROBA_ATOL)
    # the estimator got the CSR matrix each time, never a dense array
    assert [name for name, _ in estimator_inputs] == ["fit", "predict", "predict_proba"]
    assert all(issubclass(kind, sp.csr_matrix) for _, kind in estimator_inputs), estimator_inputs


def test_fit_from_a_sparse_npz_and_predict_from_plain_save_npz(tmp_path, capsys, estimator_inputs):
    import scipy.sparse as sp

    rng = np.random.default_rng(12)
    X, y = _sparse_blobs(rng)
    C = sp.csr_matrix(X)
    data, model = tmp_path / "train.npz", tmp_path / "m.npz"
    # the README's recipe: the matrix's arrays and the labels in one archive
    np.savez(
        data, format="csr", shape=C.shape, data=C.data, indices=C.indices, indptr=C.indptr, y=y
    )
    expected = _dense_fit(X, y, float(SPARSE_ALPHA))
    labels, proba = expected.predict(X), expected.predict_proba(X)
    estimator_inputs.clear()
    argv = ["fit", str(data), "--model", str(model), "--test-size", "0", "--alpha", SPARSE_ALPHA]
    assert cli.main([*argv, "--quiet"]) == 0
    capsys.readouterr()
    # predict from what scipy.sparse.save_npz writes (no labels), in CSR and in CSC
    for fmt in ("csr", "csc"):
        plain = tmp_path / f"new_{fmt}.npz"
        sp.save_npz(plain, C.asformat(fmt))
        _, rows = _predict_csv(model, plain, tmp_path, "--proba")
        np.testing.assert_allclose(np.array(rows, dtype=float), proba, atol=SPARSE_PROBA_ATOL)
    _, rows = _predict_csv(model, plain, tmp_path)
    np.testing.assert_array_equal(np.array([r[0] for r in rows], dtype=int), labels)
    assert [name for name, _ in estimator_inputs] == ["fit", *["predict_proba"] * 2, "predict"]
    assert all(issubclass(kind, sp.csr_matrix) for _, kind in estimator_inputs), estimator_inputs


def test_standardize_on_sparse_data_scales_without_centring(tmp_path, capsys, estimator_inputs):
    import scipy.sparse as sp
    from sklearn.datasets import dump_svmlight_file
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from softmax_fast.io.model_file import load_model, read_model_arrays

    rng = np.random.default_rng(13)
    X, y = _sparse_blobs(rng)
    X *= np.geomspace(1e-2, 1e2, X.shape[1])  # features on very different scales
    data, model = tmp_path / "train.svm", tmp_path / "m.npz"
    dump_svmlight_file(X, y, str(data))
    argv = ["fit", str(data), "--model", str(model), "--test-size", "0", "--alpha", SPARSE_ALPHA]
    assert cli.main([*argv, "--standardize"]) == 0
    out, err = capsys.readouterr()
    assert "(auto, standardized without centring)" in out and err == ""
    assert [(name, issubclass(k, sp.csr_matrix)) for name, k in estimator_inputs] == [("fit", True)]
    # the model file: means of zero (nothing subtracted), the scales of the sparse data
    content = read_model_arrays(model)
    np.testing.assert_array_equal(content["scaler_mean"], np.zeros(X.shape[1]))
    scale = StandardScaler(with_mean=False).fit(sp.csr_matrix(X)).scale_
    np.testing.assert_allclose(content["scaler_scale"], scale, rtol=1e-12)
    loaded, _ = load_model(model)
    assert isinstance(loaded, Pipeline) and loaded[0].with_mean is False
    # predict scales the CSR matrix (a centring scaler would refuse it) and the model gets it
    proba = _dense_fit(X, y, float(SPARSE_ALPHA), standardize=True).predict_proba(X)
    estimator_inputs.clear()
    _, rows = _predict_csv(model, data, tmp_path, "--proba")
    np.testing.assert_allclose(np.array(rows, dtype=float), proba, atol=SPARSE_PROBA_ATOL)
    assert [(name, issubclass(k, sp.csr_matrix)) for name, k in estimator_inputs] == [
        ("predict_proba", True)
    ]
    # the same data dense (a CSV) is still centred
    csv_data = tmp_path / "train.csv"
    _write_csv(csv_data, X[:, :4], y)
    argv = ["fit", str(csv_data), "--target", "label", "--model", str(model), "--standardize"]
    assert cli.main([*argv, "--quiet"]) == 0
    assert load_model(model)[0][0].with_mean is True


def test_an_svmlight_file_without_the_last_features_predicts(tmp_path, capsys):
    # svmlight files do not record their width: a file whose rows never use the last features
    # reads narrower than the model; those features are zeros.
    from sklearn.datasets import dump_svmlight_file

    rng = np.random.default_rng(14)
    X, y = _sparse_blobs(rng)
    data, model = tmp_path / "train.svm", tmp_path / "m.npz"
    dump_svmlight_file(X, y, str(data))
    assert cli.main(["fit", str(data), "--model", str(model), "--quiet"]) == 0
    narrow = tmp_path / "narrow.svm"
    dump_svmlight_file(X[:, :15], y, str(narrow))
    capsys.readouterr()
    _, rows = _predict_csv(model, narrow, tmp_path)
    assert len(rows) == len(y)
    # more features than the model is still an error
    wide = tmp_path / "wide.svm"
    dump_svmlight_file(np.hstack([X, np.ones((len(y), 1))]), y, str(wide))
    assert cli.main(["predict", str(model), str(wide)]) == 1
    assert "21 feature columns, the model was fitted on 20" in capsys.readouterr().err


# ----------------------------------------------------------------------------- svmlight index base


def _feature_0_data(rng):
    """_sparse_blobs whose feature 0 matters (it is class 0's), written zero-based: the train
    file holds the index 0; the same rows without their feature-0 values (a predict file that
    happens to hold no index 0), as the aligned matrix and as a file."""
    X, y = _sparse_blobs(rng)
    X = np.round(X, 6)  # exact in the text file
    assert np.count_nonzero(X[:, 0]) > 50
    without_0 = X.copy()
    without_0[:, 0] = 0.0
    return X, y, without_0


def _svmlight_lines(path):
    return [line.split()[1:] for line in path.read_text().splitlines()]


def test_predict_reads_svmlight_with_the_training_files_index_base(tmp_path, capsys):
    import scipy.sparse as sp
    from sklearn.datasets import dump_svmlight_file, load_svmlight_file

    from softmax_fast.io.model_file import load_model, read_model_arrays

    X, y, without_0 = _feature_0_data(np.random.default_rng(21))
    train, new, model = tmp_path / "train.svm", tmp_path / "new.svm", tmp_path / "m.npz"
    dump_svmlight_file(X, y, str(train))  # zero-based, as scikit-learn writes by default
    dump_svmlight_file(without_0, y, str(new))
    assert any(f.startswith("0:") for row in _svmlight_lines(train) for f in row)
    assert not any(f.startswith("0:") for row in _svmlight_lines(new) for f in row)
    argv = ["fit", str(train), "--model", str(model), "--test-size", "0", "--alpha", SPARSE_ALPHA]
    assert cli.main(argv) == 0
    assert "index" not in capsys.readouterr().out  # an index 0: zero-based, nothing to say
    assert read_model_arrays(model)["svmlight_zero_based"] is True
    estimator, _ = load_model(model)
    aligned = sp.csr_matrix(without_0)
    expected, expected_proba = estimator.predict(aligned), estimator.predict_proba(aligned)
    # The old reading: scikit-learn's guess takes the file as one-based, every column one to the
    # left, 19 wide: feature 1 (class 1's) lands on feature 0 (class 0's).
    guessed, _ = load_svmlight_file(str(new))
    assert guessed.shape == (300, 19)
    np.testing.assert_array_equal(guessed.toarray(), without_0[:, 1:])
    shifted = sp.csr_matrix(
        (guessed.data, guessed.indices, guessed.indptr), shape=(300, X.shape[1])
    )
    assert np.mean(estimator.predict(shifted) != expected) > 0.3  # many wrong labels
    # The command reads it with the model's base: the columns line up.
    _, rows = _predict_csv(model, new, tmp_path)
    np.testing.assert_array_equal(np.array([r[0] for r in rows], dtype=int), expected)
    _, rows = _predict_csv(model, new, tmp_path, "--proba")
    np.testing.assert_allclose(np.array(rows, dtype=float), expected_proba, rtol=1e-12, atol=0)
    assert capsys.readouterr().err == ""


def test_a_one_based_training_file(tmp_path, capsys):
    from sklearn.datasets import dump_svmlight_file

    from softmax_fast.io.model_file import load_model, read_model_arrays

    X, y, without_0 = _feature_0_data(np.random.default_rng(22))
    train, model = tmp_path / "train.libsvm", tmp_path / "m.npz"
    dump_svmlight_file(X, y, str(train), zero_based=False)  # LIBSVM's convention
    argv = ["fit", str(train), "--model", str(model), "--test-size", "0", "--alpha", SPARSE_ALPHA]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    # Guessed (no index 0): said once, and the model is 20 features wide, one-based.
    assert out.startswith(
        f"{train}: no feature index 0, so its indices are read as counting from 1 (index 1 is the "
        f"first feature); if they count from 0, fit again with --zero-based\nfitting on 300 rows "
        f"x 20 features"
    ), out
    assert read_model_arrays(model)["svmlight_zero_based"] is False
    assert cli.main([*argv, "--one-based"]) == 0  # told: nothing to say
    assert "index" not in capsys.readouterr().out
    assert read_model_arrays(model)["svmlight_zero_based"] is False
    estimator, _ = load_model(model)
    expected = estimator.predict(without_0)
    # Predict files one-based (the model's base), and zero-based with --zero-based.
    for name, zero_based, extra in (("a.libsvm", False, ()), ("b.svm", True, ("--zero-based",))):
        path = tmp_path / name
        dump_svmlight_file(without_0, y, str(path), zero_based=zero_based)
        _, rows = _predict_csv(model, path, tmp_path, *extra)
        np.testing.assert_array_equal(np.array([r[0] for r in rows], dtype=int), expected)
    # A zero-based file (index 0 present) read with the model's one-based base: an error, never
    # a shifted matrix.
    zero = tmp_path / "zero.svm"
    dump_svmlight_file(X, y, str(zero), zero_based=True)
    assert cli.main(["predict", str(model), str(zero)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    first = int(np.flatnonzero(X[:, 0])[0])
    assert captured.err == (
        f"softmax-fast: error: {zero}: feature index 0 in row {first} (counting from 0), but the "
        f"file is read as one-based (its feature indices counting from 1): the model was fitted "
        f"on an svmlight file read as one-based. If the training file counts from 0 as well, fit "
        f"again with --zero-based; if only this file does, pass --zero-based here\n"
    )


def test_fit_with_the_base_given_overrides_the_guess(tmp_path, capsys):
    from sklearn.datasets import dump_svmlight_file

    from softmax_fast.io.model_file import read_model_arrays

    # Zero-based training data whose feature 0 holds no value: the guess would shift it.
    _, y, without_0 = _feature_0_data(np.random.default_rng(23))
    train, model = tmp_path / "train.svm", tmp_path / "m.npz"
    dump_svmlight_file(without_0, y, str(train))
    argv = ["fit", str(train), "--model", str(model), "--test-size", "0", "--quiet"]
    assert cli.main(argv) == 0
    assert read_model_arrays(model)["coef"].shape == (3, 19)  # guessed: shifted
    assert cli.main([*argv, "--zero-based"]) == 0
    content = read_model_arrays(model)
    assert content["coef"].shape == (3, 20) and content["svmlight_zero_based"] is True
    assert np.all(content["coef"][:, 0] == 0.0)  # feature 0, never seen, has no weight
    # a one-based reading of a file with an index 0 is an error naming the row
    other = tmp_path / "other.svm"
    other.write_text("0 1:1\n1 0:2 3:1\n")
    argv = ["fit", str(other), "--model", str(model), "--one-based"]
    assert cli.main(argv) == 1
    assert capsys.readouterr().err == (
        f"softmax-fast: error: {other}: feature index 0 in row 1 (counting from 0), but the file "
        f"is read as one-based (its feature indices counting from 1)\n"
    )


def test_an_older_model_without_the_index_base_still_predicts(tmp_path, capsys):
    from sklearn.datasets import dump_svmlight_file

    from softmax_fast.io.model_file import load_model, read_model_arrays, save_model

    X, y, without_0 = _feature_0_data(np.random.default_rng(24))
    train, model, old = tmp_path / "train.svm", tmp_path / "m.npz", tmp_path / "old.npz"
    dump_svmlight_file(X, y, str(train))
    argv = ["fit", str(train), "--model", str(model), "--test-size", "0", "--quiet"]
    assert cli.main(argv) == 0
    estimator, _ = load_model(model)
    save_model(estimator, old)  # as softmax_fast wrote it before: no index base
    assert read_model_arrays(old)["svmlight_zero_based"] is None
    capsys.readouterr()
    # a file with an index 0: zero-based, certainly; the same predictions as the new model
    for path in (model, old):
        _, rows = _predict_csv(path, train, tmp_path)
        np.testing.assert_array_equal(
            np.array([r[0] for r in rows], dtype=int), estimator.predict(X)
        )
    assert capsys.readouterr().err == ""
    # without index 0 the old model can only guess: one-based, with a warning saying so and
    # what to pass; --zero-based reads it right
    new = tmp_path / "new.svm"
    dump_svmlight_file(without_0, y, str(new))
    assert cli.main(["predict", str(old), str(new), "-o", str(tmp_path / "p.csv")]) == 0
    assert capsys.readouterr().err == (
        f"softmax-fast: warning: {new}: the model file does not record its training file's index "
        f"base, and this file has no feature index 0: its indices are read as counting from 1; "
        f"pass --zero-based if they count from 0\n"
    )
    _, rows = _predict_csv(old, new, tmp_path, "--zero-based")
    np.testing.assert_array_equal(
        np.array([r[0] for r in rows], dtype=int), estimator.predict(without_0)
    )
    assert capsys.readouterr().err == ""


def test_index_base_options_are_for_svmlight_files(tmp_path, capsys):
    rng = np.random.default_rng(25)
    X, y = _separable(rng)
    data, model = tmp_path / "train.npz", tmp_path / "m.npz"
    np.savez(data, X=X, y=y)
    assert cli.main(["fit", str(data), "--model", str(model), "--zero-based"]) == 1
    assert capsys.readouterr().err == (
        f"softmax-fast: error: --zero-based applies to svmlight files only, not to {data}\n"
    )
    assert cli.main(["fit", str(data), "--model", str(model), "--quiet"]) == 0
    assert cli.main(["predict", str(model), str(data), "--one-based"]) == 1
    assert capsys.readouterr().err.endswith(
        f"--one-based applies to svmlight files only, not to {data}\n"
    )
    with pytest.raises(SystemExit) as info:
        cli.main(["fit", str(data), "--model", str(model), "--zero-based", "--one-based"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_sparse_npz_without_labels_cannot_be_fitted(tmp_path, capsys):
    import scipy.sparse as sp

    path = tmp_path / "plain.npz"
    sp.save_npz(path, sp.csr_matrix(np.eye(4)))
    assert cli.main(["fit", str(path), "--model", str(tmp_path / "m.npz")]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"softmax-fast: error: {path}: the npz archive has no labels (an array 'y', or name it "
        f"with --target); scipy.sparse.save_npz writes none: save the matrix's arrays and y "
        f"together with np.savez (see the README)\n"
    )
    np.savez(path, X=np.eye(4))
    assert cli.main(["fit", str(path), "--model", str(tmp_path / "m.npz")]) == 1
    assert capsys.readouterr().err == (
        f"softmax-fast: error: {path}: the npz archive has no labels (an array 'y', or name it "
        f"with --target)\n"
    )


def test_wrong_number_of_features_at_predict(tmp_path, capsys):
    rng = np.random.default_rng(2)
    X, y = _separable(rng)
    np.savez(tmp_path / "train.npz", X=X, y=y)
    np.savez(tmp_path / "narrow.npz", X=X[:, :3])
    model = str(tmp_path / "m.npz")
    assert cli.main(["fit", str(tmp_path / "train.npz"), "--model", model, "--quiet"]) == 0
    assert cli.main(["predict", model, str(tmp_path / "narrow.npz")]) == 1
    assert "3 feature columns, the model was fitted on 4" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the wine scenario

ADVICE = re.compile(
    r"softmax-fast: warning: not converged in 200 iterations "
    r"\(max\|grad\| = \d\.\de[-+]\d\d > tol 1e-06\); try --standardize, or --max-iter 1000"
)
SUMMARY = re.compile(
    r"fit \(lbfgs\): \d+ iterations in \d+\.\d\d s, objective \S+, max\|grad\| \S+ "
    r"\((converged|not converged)\)"
)


def _python_noise(text):
    """Signs of Python leaking through: warning source lines, tracebacks, warning classes."""
    return re.search(r"Traceback|Warning:|\.py:\d+|^\s+model\.fit", text, re.MULTILINE)


@pytest.fixture(scope="module")
def wine(tmp_path_factory):
    """scikit-learn's wine data as a newcomer writes it: a CSV with a string label column."""
    from sklearn.datasets import load_wine

    data = load_wine()
    path = tmp_path_factory.mktemp("wine") / "wine.csv"
    labels = data.target_names[data.target]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*data.feature_names, "label"])
        for row, label in zip(data.data.tolist(), labels, strict=True):
            writer.writerow([*map(repr, row), label])
    return path, data.data, labels


def _fit_wine(wine, model, *extra):
    """The wine fit, with lbfgs unless ``extra`` names a solver: the scenario of a solver that
    stalls on unscaled columns (the default "auto" takes newton there, which converges)."""
    solver = [] if "--solver" in extra else ["--solver", "lbfgs"]
    return ["fit", str(wine[0]), "--target", "label", "--model", str(model), *solver, *extra]


def _as_terminal(monkeypatch):
    """stderr claims to be a terminal, as in an interactive shell: the progress bar is on.

    Called in the test body: capsys installs a new stream between fixture set-up and the test.
    """
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)


def _pieces(text):
    """The non-blank lines of a terminal stream, splitting at carriage returns too."""
    return [p.strip() for p in re.split(r"[\r\n]", text) if p.strip()]


def test_wine_without_standardize_one_line_of_advice(wine, tmp_path, capsys):
    with warnings.catch_warnings(record=True) as leaked:
        warnings.simplefilter("always")
        assert cli.main(_fit_wine(wine, tmp_path / "m.npz")) == 0
    assert leaked == []
    out, err = capsys.readouterr()
    assert ADVICE.fullmatch(err.strip()), err
    assert not _python_noise(out + err)
    assert "Iteration" not in out  # no per-iteration lines without -v
    assert out.splitlines()[-1].endswith(f"(not converged); model written to {tmp_path / 'm.npz'}")


def test_wine_without_standardize_in_a_fresh_interpreter(wine, tmp_path):
    # A fresh interpreter shows Python warnings by default: none may get through.
    result = subprocess.run(
        [sys.executable, "-m", "softmax_fast.cli", *_fit_wine(wine, tmp_path / "m.npz")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert ADVICE.fullmatch(result.stderr.strip()), result.stderr
    assert not _python_noise(result.stdout + result.stderr)


def test_wine_without_standardize_converges_with_the_default_solver(wine, tmp_path, capsys):
    """ "auto" takes newton on wine's 13 unscaled columns: converged, no advice needed."""
    argv = ["fit", str(wine[0]), "--target", "label", "--model", str(tmp_path / "m.npz")]
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert err == "", err
    assert "classes (auto)" in out and "not converged" not in out


def test_wine_with_standardize_converges_and_round_trips(wine, tmp_path, capsys):
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import StandardScaler

    from softmax_fast import SoftmaxRegression
    from softmax_fast.io.model_file import load_model

    path, X, labels = wine
    model = tmp_path / "m.npz"
    argv = _fit_wine(wine, model, "--standardize", "--test-size", "0", "--solver", "auto")
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert err == "", err
    assert "standardized" in out and "not converged" not in out
    expected = make_pipeline(StandardScaler(), SoftmaxRegression()).fit(X, labels)
    pred, proba = tmp_path / "pred.csv", tmp_path / "proba.csv"
    assert cli.main(["predict", str(model), str(path), "-o", str(pred), "--quiet"]) == 0
    assert cli.main(["predict", str(model), str(path), "--proba", "-o", str(proba)]) == 0
    header, rows = _read_csv(pred)
    predicted = np.array([r[0] for r in rows])
    np.testing.assert_array_equal(predicted, expected.predict(X))
    assert np.mean(predicted == labels) > 0.99
    _, rows = _read_csv(proba)
    np.testing.assert_allclose(np.array(rows, dtype=float), expected.predict_proba(X), atol=1e-9)
    # Python users get the same model: a Pipeline of the stored scaler and the model.
    loaded, names = load_model(model)
    assert isinstance(loaded, Pipeline) and names[0] == "alcohol"
    np.testing.assert_array_equal(loaded.predict(X), expected.predict(X))
    np.testing.assert_allclose(loaded[0].mean_, expected[0].mean_, rtol=1e-15)
    np.testing.assert_allclose(loaded[0].scale_, expected[0].scale_, rtol=1e-15)


def test_progress_bar_on_a_terminal_ends_in_a_summary_line(wine, tmp_path, capsys, monkeypatch):
    _as_terminal(monkeypatch)
    assert cli.main(_fit_wine(wine, tmp_path / "m.npz", "--standardize")) == 0
    out, err = capsys.readouterr()
    pieces = _pieces(err)
    assert any(re.match(r"fit \(lbfgs\): +\d+%\|.*\| \d+/200 ", p) for p in pieces), err
    assert SUMMARY.fullmatch(pieces[-1]) and pieces[-1].endswith("(converged)"), pieces[-1]
    assert "Iteration" not in out and "%|" not in out
    # not converged: the summary line, then the advice
    assert cli.main(_fit_wine(wine, tmp_path / "m.npz")) == 0
    pieces = _pieces(capsys.readouterr().err)
    assert pieces[-2].endswith("(not converged)") and SUMMARY.fullmatch(pieces[-2])
    assert ADVICE.fullmatch(pieces[-1])


def test_no_progress_bar_when_stderr_is_not_a_terminal(wine, tmp_path, capsys):
    assert cli.main(_fit_wine(wine, tmp_path / "m.npz", "--standardize")) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_progress_bar_on_a_real_pseudo_terminal(wine, tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    argv = _fit_wine(wine, tmp_path / "m.npz", "--solver", "gd", "--standardize")
    proc = subprocess.Popen(
        [sys.executable, "-m", "softmax_fast.cli", *argv], stdout=subprocess.PIPE, stderr=slave
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO once the child has closed the terminal (Linux)
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    out = proc.stdout.read().decode()
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    pieces = _pieces(b"".join(chunks).decode())
    assert any(re.match(r"fit \(gd\): +\d+%\|.*\| \d+/200 \[", p) for p in pieces), pieces
    assert re.fullmatch(r"fit \(gd\): 200 iterations in .* \(not converged\)", pieces[-2])
    assert pieces[-1].startswith("softmax-fast: warning: not converged in 200 iterations")
    assert pieces[-1].endswith("try --max-iter 1000")  # --standardize is already on
    assert out.startswith("fitting on 142 rows") and "held-out accuracy" in out


def test_verbose_prints_the_iteration_lines_instead_of_a_bar(wine, tmp_path, capsys, monkeypatch):
    _as_terminal(monkeypatch)
    assert cli.main(_fit_wine(wine, tmp_path / "m.npz", "-v")) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    iterations = [line for line in lines if line.startswith("Iteration ")]
    assert len(iterations) == 200
    assert re.fullmatch(r"Iteration 1: objective = \S+, max\|grad\| = \S+", iterations[0])
    assert "%|" not in err and not SUMMARY.search(err)
    assert ADVICE.fullmatch(err.strip())


def test_quiet_prints_only_the_result_line(wine, tmp_path, capsys, monkeypatch):
    _as_terminal(monkeypatch)
    assert cli.main(_fit_wine(wine, tmp_path / "m.npz", "--quiet")) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert len(out.splitlines()) == 1 and "held-out accuracy" in out and "not converged" in out


def test_verbose_and_quiet_together_are_a_usage_error(wine, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(_fit_wine(wine, tmp_path / "m.npz", "-v", "--quiet"))
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_sgd_advice_counts_epochs(wine, tmp_path, capsys):
    argv = _fit_wine(wine, tmp_path / "m.npz", "--solver", "sgd", "--max-iter", "2")
    assert cli.main([*argv, "--standardize"]) == 0
    err = capsys.readouterr().err.strip()
    assert err == (
        "softmax-fast: warning: not converged in 2 epochs (the objective still improved by more "
        "than tol 1e-06 per epoch); try --max-iter 10"
    )


def test_standardize_with_a_constant_column(tmp_path, capsys):
    from softmax_fast.io.model_file import read_model_arrays

    rng = np.random.default_rng(4)
    X, y = _separable(rng)
    X[:, 1] = 7.0  # zero variance
    data, model = tmp_path / "d.csv", tmp_path / "m.npz"
    _write_csv(data, X, y)
    argv = ["fit", str(data), "--target", "label", "--model", str(model), "--standardize"]
    assert cli.main(argv) == 0
    assert "held-out accuracy" in capsys.readouterr().out
    content = read_model_arrays(model)
    assert content["scaler_scale"][1] == 1.0 and content["scaler_mean"][1] == 7.0
    assert np.all(np.isfinite(content["coef"]))
    assert cli.main(["predict", str(model), str(data), "--proba"]) == 0
    proba = np.array([r.split(",") for r in capsys.readouterr().out.split()[1:]], dtype=float)
    assert np.all(np.isfinite(proba)) and np.mean(proba.argmax(axis=1) == y) > 0.95


def test_ctrl_c_during_fit_is_one_line_and_status_130(wine, tmp_path, capsys, monkeypatch):
    from softmax_fast import SoftmaxRegression

    def interrupted(self, X, y, sample_weight=None, *, callback=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(SoftmaxRegression, "fit", interrupted)
    _as_terminal(monkeypatch)
    assert cli.main(_fit_wine(wine, tmp_path / "m.npz")) == 130
    assert _pieces(capsys.readouterr().err)[-1] == "softmax-fast: interrupted"
    assert not (tmp_path / "m.npz").exists()


# ----------------------------------------------------------------------------- --help


@pytest.mark.parametrize(
    "command, expected",
    [
        ([], ["Softmax regression", "fit", "predict", "examples:"]),
        (
            ["fit"],
            [
                "Fit a softmax regression",
                "--standardize",
                "income beside age",
                "FILE.npz",
                "(StandardScaler(with_mean=False))",
                "--zero-based",
                "--one-based",
                "stored in the model",
            ],
        ),
        (
            ["predict"],
            ["Predict with a model file", "--proba", "FILE.csv", "MODEL", "--zero-based"],
        ),
        (["demo"], ["handwritten digits", "--quick", "FILE.png", "11,314 x 130,107"]),
        (["bench"], ["NumPy reference", "--quick"]),
        (["info"], ["Show the build and runtime configuration"]),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) and v and "-" not in v[0] else None,
)
def test_help_is_plain_text(capsys, command, expected):
    with pytest.raises(SystemExit) as info:
        cli.main([*command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for markup in ("``", ":func:", ":class:", ":mod:", ":meth:", ".. math::", ".. "):
        assert markup not in text, markup
    for piece in expected:
        assert piece in text, piece


def test_fit_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for default in ("(default: 1e-4)", "(default: auto)", "(default: 200)", "(default: 0.2)"):
        assert default in text, default
    assert "--max-iter N" in text and "--alpha A" in text and "-v, --verbose" in text


# ----------------------------------------------------------------------------- user mistakes

GOOD_CSV = "a,b,y\n" + "".join(f"{i % 5},{(3 * i) % 7},{i % 2}\n" for i in range(12))

CSV_FILES = {
    "binary.csv": bytes(range(256)) * 4,
    "latin1.csv": "a,b,y\n1,2,\xe9\n3,4,1\n".encode("latin-1"),
    "empty.csv": b"",
    "header_only.csv": b"a,b,y\n",
    "ragged.csv": b"a,b,y\n1,2,0\n3,4\n",
    "nan.csv": b"a,b,y\n1,nan,0\n3,4,1\n5,6,0\n7,8,1\n",
    "inf.csv": b"a,b,y\n1,2,0\n3,-inf,1\n5,6,0\n7,8,1\n",
    "empty_cell.csv": b"a,b,y\n1,,0\n3,4,1\n",
    "empty_target.csv": b"a,b,y\n1,2,\n3,4,1\n5,6,0\n",
    "nan_target.csv": b"a,b,y\n1,2,0\n3,4,NaN\n5,6,0\n",
    "continuous.csv": b"a,b,y\n1,2,0.5\n3,4,1.25\n5,6,0.75\n",
    "duplicate.csv": b"a,a,y\n1,2,0\n3,4,1\n",
    "target_only.csv": b"y\n0\n1\n",
    "text.csv": b"a,b,y\n1,red,0\n3,4,1\n",
    "one.csv": b"a,b,y\n1,2,0\n3,4,0\n",
    "garbage.npz": b"not a zip file at all",
    "train.xlsx": b"x",
}


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "good.csv").write_text(GOOD_CSV)
    for name, content in CSV_FILES.items():
        (tmp_path / name).write_bytes(content)
    np.save(tmp_path / "plain.npy", np.zeros(3))
    os.replace(tmp_path / "plain.npy", tmp_path / "plain.npz")  # an .npy named .npz
    rng = np.random.default_rng(0)
    Xd = rng.normal(size=(10, 2))
    np.savez(
        tmp_path / "nan_X.npz",
        X=np.where(np.arange(10)[:, None] == 3, np.nan, Xd),
        y=np.arange(10) % 2,
    )
    np.savez(tmp_path / "short_y.npz", X=Xd, y=np.arange(9) % 2)
    np.savez(tmp_path / "y2d.npz", X=Xd, y=np.zeros((10, 2)))
    np.savez(tmp_path / "no_rows.npz", X=np.zeros((0, 2)), y=np.zeros(0, int))
    np.savez(tmp_path / "data.npz", X=Xd, y=np.arange(10) % 2)
    (tmp_path / "nan.svm").write_text("0 1:nan\n1 1:2\n")
    (tmp_path / "outdir").mkdir()
    return tmp_path


def _fit(data_name, *extra):
    return ["fit", data_name, "--target", "y", "--model", "m.npz", "--quiet", *extra]


CLI_MISTAKES = [
    (_fit("absent.csv"), "absent.csv: no such data file"),
    (_fit("good.csv", "--target", "nope"), "no column named 'nope'"),
    (_fit("text.csv"), "column 'b' is not numeric (line 2: 'red')"),
    (_fit("one.csv"), "the target has a single class"),
    (["fit", "good.csv", "--model", "m.npz"], "name the label column with --target"),
    (_fit("train.xlsx"), "unknown data format '.xlsx'"),
    (_fit("binary.csv"), "binary.csv: not a UTF-8 text CSV file"),
    (_fit("latin1.csv"), "latin1.csv: not a UTF-8 text CSV file"),
    (_fit("empty.csv"), "empty.csv: empty CSV file"),
    (_fit("header_only.csv"), "header_only.csv: no data rows"),
    (_fit("ragged.csv"), "ragged.csv: line 3 has 2 fields"),
    (_fit("nan.csv"), "nan.csv: column 'b' holds 'nan' (line 2)"),
    (_fit("inf.csv"), "inf.csv: column 'b' holds '-inf' (line 3)"),
    (_fit("empty_cell.csv"), "empty_cell.csv: column 'b' has an empty cell (line 2"),
    (_fit("empty_target.csv"), "target column 'y' has an empty cell (line 2)"),
    (_fit("nan_target.csv"), "target column 'y' holds 'NaN' (line 3)"),
    (_fit("continuous.csv"), "non-integer number '0.5'"),
    (_fit("duplicate.csv"), "column name 'a' appears more than once"),
    (_fit("target_only.csv"), "no feature columns"),
    (_fit("good.csv", "--alpha", "-1"), "alpha"),
    (_fit("good.csv", "--alpha", "nan"), "alpha"),
    (_fit("good.csv", "--max-iter", "0"), "max_iter"),
    (_fit("good.csv", "--max-iter", "-5"), "max_iter"),
    (_fit("good.csv", "--test-size", "nan"), "--test-size"),
    (_fit("good.csv", "--seed", "-1"), "--seed"),
    (_fit("good.csv", "--seed", str(2**40)), "--seed"),
    (["fit", "good.csv", "--target", "y", "--model", "outdir", "--quiet"], "Is a directory"),
    (["fit", "good.csv", "--target", "y", "--model", "nodir/m.npz"], "No such file"),
    (["fit", "outdir", "--target", "y", "--model", "m.npz"], "no such data file"),
    (["fit", "nan_X.npz", "--model", "m.npz"], "nan_X.npz: X has NaN or infinity in row 3"),
    (["fit", "short_y.npz", "--model", "m.npz"], "'y' must hold one label per row of X"),
    (["fit", "y2d.npz", "--model", "m.npz"], "'y' must hold one label per row of X"),
    (["fit", "no_rows.npz", "--model", "m.npz"], "no_rows.npz: no data"),
    (["fit", "plain.npz", "--model", "m.npz"], "plain.npz: cannot read the npz archive"),
    (["fit", "nan.svm", "--model", "m.npz"], "nan.svm: X has NaN or infinity in row 0"),
    (["predict", "plain.npz", "good.csv"], "not a valid softmax_fast model file"),
    (["predict", "garbage.npz", "good.csv"], "not a valid softmax_fast model file (not an npz"),
    (["predict", "good.csv", "good.csv"], "not a valid softmax_fast model file (not an npz"),
    (["predict", "data.npz", "good.csv"], "unexpected members: X, y"),
    (["predict", "outdir", "good.csv"], "no such model file"),
    (["predict", "absent.npz", "good.csv"], "absent.npz: no such model file"),
]


@pytest.mark.parametrize(("argv", "message"), CLI_MISTAKES, ids=lambda v: " ".join(v)[:60])
def test_user_mistakes_exit_1_with_a_message(workdir, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(workdir)
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert code == 1, captured
    assert captured.err.startswith("softmax-fast: error: ")
    assert len(captured.err.splitlines()) == 1, captured.err
    assert message in captured.err, captured.err
    assert "Traceback" not in captured.err + captured.out


def test_predict_to_a_directory_and_on_bad_data(workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    assert cli.main(_fit("good.csv")) == 0
    for argv, message in (
        (["predict", "m.npz", "good.csv", "-o", "outdir"], "Is a directory"),
        (["predict", "m.npz", "nan.csv"], "nan.csv: column 'b' holds 'nan'"),
        (["predict", "m.npz", "duplicate.csv"], "appears more than once"),
    ):
        capsys.readouterr()
        assert cli.main(argv) == 1
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err


def test_small_data_set_fits(workdir, monkeypatch, capsys):
    # 5 rows, 2 classes: a 20 % split has 1 test row, which cannot hold both classes (a
    # stratified split would be refused, with an error about test_size): the held-out split is
    # plain, and the fit succeeds.
    monkeypatch.chdir(workdir)
    (workdir / "five.csv").write_text("a,b,y\n0,1,0\n1,0,1\n0,2,0\n2,0,1\n0,3,0\n")
    assert cli.main(_fit("five.csv")) == 0
    assert "held-out accuracy" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        _fit("good.csv", "--alpha", "abc"),
        _fit("good.csv", "--max-iter", "1.5"),
        _fit("good.csv", "--solver", "bfgs"),
        ["fit", "good.csv"],
        [],
    ],
    ids=["alpha-abc", "max-iter-1.5", "solver", "no-model", "no-command"],
)
def test_usage_errors_exit_2(workdir, monkeypatch, capsys, argv):
    monkeypatch.chdir(workdir)
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: softmax-fast") and "Traceback" not in err


def test_refuses_a_non_model_in_a_fresh_interpreter(workdir):
    # An .npy file named .npz is refused with a one-line message, not a TypeError traceback.
    result = subprocess.run(
        [sys.executable, "-m", "softmax_fast.cli", "predict", "plain.npz", "good.csv"],
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=120,
    )
    assert result.returncode == 1
    assert "not a valid softmax_fast model file" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="needs a shell pipeline")
def test_predict_into_a_closed_pipe_is_quiet(workdir, tmp_path):
    rows = "a,b,y\n" + "1,2,0\n3,4,1\n" * 20000
    (workdir / "big.csv").write_text(rows)
    assert (
        cli.main(
            [
                "fit",
                str(workdir / "good.csv"),
                "--target",
                "y",
                "--model",
                str(workdir / "m.npz"),
                "--quiet",
            ]
        )
        == 0
    )
    cmd = f"{sys.executable} -m softmax_fast.cli predict m.npz big.csv | head -n 1"
    result = subprocess.run(
        cmd, shell=True, capture_output=True, text=True, cwd=workdir, timeout=120
    )
    assert result.stdout == "prediction\n"
    assert result.stderr == "", result.stderr


# ----------------------------------------------------------------------------- the other commands


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


def _refuse_densifying(monkeypatch):
    """Every scipy.sparse class's toarray / todense raises (proof that nothing densifies)."""
    import scipy.sparse as sp

    def refuse(*args, **kwargs):
        raise AssertionError("a sparse matrix was densified")

    for kind in ("csr", "csc", "coo", "bsr", "lil", "dok", "dia"):
        for cls in (getattr(sp, f"{kind}_matrix"), getattr(sp, f"{kind}_array")):
            for name in ("toarray", "todense"):
                monkeypatch.setattr(cls, name, refuse)


def test_demo_quick(capsys, monkeypatch):
    from threadpoolctl import threadpool_limits

    # The sparse part runs with densifying refused (only the sparse part: the rest is dense).
    sparse_part = _demo._sparse_comparison

    def never_densified(*args, **kwargs):
        with monkeypatch.context() as patch:
            _refuse_densifying(patch)
            return sparse_part(*args, **kwargs)

    monkeypatch.setattr(_demo, "_sparse_comparison", never_densified)
    with threadpool_limits(limits=1, user_api="blas"):  # CI time: see the demo's footnote
        results = _demo.demo(quick=True)
    out = capsys.readouterr().out
    assert "test accuracy" in out and "most frequent confusions" in out
    digits_accuracy = float(out.split("test accuracy ")[1].split()[0])
    assert digits_accuracy > 0.93
    rows = results["synthetic"]
    names = [r[0] for r in rows]
    assert names == [
        "softmax_fast SoftmaxRegression",
        "NumPy reference + L-BFGS",
        "scikit-learn LogisticRegression",
    ]
    accuracies = [r[3] for r in rows]
    assert max(accuracies) - min(accuracies) < 0.01  # the same model, three ways
    # The sparse part: the quick corpus, both fits converged to the same objective.
    assert "Sparse text-like corpus: 1,000 x 10,000 tf-idf, K = 20 (CSR: " in out
    assert "C = 10, i.e. alpha = 1 / (C m) = 0.000133" in out  # 750 training rows
    sparse = results["sparse"]
    assert [r[0] for r in sparse] == [
        "softmax_fast SoftmaxRegression",
        "scikit-learn LogisticRegression",
    ]
    for name, seconds, iterations, objective, accuracy in sparse:
        assert seconds > 0 and 0 < iterations < _demo.SPARSE_MAX_ITER, name
        assert f"{objective:11.8f} {accuracy:9.4f}" in out
        assert accuracy > 0.9
    # Both stopped at max|grad| <= 1e-6 (or, scikit-learn, on a relative decrease of 64 eps):
    # the two objectives agree far closer than the 1e-4 allowed here.
    assert abs(sparse[0][3] - sparse[1][3]) < 1e-4 * sparse[0][3]


def test_the_demos_sparse_part_really_refuses_to_densify(monkeypatch):
    # The guard of test_demo_quick works: the corpus cannot be densified under it.
    from softmax_fast._synthetic import text_corpus

    X, _ = text_corpus(5, 50)
    _refuse_densifying(monkeypatch)
    for densify in (X.toarray, X.todense, X.tocsc().toarray, X.tocoo().todense):
        with pytest.raises(AssertionError, match="densified"):
            densify()


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

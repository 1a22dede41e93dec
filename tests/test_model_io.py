"""Model files (versioned npz, never pickle) and the data readers of the softmax-fast command."""

import json
import os
import pickle
import zipfile

import numpy as np
import pytest

from softmax_fast import _model_io as io


class FittedStandIn:
    """The attributes save_model reads from a fitted estimator."""

    def __init__(self, classes):
        rng = np.random.default_rng(0)
        self.classes_ = np.asarray(classes)
        self.coef_ = rng.standard_normal((len(classes), 4))
        self.intercept_ = rng.standard_normal(len(classes))
        self.feature_names_in_ = np.array(["a", "b", "c", "d"], dtype=object)

    def get_params(self):
        return {"alpha": 0.01, "solver": "lbfgs", "random_state": np.random.RandomState(0)}


@pytest.mark.parametrize("classes", [[0, 1, 2], ["cat", "dog"], [1.5, 2.5], [True, False]])
def test_model_arrays_round_trip(tmp_path, classes):
    model = FittedStandIn(classes)
    path = tmp_path / "m.npz"
    io.save_model(model, path)
    content = io.read_model_arrays(path)
    np.testing.assert_array_equal(content["coef"], model.coef_)
    np.testing.assert_array_equal(content["intercept"], model.intercept_)
    np.testing.assert_array_equal(content["classes"], model.classes_)
    np.testing.assert_array_equal(content["feature_names"], ["a", "b", "c", "d"])
    # Parameters that JSON cannot hold (a RandomState) are left out, the others kept.
    assert content["params"] == {"alpha": 0.01, "solver": "lbfgs"}


def test_object_labels_that_are_not_strings_are_refused(tmp_path):
    model = FittedStandIn(np.array([1, "a"], dtype=object))
    with pytest.raises(ValueError, match="class labels"):
        io.save_model(model, tmp_path / "m.npz")


def _write(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _valid_arrays():
    return {
        "format": np.array(io.MODEL_FORMAT),
        "version": np.array(io.MODEL_VERSION),
        "coef": np.zeros((3, 2)),
        "intercept": np.zeros(3),
        "classes": np.arange(3),
        "params": np.array(json.dumps({"alpha": 1.0})),
    }


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format": np.array("something else")}, "format"),
        ({"version": np.array(2)}, "version 2 is not supported"),
        ({"version": np.array("one")}, "version"),
        ({"coef": np.zeros(3)}, "coef"),
        ({"intercept": np.zeros(2)}, "intercept"),
        ({"classes": np.arange(4)}, "classes"),
        ({"coef": np.full((3, 2), np.nan)}, "non-finite"),
        ({"params": np.array("{not json")}, "JSON"),
    ],
)
def test_inconsistent_model_files_are_refused(tmp_path, change, message):
    path = tmp_path / "m.npz"
    _write(path, **{**_valid_arrays(), **change})
    with pytest.raises(ValueError, match=message):
        io.read_model_arrays(path)


def test_missing_arrays_truncated_and_garbage_files(tmp_path):
    arrays = _valid_arrays()
    del arrays["coef"]
    _write(tmp_path / "missing.npz", **arrays)
    with pytest.raises(ValueError, match="missing coef"):
        io.read_model_arrays(tmp_path / "missing.npz")
    _write(tmp_path / "good.npz", **_valid_arrays())
    data = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a valid softmax_fast model file"):
        io.read_model_arrays(tmp_path / "truncated.npz")
    (tmp_path / "garbage.npz").write_bytes(os.urandom(300))
    with pytest.raises(ValueError, match="not a valid softmax_fast model file"):
        io.read_model_arrays(tmp_path / "garbage.npz")
    with pytest.raises(FileNotFoundError, match="no such model file"):
        io.read_model_arrays(tmp_path / "absent.npz")


class _Exploit:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_payload_in_a_model_file_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = np.empty(1, dtype=object)
    payload[0] = _Exploit(str(marker))
    arrays = _valid_arrays()
    del arrays["classes"]
    path = tmp_path / "evil.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for key, value in arrays.items():
            with archive.open(f"{key}.npy", "w") as f:
                np.lib.format.write_array(f, value)
        with archive.open("classes.npy", "w") as f:  # the classes are the payload
            np.lib.format.write_array(f, payload, allow_pickle=True)
    assert pickle.dumps(payload)  # the payload is a real pickle
    with pytest.raises(ValueError, match="not a valid softmax_fast model file"):
        io.read_model_arrays(path)
    assert not marker.exists()


# ----------------------------------------------------------------------------- data files


def test_csv_with_header_numeric_and_string_targets(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x1,label,x2\n1.5,cat,2\n-3,dog,4e-1\n\n0,cat,7\n")
    X, y, names = io.read_data(path, target="label")
    np.testing.assert_array_equal(X, [[1.5, 2.0], [-3.0, 0.4], [0.0, 7.0]])
    np.testing.assert_array_equal(y, ["cat", "dog", "cat"])
    assert names == ["x1", "x2"]
    path.write_text("x1,y\n1,0\n2,1\n")
    X, y, _ = io.read_data(path, target="y")
    assert y.dtype.kind == "i" and list(y) == [0, 1]
    X, y, names = io.read_data(path)
    assert y is None and names == ["x1", "y"] and X.shape == (2, 2)


@pytest.mark.parametrize(
    "text, target, message",
    [
        ("a,b\n1,x\n", "a", "column 'b' is not numeric"),
        ("a,b\n1,2\n", "c", "no column named 'c'"),
        ("a,b\n1,2,3\n", "a", "line 2 has 3 fields"),
        ("a,b\n", "a", "no data rows"),
        ("", "a", "empty CSV"),
    ],
)
def test_bad_csv_files(tmp_path, text, target, message):
    path = tmp_path / "d.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        io.read_data(path, target=target)


def test_npz_data(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.ones((3, 2)), y=np.array([0, 1, 0]))
    X, y, names = io.read_data(path)
    assert X.shape == (3, 2) and list(y) == [0, 1, 0] and names is None
    np.savez(path, features=np.ones((3, 2)))
    with pytest.raises(ValueError, match="no array 'X'"):
        io.read_data(path)


def test_svmlight_data(tmp_path):
    pytest.importorskip("sklearn")
    path = tmp_path / "d.svm"
    path.write_text("1 1:0.5 3:2\n0 2:1.5\n2 1:-1\n")
    X, y, _ = io.read_data(path)
    np.testing.assert_array_equal(X, [[0.5, 0, 2], [0, 1.5, 0], [-1, 0, 0]])
    assert list(y) == [1, 0, 2] and y.dtype.kind == "i"
    path.write_text("this is not svmlight\n")
    with pytest.raises(ValueError, match="not a valid svmlight"):
        io.read_data(path)


def test_unknown_suffix_and_missing_file(tmp_path):
    path = tmp_path / "d.xlsx"
    path.write_text("x")
    with pytest.raises(ValueError, match="unknown data format"):
        io.read_data(path)
    with pytest.raises(FileNotFoundError):
        io.read_data(tmp_path / "absent.csv")


def test_csv_columns_are_read_by_name_in_the_given_order(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("label,b,a\ncat,2,1\ndog,4,3\n")
    X, y, names = io.read_data(path, columns=["a", "b"])
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    assert y is None and names == ["a", "b"]
    with pytest.raises(ValueError, match="no column"):
        io.read_data(path, columns=["a", "zzz"])

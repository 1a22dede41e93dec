"""Model files (versioned npz, never pickle; version 2 may hold a StandardScaler).

The data files of the softmax-fast command are tested in test_data_files.py."""

import json
import os
import pickle
import re
import warnings
import zipfile

import numpy as np
import pytest
from npz_archives import npy_bytes, write_members

from softmax_fast.io import model_file


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
    model_file.save_model(model, path)
    content = model_file.read_model_arrays(path)
    np.testing.assert_array_equal(content["coef"], model.coef_)
    np.testing.assert_array_equal(content["intercept"], model.intercept_)
    np.testing.assert_array_equal(content["classes"], model.classes_)
    np.testing.assert_array_equal(content["feature_names"], ["a", "b", "c", "d"])
    # Parameters that JSON cannot hold (a RandomState) are left out, the others kept.
    assert content["params"] == {"alpha": 0.01, "solver": "lbfgs"}


def test_object_labels_that_are_not_strings_are_refused(tmp_path):
    model = FittedStandIn(np.array([1, "a"], dtype=object))
    with pytest.raises(ValueError, match="class labels"):
        model_file.save_model(model, tmp_path / "m.npz")


def _write(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _valid_arrays():
    return {
        "format": np.array(model_file.MODEL_FORMAT),
        "version": np.array(model_file.MODEL_VERSION),
        "coef": np.zeros((3, 2)),
        "intercept": np.zeros(3),
        "classes": np.arange(3),
        "params": np.array(json.dumps({"alpha": 1.0})),
    }


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format": np.array("something else")}, "format"),
        ({"version": np.array(3)}, "version 3 is not supported"),
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
        model_file.read_model_arrays(path)


def test_missing_arrays_truncated_and_garbage_files(tmp_path):
    arrays = _valid_arrays()
    del arrays["coef"]
    _write(tmp_path / "missing.npz", **arrays)
    with pytest.raises(ValueError, match="missing coef"):
        model_file.read_model_arrays(tmp_path / "missing.npz")
    _write(tmp_path / "good.npz", **_valid_arrays())
    data = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a valid softmax_fast model file"):
        model_file.read_model_arrays(tmp_path / "truncated.npz")
    (tmp_path / "garbage.npz").write_bytes(os.urandom(300))
    with pytest.raises(ValueError, match="not a valid softmax_fast model file"):
        model_file.read_model_arrays(tmp_path / "garbage.npz")
    with pytest.raises(FileNotFoundError, match="no such model file"):
        model_file.read_model_arrays(tmp_path / "absent.npz")


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
        model_file.read_model_arrays(path)
    assert not marker.exists()


# ----------------------------------------------------------------------------- scalers, versions


def _fitted_pipeline(rng, with_mean=True, with_std=True):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from softmax_fast import SoftmaxRegression

    X = rng.standard_normal((60, 4)) * [1.0, 100.0, 1e-3, 0.0] + [0.0, 5e3, -2.0, 7.0]
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 5e3).astype(int)
    scaler = StandardScaler(with_mean=with_mean, with_std=with_std)
    return make_pipeline(scaler, SoftmaxRegression(alpha=1e-2)).fit(X, y), X


@pytest.mark.parametrize("with_mean, with_std", [(True, True), (False, True), (True, False)])
def test_a_pipeline_with_a_scaler_round_trips(tmp_path, with_mean, with_std):
    from sklearn.pipeline import Pipeline

    pipeline, X = _fitted_pipeline(np.random.default_rng(0), with_mean, with_std)
    path = tmp_path / "m.npz"
    model_file.save_model(pipeline, path, feature_names=["a", "b", "c", "d"])
    content = model_file.read_model_arrays(path)
    assert content["version"] == model_file.MODEL_VERSION == 2
    assert content["scaler_mean"].dtype == content["scaler_scale"].dtype == np.float64
    assert content["scaler_scale"][3] == 1.0 or not with_std  # the constant column
    loaded, names = model_file.load_model(path)
    assert isinstance(loaded, Pipeline) and names == ["a", "b", "c", "d"]
    assert [name for name, _ in loaded.steps] == ["standardscaler", "softmaxregression"]
    assert loaded[0].with_mean == with_mean  # means of zero load as a scaler that does not centre
    np.testing.assert_array_equal(loaded.predict(X), pipeline.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), pipeline.predict_proba(X), rtol=1e-12)
    np.testing.assert_array_equal(loaded.classes_, pipeline.classes_)
    assert loaded.n_features_in_ == 4


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # not the point
def test_a_scaler_that_does_not_centre_scales_sparse_input_after_loading(tmp_path):
    # What `softmax-fast fit --standardize` fits on sparse input: StandardScaler(with_mean=False).
    # It is stored as means of zero (as every version-2 file stores it) and loads as a scaler
    # that does not centre, so that it transforms a CSR matrix instead of refusing it.
    import scipy.sparse as sp

    pipeline, X = _fitted_pipeline(np.random.default_rng(3), with_mean=False)
    path = tmp_path / "m.npz"
    model_file.save_model(pipeline, path)
    content = model_file.read_model_arrays(path)
    np.testing.assert_array_equal(content["scaler_mean"], np.zeros(4))
    np.testing.assert_array_equal(content["scaler_scale"], pipeline[0].scale_)
    loaded, _ = model_file.load_model(path)
    assert loaded[0].with_mean is False and loaded[0].with_std is True
    X_sparse = sp.csr_matrix(np.where(np.abs(X) > 1, X, 0.0))
    scaled = loaded[0].transform(X_sparse)
    assert sp.issparse(scaled) and scaled.nnz == X_sparse.nnz
    expected = pipeline[0].transform(X_sparse)
    np.testing.assert_array_equal(scaled.toarray(), expected.toarray())
    np.testing.assert_array_equal(
        loaded[0].transform(X_sparse.toarray()), pipeline[0].transform(X_sparse.toarray())
    )


def test_a_model_without_a_scaler_loads_as_the_estimator(tmp_path):
    from softmax_fast import SoftmaxRegression

    pipeline, X = _fitted_pipeline(np.random.default_rng(1))
    path = tmp_path / "m.npz"
    model_file.save_model(pipeline[-1], path)
    loaded, names = model_file.load_model(path)
    assert type(loaded) is SoftmaxRegression and names is None
    assert model_file.read_model_arrays(path)["scaler_mean"] is None
    np.testing.assert_array_equal(loaded.coef_, pipeline[-1].coef_)


def test_other_pipelines_are_refused(tmp_path):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    from softmax_fast import SoftmaxRegression

    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((30, 3)), np.arange(30) % 3
    pipeline = make_pipeline(MinMaxScaler(), SoftmaxRegression()).fit(X, y)
    with pytest.raises(ValueError, match="Pipeline of \\['MinMaxScaler', 'SoftmaxRegression'\\]"):
        model_file.save_model(pipeline, tmp_path / "m.npz")


def test_a_version_1_file_still_loads(tmp_path):
    # A version 1 file: the arrays of version 2, without a scaler.
    path = tmp_path / "v1.npz"
    arrays = {
        **_valid_arrays(),
        "version": np.array(1),
        "coef": np.arange(6.0).reshape(3, 2),
        "feature_names": np.array(["x", "y"]),
    }
    _write(path, **arrays)
    model, names = model_file.load_model(path)
    np.testing.assert_array_equal(model.coef_, arrays["coef"])
    assert names == ["x", "y"] and model.alpha == 1.0
    np.testing.assert_array_equal(model.predict(np.array([[0.0, 1.0]])), [2])


def test_a_version_1_file_with_scaler_arrays_is_refused(tmp_path):
    path = tmp_path / "v1.npz"
    arrays = {**_valid_arrays(), "version": np.array(1)}
    _write(path, **arrays, scaler_mean=np.zeros(2), scaler_scale=np.ones(2))
    with pytest.raises(ValueError, match=re.escape("in a version 1 file (they need 2)")):
        model_file.load_model(path)


# ----------------------------------------------------------------------------- svmlight index base


@pytest.mark.parametrize("zero_based", [True, False])
def test_the_svmlight_index_base_round_trips(tmp_path, zero_based):
    from softmax_fast import SoftmaxRegression

    pipeline, X = _fitted_pipeline(np.random.default_rng(4))
    for estimator in (pipeline, pipeline[-1]):
        path = tmp_path / "m.npz"
        model_file.save_model(estimator, path, svmlight_zero_based=zero_based)
        content = model_file.read_model_arrays(path)
        assert content["svmlight_zero_based"] is zero_based
        assert content["version"] == model_file.MODEL_VERSION == 2  # not bumped (module doc)
        loaded, names, base = model_file.load_model_file(path)
        assert base is zero_based and names is None
        np.testing.assert_array_equal(loaded.predict(X), estimator.predict(X))
        model, _ = model_file.load_model(path)  # the two values, as before
        assert isinstance(model, type(loaded))
    assert isinstance(model, SoftmaxRegression)


def test_no_index_base_is_stored_unless_given(tmp_path):
    # Models fitted on CSV or npz data, and files written before the field existed.
    pipeline, X = _fitted_pipeline(np.random.default_rng(5))
    path = tmp_path / "m.npz"
    model_file.save_model(pipeline, path)
    with np.load(path) as archive:
        assert "svmlight_zero_based" not in archive.files
    assert model_file.read_model_arrays(path)["svmlight_zero_based"] is None
    loaded, _, base = model_file.load_model_file(path)
    assert base is None
    np.testing.assert_array_equal(loaded.predict(X), pipeline.predict(X))
    with pytest.raises(TypeError, match="svmlight_zero_based must be True, False or None"):
        model_file.save_model(pipeline, path, svmlight_zero_based=0)


def test_a_version_2_file_of_before_the_index_base_still_loads(tmp_path):
    # Exactly the members such a file held: no svmlight_zero_based.
    path = tmp_path / "v2.npz"
    arrays = {**_valid_arrays(), "scaler_mean": np.zeros(2), "scaler_scale": np.ones(2)}
    _write(path, **arrays)
    model, names, base = model_file.load_model_file(path)
    assert base is None and names is None
    np.testing.assert_array_equal(model.predict(np.array([[0.0, 1.0]])), [0])


@pytest.mark.parametrize(
    "value, version, message",
    [
        (np.array(1), 2, "svmlight_zero_based must be one boolean, got int64 ()"),
        (np.array([True]), 2, "svmlight_zero_based must be one boolean, got bool (1,)"),
        (np.array("yes"), 2, "svmlight_zero_based must be one boolean"),
        (np.array(True), 1, "svmlight_zero_based in a version 1 file (it needs 2)"),
    ],
)
def test_bad_index_bases_are_refused(tmp_path, value, version, message):
    path = tmp_path / "m.npz"
    _write(path, **{**_valid_arrays(), "version": np.array(version)}, svmlight_zero_based=value)
    with pytest.raises(
        ValueError, match=r"not a valid softmax_fast model file \(" + re.escape(message)
    ):
        model_file.load_model(path)


@pytest.mark.parametrize(
    "scaler, message",
    [
        ({"scaler_mean": np.zeros(3), "scaler_scale": np.ones(2)}, "scaler_mean must be"),
        ({"scaler_mean": np.zeros(2), "scaler_scale": np.ones((2, 1))}, "scaler_scale must be"),
        ({"scaler_mean": np.zeros(2, np.float32), "scaler_scale": np.ones(2)}, "float64"),
        ({"scaler_mean": np.arange(2), "scaler_scale": np.ones(2)}, "float64"),
        ({"scaler_mean": np.array([0.0, np.nan]), "scaler_scale": np.ones(2)}, "NaN or infinity"),
        ({"scaler_mean": np.zeros(2), "scaler_scale": np.array([1.0, np.inf])}, "NaN or infinity"),
        ({"scaler_mean": np.zeros(2), "scaler_scale": np.array([1.0, 0.0])}, "must be positive"),
        ({"scaler_mean": np.zeros(2), "scaler_scale": np.array([-1.0, 1.0])}, "must be positive"),
        ({"scaler_mean": np.zeros(2)}, "scaler_mean without scaler_scale"),
        ({"scaler_scale": np.ones(2)}, "scaler_scale without scaler_mean"),
    ],
    ids=[
        "mean-shape",
        "scale-2d",
        "mean-float32",
        "mean-int",
        "mean-nan",
        "scale-inf",
        "scale-zero",
        "scale-negative",
        "no-scale",
        "no-mean",
    ],
)
def test_bad_scalers_are_refused(tmp_path, scaler, message):
    path = tmp_path / "m.npz"
    _write(path, **_valid_arrays(), **scaler)
    with pytest.raises(
        ValueError, match=r"not a valid softmax_fast model file \(.*" + re.escape(message)
    ):
        model_file.load_model(path)


# ----------------------------------------------------------------------------- hand-crafted files


def _members(**changes):
    arrays = {**_valid_arrays(), **changes}
    return [(f"{key}.npy", value) for key, value in arrays.items() if value is not None]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"classes": np.arange(3) + 0j}, "classes must be integers, floats, booleans or strings"),
        ({"classes": np.arange(3).astype("M8[D]")}, "classes must be integers"),
        ({"classes": np.array([b"a", b"b", b"c"])}, "classes must be integers"),
        ({"classes": np.zeros(3, dtype=[("a", "i4")])}, "classes must be integers"),
        ({"classes": np.array([1, 1, 2])}, "classes are not distinct"),
        ({"classes": np.array([0.0, np.nan, 1.0])}, "classes contain NaN"),
        ({"coef": np.zeros((3, 2), np.float32)}, "coef must be a 2-D float64 array"),
        ({"coef": np.zeros((3, 2), np.float16)}, "coef must be a 2-D float64 array"),
        ({"coef": np.zeros((3, 2), np.int64)}, "coef must be a 2-D float64 array"),
        ({"coef": np.zeros((3, 2), np.complex128)}, "coef must be a 2-D float64 array"),
        ({"coef": np.zeros((3, 0))}, "coef has no columns"),
        ({"intercept": np.zeros(3, np.float32)}, "intercept must be a float64 array"),
        ({"intercept": np.array([0.0, np.inf, 0.0])}, "non-finite coefficients"),
        ({"feature_names": np.arange(2)}, "feature_names must be 2 strings"),
        ({"params": np.array([json.dumps({})])}, "params must be one JSON string"),
        ({"params": np.array("[1, 2]")}, "params must be a JSON object"),
        ({"format": np.array(b"softmax_fast.model")}, "format"),
        ({"format": np.array([model_file.MODEL_FORMAT])}, "format"),
        ({"version": np.array(True)}, "bad version field"),
        ({"version": np.array([1])}, "bad version field"),
        ({"version": np.array(0)}, "version 0 is not supported"),
    ],
    ids=lambda v: str(v)[:50] if isinstance(v, str) else None,
)
def test_wrong_kinds_and_shapes_inside_a_valid_archive(tmp_path, change, message):
    path = tmp_path / "m.npz"
    write_members(path, _members(**change))
    with pytest.raises(ValueError, match=re.escape(message)):
        model_file.read_model_arrays(path)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"alpha": "x"}, "params: alpha"),
        ({"n_threads": 0}, "params: n_threads"),
        ({"n_threads": "all"}, "params: n_threads"),
        ({"solver": "bfgs"}, "params: solver"),
        ({"fit_intercept": "yes"}, "params: fit_intercept"),
    ],
)
def test_params_that_the_estimator_refuses(tmp_path, params, message):
    # n_threads is used to predict: a bad one must not surface later as a TypeError.
    path = tmp_path / "m.npz"
    write_members(path, _members(params=np.array(json.dumps(params))))
    with pytest.raises(ValueError, match=re.escape(message)):
        model_file.load_model(path)
    path.write_bytes(b"")
    write_members(path, _members(params=np.array('{"alpha": NaN}')))  # JSON with a NaN
    with pytest.raises(ValueError, match="params: alpha"):
        model_file.load_model(path)


@pytest.mark.parametrize(
    "members, message",
    [
        (_members(evil=np.zeros(3)), "unexpected members: evil"),
        (_members() + [("notes.txt", b"hello")], "member 'notes.txt' is not a .npy array"),
        (_members() + [("coef.npy", np.ones((3, 2)))], "a member appears twice"),
        (
            _members(coef=None) + [("coef.npy", npy_bytes(np.zeros((3, 2)), (3, 10**11)))],
            "coef: the header declares 2,400,000,000,000 bytes",
        ),
        (
            _members(coef=None) + [("coef.npy", npy_bytes(np.zeros((3, 2)), (3, 1)))],
            "coef: the header declares 24 bytes",
        ),
        (
            _members(coef=None) + [("coef.npy", npy_bytes(np.zeros((3, 2)))[:60])],
            "not a valid softmax_fast model file",
        ),
    ],
    ids=["extra", "not-npy", "duplicate", "huge-declared", "short-declared", "cut-header"],
)
def test_archive_structure_is_checked_before_reading(tmp_path, members, message):
    path = tmp_path / "m.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile: "Duplicate name"
        write_members(path, members)
    with pytest.raises(ValueError, match=re.escape(message)):
        model_file.read_model_arrays(path)


def test_files_that_are_not_npz_archives(tmp_path):
    cases = {
        "npy.npz": lambda p: np.save(open(p, "wb"), np.zeros(3)),
        "pickle.npz": lambda p: p.write_bytes(pickle.dumps({"coef": np.zeros(3)})),
        "text.npz": lambda p: p.write_text("format,version\nsoftmax_fast.model,1\n"),
        "empty.npz": lambda p: p.write_bytes(b""),
    }
    for name, make in cases.items():
        path = tmp_path / name
        make(path)
        with pytest.raises(ValueError, match=r"not a valid softmax_fast model file \(not an npz"):
            model_file.read_model_arrays(path)
    with pytest.raises(FileNotFoundError, match="no such model file"):
        model_file.read_model_arrays(tmp_path)  # a directory


def test_a_zip_bomb_is_refused_without_unpacking_it(tmp_path, monkeypatch):
    # 16 MB of zeros deflate to ~16 KB; with the limit at 1 MB the archive is refused from its
    # directory entries, before a byte is decompressed.
    monkeypatch.setattr(model_file, "MAX_MODEL_BYTES", 2**20)
    path = tmp_path / "bomb.npz"
    members = _members(coef=None) + [("coef.npy", np.zeros((2**11, 2**10)))]
    write_members(path, members, compression=zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 2**17
    with pytest.raises(ValueError, match=r"unpacks to 16,\d{3},\d{3} bytes, more than the limit"):
        model_file.read_model_arrays(path)
    # the same content within the limit loads: the check is on size, not on compression
    monkeypatch.setattr(model_file, "MAX_MODEL_BYTES", 2**25)
    with pytest.raises(ValueError, match="intercept must be a float64 array of shape \\(2048,\\)"):
        model_file.read_model_arrays(path)


def test_a_compressed_model_file_loads(tmp_path):
    path = tmp_path / "m.npz"
    arrays = {**_valid_arrays(), "coef": np.arange(6.0).reshape(3, 2)}
    np.savez_compressed(path, **arrays)
    model, names = model_file.load_model(path)
    np.testing.assert_array_equal(model.coef_, arrays["coef"])
    assert names is None and list(model.classes_) == [0, 1, 2]


def test_a_corrupted_compressed_member_is_refused(tmp_path):
    path = tmp_path / "m.npz"
    arrays = {**_valid_arrays(), "coef": np.random.default_rng(0).standard_normal((30, 40))}
    np.savez_compressed(path, **arrays)
    data = bytearray(path.read_bytes())
    start = data.index(b"coef.npy") + 200  # inside coef's deflate stream
    data[start : start + 64] = os.urandom(64)
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="not a valid softmax_fast model file"):
        model_file.read_model_arrays(path)


@pytest.mark.parametrize("member", ["evil", "coef", "params"])
def test_pickle_payloads_anywhere_never_run(tmp_path, member):
    marker = tmp_path / "pwned"
    payload = np.empty(1, dtype=object)
    payload[0] = _Exploit(str(marker))
    path = tmp_path / "evil.npz"
    write_members(path, _members(**{member: payload}))
    with pytest.raises(ValueError, match="not a valid softmax_fast model file"):
        model_file.load_model(path)
    assert not marker.exists()

"""The data files of the softmax-fast command: CSV, npz and svmlight/libsvm (read_data)."""

import io as io_module
import zipfile

import numpy as np
import pytest

from softmax_fast.io import data_files


def test_csv_with_header_numeric_and_string_targets(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x1,label,x2\n1.5,cat,2\n-3,dog,4e-1\n\n0,cat,7\n")
    X, y, names = data_files.read_data(path, target="label")
    np.testing.assert_array_equal(X, [[1.5, 2.0], [-3.0, 0.4], [0.0, 7.0]])
    np.testing.assert_array_equal(y, ["cat", "dog", "cat"])
    assert names == ["x1", "x2"]
    path.write_text("x1,y\n1,0\n2,1\n")
    X, y, _ = data_files.read_data(path, target="y")
    assert y.dtype.kind == "i" and list(y) == [0, 1]
    X, y, names = data_files.read_data(path)
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
        data_files.read_data(path, target=target)


def test_npz_data(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.ones((3, 2)), y=np.array([0, 1, 0]))
    X, y, names = data_files.read_data(path)
    assert X.shape == (3, 2) and list(y) == [0, 1, 0] and names is None
    np.savez(path, features=np.ones((3, 2)))
    with pytest.raises(ValueError, match="no array 'X'"):
        data_files.read_data(path)


def test_svmlight_data(tmp_path):
    pytest.importorskip("sklearn")
    path = tmp_path / "d.svm"
    path.write_text("1 1:0.5 3:2\n0 2:1.5\n2 1:-1\n")
    X, y, _ = data_files.read_data(path)
    np.testing.assert_array_equal(X, [[0.5, 0, 2], [0, 1.5, 0], [-1, 0, 0]])
    assert list(y) == [1, 0, 2] and y.dtype.kind == "i"
    path.write_text("this is not svmlight\n")
    with pytest.raises(ValueError, match="not a valid svmlight"):
        data_files.read_data(path)


def test_unknown_suffix_and_missing_file(tmp_path):
    path = tmp_path / "d.xlsx"
    path.write_text("x")
    with pytest.raises(ValueError, match="unknown data format"):
        data_files.read_data(path)
    with pytest.raises(FileNotFoundError):
        data_files.read_data(tmp_path / "absent.csv")


def test_csv_columns_are_read_by_name_in_the_given_order(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("label,b,a\ncat,2,1\ndog,4,3\n")
    X, y, names = data_files.read_data(path, columns=["a", "b"])
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    assert y is None and names == ["a", "b"]
    with pytest.raises(ValueError, match="no column"):
        data_files.read_data(path, columns=["a", "zzz"])


# ----------------------------------------------------------------------------- hand-crafted files


def _write_members(path, members, compression=zipfile.ZIP_STORED):
    """A zip archive whose members are written as given: arrays as .npy, bytes verbatim."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, value in members:
            if isinstance(value, bytes):
                archive.writestr(name, value)
            else:
                with archive.open(name, "w") as f:
                    np.lib.format.write_array(f, value, allow_pickle=True)


def _npy_bytes(array, shape=None):
    """The .npy encoding of ``array``; with ``shape``, a header that lies about the shape."""
    buf = io_module.BytesIO()
    header = np.lib.format.header_data_from_array_1_0(array)
    if shape is not None:
        header["shape"] = shape
    np.lib.format.write_array_header_1_0(buf, header)
    buf.write(np.ascontiguousarray(array).tobytes())
    return buf.getvalue()


def test_data_npz_with_objects_or_lying_headers(tmp_path):
    path = tmp_path / "d.npz"
    _write_members(path, [("X.npy", np.ones((3, 2)).astype(object)), ("y.npy", np.arange(3))])
    with pytest.raises(ValueError, match="X: object arrays are refused"):
        data_files.read_data(path)
    _write_members(path, [("X.npy", _npy_bytes(np.ones((3, 2)), (3, 10**12)))])
    with pytest.raises(ValueError, match="cannot read the npz archive .*declares"):
        data_files.read_data(path)

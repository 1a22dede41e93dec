"""The data files of the softmax-fast command: CSV, npz and svmlight/libsvm (read_data); sparse
input (svmlight, scipy.sparse.save_npz archives) stays sparse."""

import pickle
import re

import numpy as np
import pytest
import scipy.sparse as sp
from npz_archives import npy_bytes, write_members

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
    assert type(X) is sp.csr_matrix
    np.testing.assert_array_equal(X.toarray(), [[0.5, 0, 2], [0, 1.5, 0], [-1, 0, 0]])
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


def test_data_npz_with_objects_or_lying_headers(tmp_path):
    path = tmp_path / "d.npz"
    write_members(path, [("X.npy", np.ones((3, 2)).astype(object)), ("y.npy", np.arange(3))])
    with pytest.raises(ValueError, match="X: object arrays are refused"):
        data_files.read_data(path)
    write_members(path, [("X.npy", npy_bytes(np.ones((3, 2)), (3, 10**12)))])
    with pytest.raises(ValueError, match="cannot read the npz archive .*declares"):
        data_files.read_data(path)


# ----------------------------------------------------------------------------- sparse input


@pytest.fixture
def never_densified(monkeypatch):
    """Densifying a sparse matrix (toarray, todense, np.asarray) raises: proof it never happens."""

    def refuse(*args, **kwargs):
        raise AssertionError("a sparse matrix was densified")

    for cls in (sp.csr_matrix, sp.csc_matrix, sp.coo_matrix):
        for name in ("toarray", "todense", "__array__"):
            monkeypatch.setattr(cls, name, refuse, raising=False)


def _random_sparse(rng, shape=(40, 30), density=0.1, dtype=np.float64):
    A = sp.random(*shape, density=density, format="csr", dtype=dtype, random_state=rng)
    A.data = (A.data - 0.5) * 10  # both signs
    return A


def test_svmlight_stays_csr_and_equals_scikit_learns_reader(tmp_path, rng, never_densified):
    from sklearn.datasets import dump_svmlight_file, load_svmlight_file

    A = _random_sparse(rng)
    y = rng.integers(0, 3, A.shape[0])
    path = tmp_path / "d.svmlight"
    dump_svmlight_file(A, y, str(path))
    X, labels, names = data_files.read_data(path)
    expected, expected_y = load_svmlight_file(str(path))
    assert type(X) is sp.csr_matrix and X.dtype == np.float64 and X.has_canonical_format
    assert X.shape == expected.shape and names is None
    np.testing.assert_array_equal(X.indptr, expected.indptr)
    np.testing.assert_array_equal(X.indices, expected.indices)
    np.testing.assert_array_equal(X.data, expected.data)
    np.testing.assert_array_equal(labels, expected_y)
    assert labels.dtype.kind == "i"


def test_a_wide_svmlight_file_is_not_densified(tmp_path, never_densified):
    # 10**9 columns: 16 GB as a dense float64 array of two rows; a few bytes as CSR.
    path = tmp_path / "wide.svm"
    path.write_text("1 1000000000:1.5\n0 1:2\n")
    X, y, _ = data_files.read_data(path)
    assert X.shape == (2, 10**9) and X.nnz == 2 and list(y) == [1, 0]


def test_svmlight_non_finite_values_name_the_row(tmp_path, never_densified):
    path = tmp_path / "d.svm"
    path.write_text("0 1:1\n1 2:3\n1 1:2 3:inf\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}: X has NaN or infinity in row 2")):
        data_files.read_data(path)


# ----------------------------------------------------------------------------- svmlight index base


def test_svmlight_index_base_given_or_guessed(tmp_path, never_densified):
    path = tmp_path / "d.svm"
    path.write_text("1 0:0.5 2:2\n0 1:1.5\n")  # an index 0: zero-based, certainly
    X, y, names, base = data_files.read_data_file(path)
    assert base is True and X.shape == (2, 3) and names is None and list(y) == [1, 0]
    np.testing.assert_array_equal(X.indices, [0, 2, 1])
    assert data_files.read_data_file(path, zero_based=True).zero_based is True
    path.write_text("1 1:0.5 3:2\n0 2:1.5\n")  # no index 0: guessed one-based
    X, _, _, base = data_files.read_data_file(path)
    assert base is False and X.shape == (2, 3) and X.has_canonical_format
    np.testing.assert_array_equal(X.indices, [0, 2, 1])
    np.testing.assert_array_equal(X.data, [0.5, 2.0, 1.5])
    # the same file, its base given: one-based as guessed, or zero-based (a zero column 0)
    assert data_files.read_data_file(path, zero_based=False).X.shape == (2, 3)
    X, _, _, base = data_files.read_data_file(path, zero_based=True)
    assert base is True and X.shape == (2, 4)
    np.testing.assert_array_equal(X.indices, [1, 3, 2])
    # read_data: the same X, without the base
    X3, y3, names3 = data_files.read_data(path, zero_based=True)
    assert X3.shape == (2, 4) and list(y3) == [1, 0] and names3 is None


def test_a_zero_based_file_without_index_0_is_shifted_by_the_guess_not_when_told(tmp_path, rng):
    # The bug the base exists for: zero-based data whose column 0 holds no value is guessed
    # one-based, every column moved left by one.  Told the base, it reads as written.
    from sklearn.datasets import dump_svmlight_file

    A = np.round(_random_sparse(rng, shape=(30, 8), density=0.5).toarray(), 3)  # exact in text
    A[:, 0] = 0.0
    path = tmp_path / "d.svm"
    dump_svmlight_file(A, np.arange(30) % 2, str(path), zero_based=True)
    guessed = data_files.read_data_file(path)
    assert guessed.zero_based is False
    np.testing.assert_array_equal(guessed.X.toarray(), A[:, 1:])  # shifted
    told = data_files.read_data_file(path, zero_based=True)
    np.testing.assert_array_equal(told.X.toarray(), A)


def test_an_index_0_in_a_file_read_as_one_based_is_an_error(tmp_path):
    path = tmp_path / "d.svm"
    path.write_text("1 1:0.5\n0 2:1\n1 0:3 4:1\n")
    with pytest.raises(data_files.IndexBaseError) as info:
        data_files.read_data_file(path, zero_based=False)
    assert str(info.value) == (
        f"{path}: feature index 0 in row 2 (counting from 0), but the file is read as one-based "
        f"(its feature indices counting from 1)"
    )
    assert isinstance(info.value, ValueError)  # what read_data's callers already catch


def test_svmlight_rows_without_features_and_other_formats(tmp_path):
    path = tmp_path / "d.svm"
    path.write_text("1\n0\n")  # no feature at all: one zero column, whatever the base
    for zero_based in (None, True, False):
        X, y, _, base = data_files.read_data_file(path, zero_based=zero_based)
        assert X.shape == (2, 1) and X.nnz == 0 and list(y) == [1, 0]
        assert base is (True if zero_based is None else zero_based)
    # CSV and npz have no index base: zero_based is ignored, and reported as None
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("a,y\n1,0\n2,1\n")
    npz_path = tmp_path / "d.npz"
    np.savez(npz_path, X=np.ones((2, 1)), y=np.array([0, 1]))
    for data, target in ((csv_path, "y"), (npz_path, None)):
        for zero_based in (None, True, False):
            result = data_files.read_data_file(data, target, zero_based=zero_based)
            assert result.zero_based is None and result.X.shape == (2, 1)


def _save_npz(path, M, index_dtype):
    """``scipy.sparse.save_npz(path, M)`` with ``M``'s index arrays in ``index_dtype``.

    SciPy's COO constructor narrows int64 indices that fit in int32, so a COO archive with int64
    indices is written as save_npz writes one (its member names, dtypes and ``format`` bytes).
    """
    if M.format != "coo":
        M = M.copy()
        M.indices, M.indptr = M.indices.astype(index_dtype), M.indptr.astype(index_dtype)
        sp.save_npz(path, M)
    elif index_dtype == np.int32:
        sp.save_npz(path, M)
    else:
        np.savez(path, row=M.row.astype(index_dtype), col=M.col.astype(index_dtype),
                 format=b"coo", shape=M.shape, data=M.data)  # fmt: skip


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_save_npz_round_trips(tmp_path, rng, never_densified, fmt, dtype, index_dtype):
    A = _random_sparse(rng, dtype=dtype)
    path = tmp_path / "d.npz"
    _save_npz(path, A.asformat(fmt), index_dtype)
    with np.load(path) as stored:  # the archive holds what the test means to test
        assert stored["format"].item() == fmt.encode()
        assert stored["data"].dtype == dtype
        assert stored["row" if fmt == "coo" else "indices"].dtype == index_dtype
    X, y, names = data_files.read_data(path)
    assert type(X) is sp.csr_matrix and X.has_canonical_format
    assert X.dtype == dtype and X.shape == A.shape and y is None and names is None
    assert (X != A).nnz == 0
    np.testing.assert_array_equal(X.indptr, A.indptr)
    np.testing.assert_array_equal(X.indices, A.indices)
    np.testing.assert_array_equal(X.data, A.data)


def test_sparse_arrays_with_labels_in_one_archive(tmp_path, rng):
    # The documented recipe: the matrix's arrays and the labels in one np.savez archive.
    A = _random_sparse(rng)
    y = rng.integers(0, 4, A.shape[0])
    path = tmp_path / "train.npz"
    np.savez(
        path, format="csr", shape=A.shape, data=A.data, indices=A.indices, indptr=A.indptr, y=y
    )
    X, labels, _ = data_files.read_data(path)
    assert (X != A).nnz == 0
    np.testing.assert_array_equal(labels, y)
    np.savez(path, format=b"coo", shape=A.shape, data=A.tocoo().data, row=A.tocoo().row,
             col=A.tocoo().col, label=y)  # fmt: skip
    X, labels, _ = data_files.read_data(path, target="label")
    assert (X != A).nnz == 0
    np.testing.assert_array_equal(labels, y)
    with pytest.raises(ValueError, match=re.escape(f"{path}: the npz archive has no array 'y2'")):
        data_files.read_data(path, target="y2")
    np.savez(path, format="csr", shape=A.shape, data=A.data, indices=A.indices, indptr=A.indptr,
             y=y[:-1])  # fmt: skip
    with pytest.raises(ValueError, match="'y' must hold one label per row of X, shape \\(40,\\)"):
        data_files.read_data(path)


def test_other_save_npz_variants(tmp_path, rng):
    A = _random_sparse(rng, shape=(12, 9), density=0.3)
    path = tmp_path / "d.npz"
    sp.save_npz(path, A, compressed=True)
    assert (data_files.read_data(path)[0] != A).nnz == 0
    sp.save_npz(path, sp.csr_array(A))  # a sparse array (SciPy >= 1.12 writes '_is_array')
    X = data_files.read_data(path)[0]
    assert type(X) is sp.csr_matrix and (X != A).nnz == 0
    C = A.tocoo()  # COO as newer SciPy may write it: one (2, nnz) 'coords' array
    np.savez(path, format=b"coo", shape=C.shape, data=C.data, coords=np.stack([C.row, C.col]))
    assert (data_files.read_data(path)[0] != A).nnz == 0
    # integer data becomes float64; an empty matrix row is fine
    B = sp.csr_matrix(np.array([[0, 2, 0], [0, 0, 0], [-1, 0, 3]], dtype=np.int16))
    sp.save_npz(path, B)
    X = data_files.read_data(path)[0]
    assert X.dtype == np.float64
    np.testing.assert_array_equal(X.toarray(), [[0, 2, 0], [0, 0, 0], [-1, 0, 3]])


def test_duplicates_and_unsorted_indices_become_canonical(tmp_path):
    path = tmp_path / "d.npz"
    # row 0: column 2 then 0, and column 2 twice; row 1 empty
    np.savez(path, format=b"csr", shape=np.array([2, 3]), data=np.array([1.0, 2.0, 4.0]),
             indices=np.array([2, 0, 2]), indptr=np.array([0, 3, 3]))  # fmt: skip
    X = data_files.read_data(path)[0]
    assert X.has_canonical_format and X.nnz == 2
    np.testing.assert_array_equal(X.toarray(), [[2.0, 0.0, 5.0], [0.0, 0.0, 0.0]])
    C = sp.coo_matrix(([1.0, 2.0, 3.0], ([1, 0, 1], [1, 1, 1])), shape=(2, 2))
    sp.save_npz(path, C)
    X = data_files.read_data(path)[0]
    assert X.has_canonical_format
    np.testing.assert_array_equal(X.toarray(), [[0.0, 2.0], [0.0, 4.0]])
    # duplicates whose sum overflows: the check is on the summed values
    np.savez(path, format=b"coo", shape=np.array([2, 2]), data=np.array([1e308, 1e308]),
             row=np.array([1, 1]), col=np.array([0, 0]))  # fmt: skip
    with pytest.raises(ValueError, match=re.escape(f"{path}: X has NaN or infinity in row 1")):
        data_files.read_data(path)


def _csr_arrays(**changes):
    """A valid 3 x 4 CSR archive's arrays ([[1, 0, 0, 2], [0, 0, 0, 0], [0, 3, 0, 0]]), changed."""
    arrays = {
        "format": np.array(b"csr"),
        "shape": np.array([3, 4]),
        "data": np.array([1.0, 2.0, 3.0]),
        "indices": np.array([0, 3, 1], dtype=np.int32),
        "indptr": np.array([0, 2, 2, 3], dtype=np.int32),
    }
    arrays.update(changes)
    return {key: value for key, value in arrays.items() if value is not None}


def _csc_arrays(**changes):
    """The same matrix as CSC."""
    base = {
        "format": np.array(b"csc"),
        "indices": np.array([0, 2, 0]),
        "indptr": np.array([0, 1, 2, 2, 3]),
        "data": np.array([1.0, 3.0, 2.0]),
    }
    return _csr_arrays(**{**base, **changes})


def _coo_arrays(**changes):
    """The same matrix as COO."""
    base = {
        "format": np.array(b"coo"),
        "indices": None,
        "indptr": None,
        "row": np.array([0, 0, 2]),
        "col": np.array([0, 3, 1]),
    }
    return _csr_arrays(**{**base, **changes})


def test_the_valid_archives_of_the_malformed_cases_load(tmp_path):
    expected = [[1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0], [0.0, 3.0, 0.0, 0.0]]
    for arrays in (_csr_arrays(), _csc_arrays(), _coo_arrays()):
        path = tmp_path / "d.npz"
        np.savez(path, **arrays)
        np.testing.assert_array_equal(data_files.read_data(path)[0].toarray(), expected)


NOT_VALID = "not a valid sparse matrix archive"

MALFORMED = [
    # indptr
    (_csr_arrays(indptr=np.array([1, 2, 2, 3])), "'indptr' starts at 1, not 0"),
    (_csr_arrays(indptr=np.array([0, 2, 1, 3])), "'indptr' decreases from 2 to 1 at entry 2"),
    (_csr_arrays(indptr=np.array([0, 2, 2, 2])), "'indptr' ends at 2, but 'data' holds 3"),
    (_csr_arrays(indptr=np.array([0, 2, 2, 4])), "'indptr' ends at 4"),
    (_csr_arrays(indptr=np.array([0, 2, 3])), "'indptr' has 3 entries, it needs 4"),
    (_csr_arrays(indptr=np.array([0.0, 2, 2, 3])), "'indptr' must be a 1-D integer array"),
    (_csr_arrays(indptr=np.array([[0, 2, 2, 3]])), "'indptr' must be a 1-D integer array"),
    (_csc_arrays(indptr=np.array([0, 1, 2, 3])), "'indptr' has 4 entries, it needs 5"),
    # indices
    (_csr_arrays(indices=np.array([0, 4, 1])), "'indices' holds 4 at position 1, outside [0, 4)"),
    (_csr_arrays(indices=np.array([0, -1, 1])), "'indices' holds -1 at position 1"),
    (_csr_arrays(indices=np.array([0, 3])), "'indices' has 2 entries, it needs 3"),
    (_csr_arrays(indices=np.array([0, 3, 1, 2])), "'indices' has 4 entries, it needs 3"),
    (_csr_arrays(indices=np.array([0, 3, 1], dtype=bool)), "'indices' must be a 1-D integer"),
    (
        _csr_arrays(indices=np.array([0, 2**64 - 1, 1], dtype=np.uint64)),
        "'indices' holds 18446744073709551615, too large for an index",
    ),
    (_csc_arrays(indices=np.array([0, 3, 0])), "'indices' holds 3 at position 1, outside [0, 3)"),
    (_coo_arrays(row=np.array([0, 3, 2])), "'row' holds 3 at position 1, outside [0, 3)"),
    (_coo_arrays(col=np.array([0, 3, -2])), "'col' holds -2 at position 2, outside [0, 4)"),
    (_coo_arrays(col=np.array([0, 3])), "'col' has 2 entries, it needs 3"),
    (_coo_arrays(coords=np.zeros((3, 3), int)), "'coords' must be a (2, 3) integer array"),
    # shape
    (_csr_arrays(shape=np.array([3, -4])), "'shape' is (3, -4)"),
    (_csr_arrays(shape=np.array([3, 4, 1])), "'shape' must be 2 integers"),
    (_csr_arrays(shape=np.array([3.0, 4.0])), "'shape' must be 2 integers"),
    (_csr_arrays(shape=np.array([3, 2**64 - 1], dtype=np.uint64)), "'shape' is (3, 1844"),
    (_csr_arrays(shape=np.array([2, 4])), "'indptr' has 4 entries, it needs 3"),
    (_csr_arrays(shape=np.array([3, 3])), "'indices' holds 3 at position 1, outside [0, 3)"),
    (
        _coo_arrays(shape=np.array([10**12, 4])),
        "'shape' declares 1,000,000,000,000 rows for 3 stored values",
    ),
    (_csc_arrays(shape=np.array([10**12, 4])), "'shape' declares 1,000,000,000,000 rows"),
    # data
    (_csr_arrays(data=np.array([1.0, 2.0])), "'indices' has 3 entries, it needs 2"),
    (_csr_arrays(data=np.ones((3, 1))), "'data' must be a 1-D numeric array"),
    (_csr_arrays(data=np.ones(3, complex)), "'data' must be a 1-D numeric array, got complex128"),
    (_csr_arrays(data=np.array(["a", "b", "c"])), "'data' must be a 1-D numeric array"),
    # format and members
    (_csr_arrays(format=np.array(1)), "'format' must be one string such as 'csr'"),
    (_csr_arrays(format=np.array([b"csr"])), "'format' must be one string"),
    (_csr_arrays(indptr=None), "format 'csr' needs 'indptr'"),
    (_coo_arrays(row=None, col=None), "format 'coo' needs 'row', 'col'"),
    (_csr_arrays(data=None), "format 'csr' needs 'data'"),
]

NON_FINITE = [
    (_csr_arrays(data=np.array([1.0, 2.0, np.nan])), "X has NaN or infinity in row 2"),
    (_csr_arrays(data=np.array([1.0, -np.inf, 3.0], np.float32)), "X has NaN or infinity in row 0"),
    (_csc_arrays(data=np.array([1.0, np.inf, 2.0])), "X has NaN or infinity in row 2"),
    (_coo_arrays(data=np.array([1.0, 2.0, np.nan])), "X has NaN or infinity in row 2"),
]

UNSUPPORTED = [
    (_csr_arrays(format=np.array(b"bsr")), "sparse format 'bsr' is not supported"),
    (_csr_arrays(format=np.array("dia"), offsets=np.array([0])), "sparse format 'dia' is not"),
    (_csr_arrays(format=np.array(b"lil")), "sparse format 'lil' is not supported"),
]


@pytest.mark.parametrize(
    "arrays, message",
    [(a, f"{NOT_VALID} ({m}") for a, m in MALFORMED] + NON_FINITE + UNSUPPORTED,
    ids=lambda v: (
        re.sub(r"^not a valid sparse matrix archive \(", "", v)[:60] if isinstance(v, str) else None
    ),
)
def test_malformed_sparse_archives_name_the_file_and_the_problem(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=re.escape(f"{path}: {message}")):
        data_files.read_data(path)


def test_unsupported_formats_name_the_accepted_ones(tmp_path, rng):
    path = tmp_path / "d.npz"
    for fmt in ("bsr", "dia"):
        sp.save_npz(path, _random_sparse(rng).asformat(fmt))
        with pytest.raises(ValueError) as info:
            data_files.read_data(path)
        assert str(info.value) == (
            f"{path}: sparse format {fmt!r} is not supported (accepted: csr, csc, coo; "
            f"convert with .tocsr() before scipy.sparse.save_npz)"
        )


def test_ambiguous_or_empty_sparse_archives(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.ones((3, 4)), **_csr_arrays())
    with pytest.raises(ValueError, match=re.escape(f"{path}: the npz archive holds both a dense")):
        data_files.read_data(path)
    np.savez(path, **_csr_arrays(), y=np.arange(3))
    with pytest.raises(ValueError, match="'indices' is an array of the sparse matrix, not the"):
        data_files.read_data(path, target="indices")
    np.savez(path, **_csr_arrays(shape=np.array([0, 4]), data=np.zeros(0),
             indices=np.zeros(0, int), indptr=np.array([0])))  # fmt: skip
    with pytest.raises(ValueError, match=re.escape(f"{path}: no data (X has shape (0, 4))")):
        data_files.read_data(path)
    np.savez(path, **_coo_arrays(shape=np.array([3, 0]), data=np.zeros(0), row=np.zeros(0, int),
             col=np.zeros(0, int)))  # fmt: skip
    with pytest.raises(ValueError, match=re.escape(f"{path}: no data (X has shape (3, 0))")):
        data_files.read_data(path)


class _Exploit:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("member", ["data", "indices", "format", "y"])
def test_a_pickled_object_array_in_a_sparse_archive_never_runs(tmp_path, member):
    marker = tmp_path / "pwned"
    payload = np.empty(3, dtype=object)
    payload[:] = [_Exploit(str(marker))] * 3
    assert pickle.dumps(payload)  # a real pickle
    arrays = {**_csr_arrays(), "y": np.arange(3)}
    arrays[member] = payload
    path = tmp_path / "evil.npz"
    write_members(path, [(f"{key}.npy", value) for key, value in arrays.items()])
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"{path}: cannot read the npz archive ({member}: object arrays are refused"
        ),
    ):
        data_files.read_data(path)
    assert not marker.exists()


def _npy_with_a_large_header(array, header_bytes):
    """The .npy (version 1.0) encoding of ``array`` with its header padded to ``header_bytes``."""
    header = np.lib.format.header_data_from_array_1_0(array)
    text = repr({key: header[key] for key in sorted(header)}).encode("latin1")
    text = text.ljust(header_bytes - 1) + b"\n"
    magic = np.lib.format.magic(1, 0)
    length = len(text).to_bytes(2, "little")
    return magic + length + text + np.ascontiguousarray(array).tobytes()


def test_sparse_archives_get_the_npz_header_and_size_checks(tmp_path):
    path = tmp_path / "d.npz"
    arrays = _csr_arrays()
    # 'data' declares 10**12 values (8 TB) that it does not hold: refused from its header
    members = [(f"{k}.npy", v) for k, v in arrays.items() if k != "data"]
    write_members(path, [*members, ("data.npy", npy_bytes(arrays["data"], (10**12,)))])
    with pytest.raises(
        ValueError,
        match=re.escape(f"{path}: cannot read the npz archive (data: the header declares "),
    ):
        data_files.read_data(path)
    # an 'indptr' header beyond NumPy's safe size (10,000 bytes) is refused
    members = [(f"{k}.npy", v) for k, v in arrays.items() if k != "indptr"]
    big = _npy_with_a_large_header(arrays["indptr"], 20000)
    write_members(path, [*members, ("indptr.npy", big)])
    with pytest.raises(ValueError, match=re.escape(f"{path}: cannot read the npz archive")) as e:
        data_files.read_data(path)
    assert "large" in str(e.value)
    # the same member with a header of ordinary size loads
    write_members(path, [*members, ("indptr.npy", _npy_with_a_large_header(arrays["indptr"], 200))])
    assert data_files.read_data(path)[0].nnz == 3

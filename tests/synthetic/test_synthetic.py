"""softmax_fast._synthetic.text_corpus: the tf-idf corpus of the demo and the benchmarks.

Its values are recovered as term counts from the matrix itself: with df = the column counts,
idf = log((1 + m) / (1 + df)) + 1 and v = (1 + log tf) idf / ||row||, so v / idf is 1 + log tf
up to the row's norm, and a row's smallest v / idf is a term drawn once (tf = 1).  The counts
must then be integers and sum to tokens_per_doc in every row.
"""

import numpy as np
import pytest
import scipy.sparse as sp

from softmax_fast._synthetic import text_corpus

# A corpus small enough for every test (20 classes, about 100 documents each).
SMALL = {"n_docs": 2_000, "n_terms": 20_000, "tokens_per_doc": 100}


def _term_counts(X):
    """The tf counts behind a text_corpus matrix (float64; integers up to rounding)."""
    m, n = X.shape
    df = np.bincount(X.indices, minlength=n)
    idf = np.log((1.0 + m) / (1.0 + df)) + 1.0
    u = X.data.astype(np.float64) / idf[X.indices]
    row_of = np.repeat(np.arange(m), np.diff(X.indptr))
    smallest = np.minimum.reduceat(u, X.indptr[:-1])  # every row here holds a value
    return sp.csr_matrix((np.exp(u / smallest[row_of] - 1.0), X.indices, X.indptr), shape=X.shape)


def _row_norms(X):
    return np.sqrt(np.asarray(X.multiply(X).sum(axis=1), dtype=np.float64).ravel())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_shape_dtype_and_canonical_csr(dtype):
    X, y = text_corpus(**SMALL, dtype=dtype)
    assert type(X) is sp.csr_matrix
    assert X.shape == (SMALL["n_docs"], SMALL["n_terms"]) and X.dtype == dtype
    assert X.has_canonical_format  # sorted indices, no duplicates
    # Checked, not trusted: column indices strictly increasing within each row.
    steps = np.diff(X.indices)
    within = np.ones(steps.size, dtype=bool)
    within[X.indptr[1:-1] - 1] = False  # the step from one row's last entry to the next's first
    assert np.all(steps[within] > 0)
    assert X.indices.min() >= 0 and X.indices.max() < SMALL["n_terms"]
    assert np.all(X.data > 0) and np.all(np.isfinite(X.data))  # no explicit zeros
    assert y.shape == (SMALL["n_docs"],) and y.dtype.kind == "i"
    assert y.min() >= 0 and y.max() < 20


@pytest.mark.parametrize("dtype, rounding", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_rows_have_unit_norm(dtype, rounding):
    X, _ = text_corpus(**SMALL, dtype=dtype)
    np.testing.assert_allclose(_row_norms(X), 1.0, rtol=0, atol=rounding)


def test_the_default_shape_holds_about_180_distinct_terms_a_row():
    # The defaults' vocabulary and tokens (fewer documents: the terms a row holds do not depend
    # on how many rows there are).  230 tokens, repeats of the frequent terms folded into tf.
    X, y = text_corpus(n_docs=400)
    assert X.shape == (400, 130_107)
    distinct = np.diff(X.indptr)
    assert 165 <= distinct.mean() <= 195
    assert distinct.max() <= 230
    assert set(np.unique(y)) == set(range(20))


def test_every_class_is_present():
    _, y = text_corpus(**SMALL)
    counts = np.bincount(y, minlength=20)
    assert counts.size == 20 and counts.min() > 0
    # Drawn uniformly: about 100 documents each.
    assert counts.min() > 60 and counts.max() < 140
    _, y = text_corpus(**SMALL, n_classes=3)
    assert set(np.unique(y)) == {0, 1, 2}


def test_the_same_seed_makes_the_same_corpus():
    X1, y1 = text_corpus(**SMALL, seed=7)
    X2, y2 = text_corpus(**SMALL, seed=7)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(X1.indptr, X2.indptr)
    np.testing.assert_array_equal(X1.indices, X2.indices)
    np.testing.assert_array_equal(X1.data, X2.data)  # bit for bit
    X3, y3 = text_corpus(**SMALL, seed=8)
    assert not np.array_equal(y1, y3)
    assert X1.nnz != X3.nnz or not np.array_equal(X1.indices, X3.indices)


@pytest.mark.parametrize("tokens_per_doc", [20, 100, 400])
def test_tokens_per_doc_is_honoured(tokens_per_doc):
    X, _ = text_corpus(n_docs=500, n_terms=20_000, tokens_per_doc=tokens_per_doc)
    counts = _term_counts(X)
    np.testing.assert_allclose(counts.data, np.round(counts.data), rtol=0, atol=1e-9)
    per_row = np.add.reduceat(np.round(counts.data), counts.indptr[:-1])  # no empty rows
    np.testing.assert_array_equal(per_row, tokens_per_doc)  # every token counted, exactly
    distinct = np.diff(X.indptr)
    assert distinct.max() <= tokens_per_doc
    assert distinct.mean() >= 0.4 * tokens_per_doc  # a Zipf vocabulary: repeats, not only


def _topic_share_estimate(X, y, n_classes, tokens_per_doc):
    """The share of a document's tokens drawn from its class's topic words, estimated.

    Each class's topic words are taken as the terms over-represented in the class (4 times the
    rate of the other classes, twice or more) in the first half of the documents; on the second
    half, the share of a document's tokens among its own class's words less the mean share among
    the other classes' words (what the background draws put there by chance).
    """
    counts = _term_counts(X)
    counts.data = np.round(counts.data)
    half = X.shape[0] // 2
    first, second = counts[:half], counts[half:]
    member = sp.csr_matrix((np.ones(half), (y[:half], np.arange(half))), shape=(n_classes, half))
    per_class = np.asarray((member @ first).todense())
    docs = np.bincount(y[:half], minlength=n_classes)[:, None]
    elsewhere = (per_class.sum(axis=0) - per_class) / (half - docs)
    words = ((per_class >= 2) & (per_class / docs > 4 * elsewhere)).astype(np.float64)
    shares = np.asarray(second @ words.T) / tokens_per_doc  # (docs, classes)
    own = shares[np.arange(shares.shape[0]), y[half:]]
    others = (shares.sum(axis=1) - own) / (n_classes - 1)
    return float(np.mean(own - others))


@pytest.mark.parametrize("topic_share", [0.0, 0.15, 0.4, 1.0])
def test_topic_share_is_honoured_roughly(topic_share):
    X, y = text_corpus(
        n_docs=2_000, n_terms=30_000, tokens_per_doc=100, n_classes=10, topic_share=topic_share
    )
    estimate = _topic_share_estimate(X, y, 10, 100)
    # The estimate misses the rarest topic words (about a tenth of the topic tokens).
    assert 0.8 * topic_share - 0.02 <= estimate <= topic_share + 0.02


@pytest.mark.parametrize(
    "n_docs, n_terms, n_classes", [(1, 50, 20), (1, 1, 2), (3, 1, 2), (30, 150, 4), (5, 199, 3)]
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tiny_sizes_work(n_docs, n_terms, n_classes, dtype):
    X, y = text_corpus(n_docs, n_terms, tokens_per_doc=40, n_classes=n_classes, dtype=dtype)
    assert type(X) is sp.csr_matrix and X.shape == (n_docs, n_terms) and X.dtype == dtype
    assert X.has_canonical_format
    assert np.all(np.diff(X.indptr) >= 1) and np.diff(X.indptr).max() <= min(40, n_terms)
    assert X.indices.max() < n_terms and np.all(X.data > 0)
    np.testing.assert_allclose(_row_norms(X), 1.0, rtol=0, atol=1e-5)
    assert y.shape == (n_docs,) and y.min() >= 0 and y.max() < n_classes

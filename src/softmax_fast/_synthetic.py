"""Synthetic sparse data for the demo and the benchmarks: a text-like tf-idf corpus.

Shaped like 20 newsgroups by default (11,314 documents, a 130,107-term vocabulary, about 180
distinct terms a document, 20 classes).  Term ids follow a Zipf-like law over the vocabulary;
each class has its own topic words, which make up a share of its documents' tokens; values are
tf-idf (sublinear tf, smoothed idf) with unit-norm rows, as ``TfidfVectorizer`` makes them.
Everything is vectorized: the full-size corpus takes a few seconds.
"""

import numpy as np
import scipy.sparse as sp

__all__ = ["text_corpus"]


def _zipf_cdf(n_terms, exponent, offset):
    """Cumulative probabilities of term ranks 0 .. n_terms - 1 under p(r) ~ (r + offset)^-s."""
    weights = (np.arange(n_terms, dtype=np.float64) + offset) ** -exponent
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def text_corpus(
    n_docs: int = 11_314,
    n_terms: int = 130_107,
    tokens_per_doc: int = 230,
    n_classes: int = 20,
    *,
    topic_words: int = 400,
    topic_share: float = 0.15,
    dtype=np.float64,
    seed: int = 0,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """A tf-idf matrix (n_docs, n_terms), canonical CSR with unit-norm rows, and class labels.

    Parameters
    ----------
    n_docs, n_terms, n_classes : int
    tokens_per_doc : int
        Tokens drawn per document; repeats of a term make its tf, so the distinct terms a row
        holds are fewer (about 180 for the defaults).
    topic_words : int
        Terms of each class's topic (drawn from the mid-frequency vocabulary).
    topic_share : float
        Share of a document's tokens drawn from its class's topic words.
    dtype : float32 or float64
    seed : int

    Returns
    -------
    X : scipy.sparse.csr_matrix of shape (n_docs, n_terms)
    y : ndarray of shape (n_docs,), int
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n_docs)
    n_topic = int(round(tokens_per_doc * topic_share))
    n_common = tokens_per_doc - n_topic
    # background tokens: Zipf over the whole vocabulary (rank = term id)
    common = np.searchsorted(_zipf_cdf(n_terms, 1.05, 2.7), rng.random((n_docs, n_common)))
    # topic tokens: each class's words, Zipf within the topic, drawn from ranks 200 .. n / 4
    low, high = min(200, n_terms - 1), max(min(200, n_terms - 1) + topic_words, n_terms // 4)
    topics = rng.integers(low, min(high, n_terms), size=(n_classes, topic_words))
    ranks = np.searchsorted(_zipf_cdf(topic_words, 1.0, 1.0), rng.random((n_docs, n_topic)))
    topical = topics[y[:, None], np.minimum(ranks, topic_words - 1)]
    terms = np.concatenate([common, topical], axis=1).ravel()
    terms = np.minimum(terms, n_terms - 1)
    rows = np.repeat(np.arange(n_docs), tokens_per_doc)
    counts = sp.csr_matrix(
        (np.ones(terms.size, dtype=np.float64), (rows, terms)), shape=(n_docs, n_terms)
    )
    counts.sum_duplicates()  # tf counts, sorted indices
    df = np.bincount(counts.indices, minlength=n_terms)
    idf = np.log((1.0 + n_docs) / (1.0 + df)) + 1.0
    values = (1.0 + np.log(counts.data)) * idf[counts.indices]
    row_of = np.repeat(np.arange(n_docs), np.diff(counts.indptr))
    norms = np.sqrt(np.bincount(row_of, weights=values * values, minlength=n_docs))
    values /= np.where(norms > 0, norms, 1.0)[row_of]
    X = sp.csr_matrix((values.astype(dtype), counts.indices, counts.indptr), shape=counts.shape)
    return X, y

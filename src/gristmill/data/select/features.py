"""Hashed word uni- and bigram features, vectorised over a batch of texts.

Tokens are those of the dedup steps (:func:`gristmill.data.dedup.text.tokenize_batch`: lower-cased
words, each CJK character its own token), so selection, dedup and decontamination agree on what a
word is. Every unigram and every bigram inside a document is hashed into one of ``buckets`` bins
(the hashing trick of Weinberger et al., 2009; DSIR uses 10,000 bins). No Python string is made
per token.

This module computes feature indexes only; it decides nothing and reads no files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from gristmill.data.dedup.text import ngram_hashes, tokenize_batch

DEFAULT_BUCKETS = 10_000


@dataclass
class HashedFeatures:
    """The (document, bucket) pairs of a batch: one per unigram and per bigram, in document order."""

    doc: np.ndarray
    """int64 document index of each feature occurrence (non-decreasing)."""
    bucket: np.ndarray
    """int64 bin of each feature occurrence, in ``[0, buckets)``."""
    n_docs: int
    tokens: np.ndarray
    """int64 tokens per document (for lengths and per-token normalisation)."""


def hashed_ngrams(texts: pa.Array | Sequence[str | None], buckets: int = DEFAULT_BUCKETS,
                  orders: Sequence[int] = (1, 2)) -> HashedFeatures:
    """Feature occurrences of every text: word n-grams of each order in ``orders``, hashed into ``buckets``."""
    tb = tokenize_batch(texts)
    n_docs = len(tb)
    counts = tb.counts.astype(np.int64)
    docs, bins = [], []
    for n in orders:
        if n == 1:
            doc = np.repeat(np.arange(n_docs, dtype=np.int64), counts)
            h = tb.hashes
        else:
            ng = ngram_hashes(tb, n, whole_if_shorter=False)
            doc, h = ng.doc, ng.hashes
        docs.append(doc)
        # The unigram and bigram spaces share the bins; mixing the order in keeps "a" and "a b" apart.
        bins.append(((h ^ np.uint64(0x9E3779B97F4A7C15 * n & 0xFFFFFFFFFFFFFFFF)) % np.uint64(buckets)).astype(np.int64))
    doc = np.concatenate(docs) if docs else np.zeros(0, np.int64)
    bucket = np.concatenate(bins) if bins else np.zeros(0, np.int64)
    # Group by document, keeping each document's features in text order (unigrams, then bigrams), so a
    # document's per-feature sums are added in the same order whatever batch it was read in.
    order = np.argsort(doc, kind="stable")
    return HashedFeatures(doc[order], bucket[order], n_docs, counts)


def bucket_counts(feats: HashedFeatures, buckets: int) -> np.ndarray:
    """int64 occurrences of each bin over the whole batch."""
    return np.bincount(feats.bucket, minlength=buckets).astype(np.int64)


def doc_sums(feats: HashedFeatures, values: np.ndarray) -> np.ndarray:
    """float64 sum of ``values[bucket]`` over each document's features (deterministic per document)."""
    return np.bincount(feats.doc, weights=values[feats.bucket], minlength=feats.n_docs)

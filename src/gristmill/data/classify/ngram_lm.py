"""A hashed word n-gram language model (Witten-Bell interpolation) for the ``perplexity`` step.

The CCNet idea (Wenzek et al., 2020): a language model trained on text you trust gives fluent,
in-domain documents low perplexity and junk (gibberish, keyword lists, mojibake, other languages)
high perplexity. CCNet uses KenLM on SentencePiece tokens; KenLM does not install from the package
registry, so this is a small in-house equivalent: the tokens of the dedup steps (lower-cased words,
CJK characters one by one), trigram counts hashed into ``buckets`` bins per order (so the model has a
fixed size whatever the training text), interpolated with Witten-Bell smoothing:

``P_n(w | h) = (c(h w) + T(h) P_{n-1}(w | h')) / (c(h) + T(h))``, where ``T(h)`` is the number of
distinct words seen after ``h``, down to ``P_1(w) = (c(w) + T / B) / (N + T)`` (T distinct words, N
tokens, B bins). Every document starts with a begin-of-document context.

A model folder holds ``config.json`` (``kind: gristmill-ngram-lm``) and ``counts.safetensors``.
Training keeps the distinct n-grams of the training text in memory (8 bytes each), which suits the
trusted samples this is for (up to some tens of millions of words); scoring is vectorised numpy over
a batch, and memory is the count tables (``7 x buckets x 4`` bytes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gristmill.data.classify.linear import ModelFolderError, read_config
from gristmill.data.dedup.text import fmix64, tokenize_batch
from gristmill.folders import write_record

KIND = "gristmill-ngram-lm"
COUNTS = "counts.safetensors"
_BOS = np.uint64(0x5BD1E9955BD1E995)
_M = np.uint64(0x9E3779B97F4A7C15)
_SALT = (np.uint64(0x1234567), np.uint64(0x89ABCDEF01), np.uint64(0x2545F4914F6CDD1D))


@dataclass
class _Keys:
    """Full 64-bit keys of every position of a batch: the n-gram ending there and its context."""

    gram: list[np.ndarray]  # order 1, 2, 3
    ctx: list[np.ndarray]  # order 2, 3 (context of the n-gram)
    doc: np.ndarray


def _keys(texts: Sequence[str], max_words: int = 0) -> _Keys:
    tb = tokenize_batch(list(texts))
    t = tb.hashes
    counts = tb.counts.astype(np.int64)
    n_docs = len(counts)
    if max_words > 0:
        # Only each document's first max_words tokens.
        keep_counts = np.minimum(counts, max_words)
        pos = np.arange(len(t)) - np.repeat(tb.offsets[:-1], counts)
        t = t[pos < np.repeat(keep_counts, counts)]
        counts = keep_counts
    doc = np.repeat(np.arange(n_docs, dtype=np.int64), counts)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    pos = np.arange(len(t)) - np.repeat(starts, counts)
    prev1 = np.empty_like(t)
    prev2 = np.empty_like(t)
    if len(t):
        prev1[1:] = t[:-1]
        prev2[2:] = t[:-2]
    prev1[pos < 1] = _BOS
    prev2[pos < 2] = _BOS
    ctx2 = fmix64(prev1 ^ _SALT[1])
    ctx3 = fmix64(prev2 * _M + prev1 + _SALT[2])
    g1 = fmix64(t ^ _SALT[0])
    g2 = fmix64(ctx2 * _M + t)
    g3 = fmix64(ctx3 * _M + t)
    return _Keys([g1, g2, g3], [ctx2, ctx3], doc)


class NGramLM:
    """Count tables of a trained model; :meth:`log_prob` scores documents."""

    def __init__(self, tables: dict[str, np.ndarray], buckets: int, tokens: int, distinct: int) -> None:
        self.t = tables
        self.buckets = buckets
        self.tokens = tokens
        self.distinct = distinct
        self.labels = ["perplexity"]

    def _token_log_probs(self, k: _Keys) -> np.ndarray:
        b = np.uint64(self.buckets)
        t = self.t
        c1 = t["c1"][(k.gram[0] % b).astype(np.int64)].astype(np.float64)
        p = (c1 + self.distinct / self.buckets) / (self.tokens + self.distinct)
        for order in (2, 3):
            gi = (k.gram[order - 1] % b).astype(np.int64)
            hi = (k.ctx[order - 2] % b).astype(np.int64)
            c = t[f"c{order}"][gi].astype(np.float64)
            h = t[f"h{order}"][hi].astype(np.float64)
            d = t[f"d{order}"][hi].astype(np.float64)
            p = np.where(h > 0, (c + d * p) / np.maximum(h + d, 1.0), p)
        return np.log(p)

    def log_prob(self, texts: Sequence[str], max_words: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(total natural-log probability, tokens scored) of each text."""
        k = _keys(texts, max_words)
        lp = self._token_log_probs(k)
        return (np.bincount(k.doc, weights=lp, minlength=len(texts)),
                np.bincount(k.doc, minlength=len(texts)))

    def perplexity(self, texts: Sequence[str], max_words: int = 0) -> np.ndarray:
        """exp(-mean log probability per token); NaN for a text without tokens."""
        total, n = self.log_prob(texts, max_words)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.exp(-total / n)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Scorer protocol: one column, the perplexity."""
        return self.perplexity(texts)[:, None]

    def save(self, folder: str | Path, meta: dict | None = None) -> Path:
        from safetensors.numpy import save_file

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        save_file({k: np.ascontiguousarray(v) for k, v in self.t.items()}, str(out / COUNTS))
        config = {"kind": KIND, "format_version": 1, "order": 3, "buckets": self.buckets, "tokens": self.tokens,
                  "distinct_words": self.distinct, **(meta or {})}
        write_record(out / "config.json", config)
        return out


def train_ngram_lm(batches: Iterable[Sequence[str]], buckets: int = 1 << 20) -> NGramLM:
    """Count uni-, bi- and trigrams of every batch of texts into hashed tables."""
    tables = {name: np.zeros(buckets, np.uint32) for name in ("c1", "c2", "h2", "d2", "c3", "h3", "d3")}
    b = np.uint64(buckets)
    uniq: list[np.ndarray] = [np.zeros(0, np.uint64) for _ in range(3)]
    tokens = 0
    pairs: list[list[np.ndarray]] = [[], []]  # (gram, ctx) keys of orders 2 and 3, to count distinct later
    for texts in batches:
        k = _keys(texts)
        tokens += len(k.doc)
        for order in (1, 2, 3):
            np.add.at(tables[f"c{order}"], (k.gram[order - 1] % b).astype(np.int64), 1)
            uniq[order - 1] = np.union1d(uniq[order - 1], k.gram[order - 1])
        for order in (2, 3):
            np.add.at(tables[f"h{order}"], (k.ctx[order - 2] % b).astype(np.int64), 1)
            pairs[order - 2].append(np.stack([k.gram[order - 1], k.ctx[order - 2]], axis=1))
            # Keep only distinct (gram, ctx) rows between batches so memory follows distinct n-grams.
            merged = np.concatenate(pairs[order - 2])
            pairs[order - 2] = [np.unique(merged, axis=0)]
    for order in (2, 3):
        rows = pairs[order - 2][0] if pairs[order - 2] else np.zeros((0, 2), np.uint64)
        np.add.at(tables[f"d{order}"], (rows[:, 1] % b).astype(np.int64), 1)
    return NGramLM(tables, buckets, tokens, len(uniq[0]))


def load_ngram_lm(folder: str | Path) -> NGramLM:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    folder = Path(folder)
    config = read_config(folder)
    if config.get("kind") != KIND:
        raise ModelFolderError(f"{folder} is not an n-gram language model folder (kind {config.get('kind')!r}; "
                               "train one with `gristmill classify lm`)")
    try:
        tables = load_file(str(folder / COUNTS))
        model = NGramLM(tables, int(config["buckets"]), int(config["tokens"]), int(config["distinct_words"]))
    except (OSError, SafetensorError, KeyError, TypeError, ValueError) as exc:
        raise ModelFolderError(f"{folder}: cannot read the n-gram model ({exc})") from None
    if any(tables.get(name) is None or len(tables[name]) != model.buckets
           for name in ("c1", "c2", "h2", "d2", "c3", "h3", "d3")):
        raise ModelFolderError(f"{folder}: count tables do not match {model.buckets} buckets")
    return model

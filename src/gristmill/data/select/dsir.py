"""``select_domain``: keep the documents most like a target sample, by importance resampling (DSIR).

Xie et al. (2023), "Data Selection for Language Models via Importance Resampling": model the target
sample and the raw corpus each as a bag of hashed word uni- and bigrams (``buckets`` bins, add-one
smoothed), give every document the log importance weight
``log w = sum over its n-grams of log p_target(bin) - log p_raw(bin)``, and draw K documents without
replacement with probability proportional to ``w``. Sampling uses the Gumbel top-k trick: a document's
key is ``log w + G`` with ``G`` a standard Gumbel variable drawn from a hash of (seed, document id), and
the K largest keys are kept. The key of a document therefore depends on its text, id, the seed and
the two bin distributions only, never on shards, batches or workers: the same seed gives the same
selection under any executor.

``prepare`` runs two passes of shard tasks through the executor. Pass 1 sums bin counts over the
corpus (one ``buckets``-long vector per task). Pass 2 computes every document's key and writes each
shard's keys, sorted, as an order-preserving uint64 array; the K-th largest key is then found by
bisection over the 64-bit key space, counting keys above a probe with ``searchsorted`` on memory
maps. Memory is bounded by one shard's keys and the bin vectors, whatever K or the corpus size.
``process`` recomputes each document's key and keeps those at or above the threshold (rejected:
``select_domain:not_selected``); it writes ``domain_score`` (the log importance weight per n-gram,
comparable across documents of any length) to every document.

Length: the paper scores fixed-length chunks. Over whole documents of any length, the sum favours
short documents (their log weight is near 0, while a long document that is only a little unlike the
target has a large negative sum). ``normalize_to: N`` rescales each document's log weight to N n-grams
(``mean log ratio * N``), as if every document were a chunk of N n-grams; 0 keeps the paper's sum.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xxhash

from gristmill.data.dedup.decontaminate import read_examples
from gristmill.data.dedup.shuffle import (
    fresh_dir,
    iter_column,
    load_array,
    save_array,
    shard_index,
    shard_name,
)
from gristmill.data.document import Document
from gristmill.data.pipeline import CorpusStep, StepStats, register
from gristmill.data.select.features import (
    DEFAULT_BUCKETS,
    HashedFeatures,
    bucket_counts,
    doc_sums,
    hashed_ngrams,
)
from gristmill.data.storage import atomic_write_text

if TYPE_CHECKING:
    from gristmill.data.executors import Executor

_SIGN = np.uint64(1 << 63)


def gumbel_noise(ids: Sequence[str], seed: int) -> np.ndarray:
    """A standard Gumbel variable per id, a pure function of (id, seed)."""
    bits = np.fromiter((xxhash.xxh3_64_intdigest(i.encode("utf-8", "surrogatepass"), seed=seed) for i in ids),
                       dtype=np.uint64, count=len(ids))
    # 53 random bits -> a uniform in (0, 1), never exactly 0 or 1.
    u = ((bits >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)
    return -np.log(-np.log(u))


def log_weights(feats: HashedFeatures, ratio: np.ndarray, normalize_to: int) -> np.ndarray:
    """Each document's log importance weight: the sum of its n-grams' log ratios, or their mean times N."""
    log_w = doc_sums(feats, ratio)
    if normalize_to:
        n = np.bincount(feats.doc, minlength=feats.n_docs)
        log_w = np.where(n > 0, log_w / np.maximum(n, 1), 0.0) * normalize_to
    return log_w


def ordered_bits(keys: np.ndarray) -> np.ndarray:
    """float64 -> uint64 with the same order (so keys can be bisected as integers)."""
    b = np.ascontiguousarray(keys, dtype=np.float64).view(np.uint64)
    return np.where(b & _SIGN, ~b, b | _SIGN)


def log_ratio(target: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Per-bin ``log p_target - log p_raw`` with add-one smoothing."""
    buckets = len(target)
    pt = (target + 1.0) / (target.sum() + buckets)
    pr = (raw + 1.0) / (raw.sum() + buckets)
    return np.log(pt) - np.log(pr)


@dataclass(frozen=True)
class _Task:
    path: str
    workdir: str
    buckets: int
    seed: int
    normalize_to: int


def _count_task(task: _Task) -> np.ndarray:
    total = np.zeros(task.buckets, np.int64)
    n_docs = 0
    for texts in iter_column(task.path, "text"):
        total += bucket_counts(hashed_ngrams(texts, task.buckets), task.buckets)
        n_docs += len(texts)
    return np.append(total, n_docs)


def _key_task(task: _Task) -> tuple[int, int]:
    ratio = load_array(Path(task.workdir) / "log_ratio.npy", mmap=False)
    keys = []
    ids = iter_column(task.path, "id")
    for texts in iter_column(task.path, "text"):
        batch_ids = [str(i) for i in next(ids).to_pylist()]
        log_w = log_weights(hashed_ngrams(texts, task.buckets), ratio, task.normalize_to)
        keys.append(log_w + gumbel_noise(batch_ids, task.seed))
    index = shard_index(task.path)
    k = np.sort(ordered_bits(np.concatenate(keys))) if keys else np.zeros(0, np.uint64)
    save_array(Path(task.workdir) / "keys" / f"{shard_name(index)}.npy", k)
    return index, len(k)


def kth_largest(sorted_parts: Sequence[np.ndarray], k: int) -> int:
    """The k-th largest value over several sorted uint64 arrays (k >= 1), by bisection on the value."""
    def at_least(t: int) -> int:
        probe = np.uint64(t)
        return sum(len(p) - int(np.searchsorted(p, probe, side="left")) for p in sorted_parts)

    lo, hi = 0, (1 << 64) - 1  # invariant: at_least(lo) >= k; answer in [lo, hi]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if at_least(mid) >= k:
            lo = mid
        else:
            hi = mid - 1
    return lo


@register("select_domain")
@dataclass
class SelectDomain(CorpusStep):
    """Keeps the K documents (or fraction) most like a target sample: DSIR importance resampling."""

    target: str = ""
    """Target-domain sample: JSONL (``.gz``/``.zst`` too) with one text per line in ``text_field``."""
    text_field: str = "text"
    keep: int = 0
    """Documents to keep (give this or ``fraction``)."""
    fraction: float = 0.0
    """Share of the documents to keep, rounded to a whole number (give this or ``keep``)."""
    buckets: int = DEFAULT_BUCKETS
    """Hash bins of the uni+bigram features (the paper's 10,000)."""
    normalize_to: int = 0
    """0: the paper's sum over the document's n-grams; N > 0: the mean log ratio times N (no length bias)."""
    seed: int = 0
    """Gumbel noise seed: the same seed, corpus and target give the same selection on any executor."""

    def __post_init__(self) -> None:
        if not self.target:
            raise ValueError("select_domain: give the target sample file in 'target'")
        if not Path(self.target).is_file():
            raise ValueError(f"select_domain: target file {self.target} does not exist")
        if (self.keep > 0) == (self.fraction > 0):
            raise ValueError("select_domain: give exactly one of 'keep' (documents) or 'fraction'")
        if self.keep < 0 or not 0 <= self.fraction <= 1:
            raise ValueError("select_domain: 'keep' must be positive and 'fraction' in (0, 1]")
        if self.normalize_to < 0:
            raise ValueError("select_domain: 'normalize_to' must be 0 (sum) or a number of n-grams")
        if self.buckets < 2:
            raise ValueError("select_domain: 'buckets' must be at least 2")

    def target_counts(self) -> np.ndarray:
        texts, _, _ = read_examples(self.target, self.text_field)
        if not texts:
            raise ValueError(f"select_domain: no texts in field {self.text_field!r} of {self.target}")
        total = np.zeros(self.buckets, np.int64)
        for lo in range(0, len(texts), 2000):
            total += bucket_counts(hashed_ngrams(texts[lo:lo + 2000], self.buckets), self.buckets)
        return total

    def prepare(self, shards: Sequence[Path], workdir: Path, executor: Executor) -> dict[str, Any]:
        target = self.target_counts()
        tasks = [_Task(str(p), str(workdir), self.buckets, self.seed, self.normalize_to) for p in shards]
        raw = np.zeros(self.buckets, np.int64)
        n_docs = 0
        for counts in executor.map(_count_task, tasks):
            raw += counts[:-1]
            n_docs += int(counts[-1])
        save_array(workdir / "log_ratio.npy", log_ratio(target, raw))
        fresh_dir(workdir / "keys")
        list(executor.map(_key_task, tasks))
        k = self.keep if self.keep else round(self.fraction * n_docs)
        k = min(k, n_docs)
        parts = [load_array(workdir / "keys" / f"{shard_name(shard_index(p))}.npy") for p in shards]
        threshold = kth_largest(parts, k) if k > 0 else (1 << 64) - 1
        selected = sum(len(p) - int(np.searchsorted(p, np.uint64(threshold), side="left")) for p in parts) if k else 0
        atomic_write_text(workdir / "threshold.json", json.dumps({"threshold": str(threshold), "keep": k}))
        return {"docs": n_docs, "selected": selected, "target_ngrams": int(target.sum())}

    def setup(self, workdir: Path | None, shard_name: str) -> None:
        if workdir is None or not (workdir / "threshold.json").is_file():
            raise AssertionError("select_domain: setup() before prepare()")
        self._ratio = load_array(workdir / "log_ratio.npy", mmap=False)
        self._threshold = np.uint64(int(json.loads((workdir / "threshold.json").read_text())["threshold"]))

    def process(self, docs: list[Document], stats: StepStats) -> list[Document]:
        feats = hashed_ngrams([d.text for d in docs], self.buckets)
        log_w = log_weights(feats, self._ratio, self.normalize_to)
        keys = ordered_bits(log_w + gumbel_noise([d.id for d in docs], self.seed))
        n_feats = np.bincount(feats.doc, minlength=len(docs))
        mean = doc_sums(feats, self._ratio) / np.maximum(n_feats, 1)
        for doc, key, w, n in zip(docs, keys, mean.tolist(), n_feats.tolist()):
            doc.meta["domain_score"] = round(w, 6) if n else None
            if key < self._threshold:
                doc.reject(self.name, "not_selected")
        return docs

"""``minhash_dedup``: near-duplicate removal with MinHash, LSH banding and union-find.

Pipeline of ``prepare`` (each arrow is one round of ``executor.map``):

1. one task per shard: tokens -> n-gram shingles -> MinHash signatures (numpy, all shingles of a
   batch of documents at once) -> one key per LSH band; signatures go to ``sig/part-NNNNN.npy`` and
   (band key, position) rows to ``buckets/part-NNNNN.npy``, grouped by partition;
2. one task per partition: sort its rows, every bucket with two or more documents gives candidate
   pairs, and each pair is verified (``verify``): ``signature`` keeps pairs whose signatures agree on at
   least ``threshold`` of the permutations; ``exact`` (default) does the same where the estimate is
   clearly above or below the threshold (4 standard errors) and computes the true Jaccard of the two
   shingle sets (kept on disk, ``shingles/``) for the pairs in between; returns the verified edges;
3. in the driver: union-find over the edges (only documents that have a duplicate take memory), the
   smallest position of each cluster is kept, the rest get ``minhash_dedup:dup_of=<kept id>``.

Hashing: shingle hashes are 64-bit (see ``text.py``), reduced to their top 32 bits; permutation ``i``
is ``a_i * h + b_i mod 2**32`` with odd ``a_i`` (a bijection; the input is already a mixed hash), with
``a, b`` drawn from ``numpy.random.default_rng(seed)``. Bands x rows minimise the weighted false
positive and false negative areas under the LSH S-curve (:func:`optimal_bands_rows`); with verification
on, missed pairs weigh 0.9 and false positives 0.1, since verification removes the false positives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gristmill.data.dedup.decisions import DuplicateRejecter, write_decisions
from gristmill.data.dedup.shuffle import (
    cluster_stats,
    connected_components,
    count_rows,
    fresh_dir,
    iter_column,
    load_array,
    n_partitions,
    positions,
    read_partition,
    run_starts,
    save_array,
    shard_index,
    shard_name,
    split_position,
    write_partitioned,
)
from gristmill.data.dedup.text import NGrams, batches_by_bytes, fmix64, ngram_hashes, tokenize_batch
from gristmill.data.document import Document
from gristmill.data.pipeline import CorpusStep, StepStats, register

if TYPE_CHECKING:
    import pyarrow as pa

    from gristmill.data.executors import Executor

_MAX = np.uint32(0xFFFFFFFF)
_M = np.uint64(0x9E3779B97F4A7C15)
_BAND_SALT = np.random.default_rng(0xBA4D).integers(0, 2**63, size=4096, dtype=np.uint64)
_BATCH_BYTES = 1 << 18
_CHUNK = 4096
VERIFY = ("exact", "signature", "none")
_ALL_PAIRS_UP_TO = 16
"""Buckets up to this size verify every pair; larger ones (nearly always copies of one text) verify each
member against the first member and the ``_ALL_PAIRS_UP_TO`` members before it."""


# ------------------------------------------------------------------------------------------ parameters


def lsh_error_areas(threshold: float, bands: np.ndarray, rows: np.ndarray, points: int = 2001) -> tuple[np.ndarray, np.ndarray]:
    """False positive area (integral of P(candidate) for s < threshold) and false negative area (of
    1 - P(candidate) for s > threshold), where P(candidate | Jaccard s) = 1 - (1 - s**r)**b."""
    def area(lo: float, hi: float, negative: bool) -> np.ndarray:
        s = np.linspace(lo, hi, points)[None, :]
        p = 1.0 - (1.0 - s ** rows[:, None]) ** bands[:, None]
        y = 1.0 - p if negative else p
        return np.trapezoid(y, s, axis=1)

    return area(0.0, threshold, False), area(threshold, 1.0, True)


def optimal_bands_rows(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """Bands x rows (b * r <= num_perm) minimising fp_weight * FP area + fn_weight * FN area, like datasketch."""
    combos = [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)]
    bands = np.array([c[0] for c in combos], dtype=np.float64)
    rows = np.array([c[1] for c in combos], dtype=np.float64)
    fp, fn = lsh_error_areas(threshold, bands, rows)
    best = int(np.argmin(fp * fp_weight + fn * fn_weight))
    return combos[best]


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = (rng.integers(0, 2**32, size=num_perm, dtype=np.uint64) | np.uint64(1)).astype(np.uint32)
    b = rng.integers(0, 2**32, size=num_perm, dtype=np.uint64).astype(np.uint32)
    return a, b


# ------------------------------------------------------------------------------------------ signatures


def signatures(ng: NGrams, n_docs: int, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MinHash signatures (n_docs x num_perm uint32) of the shingles in ``ng``, and which documents have any.

    Works permutation-major on chunks of ~4k shingles so each pass stays in cache; a document without
    shingles keeps an all-0xFFFFFFFF signature and ``False`` in the second array.
    """
    num_perm = len(a)
    sig = np.full((num_perm, n_docs), _MAX, dtype=np.uint32)
    has = np.zeros(n_docs, dtype=bool)
    if len(ng.hashes) == 0:
        return np.ascontiguousarray(sig.T), has
    x = (ng.hashes >> np.uint64(32)).astype(np.uint32)
    starts = run_starts(ng.doc)
    present = ng.doc[starts]
    has[present] = True
    bounds = np.append(starts, len(x))
    buf = np.empty((num_perm, _CHUNK), dtype=np.uint32)
    a_col, b_col = a[:, None], b[:, None]
    j, n_runs = 0, len(starts)
    while j < n_runs:
        k = max(j + 1, int(np.searchsorted(bounds, bounds[j] + _CHUNK, side="right")) - 1)
        lo, hi = int(bounds[j]), int(bounds[k])
        if hi - lo <= _CHUNK:
            w = buf[:, : hi - lo]
            np.multiply(a_col, x[None, lo:hi], out=w)
            w += b_col
            sig[:, present[j:k]] = np.minimum.reduceat(w, bounds[j:k] - lo, axis=1)
        else:
            m = np.full(num_perm, _MAX, dtype=np.uint32)
            for s in range(lo, hi, _CHUNK):
                e = min(hi, s + _CHUNK)
                w = buf[:, : e - s]
                np.multiply(a_col, x[None, s:e], out=w)
                w += b_col
                np.minimum(m, w.min(axis=1), out=m)
            sig[:, present[j]] = m
        j = k
    return np.ascontiguousarray(sig.T), has


def shingle_sets(ng: NGrams, n_docs: int) -> tuple[np.ndarray, np.ndarray]:
    """Each document's distinct 32-bit shingle hashes, sorted: (flat uint32 array, int64 offsets)."""
    key = (ng.doc.astype(np.uint64) << np.uint64(32)) | (ng.hashes >> np.uint64(32))
    key.sort()
    if len(key):
        key = key[np.concatenate(([True], key[1:] != key[:-1]))]
    doc = (key >> np.uint64(32)).astype(np.int64)
    offsets = np.searchsorted(doc, np.arange(n_docs + 1)).astype(np.int64)
    return (key & np.uint64(0xFFFFFFFF)).astype(np.uint32), offsets


def text_signatures(texts: Sequence[str] | pa.Array, ngram: int, a: np.ndarray, b: np.ndarray,
                    with_sets: bool = False) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Signatures of a sequence or Arrow array of texts, computed in batches of about 256 KiB of text.

    Returns (signatures, which documents have shingles, per batch the shingle sets if ``with_sets``).
    """
    import pyarrow as pa

    arr = texts if isinstance(texts, (pa.Array, pa.ChunkedArray)) else pa.array(list(texts), pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    import pyarrow.compute as pc

    lengths = np.asarray(pc.fill_null(pc.binary_length(arr), 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    sigs, haves, sets = [], [], []
    for lo, hi in batches_by_bytes(lengths, _BATCH_BYTES):
        ng = ngram_hashes(tokenize_batch(arr.slice(lo, hi - lo)), ngram)
        s, h = signatures(ng, hi - lo, a, b)
        sigs.append(s)
        haves.append(h)
        if with_sets:
            sets.append(shingle_sets(ng, hi - lo))
    if not sigs:
        return np.zeros((0, len(a)), np.uint32), np.zeros(0, bool), sets
    return np.concatenate(sigs), np.concatenate(haves), sets


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per (document, band); the band number is mixed in so bands never share buckets."""
    n = len(sig)
    x = sig[:, : bands * rows].reshape(n, bands, rows)
    acc = np.repeat(_BAND_SALT[None, :bands], n, axis=0)
    for k in range(rows):
        acc *= _M
        acc += x[:, :, k]
    return fmix64(acc)


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    return (sig_a == sig_b).mean(axis=-1)


# ------------------------------------------------------------------------------------------ tasks


@dataclass(frozen=True)
class _SignatureTask:
    path: str
    workdir: str
    ngram: int
    num_perm: int
    seed: int
    bands: int
    rows: int
    partitions: int
    with_sets: bool


def _signature_task(task: _SignatureTask) -> tuple[int, int, int]:
    index = shard_index(task.path)
    a, b = permutations(task.num_perm, task.seed)
    parts = [text_signatures(texts, task.ngram, a, b, task.with_sets) for texts in iter_column(task.path, "text")]
    sig = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, task.num_perm), np.uint32)
    has = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, bool)
    work = Path(task.workdir)
    save_array(work / "sig" / f"{shard_name(index)}.npy", sig)
    if task.with_sets:
        sets = [s for p in parts for s in p[2]]
        flat = np.concatenate([s[0] for s in sets]) if sets else np.zeros(0, np.uint32)
        offsets, base = [np.zeros(1, np.int64)], 0
        for values, off in sets:
            offsets.append(off[1:] + base)
            base += len(values)
        save_array(work / "shingles" / f"{shard_name(index)}.npy", flat)
        save_array(work / "shingles" / f"{shard_name(index)}.offsets.npy", np.concatenate(offsets))
    pos = positions(index, len(sig))[has]
    keys = band_keys(sig[has], task.bands, task.rows)
    entries = np.empty((keys.size, 2), dtype=np.uint64)
    entries[:, 0] = keys.reshape(-1)
    entries[:, 1] = np.repeat(pos, task.bands)
    write_partitioned(work / "buckets" / shard_name(index), entries, task.partitions)
    return index, len(sig), int((~has).sum())


@dataclass(frozen=True)
class _BucketTask:
    workdir: str
    partition: int
    shards: tuple[int, ...]
    threshold: float
    verify: str
    num_perm: int


def _bucket_pairs(starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (into the sorted rows) to compare inside buckets given by ``starts`` and ``sizes``."""
    us, vs = [], []
    for k in np.unique(sizes).tolist():
        s = starts[sizes == k]
        if k <= _ALL_PAIRS_UP_TO:
            iu, ju = np.triu_indices(k, 1)
        else:
            j = np.arange(1, k)
            back = np.arange(1, _ALL_PAIRS_UP_TO + 1)
            iu = np.concatenate([np.zeros(k - 1, np.int64), (j[:, None] - back[None, :]).reshape(-1)])
            ju = np.concatenate([j, np.repeat(j, len(back))])
            keep = iu >= 0
            iu, ju = iu[keep], ju[keep]
        us.append((s[:, None] + iu[None, :]).reshape(-1))
        vs.append((s[:, None] + ju[None, :]).reshape(-1))
    if not us:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(us), np.concatenate(vs)


def _load_signatures(workdir: Path, pos: np.ndarray) -> np.ndarray:
    """Signatures of sorted positions ``pos``, read through memory maps of the shard signature files."""
    shard_of, row_of = split_position(pos)
    out = []
    for s in np.unique(shard_of).tolist():
        sig = load_array(workdir / "sig" / f"{shard_name(s)}.npy")
        out.append(np.array(sig[row_of[shard_of == s]]))
    return np.concatenate(out)


def _exact_jaccard(workdir: Path, pairs: np.ndarray) -> np.ndarray:
    """True Jaccard of the shingle sets of each pair of positions, read from ``shingles/``."""
    nodes = np.unique(pairs)
    shard_of, row_of = split_position(nodes)
    sets: dict[int, np.ndarray] = {}
    for s in np.unique(shard_of).tolist():
        flat = load_array(workdir / "shingles" / f"{shard_name(s)}.npy")
        offsets = load_array(workdir / "shingles" / f"{shard_name(s)}.offsets.npy")
        for pos, row in zip(nodes[shard_of == s].tolist(), row_of[shard_of == s].tolist()):
            sets[pos] = np.array(flat[offsets[row]:offsets[row + 1]])  # a copy: the memory map is let go
    out = np.empty(len(pairs))
    for i, (u, v) in enumerate(pairs.tolist()):
        a, b = sets[u], sets[v]
        inter = len(np.intersect1d(a, b, assume_unique=True))
        out[i] = inter / max(1, len(a) + len(b) - inter)
    return out


def _bucket_task(task: _BucketTask) -> tuple[int, np.ndarray, dict[str, int]]:
    work = Path(task.workdir)
    rows = read_partition([work / "buckets" / shard_name(s) for s in task.shards], task.partition, 2)
    counters = {"bucket_rows": len(rows), "candidate_pairs": 0, "verified_pairs": 0, "exact_checks": 0}
    if len(rows) < 2:
        return task.partition, np.zeros((0, 2), np.uint64), counters
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    starts = run_starts(rows[:, 0])
    sizes = np.diff(np.append(starts, len(rows)))
    multi = sizes >= 2
    iu, ju = _bucket_pairs(starts[multi], sizes[multi])
    pairs = np.stack([rows[iu, 1], rows[ju, 1]], axis=1)
    if len(pairs):
        pairs = np.unique(pairs, axis=0)
    counters["candidate_pairs"] = len(pairs)
    if task.verify != "none" and len(pairs):
        nodes = np.unique(pairs)
        sig = _load_signatures(work, nodes)
        est = np.empty(len(pairs))
        for lo in range(0, len(pairs), 8192):
            chunk = pairs[lo:lo + 8192]
            est[lo:lo + 8192] = estimated_jaccard(sig[np.searchsorted(nodes, chunk[:, 0])],
                                                   sig[np.searchsorted(nodes, chunk[:, 1])])
        keep = est >= task.threshold
        if task.verify == "exact":
            # Only pairs whose estimate is within 4 standard errors of the threshold can be on the wrong side.
            margin = 4.0 * np.sqrt(task.threshold * (1.0 - task.threshold) / task.num_perm) + 1.0 / task.num_perm
            unsure = np.flatnonzero(np.abs(est - task.threshold) < margin)
            if len(unsure):
                keep[unsure] = _exact_jaccard(work, pairs[unsure]) >= task.threshold
            counters["exact_checks"] = len(unsure)
        pairs = pairs[keep]
    counters["verified_pairs"] = len(pairs)
    return task.partition, pairs, counters


# ------------------------------------------------------------------------------------------ the step


@register("minhash_dedup")
@dataclass
class MinHashDedup(CorpusStep):
    """Removes near-duplicates (MinHash + LSH, Jaccard of n-gram shingles >= threshold); keeps the first."""

    threshold: float = 0.8
    """Target Jaccard similarity of the documents' n-gram sets."""
    ngram: int = 5
    """Shingle size in tokens: words, or single characters for CJK text."""
    num_perm: int = 128
    """MinHash permutations (signature length)."""
    bands: int | None = None
    """LSH bands; by default derived from threshold and num_perm (set both bands and rows to override)."""
    rows: int | None = None
    """Signature values per band."""
    verify: str = "exact"
    """Check candidate pairs: ``exact`` (true Jaccard where the signature estimate is near the threshold),
    ``signature`` (estimated Jaccard >= threshold) or ``none`` (every LSH candidate counts, as datasketch)."""
    fn_weight: float | None = None
    """Weight of missed pairs when bands x rows are derived (false positives weigh ``1 - fn_weight``).
    Default 0.9 when candidates are verified (verification removes false positives), else 0.5 as in datasketch."""
    seed: int = 42
    """Seed of the permutations; runs with the same seed give identical results."""

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        if self.ngram < 1:
            raise ValueError("ngram must be at least 1")
        if not 2 <= self.num_perm <= 4096:
            raise ValueError("num_perm must be between 2 and 4096")
        if self.verify not in VERIFY:
            raise ValueError(f"verify must be one of {', '.join(VERIFY)}")
        if self.fn_weight is not None and not 0.0 < self.fn_weight < 1.0:
            raise ValueError("fn_weight must be in (0, 1)")
        if (self.bands is None) != (self.rows is None):
            raise ValueError("set both bands and rows, or neither")
        if self.bands is not None and self.rows is not None and (
                self.bands < 1 or self.rows < 1 or self.bands * self.rows > self.num_perm):
            raise ValueError(f"bands x rows = {self.bands} x {self.rows} must be positive and at most num_perm={self.num_perm}")

    def lsh_params(self) -> tuple[int, int]:
        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        fn = self.fn_weight if self.fn_weight is not None else (0.5 if self.verify == "none" else 0.9)
        return optimal_bands_rows(self.threshold, self.num_perm, 1.0 - fn, fn)

    def prepare(self, shards: Sequence[Path], workdir: Path, executor: Executor) -> dict[str, Any]:
        bands, rows = self.lsh_params()
        subdirs = ("sig", "buckets", "shingles")
        for sub in subdirs:
            fresh_dir(workdir / sub)
        n_docs = sum(count_rows(p) for p in shards)
        partitions = n_partitions(n_docs * bands)
        sig_tasks = [_SignatureTask(str(p), str(workdir), self.ngram, self.num_perm, self.seed, bands, rows, partitions,
                                    self.verify == "exact") for p in shards]
        results = sorted(executor.map(_signature_task, sig_tasks))
        indexes = tuple(r[0] for r in results)
        counters: dict[str, Any] = {"docs": sum(r[1] for r in results), "docs_without_shingles": sum(r[2] for r in results),
                                    "bands": bands, "rows": rows, "partitions": partitions}
        bucket_tasks = [_BucketTask(str(workdir), p, indexes, self.threshold, self.verify, self.num_perm)
                        for p in range(partitions)]
        edges = []
        for _, pairs, c in sorted(executor.map(_bucket_task, bucket_tasks), key=lambda r: r[0]):
            edges.append(pairs)
            for k, v in c.items():
                counters[k] = counters.get(k, 0) + v
        all_edges = np.concatenate(edges) if edges else np.zeros((0, 2), np.uint64)
        # Kept for auditing: every verified pair of positions (shard << 32 | row) behind the clusters.
        save_array(workdir / "edges.npy", all_edges)
        nodes, roots = connected_components(all_edges)
        counters.update(cluster_stats(roots))
        write_decisions(workdir, shards, nodes, roots, executor)
        for sub in subdirs:
            fresh_dir(workdir / sub).rmdir()
        return counters

    def setup(self, workdir: Path | None, shard_name: str) -> None:
        self._rejecter = DuplicateRejecter(workdir, shard_name)

    def process(self, docs: list[Document], stats: StepStats) -> list[Document]:
        return self._rejecter.apply(self.name, docs, stats)


"""Duplicate document ids across a run's input: counted with bounded memory, reported, never fatal.

Ids are strings everywhere (``readers.records.normalize_id``: ``12``, ``12.0`` and ``"12"`` are one id), so two
records with equal ids in different files describe the same document as far as dedup decisions, the
validation split and joins downstream are concerned. Each stage-1 shard task writes the 64-bit hashes
of its ids next to its done-marker; at the end the run counts repeated hashes, one slice of the hash
space at a time, so memory stays below ``budget`` hashes however large the corpus is.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xxhash

from gristmill.data.storage import atomic_write


def write_id_hashes(ids: Sequence[str], path: Path) -> None:
    """Save the xxh64 of each id (uint64, sorted) to ``path`` (``.npy``), atomically."""
    hashes = np.fromiter((xxhash.xxh64_intdigest(i.encode("utf-8", "surrogatepass")) for i in ids),
                         dtype=np.uint64, count=len(ids))
    hashes.sort()
    atomic_write(path, lambda f: np.save(f, hashes))


def count_repeated_ids(files: Sequence[Path], budget: int = 50_000_000) -> int:
    """Documents whose id an earlier document already had (hash collisions aside: 1 in 2**64 per pair)."""
    arrays = [np.load(f, mmap_mode="r") for f in files]
    total = sum(len(a) for a in arrays)
    if total == 0:
        return 0
    passes = -(-total // budget)
    edges = [int(p * (1 << 64) // passes) for p in range(passes + 1)]
    repeats = 0
    for lo, hi in zip(edges, edges[1:]):
        parts = [a[np.searchsorted(a, np.uint64(lo)):np.searchsorted(a, np.uint64(hi)) if hi < (1 << 64) else None]
                 for a in arrays]
        merged = np.sort(np.concatenate(parts))
        repeats += int(np.count_nonzero(merged[1:] == merged[:-1]))
    return repeats

"""``exact_dedup``: removes documents whose normalised text is identical to an earlier document's.

``prepare`` hashes every document (xxh3, 128 bits, so accidental collisions are out of the question
at any corpus size), writes (hash, position) rows to disk grouped by partition, and one task per
partition sorts its rows: within a run of equal hashes the smallest position (first in input order)
is kept and the others are rejected as ``exact_dedup:dup_of=<kept id>``.

Normalisation (``normalize: true``): Unicode NFKC, lower case, every run of white space made one
space, leading and trailing space removed. With ``normalize: false`` the raw text is hashed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from gristmill.data.dedup.decisions import DuplicateRejecter, write_decisions
from gristmill.data.dedup.shuffle import (
    cluster_stats,
    count_rows,
    fresh_dir,
    iter_column,
    n_partitions,
    positions,
    read_partition,
    run_starts,
    shard_index,
    shard_name,
    write_partitioned,
)
from gristmill.data.document import Document
from gristmill.data.pipeline import CorpusStep, StepStats, register

if TYPE_CHECKING:
    from gristmill.data.executors import Executor

_MASK64 = (1 << 64) - 1


def normalize_texts(texts: pa.Array) -> pa.Array:
    """NFKC, lower case, white space collapsed and trimmed: what ``exact_dedup`` compares."""
    texts = pc.fill_null(texts, "")
    texts = pc.utf8_normalize(texts, form="NFKC")
    texts = pc.utf8_lower(texts)
    texts = pc.replace_substring_regex(texts, pattern=r"\s+", replacement=" ")
    return pc.utf8_trim_whitespace(texts)


def text_hashes(texts: pa.Array, normalize: bool = True) -> np.ndarray:
    """128-bit xxh3 of each text as an (n x 2) uint64 array (high, low)."""
    if normalize:
        texts = normalize_texts(texts)
    texts = pc.fill_null(texts, "").cast(pa.large_string())
    _, off_buf, data_buf = texts.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int64)[texts.offset: texts.offset + len(texts) + 1].tolist()
    data = memoryview(data_buf) if data_buf is not None else memoryview(b"")
    out = np.empty((len(texts), 2), dtype=np.uint64)
    digest = xxhash.xxh3_128_intdigest
    for i in range(len(texts)):
        h = digest(data[offsets[i]:offsets[i + 1]])
        out[i, 0] = h >> 64
        out[i, 1] = h & _MASK64
    return out


@dataclass(frozen=True)
class _HashTask:
    path: str
    workdir: str
    normalize: bool
    partitions: int


def _hash_task(task: _HashTask) -> tuple[int, int]:
    index = shard_index(task.path)
    parts = [text_hashes(texts, task.normalize) for texts in iter_column(task.path, "text")]
    hashes = np.concatenate(parts) if parts else np.zeros((0, 2), np.uint64)
    rows = np.empty((len(hashes), 3), dtype=np.uint64)
    rows[:, :2] = hashes
    rows[:, 2] = positions(index, len(hashes))
    write_partitioned(Path(task.workdir) / "hashes" / shard_name(index), rows, task.partitions)
    return index, len(hashes)


@dataclass(frozen=True)
class _GroupTask:
    workdir: str
    partition: int
    shards: tuple[int, ...]


def _group_task(task: _GroupTask) -> tuple[int, np.ndarray, np.ndarray]:
    """(partition, positions of duplicates, position each one duplicates) for one partition."""
    rows = read_partition([Path(task.workdir) / "hashes" / shard_name(s) for s in task.shards], task.partition, 3)
    if len(rows) < 2:
        z = np.zeros(0, np.uint64)
        return task.partition, z, z
    rows = rows[np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0]))]
    starts = run_starts(rows[:, :2])
    first = np.repeat(starts, np.diff(np.append(starts, len(rows))))
    dup = np.arange(len(rows)) != first
    return task.partition, rows[dup, 2], rows[first[dup], 2]


@register("exact_dedup")
@dataclass
class ExactDedup(CorpusStep):
    """Removes documents whose normalised text equals an earlier one's (xxh3-128); keeps the first."""

    normalize: bool = True
    """Compare NFKC-normalised, lower-cased text with white space collapsed; false compares raw text."""

    def prepare(self, shards: Sequence[Path], workdir: Path, executor: Executor) -> dict[str, Any]:
        fresh_dir(workdir / "hashes")
        n_docs = sum(count_rows(p) for p in shards)
        partitions = n_partitions(n_docs)
        results = sorted(executor.map(_hash_task, [_HashTask(str(p), str(workdir), self.normalize, partitions)
                                                   for p in shards]))
        indexes = tuple(r[0] for r in results)
        dups, kept = [], []
        tasks = [_GroupTask(str(workdir), p, indexes) for p in range(partitions)]
        for _, d, k in sorted(executor.map(_group_task, tasks), key=lambda r: r[0]):
            dups.append(d)
            kept.append(k)
        dup = np.concatenate(dups) if dups else np.zeros(0, np.uint64)
        root = np.concatenate(kept) if kept else np.zeros(0, np.uint64)
        # Every document of a group, the kept one included, as (position, kept position).
        nodes = np.concatenate([dup, np.unique(root)])
        roots = np.concatenate([root, np.unique(root)])
        order = np.argsort(nodes, kind="stable")
        nodes, roots = nodes[order], roots[order]
        write_decisions(workdir, shards, nodes, roots, executor)
        fresh_dir(workdir / "hashes").rmdir()
        stats: dict[str, Any] = {"docs": sum(r[1] for r in results), "partitions": partitions}
        stats.update(cluster_stats(roots, prefix=""))
        return stats

    def setup(self, workdir: Path | None, shard_name: str) -> None:
        self._rejecter = DuplicateRejecter(workdir, shard_name)

    def process(self, docs: list[Document], stats: StepStats) -> list[Document]:
        return self._rejecter.apply(self.name, docs, stats)

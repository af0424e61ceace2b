"""``line_dedup``: removes lines (or paragraphs) that recur across many documents, i.e. site boilerplate.

``prepare`` counts, for every normalised line, the number of distinct documents that contain it:
each shard task writes the 64-bit hashes of its documents' distinct lines to disk grouped by
partition, and one task per partition counts them. Lines found in at least ``min_docs`` documents
are written to ``frequent.npy`` (sorted hashes). ``process`` then drops every such line from every
document (all copies, as CCNet does: a menu line is noise wherever it appears), and rejects a document
as ``line_dedup:too_short`` when lines were removed and fewer than ``min_words`` words remain.

A line is normalised before counting: lower case, digits replaced by 0 (so "(c) 2023" and "(c) 2024"
footers count together) and white space collapsed; blank lines are never counted or removed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xxhash

from gristmill.data.dedup.shuffle import (
    count_rows,
    fresh_dir,
    iter_column,
    load_array,
    n_partitions,
    read_partition,
    save_array,
    shard_index,
    shard_name,
    write_partitioned,
)
from gristmill.data.document import Document
from gristmill.data.pipeline import CorpusStep, StepStats, register

if TYPE_CHECKING:
    from gristmill.data.executors import Executor

_DIGITS = str.maketrans("0123456789", "0000000000")
_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n\s*")
UNITS = ("line", "paragraph")


def split_units(text: str, unit: str) -> list[str]:
    return text.split("\n") if unit == "line" else _PARAGRAPH.split(text)


def join_units(units: list[str], unit: str) -> str:
    return "\n".join(units) if unit == "line" else "\n\n".join(units)


def unit_key(unit: str) -> int | None:
    """64-bit hash of the normalised unit, or None for a blank one."""
    norm = " ".join(unit.lower().translate(_DIGITS).split())
    return xxhash.xxh3_64_intdigest(norm.encode("utf-8", "surrogatepass")) if norm else None


def document_keys(text: str, unit: str) -> np.ndarray:
    keys = {k for k in map(unit_key, split_units(text, unit)) if k is not None}
    return np.fromiter(keys, dtype=np.uint64, count=len(keys))


@dataclass(frozen=True)
class _KeyTask:
    path: str
    workdir: str
    unit: str
    partitions: int


def _key_task(task: _KeyTask) -> tuple[int, int, int]:
    index = shard_index(task.path)
    keys, n_docs = [], 0
    for texts in iter_column(task.path, "text"):
        keys.extend(document_keys(t or "", task.unit) for t in texts.to_pylist())
        n_docs += len(texts)
    flat = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
    write_partitioned(Path(task.workdir) / "keys" / shard_name(index), flat, task.partitions)
    return index, n_docs, len(flat)


@dataclass(frozen=True)
class _CountTask:
    workdir: str
    partition: int
    shards: tuple[int, ...]
    min_docs: int


def _count_task(task: _CountTask) -> tuple[int, np.ndarray, int]:
    """(partition, hashes seen in >= min_docs documents, distinct units in the partition)."""
    keys = read_partition([Path(task.workdir) / "keys" / shard_name(s) for s in task.shards], task.partition, 1)[:, 0]
    uniq, counts = np.unique(keys, return_counts=True)
    return task.partition, uniq[counts >= task.min_docs], len(uniq)


@register("line_dedup")
@dataclass
class LineDedup(CorpusStep):
    """Removes lines/paragraphs found in >= min_docs documents (boilerplate); rejects what is left too short."""

    unit: str = "line"
    """``line`` or ``paragraph`` (text between blank lines)."""
    min_docs: int = 20
    """A unit that occurs in at least this many distinct documents is boilerplate and is removed everywhere."""
    min_words: int = 10
    """A document that lost units and keeps fewer words than this is rejected (``line_dedup:too_short``)."""

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}")
        if self.min_docs < 2:
            raise ValueError("min_docs must be at least 2")
        if self.min_words < 0:
            raise ValueError("min_words must not be negative")

    def prepare(self, shards: Sequence[Path], workdir: Path, executor: Executor) -> dict[str, Any]:
        fresh_dir(workdir / "keys")
        n_docs = sum(count_rows(p) for p in shards)
        # About 50 distinct units per document is a generous estimate for sizing partitions.
        partitions = n_partitions(n_docs * 50)
        results = sorted(executor.map(_key_task, [_KeyTask(str(p), str(workdir), self.unit, partitions) for p in shards]))
        indexes = tuple(r[0] for r in results)
        frequent, distinct = [], 0
        tasks = [_CountTask(str(workdir), p, indexes, self.min_docs) for p in range(partitions)]
        for _, keys, n in sorted(executor.map(_count_task, tasks), key=lambda r: r[0]):
            frequent.append(keys)
            distinct += n
        table = np.sort(np.concatenate(frequent)) if frequent else np.zeros(0, np.uint64)
        save_array(workdir / "frequent.npy", table)
        fresh_dir(workdir / "keys").rmdir()
        return {"docs": sum(r[1] for r in results), "distinct_units": distinct, "frequent_units": len(table),
                "partitions": partitions}

    def setup(self, workdir: Path | None, shard_name: str) -> None:
        path = workdir / "frequent.npy" if workdir is not None else None
        self._frequent = load_array(path) if path is not None and path.exists() else np.zeros(0, np.uint64)

    def is_frequent(self, keys: list[int | None]) -> list[bool]:
        table = self._frequent
        if len(table) == 0:
            return [False] * len(keys)
        arr = np.array([k if k is not None else 0 for k in keys], dtype=np.uint64)
        idx = np.minimum(np.searchsorted(table, arr), len(table) - 1)
        hit = (table[idx] == arr).tolist()
        return [h and k is not None for h, k in zip(hit, keys)]

    def process(self, docs: list[Document], stats: StepStats) -> list[Document]:
        for doc in docs:
            units = split_units(doc.text, self.unit)
            frequent = self.is_frequent([unit_key(u) for u in units])
            removed = sum(frequent)
            if not removed:
                continue
            kept = [u for u, f in zip(units, frequent) if not f]
            text = join_units(kept, self.unit).strip("\n")
            stats.count(f"{self.unit}s_removed", removed)
            stats.count("chars_removed", len(doc.text) - len(text))
            if len(text.split()) < self.min_words:
                doc.reject(self.name, "too_short", f"{removed} of {len(units)} {self.unit}s were boilerplate; "
                           f"{len(text.split())} words left")
            else:
                stats.count("docs_changed")
                doc.text = text
        return docs

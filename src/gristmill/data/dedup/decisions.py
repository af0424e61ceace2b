"""Per-shard duplicate decisions: written once by ``prepare``, applied shard by shard by ``process``.

Both ``exact_dedup`` and ``minhash_dedup`` end with the same thing: a set of clusters, each with its
kept document (the smallest position, i.e. the first in input order) and its duplicates. This module
resolves the kept documents' ids (reading only the id column of the shards that hold them), writes
``decisions/part-NNNNN.parquet`` (row, id, dup_of, cluster_size) for every shard that loses documents,
and gives the step a small object that rejects those rows as ``<step>:dup_of=<kept id>``.

A worker loads the decisions of one shard only, so memory stays bounded by the shard size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gristmill.data.dedup.shuffle import fresh_dir, read_column, shard_index, shard_name, split_position
from gristmill.data.document import Document
from gristmill.data.pipeline import StepStats

if TYPE_CHECKING:
    from gristmill.data.executors import Executor


def _read_ids(task: tuple[str, np.ndarray]) -> tuple[str, np.ndarray, list[str]]:
    path, rows = task
    ids = read_column(path, "id").take(pa.array(rows)).to_pylist()
    return path, rows, [str(i) for i in ids]


def write_decisions(workdir: Path, shards: Sequence[Path], nodes: np.ndarray, roots: np.ndarray,
                    executor: Executor) -> None:
    """Write the per-shard reject lists for clusters given as (position, root position) pairs."""
    out = fresh_dir(workdir / "decisions")
    if len(nodes) == 0:
        return
    by_index = {shard_index(p): p for p in shards}
    _, inverse, sizes = np.unique(roots, return_inverse=True, return_counts=True)
    size_of = sizes[inverse]
    needed = np.unique(np.concatenate([nodes[nodes != roots], roots]))
    shard_of, row_of = split_position(needed)
    tasks = []
    for s in np.unique(shard_of).tolist():
        tasks.append((str(by_index[s]), row_of[shard_of == s]))
    id_of: dict[int, str] = {}
    for path, rows, ids in executor.map(_read_ids, tasks):
        base = shard_index(path) << 32
        for row, doc_id in zip(rows.tolist(), ids):
            id_of[base | row] = doc_id
    dup = nodes != roots
    dup_pos, dup_root, dup_size = nodes[dup], roots[dup], size_of[dup]
    shard_of, row_of = split_position(dup_pos)
    for s in np.unique(shard_of).tolist():
        sel = shard_of == s
        pos = dup_pos[sel].tolist()
        table = pa.table({
            "row": pa.array(row_of[sel], pa.int64()),
            "id": pa.array([id_of[p] for p in pos], pa.string()),
            "dup_of": pa.array([id_of[r] for r in dup_root[sel].tolist()], pa.string()),
            "cluster_size": pa.array(dup_size[sel], pa.int64()),
        })
        pq.write_table(table, out / f"{shard_name(s)}.parquet")


class DuplicateRejecter:
    """Rejects the rows of one shard that ``write_decisions`` marked, in the order the shard is read."""

    def __init__(self, workdir: Path | None, shard: str):
        self.row = 0
        self.shard = shard
        self.decisions: dict[int, tuple[str, str, int]] = {}
        path = workdir / "decisions" / f"{shard}.parquet" if workdir is not None else None
        if path is not None and path.exists():
            t = pq.read_table(path).to_pydict()
            self.decisions = {r: (i, d, n) for r, i, d, n in zip(t["row"], t["id"], t["dup_of"], t["cluster_size"])}

    def apply(self, step: str, docs: list[Document], stats: StepStats) -> list[Document]:
        for doc in docs:
            hit = self.decisions.get(self.row)
            if hit is not None:
                doc_id, kept, size = hit
                if doc.id != doc_id:
                    raise AssertionError(f"{step}: row {self.row} of {self.shard} is {doc.id!r}, decisions expected "
                                         f"{doc_id!r}; a corpus step must be the first step of its stage")
                doc.reject(step, f"dup_of={kept}", f"cluster of {size} documents; kept {kept}")
            self.row += 1
        return docs

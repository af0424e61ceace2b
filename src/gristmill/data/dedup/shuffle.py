"""On-disk partitioned arrays, document positions and connected components for the corpus steps.

Everything whose size grows with the corpus (signatures, bucket keys, line hashes) is written by the
shard tasks to disk as uint64 rows grouped by partition (``key % partitions``); one task per partition
then reads its slice of every shard file through memory maps, so no process ever holds the whole corpus.
The number of partitions depends on the corpus size only, never on the worker count, and every result
is sorted before it is used, so the same input gives byte-identical decisions on any executor.

A document's *position* is ``shard_index << 32 | row``: its place in input order (kept shards keep the
input order and are numbered like the input shards). The keep rule of every dedup step is "smallest
position wins", i.e. the first occurrence in input order.

This module owns these mechanics; it knows nothing about what the keys mean.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gristmill.data.storage import atomic_write

ROW_BITS = 32
ROW_MASK = np.uint64((1 << ROW_BITS) - 1)


def shard_index(path: Path | str) -> int:
    """``part-00012.parquet`` -> 12, the numbering that ``setup(workdir, 'part-00012')`` uses."""
    stem = Path(path).name.split(".")[0]
    try:
        return int(stem.rsplit("-", 1)[-1])
    except ValueError:
        raise ValueError(f"shard file {path} is not named part-NNNNN") from None


def shard_name(index: int) -> str:
    return f"part-{index:05d}"


def positions(index: int, n_rows: int) -> np.ndarray:
    return (np.uint64(index) << np.uint64(ROW_BITS)) | np.arange(n_rows, dtype=np.uint64)


def split_position(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(shard index, row) of each position."""
    pos = np.asarray(pos, dtype=np.uint64)
    return (pos >> np.uint64(ROW_BITS)).astype(np.int64), (pos & ROW_MASK).astype(np.int64)


def read_column(path: Path | str, column: str) -> pa.Array:
    """One column of a shard written by the pipeline (Parquet or JSONL), as one Arrow array."""
    path = Path(path)
    if path.suffix == ".parquet":
        col = pq.ParquetFile(path).read(columns=[column], use_threads=False).column(0)
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    values = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                values.append(json.loads(line).get(column))
    return pa.array(values, pa.large_string())


def iter_column(path: Path | str, column: str, batch_size: int = 1000) -> Iterator[pa.Array]:
    """One column of a shard in batches of rows (bounded memory: a shard is never decoded at once)."""
    path = Path(path)
    if path.suffix == ".parquet":
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=batch_size, columns=[column], use_threads=False):
            yield batch.column(0)
        return
    values: list[Any] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                values.append(json.loads(line).get(column))
                if len(values) >= batch_size:
                    yield pa.array(values, pa.large_string())
                    values = []
    if values:
        yield pa.array(values, pa.large_string())


def count_rows(path: Path | str) -> int:
    path = Path(path)
    if path.suffix == ".parquet":
        return pq.ParquetFile(path).metadata.num_rows
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def fresh_dir(path: Path) -> Path:
    """Empty ``path`` (left over from an interrupted prepare) and create it."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_array(path: Path, array: np.ndarray) -> None:
    """Write an .npy file atomically (a retried task never leaves half a file)."""
    atomic_write(path, lambda f: np.save(f, np.ascontiguousarray(array), allow_pickle=False))


def load_array(path: Path, mmap: bool = True) -> np.ndarray:
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def n_partitions(n_entries: int, per_partition: int = 1 << 17, minimum: int = 1, maximum: int = 4096) -> int:
    """Partitions for ``n_entries`` rows: a function of the corpus size only, so results never depend on workers.

    About 131k rows per partition keeps a partition task's memory flat as the corpus grows (up to
    4096 partitions, i.e. half a billion rows; beyond that partitions grow)."""
    return int(min(maximum, max(minimum, -(-n_entries // per_partition))))


def write_partitioned(path: Path, rows: np.ndarray, partitions: int) -> None:
    """Write uint64 ``rows`` (n x k; column 0 is the key) grouped by ``key % partitions``.

    Rows keep their relative order inside a partition. ``path.offsets.npy`` holds where each partition starts.
    """
    rows = np.asarray(rows, dtype=np.uint64)
    if rows.ndim == 1:
        rows = rows[:, None]
    part = (rows[:, 0] % np.uint64(partitions)).astype(np.int64)
    order = np.argsort(part, kind="stable")
    offsets = np.zeros(partitions + 1, np.int64)
    np.cumsum(np.bincount(part, minlength=partitions), out=offsets[1:])
    save_array(path.with_name(path.name + ".offsets.npy"), offsets)
    save_array(path.with_name(path.name + ".npy"), rows[order])


def read_partition(paths: Sequence[Path], partition: int, width: int) -> np.ndarray:
    """The rows of ``partition`` from every file written by :func:`write_partitioned` (``path`` as given there)."""
    pieces = []
    for path in paths:
        offsets = load_array(path.with_name(path.name + ".offsets.npy"), mmap=False)
        lo, hi = int(offsets[partition]), int(offsets[partition + 1])
        if hi > lo:
            pieces.append(np.array(load_array(path.with_name(path.name + ".npy"))[lo:hi]))
    if not pieces:
        return np.zeros((0, width), np.uint64)
    return np.concatenate(pieces)


def run_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Start index of each run of equal rows in ``sorted_keys`` (1-d, or 2-d compared row-wise)."""
    if len(sorted_keys) == 0:
        return np.zeros(0, np.int64)
    if sorted_keys.ndim == 1:
        change = sorted_keys[1:] != sorted_keys[:-1]
    else:
        change = (sorted_keys[1:] != sorted_keys[:-1]).any(axis=1)
    return np.flatnonzero(np.concatenate(([True], change)))


def connected_components(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union-find over undirected ``edges`` (m x 2 positions), vectorised.

    Returns ``(nodes, roots)``: every position that occurs in an edge, sorted, and the root of its
    component, which is the smallest position in the component (the document that is kept). Roots are
    hooked onto smaller roots and paths are fully compressed after each round, so ``parent[i] <= i``
    always holds and the result does not depend on the order of the edges.
    """
    edges = np.asarray(edges, dtype=np.uint64).reshape(-1, 2)
    if len(edges) == 0:
        z = np.zeros(0, np.uint64)
        return z, z
    nodes, inverse = np.unique(edges, return_inverse=True)
    inverse = inverse.reshape(-1, 2)
    u, v = inverse[:, 0], inverse[:, 1]
    parent = np.arange(len(nodes), dtype=np.int64)
    while True:
        pu, pv = parent[u], parent[v]
        active = pu != pv
        if not active.any():
            break
        lo = np.minimum(pu[active], pv[active])
        hi = np.maximum(pu[active], pv[active])
        np.minimum.at(parent, hi, lo)
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    return nodes, nodes[parent]


def cluster_stats(roots: np.ndarray, prefix: str = "") -> dict[str, int | float]:
    """Cluster count and size distribution from the root of every clustered document."""
    if len(roots) == 0:
        return {f"{prefix}clusters": 0, f"{prefix}duplicates": 0, f"{prefix}cluster_size_max": 0,
                f"{prefix}cluster_size_mean": 0.0}
    _, sizes = np.unique(roots, return_counts=True)
    out: dict[str, int | float] = {
        f"{prefix}clusters": int(len(sizes)),
        f"{prefix}duplicates": int(sizes.sum() - len(sizes)),
        f"{prefix}cluster_size_max": int(sizes.max()),
        f"{prefix}cluster_size_mean": round(float(sizes.mean()), 3),
    }
    for lo, hi in ((2, 2), (3, 5), (6, 10), (11, 100), (101, None)):
        label = f"{lo}" if lo == hi else (f"{lo}_{hi}" if hi else f"{lo}_plus")
        sel = sizes >= lo if hi is None else (sizes >= lo) & (sizes <= hi)
        out[f"{prefix}clusters_size_{label}"] = int(sel.sum())
    return out

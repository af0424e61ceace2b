"""Writers: where documents leave the refinery, one output shard (Parquet or JSONL) at a time.

A shard is written under a temporary name and renamed when complete, so a reader never sees half a file.
Free-form metadata becomes columns; what Parquet cannot store as a column (mixed types, empty objects, huge
integers, deep nesting, too many keys) is kept as JSON text rather than failing the shard. Reading output back
is :mod:`gristmill.data.readers.output`'s job.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

import gristmill.data.storage as storage
from gristmill.data.document import Document

MAX_COLUMN_NESTING = 16
"""Deeper metadata is stored as JSON text: Parquet readers refuse schemas nested past about 100 levels,
and a list takes several."""


def _parquet_can_write(kind: pa.DataType, depth: int = 0) -> bool:
    """False for types Parquet refuses to write or to read back: a struct without fields (``{}`` in
    metadata) or nesting deeper than :data:`MAX_COLUMN_NESTING`, at any depth."""
    if depth > MAX_COLUMN_NESTING:
        return False
    if pa.types.is_struct(kind):
        return kind.num_fields > 0 and all(_parquet_can_write(kind.field(i).type, depth + 1)
                                           for i in range(kind.num_fields))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _parquet_can_write(kind.value_type, depth + 1)
    return True


MAX_COLUMNS = 1000
"""Metadata keys a shard keeps as columns; rarer keys of a shard with more go, as JSON, into ``more_meta``."""


def _fold_rare_keys(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows whose metadata keys beyond the :data:`MAX_COLUMNS` most frequent ones of the shard are folded into
    one JSON column, so that records with many different keys cannot make a shard of a million columns."""
    counts: Counter[str] = Counter(k for row in rows for k in row)
    if len(counts) <= MAX_COLUMNS:
        return rows
    keep = {k for k, _ in counts.most_common(MAX_COLUMNS)} | {"id", "text", "reason", "detail"}
    folded = []
    for row in rows:
        rest = {k: v for k, v in row.items() if k not in keep}
        row = {k: v for k, v in row.items() if k in keep}
        if rest:
            row["more_meta"] = json.dumps(rest, ensure_ascii=False, default=str)
        folded.append(row)
    return folded


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    rows = _fold_rare_keys(rows)
    keys: dict[str, None] = {"id": None, "text": None}
    for row in rows:
        keys.update(dict.fromkeys(row))
    tail = [k for k in ("reason", "detail") if k in keys]
    order = ["id", "text"] + sorted(k for k in keys if k not in ("id", "text", "reason", "detail")) + tail
    columns: dict[str, list[Any]] = {k: [r.get(k) for r in rows] for k in order}
    arrays = {}
    for key, values in columns.items():
        try:
            arrays[key] = pa.array(values)
            if not _parquet_can_write(arrays[key].type):
                raise TypeError(f"{arrays[key].type} has an empty struct")
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            # Mixed types, empty objects or huge integers in free metadata: keep the information as JSON text
            # rather than fail the shard.
            arrays[key] = pa.array([v if v is None or isinstance(v, str) else json.dumps(v) for v in values], pa.string())
        if pa.types.is_null(arrays[key].type):
            arrays[key] = arrays[key].cast(pa.string())
    return pa.table(arrays)


def write_documents(docs: Sequence[Document], path: Path | str, fmt: str = "parquet") -> None:
    """Write ``docs`` to ``path`` (local or URL) atomically (temporary name, then rename)."""
    rows = [d.to_row() for d in docs]
    if fmt == "parquet":
        table = _table(rows)
        storage.atomic_write(path, lambda f: pq.write_table(table, f, compression="zstd"))
    elif fmt == "jsonl":
        storage.atomic_write(path, lambda f: f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
                                                         .encode("utf-8")))
    else:
        raise ValueError(f"unknown output format {fmt!r}: use parquet or jsonl")

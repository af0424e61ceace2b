"""Where the tokenizer reads its corpus: a gristmill output folder, Parquet or JSONL files, local or URLs.

The input is cut into :class:`Unit` objects (a record range of one file) so that packing can spread
them over processes, resume after a crash and still give the same shards in the same order. Records
are streamed in batches of ``(id, text)``; nothing here loads a whole file. JSONL goes through the
foundation's readers (``gristmill.data.readers``) so ids and malformed-record handling match ``gristmill run``;
paths may be URLs on any fsspec filesystem, as for ``gristmill run`` (:mod:`gristmill.data.storage`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gristmill.data import storage
from gristmill.data.inputs import InputSpec
from gristmill.data.readers import read_shard
from gristmill.data.readers.records import normalize_id, stable_id
from gristmill.data.shards import Shard, plan_shards
from gristmill.tokenizer.tokdir import TokenizerError

_JSONL = (".jsonl", ".json", ".ndjson")
_COMPRESSED = ("", ".gz", ".zst", ".zstd")


@dataclass(frozen=True)
class Unit:
    """Records ``[start, stop)`` (0-based) of one input file; for plain JSONL, where record ``start`` begins."""

    index: int
    path: str
    format: str
    start: int
    stop: int
    byte_offset: int | None = None

    @property
    def documents(self) -> int:
        return self.stop - self.start


def _format(path: str | Path) -> str | None:
    name = storage.name(path).lower()
    if name.endswith(".parquet"):
        return "parquet"
    if any(name.endswith(ext + comp) for ext in _JSONL for comp in _COMPRESSED):
        return "jsonl"
    return None


def resolve_input(input: str | Path | Sequence[str | Path]) -> tuple[list[str], str | None]:
    """The data files of ``input`` and the ``stats.json`` of the gristmill run that made them, if any.

    ``input`` is a gristmill output folder (``OUT`` or ``OUT/kept``), a folder of Parquet/JSONL files,
    one such file, or a list of these.
    """
    items = [input] if isinstance(input, (str, Path)) else list(input)
    files: list[str] = []
    stats: str | None = None
    for item in items:
        path = str(item)
        kept = storage.join(path, "kept")
        if storage.isdir(path) and storage.isdir(kept) and storage.isfile(storage.join(path, "stats.json")):
            path = kept
        if storage.isdir(path):
            found = [p for p in storage.listdir(path, files_only=True) if not storage.name(p).startswith(".") and _format(p)]
            if not found:
                raise TokenizerError(f"{path} holds no Parquet or JSONL files")
            files.extend(found)
            candidates = [storage.join(path, "stats.json"), storage.join(storage.parent(path), "stats.json")]
        elif storage.isfile(path):
            if _format(path) is None:
                raise TokenizerError(f"{path}: not a Parquet or JSONL(.gz/.zst) file")
            files.append(path)
            candidates = [storage.join(storage.parent(storage.parent(path)), "stats.json")]
        else:
            raise TokenizerError(f"{path}: no such file or directory")
        stats = stats or next((c for c in candidates if storage.isfile(c)), None)
    return files, stats


def plan_units(files: Sequence[str | Path], docs_per_unit: int) -> list[Unit]:
    """Cut ``files`` into units of at most ``docs_per_unit`` records, in a deterministic order."""
    units: list[Unit] = []
    for file in map(str, files):
        if _format(file) == "parquet":
            try:
                n = storage.parquet_file(file).metadata.num_rows
            except Exception as exc:
                raise TokenizerError(f"{file}: not a readable Parquet file: {exc}") from None
            for start in range(0, n, docs_per_unit):
                units.append(Unit(len(units), file, "parquet", start, min(n, start + docs_per_unit)))
            continue
        # The foundation's planner: byte offsets for plain JSONL (a unit seeks to its first record), a line
        # count for compressed JSONL (a unit decompresses from the start and skips to its records).
        plan = plan_shards(InputSpec(paths=[file], format="jsonl", shard_size=docs_per_unit))
        if plan.errors:
            raise TokenizerError("; ".join(str(e) for e in plan.errors))
        for shard in plan.shards:
            units.append(Unit(len(units), file, "jsonl", shard.start, shard.stop or shard.start, shard.byte_offset))
    return units


def _parquet_batches(unit: Unit, text_field: str, id_field: str, batch_size: int
                     ) -> Iterator[tuple[list[str], list[Any]]]:
    try:
        yield from _parquet_batches_of(unit, text_field, id_field, batch_size)
    except (OSError, ValueError) as exc:  # corrupt pages (pyarrow's errors are OSError or ValueError)
        raise TokenizerError(f"{unit.path}: rows {unit.start + 1:,}-{unit.stop:,} cannot be read ({exc}); "
                             "the file is damaged: rerun the step that wrote it") from None


def _parquet_batches_of(unit: Unit, text_field: str, id_field: str, batch_size: int
                        ) -> Iterator[tuple[list[str], list[Any]]]:
    pf = storage.parquet_file(unit.path)
    names = pf.schema_arrow.names
    if text_field not in names:
        raise TokenizerError(f"{unit.path} has no {text_field!r} column (columns: {', '.join(names)})")
    columns = [text_field] + ([id_field] if id_field in names else [])
    meta = pf.metadata
    first = 0
    for rg in range(meta.num_row_groups):
        rows = meta.row_group(rg).num_rows
        lo, hi = max(unit.start, first), min(unit.stop, first + rows)
        if lo < hi:
            pos = first
            for batch in pf.iter_batches(batch_size=batch_size, row_groups=[rg], columns=columns):
                b_lo, b_hi = max(lo - pos, 0), min(hi - pos, batch.num_rows)
                if b_lo < b_hi:
                    part = batch.slice(b_lo, b_hi - b_lo)
                    texts = part.column(0).to_pylist()
                    if len(columns) == 2:
                        ids = [_id(i, unit.path, pos + b_lo + k + 1) for k, i in enumerate(part.column(1).to_pylist())]
                    else:
                        ids = [stable_id(unit.path, pos + b_lo + k + 1) for k in range(part.num_rows)]
                    yield ids, texts
                pos += batch.num_rows
                if pos >= hi:
                    break
        first += rows


def _id(raw: Any, path: str, row: int) -> str:
    """The id ``gristmill run`` would give this record (``io.normalize_id``), or the stable id of its row."""
    try:
        return normalize_id(raw) or stable_id(path, row)
    except ValueError:
        return stable_id(path, row)


def _jsonl_batches(unit: Unit, text_field: str, id_field: str, batch_size: int
                   ) -> Iterator[tuple[list[str], list[Any]]]:
    spec = InputSpec(paths=[unit.path], format="jsonl", text_field=text_field, id_field=id_field)
    ids: list[str] = []
    texts: list[Any] = []
    for doc in read_shard(Shard(unit.path, "jsonl", unit.index, unit.start, unit.stop, unit.byte_offset), spec):
        ids.append(doc.id)
        # A malformed record (bad JSON, no text) counts as an empty document rather than stopping the pack.
        texts.append(None if doc.reason and doc.reason != "input:empty_text" else doc.text)
        if len(ids) >= batch_size:
            yield ids, texts
            ids, texts = [], []
    if ids:
        yield ids, texts


def read_unit(unit: Unit, text_field: str = "text", id_field: str = "id", batch_size: int = 1000
              ) -> Iterator[tuple[list[str], list[Any]]]:
    """Batches ``(ids, texts)`` of one unit; a text is None or "" for records without usable text."""
    if unit.format == "parquet":
        yield from _parquet_batches(unit, text_field, id_field, batch_size)
    else:
        yield from _jsonl_batches(unit, text_field, id_field, batch_size)


def run_stats(stats_file: str | Path | None) -> dict[str, Any] | None:
    """The totals of the gristmill run that made the corpus (``OUT/stats.json``), if there is one."""
    if stats_file is None:
        return None
    try:
        data = json.loads(storage.read_bytes(stats_file))
    except (OSError, json.JSONDecodeError):
        return None
    return {"file": storage.absolute(stats_file), "totals": data.get("totals"),
            "input_paths": data.get("input", {}).get("paths")}

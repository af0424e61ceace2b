"""Where the tokenizer reads its corpus: a gristmill output folder, Parquet or JSONL files.

The input is cut into :class:`Unit` objects (a record range of one file) so that packing can spread
them over processes, resume after a crash and still give the same shards in the same order. Records
are streamed in batches of ``(id, text)``; nothing here loads a whole file. JSONL goes through the
foundation's reader (``gristmill.data.io``) so ids and malformed-record handling match ``gristmill run``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from gristmill.data.io import InputSpec, Shard, plan_shards, read_shard, stable_id
from gristmill.tokenizer.tokdir import TokenizerError

_JSONL = (".jsonl", ".json", ".ndjson")
_COMPRESSED = ("", ".gz", ".zst", ".zstd")


@dataclass(frozen=True)
class Unit:
    """Records ``[start, stop)`` (0-based) of one input file."""

    index: int
    path: str
    format: str
    start: int
    stop: int

    @property
    def documents(self) -> int:
        return self.stop - self.start


def _format(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    if any(name.endswith(ext + comp) for ext in _JSONL for comp in _COMPRESSED):
        return "jsonl"
    return None


def resolve_input(input: str | Path | Sequence[str | Path]) -> tuple[list[Path], Path | None]:
    """The data files of ``input`` and the ``stats.json`` of the gristmill run that made them, if any.

    ``input`` is a gristmill output folder (``OUT`` or ``OUT/kept``), a folder of Parquet/JSONL files,
    one such file, or a list of these.
    """
    items = [input] if isinstance(input, (str, Path)) else list(input)
    files: list[Path] = []
    stats: Path | None = None
    for item in items:
        path = Path(item)
        if path.is_dir() and (path / "kept").is_dir() and (path / "stats.json").is_file():
            path = path / "kept"
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and _format(p))
            if not found:
                raise TokenizerError(f"{path} holds no Parquet or JSONL files")
            files.extend(found)
            candidates = [path / "stats.json", path.parent / "stats.json"]
        elif path.is_file():
            if _format(path) is None:
                raise TokenizerError(f"{path}: not a Parquet or JSONL(.gz/.zst) file")
            files.append(path)
            candidates = [path.parent.parent / "stats.json"]
        else:
            raise TokenizerError(f"{path}: no such file or directory")
        stats = stats or next((c for c in candidates if c.is_file()), None)
    return files, stats


def plan_units(files: Sequence[Path], docs_per_unit: int) -> list[Unit]:
    """Cut ``files`` into units of at most ``docs_per_unit`` records, in a deterministic order."""
    units: list[Unit] = []
    for file in files:
        if _format(file) == "parquet":
            try:
                n = pq.ParquetFile(file).metadata.num_rows
            except Exception as exc:
                raise TokenizerError(f"{file}: not a readable Parquet file: {exc}") from None
        else:
            plan = plan_shards(InputSpec(paths=[str(file)], format="jsonl", shard_size=1 << 62))
            if plan.errors:
                raise TokenizerError("; ".join(str(e) for e in plan.errors))
            n = (plan.shards[0].stop or 0) if plan.shards else 0
        for start in range(0, n, docs_per_unit):
            units.append(Unit(len(units), str(file), _format(file) or "", start, min(n, start + docs_per_unit)))
    return units


def _parquet_batches(unit: Unit, text_field: str, id_field: str, batch_size: int
                     ) -> Iterator[tuple[list[str], list[Any]]]:
    pf = pq.ParquetFile(unit.path)
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
                        ids = [str(i) if i not in (None, "") else stable_id(unit.path, pos + b_lo + k + 1)
                               for k, i in enumerate(part.column(1).to_pylist())]
                    else:
                        ids = [stable_id(unit.path, pos + b_lo + k + 1) for k in range(part.num_rows)]
                    yield ids, texts
                pos += batch.num_rows
                if pos >= hi:
                    break
        first += rows


def _jsonl_batches(unit: Unit, text_field: str, id_field: str, batch_size: int
                   ) -> Iterator[tuple[list[str], list[Any]]]:
    spec = InputSpec(paths=[unit.path], format="jsonl", text_field=text_field, id_field=id_field)
    ids: list[str] = []
    texts: list[Any] = []
    for doc in read_shard(Shard(unit.path, "jsonl", unit.index, unit.start, unit.stop), spec):
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


def run_stats(stats_file: Path | None) -> dict[str, Any] | None:
    """The totals of the gristmill run that made the corpus (``OUT/stats.json``), if there is one."""
    if stats_file is None:
        return None
    try:
        data = json.loads(stats_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return {"file": str(stats_file.resolve()), "totals": data.get("totals"),
            "input_paths": data.get("input", {}).get("paths")}

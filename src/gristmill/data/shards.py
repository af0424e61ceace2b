"""Cutting the input into shards: the unit of work that executors spread over processes and that a resumed
run skips once it is done.

A :class:`Shard` is a record range of one input file. Plain JSONL is cut by one fast scan for newlines, so a
worker seeks straight to its records; a compressed JSONL file cannot be entered in the middle, so it is
decompressed once into staged chunk files (reused on resume). Parquet is cut by row count, WARC files are
whole shards, folders of text files are cut by file. Files that cannot be read become :class:`InputError`
entries of the plan, which the run reports, never exceptions. Reading the records of a shard is
:mod:`gristmill.data.readers`' job.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import xxhash

import gristmill.data.storage as storage
from gristmill.data.inputs import InputSpec, detect_format, expand_paths

if TYPE_CHECKING:
    from gristmill.data.executors import Executor


@dataclass(frozen=True)
class Shard:
    """Records ``[start, stop)`` of one input file (``stop=None``: to the end).

    For plain JSONL, ``byte_offset`` is where record ``start`` begins, so a worker seeks instead of
    scanning. A compressed JSONL file cannot be entered in the middle, so the planner decompresses it
    once into staged chunk files: then ``path`` is the chunk (starting at record ``start``) and
    ``origin`` the user's file, which ids and error messages name.
    """

    path: str
    format: str
    index: int
    start: int = 0
    stop: int | None = None
    byte_offset: int | None = None
    origin: str | None = None

    @property
    def source(self) -> str:
        return self.origin or self.path


@dataclass
class InputError:
    """A file that cannot be read (at all, or past ``line``): the run reports it instead of failing."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.message}"


@dataclass
class ShardPlan:
    """The shards of an input, and the files (or their tails) that could not be cut into any."""

    shards: list[Shard] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)


def _is_compressed(path: str) -> bool:
    return path.lower().endswith((".gz", ".zst", ".zstd"))


def _plain_jsonl_shards(path: str, shard_size: int) -> tuple[list[tuple[int, int, int]], str | None]:
    """(start, stop, byte offset) of each shard of a plain JSONL file, from one fast scan."""
    bounds: list[tuple[int, int, int]] = []
    n = 0
    offset = 0
    shard_start_byte = 0
    last = b"\n"
    try:
        with storage.open_file(path, "rb") as f:
            while chunk := f.read(1 << 22):
                pos = 0
                while True:
                    needed = shard_size - (n - len(bounds) * shard_size)
                    # find the newline that completes the current shard, if it is in this chunk
                    idx = pos - 1
                    for _ in range(needed):
                        idx = chunk.find(b"\n", idx + 1)
                        if idx < 0:
                            break
                    if idx < 0:
                        n += chunk.count(b"\n", pos)
                        break
                    n += needed
                    bounds.append((n - shard_size, n, shard_start_byte))
                    shard_start_byte = offset + idx + 1
                    pos = idx + 1
                offset += len(chunk)
                last = chunk[-1:]
    except OSError as exc:
        return bounds, f"cannot be read ({exc})"
    total = n + (last != b"\n")
    if total > len(bounds) * shard_size:
        bounds.append((len(bounds) * shard_size, total, shard_start_byte))
    return bounds, None


def _stage_compressed_jsonl(path: str, shard_size: int, staging: Path) -> tuple[list[tuple[int, int, str]], str | None]:
    """Decompress ``path`` once into chunk files of ``shard_size`` records; reuse them on resume."""
    key = xxhash.xxh64_hexdigest(f"{path if storage.is_url(path) else os.path.abspath(path)}:{shard_size}".encode())
    marker = staging / f"{key}.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        return [tuple(c) for c in info["chunks"]], info["error"]  # type: ignore[misc]
    staging.mkdir(parents=True, exist_ok=True)
    chunks: list[tuple[int, int, str]] = []
    lines: list[bytes] = []
    n = 0
    error = None

    def flush() -> None:
        chunk = staging / f"{key}-{len(chunks):05d}.jsonl"
        body = b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines)
        storage.atomic_write(chunk, lambda f: f.write(body))
        chunks.append((n - len(lines), n, str(chunk)))
        lines.clear()

    try:
        with storage.open_binary(path) as f:
            for line in f:
                lines.append(line)
                n += 1
                if len(lines) >= shard_size:
                    flush()
    except Exception as exc:  # gzip/zlib/zstandard each raise their own types for corrupt input
        error = f"cannot be read ({exc})" if n == 0 else f"file is truncated or corrupt after line {n}: {exc}"
    if lines:
        flush()
    storage.atomic_write_text(marker, json.dumps({"chunks": chunks, "error": error}))
    return chunks, error


def _count_lines(path: str) -> tuple[int, str | None]:
    """Number of records readable in ``path`` and the error that stopped the count, if any."""
    n = 0
    try:
        with storage.open_binary(path) as f:
            for _ in f:
                n += 1
    except Exception as exc:
        if n == 0:
            return 0, f"cannot be read ({exc})"
        return n, f"file is truncated or corrupt after line {n}: {exc}"
    return n, None


def _stage_task(args: tuple[str, int, Path]) -> tuple[str, list[tuple[int, int, str]], str | None]:
    path, shard_size, staging = args
    return (path, *_stage_compressed_jsonl(path, shard_size, staging))


def plan_shards(spec: InputSpec, staging: Path | None = None, executor: Executor | None = None) -> ShardPlan:
    """Cut the input into shards; files that cannot be read become errors, not exceptions.

    ``staging`` is a folder for chunks of compressed JSONL files (the pipeline passes ``OUT/_work/input``);
    without it, workers decompress from the start of the file and skip to their records. With an
    ``executor``, compressed files are staged in parallel, one task per file.
    """
    plan = ShardPlan()
    paths = expand_paths(spec.paths)
    staged: dict[str, tuple[list[tuple[int, int, str]], str | None]] = {}
    if staging is not None:
        compressed = [p for p in paths if _is_compressed(p) and storage.isfile(p)
                      and (spec.format if spec.format != "auto" else detect_format(p)) == "jsonl"]
        tasks = [(p, spec.shard_size, staging) for p in compressed]
        results = executor.map(_stage_task, tasks) if executor is not None and len(tasks) > 1 else map(_stage_task, tasks)
        for path, chunks, err in results:
            staged[path] = (chunks, err)
    for path in paths:
        if not storage.exists(path):
            plan.errors.append(InputError(path, None, "no such file or directory"))
            continue
        fmt = spec.format if spec.format != "auto" else detect_format(path)
        if fmt == "text" and storage.isdir(path):
            files = storage.files_under(path)
            for start in range(0, len(files), spec.shard_size):
                plan.shards.append(Shard(path, "text", len(plan.shards), start, start + spec.shard_size))
            continue
        if not storage.is_url(path) and not os.access(path, os.R_OK):
            plan.errors.append(InputError(path, None, "permission denied"))
            continue
        if fmt == "jsonl":
            if not _is_compressed(path):
                bounds, err = _plain_jsonl_shards(path, spec.shard_size)
                for start, stop, offset in bounds:
                    plan.shards.append(Shard(path, fmt, len(plan.shards), start, stop, byte_offset=offset))
            elif staging is not None:
                chunks, err = staged[path] if path in staged else _stage_compressed_jsonl(path, spec.shard_size, staging)
                for start, stop, chunk in chunks:
                    plan.shards.append(Shard(chunk, fmt, len(plan.shards), start, stop, byte_offset=0, origin=path))
            else:
                n, err = _count_lines(path)
                for start in range(0, n, spec.shard_size):
                    plan.shards.append(Shard(path, fmt, len(plan.shards), start, min(n, start + spec.shard_size)))
            if err:
                n_ok = plan.shards[-1].stop if plan.shards and plan.shards[-1].source == path else 0
                plan.errors.append(InputError(path, (n_ok or 0) + 1 if n_ok else None, err))
        elif fmt == "parquet":
            try:
                n = storage.parquet_file(path).metadata.num_rows
            except Exception as exc:
                plan.errors.append(InputError(path, None, f"not a readable Parquet file: {exc}"))
                continue
            for start in range(0, n, spec.shard_size):
                plan.shards.append(Shard(path, fmt, len(plan.shards), start, min(n, start + spec.shard_size)))
        elif fmt in ("warc", "text"):
            plan.shards.append(Shard(path, fmt, len(plan.shards)))
        else:
            plan.errors.append(InputError(path, None, f"unknown format {fmt!r}"))
    return plan

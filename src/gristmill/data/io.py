"""Readers and writers: where documents enter and leave the refinery.

Readers turn JSONL (plain, .gz, .zst), Parquet, folders of text files and WARC files (or JSONL
with an HTML field) into :class:`Document` objects. Malformed input never raises: a bad record
becomes a document rejected with ``input:<rule>`` and a detail naming file and line, and a file
that cannot be read at all becomes an :class:`InputError` that the run reports.

Inputs are cut into :class:`Shard` objects (a record range of one file) so that executors can
spread them over processes and a resumed run can skip finished ones.

Writers write one shard at a time to a temporary name and rename it when complete, so a reader
never sees half a file.

Paths may be local or URLs on any fsspec filesystem (``s3://bucket/crawl/*.jsonl.gz``); see
:mod:`gristmill.data.storage`.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

import gristmill.data.storage as storage
from gristmill.data.document import Document
from gristmill.errors import BadDataError, GristmillError

FORMATS = ("jsonl", "parquet", "text", "warc")


class InputFormatError(GristmillError, ValueError):
    """An input whose format the recipe leaves to ``auto`` and its name does not tell, or an unknown extractor."""


@dataclass
class InputSpec:
    """The ``input:`` section of a recipe."""

    paths: list[str]
    format: str = "auto"
    text_field: str = "text"
    id_field: str = "id"
    html_field: str | None = None
    """If set (JSONL/Parquet), the text is extracted from this HTML field."""
    extractor: str = "resiliparse"
    max_doc_bytes: int = 10_000_000
    shard_size: int = 5000


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
    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.message}"


@dataclass
class ShardPlan:
    shards: list[Shard] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)


def stable_id(path: str, line: int) -> str:
    """The id of a document that has none: a hash of its source file and record number."""
    return xxhash.xxh64_hexdigest(f"{path}:{line}".encode())


def detect_format(path: str) -> str:
    p = path.lower()
    if storage.isdir(path):
        return "text"
    for suffix in (".gz", ".zst", ".zstd"):
        if p.endswith(suffix):
            p = p[: -len(suffix)]
    if p.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if p.endswith(".parquet"):
        return "parquet"
    if p.endswith((".warc", ".arc")):
        return "warc"
    if p.endswith(".txt"):
        return "text"
    raise InputFormatError(f"cannot tell the format of {path}; set input.format to one of {', '.join(FORMATS)}")


def expand_paths(patterns: Sequence[str]) -> list[str]:
    out: list[str] = []
    for pattern in patterns:
        matches = storage.glob(pattern) if storage.has_magic(pattern) else [pattern]
        out.extend(matches)
    return out


def open_binary(path: str) -> io.BufferedIOBase:
    """Open a possibly compressed file for binary reading."""
    if storage.is_url(path):
        import fsspec

        compression = "gzip" if path.endswith(".gz") else "zstd" if path.endswith((".zst", ".zstd")) else None
        return fsspec.open(path, "rb", compression=compression).open()
    if path.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if path.endswith((".zst", ".zstd")):
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb")))  # noqa: SIM115
    return open(path, "rb")  # noqa: SIM115


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
        tmp = chunk.with_name(chunk.name + ".tmp")
        tmp.write_bytes(b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines))
        os.replace(tmp, chunk)
        chunks.append((n - len(lines), n, str(chunk)))
        lines.clear()

    try:
        with open_binary(path) as f:
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
        with open_binary(path) as f:
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


def plan_shards(spec: InputSpec, staging: Path | None = None, executor: Any = None) -> ShardPlan:
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


# ---------------------------------------------------------------------------------------------- readers


def _bad(spec_path: str, line: int, rule: str, raw: str, detail: str) -> Document:
    doc = Document(id=stable_id(spec_path, line), text=raw[:1_000_000], meta={"source_file": spec_path, "source_line": line})
    doc.reject("input", rule, f"{spec_path}:{line}: {detail}")
    return doc


MAX_DEPTH = 100
"""Deepest JSON nesting a record may have: deeper ones are rejected (``input:too_deep``), never parsed into
structures that later steps and writers would recurse through."""
INT64 = (-(1 << 63), (1 << 63) - 1)
MAX_FIELDS = 1000
"""Most keys a record may have (all levels): each metadata key becomes a column of its shard."""
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONG_NUMBER = re.compile(rb"\d{19}")


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            todo.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _walk(value: Any) -> Iterator[Any]:
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
        else:
            yield item


def _walk_dicts(value: Any) -> Iterator[dict]:
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            yield item
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)


def record_problem(raw: bytes, record: Any) -> tuple[str, str] | None:
    """(rule, detail) when a parsed JSONL record cannot be carried to the output, else None.

    Checks what the JSON parser accepts but a writer or a later step cannot handle: nesting deeper than
    :data:`MAX_DEPTH`, more than :data:`MAX_FIELDS` keys, lone surrogates (``"\\ud800"``, not encodable as UTF-8) and integers beyond 64 bits.
    Each check starts with a cheap look at the raw bytes, so an ordinary record costs three scans in C.
    """
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH and _depth(record) > MAX_DEPTH:
        return "too_deep", f"JSON nested deeper than {MAX_DEPTH} levels"
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(record, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = exc.object[exc.start:exc.end].encode("unicode_escape").decode()
            return "invalid_unicode", f"lone surrogate {bad} (not encodable as UTF-8)"
    if raw.count(b":") > MAX_FIELDS and sum(len(v) for v in _walk_dicts(record)) > MAX_FIELDS:
        return "too_many_fields", f"more than {MAX_FIELDS:,} fields"
    if _LONG_NUMBER.search(raw):
        for item in _walk(record):
            if isinstance(item, int) and not isinstance(item, bool) and not INT64[0] <= item <= INT64[1]:
                return "int_out_of_range", f"integer {str(item)[:30]}{'...' if len(str(item)) > 30 else ''} does not fit in 64 bits"
    return None


def normalize_id(raw: Any) -> str | None:
    """A document id as a string: strings as they are, integers (and integral floats) in decimal.

    None (use a stable id) for a missing, empty or NaN id. Raises ``ValueError`` for ids that are not
    names at all (booleans, lists, objects), so that ``12``, ``12.0`` and ``"12"`` are the same id everywhere.
    """
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bool):
        raise ValueError(f"id {raw!r} is a boolean")
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, float):
        if raw != raw:
            return None
        return str(int(raw)) if raw.is_integer() else repr(raw)
    raise ValueError(f"id {json.dumps(raw)[:60]} is not a string or a number")


def record_to_document(
    record: Any, path: str, line: int, spec: InputSpec, extract_html: Any = None
) -> Document:
    """Validate one parsed record; a record that is not a usable document comes back rejected."""
    if not isinstance(record, dict):
        return _bad(path, line, "invalid_json", json.dumps(record)[:1000], "record is not a JSON object")
    try:
        doc_id = normalize_id(record.get(spec.id_field)) or stable_id(path, line)
    except ValueError as exc:
        return _bad(path, line, "invalid_id", json.dumps(record, ensure_ascii=False)[:1_000_000], str(exc))
    if spec.html_field:
        html = record.get(spec.html_field)
        if not isinstance(html, str):
            return _bad(path, line, "missing_text", "", f"field {spec.html_field!r} is missing or not a string")
        if extract_html and (problem := html_problem(html)):
            return _bad(path, line, "html_too_deep", "", problem)
        text = extract_html(html) if extract_html else html
    else:
        text = record.get(spec.text_field)
    meta = {k: v for k, v in record.items() if k not in (spec.id_field, spec.text_field, spec.html_field)}
    if not isinstance(text, str):
        doc = Document(doc_id, "", meta)
        doc.reject("input", "missing_text", f"{path}:{line}: field {spec.text_field!r} is missing or not a string")
        return doc
    doc = Document(doc_id, text, meta)
    if not text.strip():
        doc.reject("input", "empty_text", f"{path}:{line}: the text is empty")
    return doc


class JsonlError(GristmillError, BadDataError):
    """A JSONL line that is not a usable record, read with ``errors="raise"``: one line naming file and line."""


@dataclass
class JsonlLine:
    """One non-blank line of a JSONL file: its record, or the problem (``(rule, detail)``) that kept it from one."""

    number: int
    raw: bytes
    record: Any = None
    problem: tuple[str, str] | None = None

    @property
    def text(self) -> str:
        """The line as text (undecodable bytes replaced), for a rejected document."""
        raw = self.raw[:1_000_000] if self.problem and self.problem[0] == "too_large" else self.raw
        return raw.decode("utf-8", "replace")


FIX_HINTS = {"invalid_utf8": "; re-encode the file as UTF-8",
             "invalid_unicode": " (an escape such as \\ud800 that is no character); fix or remove the line"}
"""What to do about a bad line, added where a bad line stops the reading (``errors="raise"``)."""


def parse_jsonl_line(raw: bytes, number: int, max_bytes: int | None = None) -> JsonlLine:
    """Parse one line; whatever the JSON parser or a later writer cannot take becomes ``problem``."""
    if max_bytes is not None and len(raw) > max_bytes:
        return JsonlLine(number, raw, problem=("too_large", f"record of {len(raw):,} bytes exceeds "
                                                             f"input.max_doc_bytes={max_bytes:,}"))
    try:
        line = raw.decode("utf-8-sig" if number == 1 else "utf-8")  # a leading BOM is no text
    except UnicodeDecodeError as exc:
        return JsonlLine(number, raw, problem=("invalid_utf8", f"invalid UTF-8 at byte {exc.start}"))
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return JsonlLine(number, raw, problem=("invalid_json", f"invalid JSON: {exc.msg} at column {exc.colno}"))
    except RecursionError:
        return JsonlLine(number, raw, problem=("too_deep", f"JSON nested deeper than {MAX_DEPTH} levels"))
    except ValueError as exc:  # an integer of more than 4,300 digits
        return JsonlLine(number, raw, problem=("int_out_of_range", str(exc).split(";")[0]))
    return JsonlLine(number, raw, record, record_problem(raw, record))


def jsonl_lines(f: IO[bytes], path: str, errors: str = "record", first: int = 1, start: int = 0,
                stop: int | None = None, max_bytes: int | None = None) -> Iterator[JsonlLine]:
    """The non-blank lines of an open JSONL file, numbered from ``first``; lines ``start < n <= stop`` only.

    ``errors="record"`` (corpora): a bad line comes back with its ``problem``, and a damaged file (a
    truncated .gz) ends with a last line whose problem is ``("damaged", ...)``. ``errors="raise"``: the
    first bad line, or the damage, is a :class:`JsonlError` naming ``path`` and the line.
    """
    if errors not in ("record", "raise"):
        raise ValueError(f"errors must be 'record' or 'raise', got {errors!r}")
    lines = enumerate(f, start=first)
    number = first - 1
    while True:
        try:
            number, raw = next(lines)
        except StopIteration:
            return
        except Exception as exc:  # zlib, zstd, EOF and OS errors of a damaged file
            detail = f"the file is damaged ({exc})"
            if errors == "raise":
                raise JsonlError(f"{path}:{number + 1}: {detail}") from None
            yield JsonlLine(number + 1, b"", problem=("damaged", detail))
            return
        if number <= start:
            continue
        if stop is not None and number > stop:
            return
        if not raw.strip():
            continue
        line = parse_jsonl_line(raw, number, max_bytes)
        if line.problem and errors == "raise":
            raise JsonlError(f"{path}:{number}: {line.problem[1]}{FIX_HINTS.get(line.problem[0], '')}")
        yield line


def read_jsonl(path: str | Path, errors: str = "raise") -> Iterator[JsonlLine]:
    """The lines of a JSONL file (plain, .gz, .zst or a URL), parsed as :func:`jsonl_lines` does.

    A missing file is a :class:`JsonlError` too (exit 2 would be as right; it names the file either way).
    """
    name = str(path)
    try:
        f = open_binary(name)
    except FileNotFoundError:
        raise JsonlError(f"{name}: no such file") from None
    with f:
        yield from jsonl_lines(f, name, errors)


def _jsonl_documents(shard: Shard, spec: InputSpec, extract_html: Any) -> Iterator[Document]:
    path = shard.source
    if shard.byte_offset is not None:
        f = storage.open_file(shard.path, "rb")
        f.seek(shard.byte_offset)
        first = shard.start + 1
    else:
        f = open_binary(shard.path)
        first = 1
    with f:
        for line in jsonl_lines(f, path, "record", first, shard.start, shard.stop, spec.max_doc_bytes):
            if line.problem and line.problem[0] == "damaged":
                return  # the shard planner reported the damage; the lines before it are read
            if line.problem:
                yield _bad(path, line.number, line.problem[0], line.text, line.problem[1])
            else:
                yield record_to_document(line.record, path, line.number, spec, extract_html)


def _parquet_documents(shard: Shard, spec: InputSpec, extract_html: Any) -> Iterator[Document]:
    """Rows ``[start, stop)`` of a Parquet file, one row group at a time; a row group that cannot be read
    (corrupt pages) becomes one ``input:damaged_file`` rejection per row, so the count stays whole."""
    pf = storage.parquet_file(shard.path)
    meta = pf.metadata
    stop = shard.stop if shard.stop is not None else meta.num_rows
    first = 0
    for group in range(meta.num_row_groups):
        rows = meta.row_group(group).num_rows
        lo, hi = max(shard.start, first), min(stop, first + rows)
        if lo < hi:
            try:
                records = pf.read_row_group(group).slice(lo - first, hi - lo).to_pylist()
            except (OSError, ValueError, pa.ArrowException) as exc:
                detail = f"row group {group} (rows {first + 1:,}-{first + rows:,}) cannot be read: {exc}"
                for i in range(lo + 1, hi + 1):
                    yield _bad(shard.path, i, "damaged_file", "", detail)
                records = []
            for i, record in enumerate(records, start=lo + 1):
                text = record.get(spec.html_field or spec.text_field)
                if isinstance(text, str) and len(text) > spec.max_doc_bytes:
                    yield _bad(shard.path, i, "too_large", text[:1_000_000],
                               f"text of {len(text):,} characters exceeds input.max_doc_bytes")
                    continue
                yield record_to_document(record, shard.path, i, spec, extract_html)
        first += rows


def _text_documents(shard: Shard, spec: InputSpec) -> Iterator[Document]:
    folder = storage.isdir(shard.path)
    files = storage.files_under(shard.path)[shard.start : shard.stop] if folder else [shard.path]
    for file in files:
        if not folder:
            rel = storage.name(file)
        elif storage.is_url(file):
            rel = file[len(shard.path.rstrip("/")) + 1 :]
        else:
            rel = os.path.relpath(file, shard.path)
        try:
            size = storage.size(file)
            if size > spec.max_doc_bytes:
                yield _bad(file, 1, "too_large", "", f"file of {size:,} bytes exceeds input.max_doc_bytes")
                continue
            raw = storage.read_bytes(file)
        except OSError as exc:
            yield _bad(file, 1, "unreadable", "", f"cannot read: {exc.strerror}")
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield _bad(file, 1, "invalid_utf8", raw.decode("utf-8", "replace"), f"invalid UTF-8 at byte {exc.start}")
            continue
        doc = Document(stable_id(file, 1), text, {"source_file": rel})
        if not text.strip():
            doc.reject("input", "empty_text", f"{file}: the file is empty")
        yield doc


class DamagedInput(Exception):
    """A container that cannot be read past ``offset`` (a truncated or corrupt compressed stream)."""

    def __init__(self, offset: int, message: str):
        super().__init__(message)
        self.offset = offset


class _CheckedGzip(io.RawIOBase):
    """The decompressed bytes of a (multi-member) ``.gz`` stream; truncation or corruption raises
    :class:`DamagedInput` once every byte before the damage has been returned.

    Readers that decompress on their own (warcio) take a truncated gzip member for a clean end of file
    and return fewer records without a word; reading through this wrapper makes the damage visible.
    """

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        self._member = zlib.decompressobj(31)
        self._pending = b""
        self._buffer = b""
        self._done = False
        self.pos = 0
        """Decompressed bytes returned so far."""

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        while not self._buffer and not self._done:
            if self._member.eof:
                rest = self._member.unused_data or self._raw.read(1 << 16)
                if not rest.strip(b"\0"):  # the end, after complete members (zero padding allowed)
                    self._done = True
                    return
                self._member = zlib.decompressobj(31)
                self._pending = rest
            data = self._pending or self._raw.read(1 << 16)
            self._pending = b""
            if not data:
                raise DamagedInput(self.pos, "the file ends inside a gzip member (truncated)")
            try:
                self._buffer = self._member.decompress(data)
            except zlib.error as exc:
                raise DamagedInput(self.pos, f"corrupt compressed data ({exc})") from None

    def read(self, size: int = -1) -> bytes:
        self._fill()
        if size is None or size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        self.pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def tell(self) -> int:
        return self.pos


def _warc_documents(shard: Shard, spec: InputSpec, extract_html: Any) -> Iterator[Document]:
    """Response records of a WARC file; a damaged record or file becomes an ``input:damaged_*`` rejection
    naming the file and offset (never a merged, shortened or silently missing document)."""
    from warcio.archiveiterator import ArchiveIterator

    compressed = shard.path.lower().endswith(".gz")
    arc = shard.path.lower().removesuffix(".gz").endswith(".arc")
    at = "decompressed offset" if compressed else "offset"
    with storage.open_file(shard.path, "rb") as raw:
        stream = _CheckedGzip(raw) if compressed else raw
        records = ArchiveIterator(stream)
        records.INC_RECORD = ""  # warcio prints a warning of its own; the damage is reported as a rejection
        n = 0  # records read
        try:
            while (record := _next_record(records)) is not None:
                if record.format != "warc" and not arc:
                    raise DamagedInput(records.offset, f"not a WARC record ({record.format} format)")
                n += 1
                doc = _warc_document(record, n, shard.path, spec, extract_html)
                errors = records.err_count
                try:
                    records.read_to_end()
                except DamagedInput:
                    if doc is not None and record.raw_stream.limit == 0:
                        yield doc  # the record was whole; the damage starts after it
                    raise
                offset = records.get_record_offset()
                if record.raw_stream.limit > 0 or records.err_count > errors:
                    why = ("ends before its Content-Length" if record.raw_stream.limit > 0 else
                           "is not followed by the blank lines that end a record: its Content-Length is wrong, so it "
                           "may hold parts of the next records")
                    yield _bad(shard.path, n, "damaged_record", "", f"WARC record {n} at {at} {offset:,} {why}; "
                               "it is not used")
                elif doc is not None:
                    yield doc
            end = stream.pos if isinstance(stream, _CheckedGzip) else storage.size(shard.path)
            if records.offset < end:
                # warcio ends quietly where a record header is cut short: the file was truncated.
                raise DamagedInput(records.offset, f"{end - records.offset:,} bytes after the last complete record "
                                   "are not a whole record (truncated file?)")
        except DamagedInput as exc:
            yield _bad(shard.path, n + 1, "damaged_file", "", f"unreadable from {at} {exc.offset:,} (after {n} records): "
                       f"{exc}; the rest of the file was not read")


def _next_record(records: Any) -> Any:
    """The next record of a warcio iterator, None at the end; whatever warcio fails with on damaged
    bytes (its own errors, or attribute and value errors on headers it half parsed) becomes
    :class:`DamagedInput`."""
    try:
        return next(records)
    except StopIteration:
        return None
    except DamagedInput:
        raise
    except Exception as exc:  # any parser failure on untrusted bytes is damage, not a bug of ours
        from warcio.exceptions import ArchiveLoadFailed

        known = isinstance(exc, ArchiveLoadFailed) and str(exc).strip()
        message = str(exc).strip().splitlines()[0] if known else f"a malformed or cut record header ({type(exc).__name__})"
        raise DamagedInput(records.offset, message) from None


def _warc_document(record: Any, n: int, path: str, spec: InputSpec, extract_html: Any) -> Document | None:
    """The document of one WARC record (None for records other than responses)."""
    if record.rec_type != "response":
        return None
    url = record.rec_headers.get_header("WARC-Target-URI")
    rec_id = record.rec_headers.get_header("WARC-Record-ID") or stable_id(path, n)
    ctype = (record.http_headers.get_header("Content-Type") if record.http_headers else "") or ""
    meta = {"url": url, "warc_date": record.rec_headers.get_header("WARC-Date")}
    payload = record.content_stream().read()
    if "html" not in ctype.lower():
        return _bad(path, n, "not_html", "", f"record {url} has content type {ctype!r}")
    if len(payload) > spec.max_doc_bytes:
        return _bad(path, n, "too_large", "", f"record {url} of {len(payload):,} bytes")
    html = payload.decode("utf-8", "replace")
    if problem := html_problem(html):
        return _bad(path, n, "html_too_deep", "", f"record {url}: {problem}")
    doc = Document(rec_id.strip("<>").removeprefix("urn:uuid:"), extract_html(html), meta)
    if not doc.text.strip():
        doc.reject("input", "empty_text", f"{path} record {n} ({url}): no text extracted")
    return doc


MAX_HTML_DEPTH = 512
"""Deepest element nesting a page may have; browsers stop nesting near here too."""
MAX_HTML_WORK = 5_000_000
"""Sum over all elements of their depth: extraction time grows with it (1.2 MB of 50k nested tags took 81 s),
this bound keeps one page under about half a second."""
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9:-]*)[^<>]*?(/?)>")
_SCRIPT = re.compile(r"(?is)<(script|style)\b.*?</\1\s*>")
_VOID = frozenset(["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"])
_CLOSES_SIBLING = frozenset(["p", "li", "dt", "dd", "tr", "td", "th", "option", "thead", "tbody", "tfoot"])
_NOT_NESTING = np.array(sorted(int.from_bytes(n.encode().ljust(8, b"\0"), "little") for n in _VOID | _CLOSES_SIBLING),
                        dtype=np.uint64)
"""Tag names as 8-byte little-endian codes (lowercase, zero-padded), for a vectorised lookup."""


def _nesting_estimate(html: str) -> tuple[int, int]:
    """(depth, work) from counting tags with numpy: elements that never nest (void ones, and the <p>, <li>,
    <td>... that close their open sibling) are skipped, everything else counts as nesting, and stray closing
    tags cannot push the depth below zero. Close to the truth for ordinary pages, an overestimate for sloppy
    ones: only pages above the limits get the exact scan."""
    data = np.frombuffer(html.encode("utf-8", "surrogatepass") + b"\0" * 10, dtype=np.uint8)
    lt = np.flatnonzero(data[:-10] == 60)
    closing = data[lt + 1] == 47
    start = lt + 1 + closing
    first = data[start] | 0x20
    is_tag = (first >= 97) & (first <= 122)
    window = data[start[:, None] + np.arange(8)] | 0x20
    alnum = ((window >= 97) & (window <= 122)) | ((window >= 48) & (window <= 57))
    names = np.ascontiguousarray(window * np.cumprod(alnum, axis=1, dtype=np.uint8)).view("<u8").ravel()
    nests = is_tag & ~np.isin(names, _NOT_NESTING)
    steps = np.where(nests, np.where(closing, -1, 1), 0).astype(np.int64)
    if not len(steps):
        return 0, 0
    level = np.cumsum(steps)
    depth = level - np.minimum(np.minimum.accumulate(level), 0)
    opened = nests & ~closing
    return int(depth.max()), int(depth[opened].sum())


def _nesting_exact(html: str) -> str | None:
    """The limits checked on an open-element stack (scripts and styles removed first)."""
    stack: list[str] = []
    open_count: dict[str, int] = {}
    work = 0
    for closing, tag, self_closing in _TAG.findall(_SCRIPT.sub("", html)):
        tag = tag.lower()
        if closing:
            if open_count.get(tag):
                while True:  # close it and everything opened inside it (each element pops once: linear)
                    top = stack.pop()
                    open_count[top] -= 1
                    if top == tag:
                        break
            continue
        if self_closing or tag in _VOID:
            continue
        if tag in _CLOSES_SIBLING and open_count.get(tag):
            while True:  # an open <p>, <li>, <td>... ends where the next one starts (cells: where the row ends)
                top = stack.pop()
                open_count[top] -= 1
                if top == tag:
                    break
        stack.append(tag)
        open_count[tag] = open_count.get(tag, 0) + 1
        work += len(stack)
        if len(stack) > MAX_HTML_DEPTH:
            return f"HTML elements nested more than {MAX_HTML_DEPTH} deep"
        if work > MAX_HTML_WORK:
            return f"HTML too deeply nested for its size (nesting work above {MAX_HTML_WORK:,})"
    return None


def html_problem(html: str) -> str | None:
    """Why ``html`` is too costly to extract (nesting too deep, or too much nested work), else None.

    Extraction time grows with the nesting (1.2 MB of 50k nested tags took 81 s), so such pages are
    rejected before extraction. A numpy estimate screens every page; the exact stack scan runs only on
    the few it flags. Pages with few tags skip both.
    """
    if html.count("<") <= MAX_HTML_DEPTH:
        return None
    depth, work = _nesting_estimate(html)
    if depth <= MAX_HTML_DEPTH and work <= MAX_HTML_WORK:
        return None
    return _nesting_exact(html)


def html_extractor(name: str) -> Any:
    """Return a function html -> main text, by extractor name (``resiliparse`` or ``trafilatura``)."""
    if name == "resiliparse":
        from resiliparse.extract.html2text import extract_plain_text

        def extract(html: str) -> str:
            return extract_plain_text(html, main_content=True, alt_texts=False, links=False, list_bullets=True)

        return extract
    if name == "trafilatura":
        import trafilatura

        def extract(html: str) -> str:
            return trafilatura.extract(html, include_comments=False, include_tables=True) or ""

        return extract
    raise InputFormatError(f"unknown HTML extractor {name!r}: use resiliparse or trafilatura")


def read_shard(shard: Shard, spec: InputSpec) -> Iterator[Document]:
    """Every document of a shard, the malformed ones already rejected with ``input:<rule>``."""
    needs_html = shard.format == "warc" or spec.html_field
    extract = html_extractor(spec.extractor) if needs_html else None
    if shard.format == "jsonl":
        yield from _jsonl_documents(shard, spec, extract)
    elif shard.format == "parquet":
        yield from _parquet_documents(shard, spec, extract)
    elif shard.format == "text":
        yield from _text_documents(shard, spec)
    elif shard.format == "warc":
        yield from _warc_documents(shard, spec, extract)
    else:
        raise ValueError(f"unknown format {shard.format}")


# ---------------------------------------------------------------------------------------------- writers


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
    counts: Counter = Counter(k for row in rows for k in row)
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


def output_files(folder: Path | str) -> list[str]:
    """The data files of a gristmill output folder, local or URL, in order (temporary files excluded)."""
    return [p for p in storage.listdir(folder, files_only=True)
            if p.endswith((".parquet", ".jsonl")) and not storage.name(p).startswith(".")]


def _files_of(folder_or_file: Path | str) -> list[str]:
    target = str(folder_or_file)
    return output_files(target) if storage.isdir(target) else [target]


def read_documents(folder_or_file: Path | str) -> Iterator[Document]:
    """Read documents back from a gristmill output folder (``OUT/kept``) or one output file."""
    for file in _files_of(folder_or_file):
        if file.endswith(".parquet"):
            for batch in storage.parquet_file(file).iter_batches(batch_size=2000):
                for row in batch.to_pylist():
                    yield Document.from_row(row)
            continue
        with storage.open_file(file, "rb") as f:
            for line in f:
                yield Document.from_row(json.loads(line))


def read_texts(folder_or_file: Path | str, text_field: str = "text", batch_size: int = 2000) -> Iterator[list[str]]:
    """Stream batches of texts from a gristmill output folder without building Document objects."""
    for file in _files_of(folder_or_file):
        if file.endswith(".parquet"):
            for batch in storage.parquet_file(file).iter_batches(batch_size=batch_size, columns=[text_field]):
                yield [t for t in batch.column(0).to_pylist() if t]
            continue
        with storage.open_file(file, "rb") as f:
            texts: list[str] = []
            for line in f:
                texts.append(json.loads(line).get(text_field) or "")
                if len(texts) >= batch_size:
                    yield texts
                    texts = []
            if texts:
                yield texts

"""JSONL (plain, .gz, .zst, local or URL): its lines parsed and checked, and the documents of a JSONL shard.

Two callers, two ways to meet a bad line. A corpus run (``errors="record"``) keeps going: the line comes back
with its problem and becomes a document rejected with ``input:<rule>``. Everything else that reads JSONL
(generate's prompts, perplexity's documents, task files, classifier training data, decontamination examples)
reads it here with ``errors="raise"``: the first bad line is a :class:`JsonlError` naming file and line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import gristmill.data.storage as storage
from gristmill.data.document import Document
from gristmill.data.inputs import InputSpec
from gristmill.data.readers.html import HtmlExtractor
from gristmill.data.readers.records import record_to_document, rejected_document
from gristmill.data.shards import Shard
from gristmill.errors import BadDataError, GristmillError

MAX_DEPTH = 100
"""Deepest JSON nesting a record may have: deeper ones are rejected (``input:too_deep``), never parsed into
structures that later steps and writers would recurse through."""
INT64 = (-(1 << 63), (1 << 63) - 1)
MAX_FIELDS = 1000
"""Most keys a record may have (all levels): each metadata key becomes a column of its shard."""
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _nodes(value: object) -> Iterator[tuple[object, int]]:
    """Every value of parsed JSON with its nesting depth (1 at the top), without recursion."""
    todo = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        yield item, depth
        if isinstance(item, (dict, list)):
            todo.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))


def record_problem(raw: bytes, record: object) -> tuple[str, str] | None:
    """(rule, detail) when a parsed JSONL record cannot be carried to the output, else None.

    Checks what the JSON parser accepts but a writer or a later step cannot handle: nesting deeper than
    :data:`MAX_DEPTH`, more than :data:`MAX_FIELDS` keys, lone surrogates (``"\\ud800"``, not encodable as UTF-8) and integers beyond 64 bits.
    The depth, surrogate and field checks start with a cheap look at the raw bytes; integers are looked up in the
    parsed record, which for an ordinary record is a handful of values.
    """
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH and max(
            (depth for item, depth in _nodes(record) if isinstance(item, (dict, list))), default=0) > MAX_DEPTH:
        return "too_deep", f"JSON nested deeper than {MAX_DEPTH} levels"
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(record, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = exc.object[exc.start:exc.end].encode("unicode_escape").decode()
            return "invalid_unicode", f"lone surrogate {bad} (not encodable as UTF-8)"
    if raw.count(b":") > MAX_FIELDS and sum(len(item) for item, _ in _nodes(record) if isinstance(item, dict)) > MAX_FIELDS:
        return "too_many_fields", f"more than {MAX_FIELDS:,} fields"
    # The parsed record, not the raw bytes: a record has a few values but kilobytes of text, and a regular
    # expression for 19 digits in a row read the bytes at 55 MB/s, a third of a plain run's time.
    for item, _ in _nodes(record):
        if isinstance(item, int) and not isinstance(item, bool) and not INT64[0] <= item <= INT64[1]:
            return "int_out_of_range", f"integer {str(item)[:30]}{'...' if len(str(item)) > 30 else ''} does not fit in 64 bits"
    return None


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
        f = storage.open_binary(name)
    except FileNotFoundError:
        raise JsonlError(f"{name}: no such file") from None
    with f:
        yield from jsonl_lines(f, name, errors)


def jsonl_documents(shard: Shard, spec: InputSpec, extract_html: HtmlExtractor | None) -> Iterator[Document]:
    """The documents of a JSONL shard: a bad line comes back rejected, and damage to the file ends the shard
    quietly (the shard planner has reported it)."""
    path = shard.source
    if shard.byte_offset is not None:
        f = storage.open_file(shard.path, "rb")
        f.seek(shard.byte_offset)
        first = shard.start + 1
    else:
        f = storage.open_binary(shard.path)
        first = 1
    with f:
        for line in jsonl_lines(f, path, "record", first, shard.start, shard.stop, spec.max_doc_bytes):
            if line.problem and line.problem[0] == "damaged":
                return  # the shard planner reported the damage; the lines before it are read
            if line.problem:
                yield rejected_document(path, line.number, line.problem[0], line.text, line.problem[1])
            else:
                yield record_to_document(line.record, path, line.number, spec, extract_html)

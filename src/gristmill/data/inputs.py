"""What a run reads: the recipe's ``input:`` section (:class:`InputSpec`), the formats it names, and the files
its paths and patterns stand for.

Paths may be local or URLs on any fsspec filesystem (``s3://bucket/crawl/*.jsonl.gz``); see
:mod:`gristmill.data.storage`. Cutting the files into shards is :mod:`gristmill.data.shards`' job, reading
them :mod:`gristmill.data.readers`'; this module opens no file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import gristmill.data.storage as storage
from gristmill.errors import GristmillError

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

"""Readers: where documents enter the refinery, one module per input format.

``jsonl`` (plain, .gz, .zst), ``parquet``, ``text`` (a folder of files, or one) and ``warc`` turn the records
of a :class:`~gristmill.data.shards.Shard` into :class:`~gristmill.data.document.Document` objects; ``records``
makes a document of one parsed record, ``html`` extracts text from HTML, and ``output`` reads gristmill's own
output folders back.

Malformed input never raises: a bad record becomes a document rejected with ``input:<rule>`` and a detail
naming file and line. (A file that cannot be read at all is the shard planner's to report.) This package
plans nothing and writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

from gristmill.data.document import Document
from gristmill.data.inputs import InputSpec
from gristmill.data.readers.html import html_extractor
from gristmill.data.readers.jsonl import jsonl_documents
from gristmill.data.readers.parquet import parquet_documents
from gristmill.data.readers.text import text_documents
from gristmill.data.readers.warc import warc_documents
from gristmill.data.shards import Shard


def read_shard(shard: Shard, spec: InputSpec) -> Iterator[Document]:
    """Every document of a shard, the malformed ones already rejected with ``input:<rule>``."""
    needs_html = shard.format == "warc" or spec.html_field
    extract = html_extractor(spec.extractor) if needs_html else None
    if shard.format == "jsonl":
        yield from jsonl_documents(shard, spec, extract)
    elif shard.format == "parquet":
        yield from parquet_documents(shard, spec, extract)
    elif shard.format == "text":
        yield from text_documents(shard, spec)
    elif shard.format == "warc":
        yield from warc_documents(shard, spec, extract)
    else:
        raise ValueError(f"unknown format {shard.format}")

"""Parquet: the documents of a Parquet shard (a row range), read one row group at a time.

Columns map to documents as JSONL fields do (:mod:`gristmill.data.readers.records`); a row group that cannot be
read becomes rejections, never a shorter shard.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

import gristmill.data.storage as storage
from gristmill.data.document import Document
from gristmill.data.inputs import InputSpec
from gristmill.data.readers.html import HtmlExtractor
from gristmill.data.readers.records import record_to_document, rejected_document
from gristmill.data.shards import Shard


def parquet_documents(shard: Shard, spec: InputSpec, extract_html: HtmlExtractor | None) -> Iterator[Document]:
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
                    yield rejected_document(shard.path, i, "damaged_file", "", detail)
                records = []
            for i, record in enumerate(records, start=lo + 1):
                text = record.get(spec.html_field or spec.text_field)
                if isinstance(text, str) and len(text) > spec.max_doc_bytes:
                    yield rejected_document(shard.path, i, "too_large", text[:1_000_000],
                                            f"text of {len(text):,} characters exceeds input.max_doc_bytes")
                    continue
                yield record_to_document(record, shard.path, i, spec, extract_html)
        first += rows

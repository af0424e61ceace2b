"""Text files: a folder of them (one document per file, named by its path below the folder) or one file.

A file too large, unreadable or not UTF-8 becomes a rejected document; an empty one is rejected as
``input:empty_text``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import gristmill.data.storage as storage
from gristmill.data.document import Document
from gristmill.data.inputs import InputSpec
from gristmill.data.readers.records import rejected_document, stable_id
from gristmill.data.shards import Shard


def text_documents(shard: Shard, spec: InputSpec) -> Iterator[Document]:
    """One document per file of the shard (a slice of a folder's files, or one file)."""
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
                yield rejected_document(file, 1, "too_large", "", f"file of {size:,} bytes exceeds input.max_doc_bytes")
                continue
            raw = storage.read_bytes(file)
        except OSError as exc:
            yield rejected_document(file, 1, "unreadable", "", f"cannot read: {exc.strerror}")
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield rejected_document(file, 1, "invalid_utf8", raw.decode("utf-8", "replace"), f"invalid UTF-8 at byte {exc.start}")
            continue
        doc = Document(stable_id(file, 1), text, {"source_file": rel})
        if not text.strip():
            doc.reject("input", "empty_text", f"{file}: the file is empty")
        yield doc

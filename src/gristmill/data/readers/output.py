"""Reading gristmill's own output back: the data files of an output folder (``OUT/kept``, ``OUT/rejected``),
and the documents or texts in them.

Only what :mod:`gristmill.data.writers` writes (Parquet, JSONL) is read here; hidden and temporary files are
skipped, so a half-written shard is never seen.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import gristmill.data.storage as storage
from gristmill.data.document import Document


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

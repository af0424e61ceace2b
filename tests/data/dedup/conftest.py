"""Fixtures for the dedup tests: write small corpora, run recipes through ``Pipeline``, read results back."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gristmill.data import InputSpec, OutputSpec, Pipeline, build_step
from gristmill.data.document import Document
from gristmill.data.readers.output import read_documents


@dataclass
class Outcome:
    kept: dict[str, Document]
    rejected: dict[str, Document]
    stats: dict[str, Any]
    docs_in: int

    def reason(self, doc_id: str) -> str | None:
        return self.rejected[doc_id].reason if doc_id in self.rejected else None


def write_jsonl(path: Path, docs: list[tuple[str, str]]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for doc_id, text in docs:
            f.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
    return path


@pytest.fixture
def run_steps(tmp_path: Path):
    """run_steps(docs, steps, workers=1, shard_size=3) -> Outcome; ``steps`` as (name, params) pairs."""
    counter = [0]

    def run(docs: list[tuple[str, str]], steps: list[tuple[str, dict[str, Any]]], workers: int = 1,
            shard_size: int = 3) -> Outcome:
        counter[0] += 1
        src = write_jsonl(tmp_path / f"in{counter[0]}.jsonl", docs)
        out = tmp_path / f"out{counter[0]}"
        pipe = Pipeline(InputSpec(paths=[str(src)], shard_size=shard_size),
                        [build_step(name, params) for name, params in steps], OutputSpec(str(out)))
        result = pipe.run(workers=workers, progress=False)
        kept = {d.id: d for d in read_documents(out / "kept")}
        rejected = {d.id: d for d in read_documents(out / "rejected")} if (out / "rejected").exists() else {}
        assert result.kept + result.rejected == result.docs_in == len(docs), "a document was lost"
        return Outcome(kept, rejected, result.stats, result.docs_in)

    return run

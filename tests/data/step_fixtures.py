"""User steps for tests, named by dotted path in recipes (``step_fixtures:Sleepy``)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from gristmill.data.document import Document
from gristmill.data.pipeline import CorpusStep, Filter


@dataclass
class Sleepy(Filter):
    """Sleeps a little per document so a test can kill the run half way; rejects ids ending in 7."""

    seconds: float = 0.0005

    def check(self, doc: Document) -> str | None:
        time.sleep(self.seconds)
        return "ends_in_7" if doc.id.endswith("7") else None


def _count_texts(path: str) -> dict[str, int]:
    from gristmill.data.readers.output import read_documents

    counts: dict[str, int] = {}
    for d in read_documents(path):
        counts[d.text] = counts.get(d.text, 0) + 1
    return counts


@dataclass
class DropRepeated(CorpusStep):
    """Test corpus step: rejects every document whose text occurs more than once in the whole corpus."""

    def prepare(self, shards, workdir, executor):  # type: ignore[no-untyped-def]
        total: dict[str, int] = {}
        for counts in executor.map(_count_texts, [str(s) for s in shards]):
            for text, n in counts.items():
                total[text] = total.get(text, 0) + n
        repeated = sorted(t for t, n in total.items() if n > 1)
        (workdir / "repeated.json").write_text(json.dumps(repeated))
        return {"repeated_texts": len(repeated)}

    def setup(self, workdir, shard_name):  # type: ignore[no-untyped-def]
        self._repeated = set(json.loads((workdir / "repeated.json").read_text()))

    def process(self, docs, stats):  # type: ignore[no-untyped-def]
        for d in docs:
            if d.text in self._repeated:
                d.reject(self.name, "repeated")
        return docs

"""The bundled sample corpus, as the tests read it."""

from __future__ import annotations

import gzip
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "sample" / "corpus.jsonl.gz"


def write_sample_head(path: Path, n: int) -> Path:
    """The first ``n`` records of the sample corpus, as plain JSONL at ``path``."""
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as f, open(path, "w", encoding="utf-8") as g:
        for i, line in enumerate(f):
            if i >= n:
                break
            g.write(line)
    return path

"""Small general-purpose steps: pass-through and length bounds."""

from __future__ import annotations

from dataclasses import dataclass

from gristmill.data.document import Document
from gristmill.data.pipeline import Filter, Step, StepStats, register


@register("noop")
@dataclass
class Noop(Step):
    """Keeps every document unchanged (useful to measure the engine itself)."""

    def process(self, docs: list[Document], stats: StepStats) -> list[Document]:
        return docs


@register("length")
@dataclass
class Length(Filter):
    """Rejects documents outside [min_chars, max_chars] characters."""

    min_chars: int = 1
    max_chars: int = 1_000_000

    def check(self, doc: Document) -> str | None:
        n = len(doc.text)
        if n < self.min_chars:
            return "min_chars"
        if n > self.max_chars:
            return "max_chars"
        return None

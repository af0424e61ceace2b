"""The held-out split of an ablation: which raw documents no variant may train on.

A document is held out when a hash of its whitespace-normalised, lower-cased text falls below
``fraction``. Hashing the text (not the id) sends every exact copy of a held-out document to the
held-out side, so a variant that keeps duplicates cannot have seen the evaluation text verbatim.
(Near-duplicates can still straddle the split; the report says so.)

The step is an ordinary filter so that the split is an ordinary ``gristmill run`` with the usual
nothing-lost accounting: ``side: train`` rejects the held-out documents (``holdout:heldout``),
``side: heldout`` rejects the rest (``holdout:training``). It is not registered as a recipe step:
it only makes sense inside an ablation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import xxhash

from gristmill.data.document import Document
from gristmill.data.pipeline import Filter


def is_heldout(text: str, fraction: float) -> bool:
    key = " ".join(text.lower().split()).encode("utf-8", "surrogatepass")
    return xxhash.xxh64_intdigest(key, seed=0x61626C) < int(fraction * 2.0**64)


@dataclass
class HoldOut(Filter):
    """Keeps one side of the held-out split (see the module docstring)."""

    name: ClassVar[str] = "holdout"
    fraction: float = 0.01
    side: str = "train"

    def __post_init__(self) -> None:
        if self.side not in ("train", "heldout"):
            raise ValueError(f"side must be train or heldout, not {self.side!r}")

    def check(self, doc: Document) -> str | None:
        held = is_heldout(doc.text, self.fraction)
        if self.side == "train":
            return "heldout" if held else None
        return None if held else "training"

"""``perplexity``: a per-document perplexity under a reference language model trained on trusted text.

The CCNet filter (Wenzek et al., 2020): fluent, in-domain text is predictable to a language model
trained on text you trust; gibberish, keyword lists, mojibake and foreign text are not. The model
folder is a hashed word trigram model (``gristmill classify lm``, vectorised numpy, thousands of
documents per CPU-second) or, through the scorer plug-ins, a pretrained encoder RUN folder scored by
pseudo-log-likelihood (kind ``encoder-pll``, when a plug-in for it is installed).

Annotate first: the value goes to ``column`` (default ``perplexity``; empty documents get none) and
nothing is rejected unless ``threshold`` is set, in which case a document whose perplexity exceeds it
is rejected as ``perplexity:too_high``. Only the first ``max_words`` tokens of a document are scored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gristmill.data.classify import scorers as sc
from gristmill.data.document import Document
from gristmill.data.pipeline import StepStats, register
from gristmill.data.steps.classifier import ModelStep


@register("perplexity")
@dataclass
class Perplexity(ModelStep):
    """Writes each document's perplexity under a reference language model; optional threshold."""

    model: str = ""
    """Model folder: an n-gram model (gristmill classify lm) or a pretrained encoder RUN folder (plug-in)."""
    column: str = "perplexity"
    threshold: float | None = None
    """Reject documents above this perplexity (``perplexity:too_high``); None: annotate only."""
    max_words: int = 1000
    """Tokens scored per document (its beginning)."""
    batch_size: int = 512

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("perplexity: give the model folder in 'model'")
        if not self.column:
            raise ValueError("perplexity: 'column' must not be empty")
        if self.threshold is not None and self.threshold <= 0:
            raise ValueError("perplexity: 'threshold' must be positive (or left out to annotate only)")
        if self.max_words < 1 or self.batch_size < 1:
            raise ValueError("perplexity: max_words and batch_size must be at least 1")
        kind = sc.folder_kind(self.model)
        if kind not in (sc.NGRAM_LM, sc.ENCODER_PLL):
            raise ValueError(f"perplexity: {self.model} is a {kind!r} model folder, not a language model "
                             "(train one with `gristmill classify lm`, or give a pretrained RUN folder)")
        self._target = sc.scorer_target(kind)
        self._scorer: Any = None

    def process(self, docs: list[Document], stats: StepStats) -> list[Document]:
        scorer = self.scorer()
        for lo in range(0, len(docs), self.batch_size):
            batch = docs[lo:lo + self.batch_size]
            values = scorer.perplexity([d.text for d in batch], self.max_words)
            for doc, value in zip(batch, values.tolist()):
                if math.isnan(value):
                    stats.count("no_tokens")
                    continue
                doc.meta[self.column] = round(value, 3)
                if self.threshold is not None and value > self.threshold:
                    doc.reject(self.name, "too_high")
        return docs

"""``classifier``: score every document with a trained classifier; annotate, and reject by threshold.

The model folder is a linear classifier (``gristmill classify train``: hashed word n-grams and
logistic regression, thousands of documents per CPU-second), a fine-tuned encoder
(``gristmill finetune --out``) or its ONNX export (``gristmill export``, fp32 or ``quantize: int8``).
Encoders are scored through the scorer plug-ins (:mod:`gristmill.data.classify.scorers`), so this
module imports nothing above the data layer.

Each label's probability goes to a column (``columns: {offensive: toxic_score}``; by default every
label as ``<label>_score``). With ``reject_label`` set, a document whose score for that label reaches
``threshold`` is rejected as ``classifier:<label>`` (or, with ``reject_below: true``, whose score is
below it: quality classifiers keep what scores high); ``mode: annotate`` writes the columns and rejects
nothing (counting ``would_reject``), so a threshold can be chosen later without rescoring.

Long documents: the first ``max_chunks`` chunks of ``chunk_words`` words (or, with ``chunk_by:
paragraphs``, its paragraphs, long ones cut into such chunks) are scored (an encoder further cuts a
chunk to its ``max_length`` tokens) and the chunk scores are aggregated per label by
``aggregate``: ``max`` (default; one toxic paragraph makes a toxic document), ``mean`` or ``first``.
The model is loaded once per worker process, in ``setup``; a missing folder, a folder of the wrong
kind or an unknown label is an error when the recipe is loaded, before any work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gristmill.data.classify import scorers as sc
from gristmill.data.document import Document
from gristmill.data.pipeline import Step, StepStats, register

MODES = ("reject", "annotate")
QUANTIZE = ("none", "int8")


class ModelStep(Step):
    """A step that scores with a model folder: ``_target`` (the scorer factory, resolved when the recipe
    loads) and ``model``; the scorer is loaded in ``setup``, once per worker process, and never pickled."""

    model: str
    _target: str
    _scorer: Any = None

    def _options(self) -> dict[str, Any]:
        return {}

    def __getstate__(self) -> dict[str, Any]:
        # The loaded model stays in its process; workers load their own (once, see setup).
        state = self.__dict__.copy()
        state["_scorer"] = None
        return state

    def setup(self, workdir: Path | None, shard_name: str) -> None:
        if self._scorer is None:
            self._scorer = sc.cached_scorer(self._target, self.model, self._options())

    def scorer(self) -> Any:
        if self._scorer is None:
            self.setup(None, "")
        return self._scorer


@register("classifier")
@dataclass
class Classifier(ModelStep):
    """Scores documents with a trained classifier (linear, fine-tuned encoder, ONNX/int8); writes
    per-label score columns and rejects by a threshold on one label."""

    model: str = ""
    """Model folder: linear classifier, fine-tuned encoder (FT/) or its ONNX export."""
    columns: dict[str, str] = field(default_factory=dict)
    """Label -> output column; default every label as ``<label>_score``."""
    reject_label: str = ""
    """Label whose score decides rejection (reason ``classifier:<label>``); empty: annotate only."""
    threshold: float = 0.5
    reject_below: bool = False
    """Reject when the score is below ``threshold`` (quality classifiers) instead of at or above it."""
    mode: str = "reject"
    """``reject`` or ``annotate`` (write the columns, reject nothing, count ``would_reject``)."""
    chunk_words: int = 256
    """Words per chunk of a long document (0: the whole text in one piece)."""
    chunk_by: str = "words"
    """``words``: runs of ``chunk_words`` words; ``paragraphs``: each blank-line separated paragraph (cut
    into runs of ``chunk_words`` words when longer), so a short passage is not diluted by its page."""
    max_chunks: int = 8
    """Chunks scored per document: words beyond ``chunk_words * max_chunks`` are not read."""
    aggregate: str = "max"
    """How chunk scores make a document score: ``max``, ``mean`` or ``first`` (first chunk only)."""
    batch_size: int = 512
    """Documents per scoring call."""
    quantize: str = "none"
    """Encoders: ``int8`` uses the int8 model (ONNX export) or dynamic int8 quantization (FT folder)."""
    threads: int = 1
    """Encoders: inference threads per worker."""

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("classifier: give the model folder in 'model'")
        if self.mode not in MODES:
            raise ValueError(f"classifier: mode must be one of {', '.join(MODES)}")
        if self.aggregate not in sc.AGGREGATIONS:
            raise ValueError(f"classifier: aggregate must be one of {', '.join(sc.AGGREGATIONS)}")
        if self.chunk_by not in sc.CHUNKING:
            raise ValueError(f"classifier: chunk_by must be one of {', '.join(sc.CHUNKING)}")
        if self.quantize not in QUANTIZE:
            raise ValueError(f"classifier: quantize must be one of {', '.join(QUANTIZE)}")
        if self.chunk_words < 0 or self.max_chunks < 1 or self.batch_size < 1:
            raise ValueError("classifier: chunk_words must be >= 0, max_chunks and batch_size >= 1")
        kind = sc.folder_kind(self.model)
        if kind not in (sc.LINEAR, sc.ENCODER, sc.ONNX):
            raise ValueError(f"classifier: {self.model} is a {kind!r} model folder, not a classifier "
                             "(an n-gram or pretrained model belongs in the perplexity step)")
        self._kind = kind
        self._target = sc.scorer_target(kind)
        labels = sc.folder_labels(self.model, kind)
        unknown = [label for label in [*self.columns, *([self.reject_label] if self.reject_label else [])]
                   if label not in labels]
        if unknown:
            raise ValueError(f"classifier: {self.model} has labels {', '.join(labels)}; not {', '.join(unknown)}")
        self._labels = labels
        self._columns = dict(self.columns) if self.columns else {label: f"{label}_score" for label in labels}
        self._scorer: Any = None

    def _options(self) -> dict[str, Any]:
        if self._kind == sc.LINEAR:
            return {}
        return {"quantize": self.quantize, "threads": self.threads, "batch_size": 32}

    def process(self, docs: list[Document], stats: StepStats) -> list[Document]:
        scorer = self.scorer()
        index = {label: i for i, label in enumerate(scorer.labels)}
        decide = index[self.reject_label] if self.reject_label else None
        for lo in range(0, len(docs), self.batch_size):
            batch = docs[lo:lo + self.batch_size]
            scores = sc.score_documents(scorer, [d.text for d in batch], self.chunk_words, self.max_chunks,
                                        self.aggregate, self.chunk_by)
            for doc, row in zip(batch, scores.tolist()):
                for label, column in self._columns.items():
                    doc.meta[column] = round(row[index[label]], 6)
                if decide is None:
                    continue
                hit = row[decide] < self.threshold if self.reject_below else row[decide] >= self.threshold
                if not hit:
                    continue
                if self.mode == "annotate":
                    stats.count("would_reject")
                else:
                    doc.reject(self.name, self.reject_label)
        return docs

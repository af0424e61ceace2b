"""The :class:`Classifier`: texts -> token ids -> batches sorted by length and padded only to their own
longest -> a backend's logits -> probabilities back in input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from gristmill.serve.backends import Backend, PredictError
from gristmill.train.encoding import encode_sequences, plain, special_ids
from gristmill.train.forward import batched_logits, softmax

if TYPE_CHECKING:
    from tokenizers import Tokenizer


def clean_text(text: str) -> str:
    """JSON allows lone surrogates ("\\ud800") that the Rust tokenizer cannot take; replace them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


@dataclass
class Classifier:
    """A sequence classifier ready to predict: tokenizer, task (labels, max length, pair field) and a backend."""

    backend: Backend
    tokenizer: Tokenizer
    labels: list[str]
    max_length: int
    batch_size: int = 32
    pair_field: str | None = None
    text_field: str = "text"
    source: str = ""
    forward_passes: int = 0
    texts_seen: int = 0

    def __post_init__(self) -> None:
        plain(self.tokenizer)
        self.pad_id = special_ids(self.tokenizer)[0]

    def encode(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> list[tuple[list[int], list[int]]]:
        """``[CLS] text [SEP]`` (or a pair) cut to ``max_length``, exactly as fine-tuning encoded it."""
        return encode_sequences(self.tokenizer, [clean_text(t) for t in texts], self.max_length,
                                [clean_text(p) for p in pairs] if pairs is not None else None)

    def predict_proba(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> np.ndarray:
        """Probabilities ``[len(texts), num_labels]`` in input order.

        Batched by :func:`gristmill.train.forward.batched_logits`: sorted by token length, cut into
        batches of at most ``batch_size``, each padded only to its own longest text.
        """
        n = len(texts)
        if n == 0:
            return np.empty((0, len(self.labels)), dtype=np.float32)
        if self.pair_field is not None and pairs is None:
            raise PredictError(f"this model classifies text pairs; give the second text ({self.pair_field!r})")

        def forward(ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
            self.forward_passes += 1
            return self.backend.logits(ids, mask, types)

        logits = batched_logits(self.encode(texts, pairs), self.pad_id, forward, self.batch_size)
        self.texts_seen += n
        return softmax(np.stack(logits))

    def predict(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """``[{"label", "score", "probabilities": {label: p}}]`` for each text, in input order."""
        return [self.describe(row) for row in self.predict_proba(texts, pairs)]

    def describe(self, row: np.ndarray) -> dict[str, Any]:
        best = int(row.argmax())
        return {"label": self.labels[best], "score": round(float(row[best]), 6),
                "probabilities": {label: round(float(p), 6) for label, p in zip(self.labels, row, strict=True)}}

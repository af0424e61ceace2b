"""The :class:`Tagger`: a token-classification (NER-style) model predicting one tag per input word.

Words -> subword ids (each word's tag is read at its first subword, as in fine-tuning) -> batches sorted by
length -> PyTorch logits -> ``(tag, probability)`` per word, in input order. PyTorch only: ONNX export
covers sequence classifiers. Loading one from a folder is ``gristmill.serve.loading``'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gristmill.serve.classifier import clean_text
from gristmill.train.encoding import encode_words, plain, special_ids
from gristmill.train.forward import batched_logits, softmax, torch_forward

if TYPE_CHECKING:
    import torch
    from tokenizers import Tokenizer


@dataclass
class Tagger:
    """A token-classification (NER-style) model: one tag per input word, on its first subword."""

    model: torch.nn.Module
    tokenizer: Tokenizer
    labels: list[str]
    max_length: int
    tokens_field: str = "tokens"
    tags_field: str = "tags"
    batch_size: int = 32
    source: str = ""
    forward_passes: int = 0

    def __post_init__(self) -> None:
        plain(self.tokenizer)
        self.pad_id = special_ids(self.tokenizer)[0]
        self._forward = torch_forward(self.model)

    def predict_words(self, words_batch: Sequence[Sequence[str]]) -> list[list[tuple[str, float | None]]]:
        """``(tag, probability)`` per word; a word cut off by ``max_length`` gets "O" (or the first label), None."""
        encoded = encode_words(self.tokenizer, [[clean_text(w) for w in words] for words in words_batch],
                               self.max_length)
        fallback = self.labels.index("O") if "O" in self.labels else 0

        def forward(ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
            self.forward_passes += 1
            return self._forward(ids, mask, types)

        logits = batched_logits([(ids, [0] * len(ids)) for ids, _ in encoded], self.pad_id, forward,
                                self.batch_size, per_token=True)
        out: list[list[tuple[str, float | None]]] = []
        for (_, word_positions), words, lg in zip(encoded, words_batch, logits, strict=True):
            probs = softmax(lg)
            positions = (list(word_positions) + [-1] * len(words))[: len(words)]
            out.append([(self.labels[int(probs[p].argmax())], round(float(probs[p].max()), 6)) if p >= 0
                        else (self.labels[fallback], None) for p in positions])
        return out

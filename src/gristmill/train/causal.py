"""The causal-LM objective for ``pretrain --arch decoder``: batches, targets, loss and validation.

The packed shards are the encoder's: each row is ``[CLS] doc [SEP] doc [SEP] ...`` with the first
token of every document flagged. The decoder predicts each token from the ones before it.

Document boundaries (the stated choice, see docs/decoder.md): by default the attention mask is
block-diagonal. A new segment begins at the token *before* each document start (the [SEP] that ended
the previous document, or the row's [CLS]), so every document is read as ``<start> text [SEP]``,
exactly as ``generate`` feeds a prompt (``[CLS] prompt``); with rotary positions a document's logits
are then the same as if it were alone in the row. ``--no-doc-mask`` lets tokens attend across
documents instead (GPT-2 and nanoGPT do this; it is cheaper, the [SEP] alone tells documents apart).

Targets that cannot be predicted are left out of the loss: padding, the row's last token (its
successor is in another row), and the [CLS] of a row that begins in the middle of a document.
This module owns the objective only; the loop is ``pretrain.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from gristmill.model.loss import IGNORE

if TYPE_CHECKING:
    from gristmill.tokenizer.dataset import TokenSequences


@dataclass
class CausalBatch:
    input_ids: torch.Tensor
    segments: torch.Tensor | None
    labels: torch.Tensor

    @property
    def targets(self) -> int:
        return int((self.labels != IGNORE).sum())


def document_segments(doc_start: torch.Tensor) -> torch.Tensor:
    """bool [B, T] document starts -> segment ids [B, T]; a segment begins one token before its document."""
    begins = torch.zeros_like(doc_start, dtype=torch.long)
    begins[:, :-1] = doc_start[:, 1:].long()
    return begins.cumsum(1)


def causal_labels(ids: torch.Tensor, doc_start: torch.Tensor, pad_id: int) -> torch.Tensor:
    """The next token at each position, or IGNORE where it is padding, in another row, or mid-document."""
    labels = torch.full_like(ids, IGNORE)
    labels[:, :-1] = ids[:, 1:]
    labels[labels == pad_id] = IGNORE
    # The [CLS] of a row that continues a document would have to guess a word from the middle of it.
    labels[:, 0] = torch.where(doc_start[:, 1], labels[:, 0], IGNORE)
    return labels


def make_causal_batch(dataset: TokenSequences, indices: np.ndarray, pad_id: int, device: torch.device,
                      doc_mask: bool = True) -> CausalBatch:
    batch = dataset.get_batch(indices)
    ids = torch.as_tensor(batch["input_ids"], dtype=torch.long)
    doc_start = torch.as_tensor(batch["doc_start"], dtype=torch.bool)
    labels = causal_labels(ids, doc_start, pad_id)
    segments = document_segments(doc_start).to(device, non_blocking=True) if doc_mask else None
    return CausalBatch(ids.to(device, non_blocking=True), segments, labels.to(device, non_blocking=True))


def causal_loss_sum(model: torch.nn.Module, batch: CausalBatch, autocast: torch.autocast) -> torch.Tensor:
    """Summed next-token cross-entropy over the batch's targets; the model never holds all the logits."""
    with autocast:
        return model(batch.input_ids, segments=batch.segments, labels=batch.labels)


@torch.no_grad()
def evaluate_causal(model: torch.nn.Module, dataset: TokenSequences, pad_id: int, world: Any, micro_batch: int,
                    max_sequences: int, autocast: torch.autocast, doc_mask: bool = True) -> dict[str, float]:
    """Next-token loss, top-1 accuracy and perplexity on the first ``max_sequences`` rows of the split."""
    total = min(len(dataset), max_sequences)
    rows = np.arange(world.rank, total, world.world)
    was_training = model.training
    model.eval()
    loss_sum = correct = count = 0.0
    for start in range(0, len(rows), micro_batch):
        batch = make_causal_batch(dataset, rows[start:start + micro_batch], pad_id, world.device, doc_mask)
        with autocast:
            logits = model(batch.input_ids, segments=batch.segments)
        keep = batch.labels != IGNORE
        loss_sum += float(F.cross_entropy(logits.float()[keep], batch.labels[keep], reduction="sum"))
        correct += float((logits.argmax(-1)[keep] == batch.labels[keep]).sum())
        count += float(keep.sum())
    model.train(was_training)
    loss_sum, correct, count = world.sum(loss_sum, correct, count)
    loss = loss_sum / max(count, 1.0)
    return {"loss": loss, "accuracy": correct / max(count, 1.0), "perplexity": math.exp(min(loss, 50.0)),
            "targets": int(count)}

"""The one batched forward pass of a classifier: token ids in, logits out, in input order.

Texts are sorted by token length and cut into batches (:func:`plan_batches`), each right-padded only to
its own longest text (:func:`pad_batch`), so short texts do not pay for long ones. Fine-tuning's
evaluation and every predictor in ``gristmill.serve`` (``Classifier``, ``Tagger``, ``MaskFiller``) batch
through here; what differs between them is only the ``forward`` callable (a PyTorch model, an
onnxruntime session) and what they do with the logits.

Must not: tokenize (``gristmill.train.encoding`` does), know labels, or import ``gristmill.serve``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

Forward = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``(input_ids, attention_mask, token_type_ids)`` -> logits, all int64 ``[rows, width]`` in."""

PASS_COST_TOKENS = 32
"""What one forward pass costs beyond its tokens, in padded-token equivalents (measured on CPU: a pass of
one 40-token text took about as long as 46 tokens inside a larger batch)."""


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def pad_batch(encoded: Sequence[tuple[list[int], list[int]]], pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right-pad ``(ids, token types)`` pairs to the longest of the batch: int64 ids, mask and types."""
    width = max(len(ids) for ids, _ in encoded)
    ids = np.full((len(encoded), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(encoded), width), dtype=np.int64)
    types = np.zeros((len(encoded), width), dtype=np.int64)
    for row, (tok, typ) in enumerate(encoded):
        ids[row, : len(tok)] = tok
        mask[row, : len(tok)] = 1
        types[row, : len(typ)] = typ
    return ids, mask, types


def plan_batches(sorted_lengths: Sequence[int], max_rows: int, pass_cost: int = PASS_COST_TOKENS) -> list[tuple[int, int]]:
    """Cut texts sorted by length into batches ``[start, stop)`` of at most ``max_rows`` that minimise padded work.

    A batch costs ``rows x its longest length + pass_cost``: one batch of 15 random-length texts padded to
    the longest did 3x the work of the texts themselves and ran 2.5x slower than 15 single passes, while
    many small passes pay the per-pass cost. Dynamic programming over the sorted order finds the best
    cut in O(n x max_rows); for a dense, sorted window it gives full batches.
    """
    n = len(sorted_lengths)
    lengths = np.asarray(sorted_lengths, dtype=np.float64)
    best = np.zeros(n + 1)
    cut = np.zeros(n + 1, dtype=np.int64)
    for stop in range(1, n + 1):
        starts = np.arange(max(0, stop - max_rows), stop)
        costs = best[starts] + (stop - starts) * lengths[stop - 1] + pass_cost
        k = int(costs.argmin())
        best[stop], cut[stop] = costs[k], starts[k]
    batches = []
    stop = n
    while stop > 0:
        batches.append((int(cut[stop]), stop))
        stop = int(cut[stop])
    return batches[::-1]


def length_sorted_batches(encoded: Sequence[tuple[list[int], Any]], max_rows: int) -> list[np.ndarray]:
    """Row indices of each batch: sorted by token length, cut by :func:`plan_batches`."""
    lengths = np.fromiter((len(ids) for ids, _ in encoded), dtype=np.int64, count=len(encoded))
    order = np.argsort(lengths, kind="stable")
    return [order[start:stop] for start, stop in plan_batches(lengths[order], max_rows)]


def batched_logits(encoded: Sequence[tuple[list[int], list[int]]], pad_id: int, forward: Forward, max_rows: int,
                   per_token: bool = False) -> list[np.ndarray]:
    """Float32 logits of each ``(ids, token types)`` example, in input order.

    ``per_token``: each example's logits are ``[its length, labels]`` (padding cut off); otherwise ``[labels]``.
    """
    out: list[np.ndarray] = [np.empty(0, dtype=np.float32)] * len(encoded)
    for rows in length_sorted_batches(encoded, max_rows):
        logits = np.asarray(forward(*pad_batch([encoded[i] for i in rows], pad_id)), dtype=np.float32)
        for k, i in enumerate(rows):
            out[i] = logits[k, : len(encoded[i][0])] if per_token else logits[k]
    return out


def torch_forward(model: torch.nn.Module) -> Forward:
    """A PyTorch classifier as a :data:`Forward`: eval mode, ``torch.inference_mode``, on the model's device."""
    import torch

    model.eval()
    device = next(model.parameters()).device

    def forward(input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = model(torch.from_numpy(input_ids).to(device),
                        attention_mask=torch.from_numpy(attention_mask).to(device),
                        token_type_ids=torch.from_numpy(token_type_ids).to(device))
            return out.float().cpu().numpy()

    return forward

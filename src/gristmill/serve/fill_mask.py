"""The :class:`MaskFiller`: a pretrained masked-LM (``RUN/`` folder) proposing tokens for each ``[MASK]``.

Behind ``gristmill fill-mask`` and the service's ``POST /fill-mask``; both print or return exactly what
:meth:`MaskFiller.run_batch` gives (:class:`FilledMask` per mask). PyTorch, CPU, inference only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

import numpy as np

from gristmill.serve.backends import PredictError
from gristmill.serve.classifier import clean_text
from gristmill.tokenizer.tokdir import load_tokenizer
from gristmill.train.encoding import encode_sequences, plain, special_ids
from gristmill.train.forward import length_sorted_batches, pad_batch


class Candidate(TypedDict):
    """One proposed token for a ``[MASK]`` and its probability."""

    token: str
    token_id: int
    score: float


class FilledMask(TypedDict):
    """The top candidates for the ``[MASK]`` at token ``position`` (``[CLS]`` is position 0)."""

    position: int
    candidates: list[Candidate]


class MaskFiller:
    """A pretrained masked-LM (``RUN/`` folder): the top candidates for each ``[MASK]`` of a text."""

    def __init__(self, run_dir: str | Path, batch_size: int = 32) -> None:
        from gristmill.train.checkpoint import load_run

        self.model, self.config, tokdir = load_run(run_dir)
        self.model.eval()
        self.tokenizer = plain(load_tokenizer(tokdir))
        self.pad_id = special_ids(self.tokenizer)[0]
        self.mask_id = self.tokenizer.token_to_id("[MASK]")
        if self.mask_id is None:
            raise PredictError(f"the tokenizer of {run_dir} has no [MASK] token")
        self.max_length = int(self.config.max_position)
        self.batch_size = batch_size
        self.source = str(run_dir)
        self.forward_passes = 0

    def encode(self, texts: Sequence[str]) -> list[tuple[list[int], list[int]]]:
        return encode_sequences(self.tokenizer, [clean_text(t) for t in texts], self.max_length)

    def check(self, texts: Sequence[str], max_masks: int = 32) -> list[str | None]:
        """Per text, why it cannot be filled (no [MASK] within the model's length, too many), or None."""
        problems: list[str | None] = []
        for ids, _ in self.encode(texts):
            n = ids.count(self.mask_id)
            if n == 0:
                problems.append(f"no [MASK] token within the first {self.max_length} tokens")
            elif n > max_masks:
                problems.append(f"{n} [MASK] tokens; at most {max_masks}")
            else:
                problems.append(None)
        return problems

    def run_batch(self, items: list[tuple[str, int]]) -> list[list[FilledMask]]:
        """For each ``(text, top_k)``: ``[{"position", "candidates": [{"token", "token_id", "score"}]}]`` per mask."""
        import torch

        encoded = self.encode([t for t, _ in items])
        results: list[list[FilledMask]] = [[] for _ in items]
        for rows in length_sorted_batches(encoded, self.batch_size):
            ids, mask, types = pad_batch([encoded[i] for i in rows], self.pad_id)
            masked = ids == self.mask_id
            with torch.inference_mode():
                logits = self.model(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                                    token_type_ids=torch.from_numpy(types), masked_positions=torch.from_numpy(masked))
                probs = torch.softmax(logits.float(), dim=-1)
            self.forward_passes += 1
            flat = 0  # logits rows follow the masked positions in row-major order
            for k, row in enumerate(rows):
                top_k = items[row][1]
                for position in np.flatnonzero(masked[k]):
                    scores, token_ids = probs[flat].topk(min(top_k, probs.shape[-1]))
                    results[row].append({"position": int(position), "candidates": [
                        {"token": self.tokenizer.id_to_token(int(t)), "token_id": int(t), "score": round(float(s), 6)}
                        for s, t in zip(scores, token_ids, strict=True)]})
                    flat += 1
        return results

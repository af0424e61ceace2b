"""Perplexity of documents under a decoder run: per document and for the whole corpus.

Each document is scored as the model saw documents in pretraining: ``[BOS] text [EOS]``, every token
after the start token predicted from the ones before it (so the end of the document counts too).
A document longer than the context is scored in windows of ``context`` tokens that advance by
``stride`` tokens; each token is scored once, in the first window where it is not in the overlap, so
it keeps at least ``context - stride`` tokens of history (the Hugging Face perplexity recipe).

Per-document perplexity is ``exp(mean negative log-likelihood)`` over its tokens; the corpus figure
is ``exp(total NLL / total tokens)``, so long documents weigh more, as in a language-modelling
benchmark. Scored with a reference model trained on trusted text, per-document perplexity is a
data-quality signal (CCNet, Wenzek et al. 2020): keep a threshold for later, compute the score once.
This module owns scoring only; reading files is ``read_documents``, the command is in
``decoder_commands``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from gristmill.data.readers.jsonl import JsonlError, read_jsonl
from gristmill.errors import GristmillError
from gristmill.tokenizer import load_tokenizer
from gristmill.train.checkpoint import load_decoder_run

if TYPE_CHECKING:
    from gristmill.model.config import DecoderConfig


class PerplexityError(GristmillError, ValueError):
    """An input the user can fix (not JSONL, no text field)."""


@dataclass
class DocumentScore:
    id: str
    tokens: int
    nll: float

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.nll / max(self.tokens, 1), 50.0))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "tokens": self.tokens, "nll": round(self.nll, 4),
                "perplexity": round(self.perplexity, 4)}


def windows(length: int, context: int, stride: int) -> list[tuple[int, int, int]]:
    """(start, end, first scored position) of each window over ``length`` tokens; positions 1.. are scored."""
    if length <= context:
        return [(0, length, 1)]
    out, scored_to, start = [], 1, 0
    while scored_to < length:
        end = min(start + context, length)
        out.append((start, end, scored_to))
        scored_to = end
        start = end - (context - stride) if end < length else end
        if end == length:
            break
    return out


@torch.inference_mode()
def score_documents(model: torch.nn.Module, config: DecoderConfig, token_lists: list[list[int]], batch_size: int = 16,
                    stride: int | None = None) -> list[tuple[int, float]]:
    """(scored tokens, summed NLL) for each document's ids (``[BOS] ... [EOS]`` already added)."""
    context = config.max_position
    stride = stride or context // 2
    if not 0 < stride <= context - 1:
        raise PerplexityError(f"stride must be between 1 and {context - 1}")
    # Every window of every document is one row; rows of similar length share a batch (little padding).
    rows = []
    for doc, ids in enumerate(token_lists):
        for start, end, first in windows(len(ids), context, stride):
            rows.append((doc, ids[start:end], first - start))
    rows.sort(key=lambda r: len(r[1]))
    totals = [[0, 0.0] for _ in token_lists]
    for b in range(0, len(rows), batch_size):
        chunk = rows[b:b + batch_size]
        width = max(len(r[1]) for r in chunk)
        ids = torch.full((len(chunk), width), config.pad_id, dtype=torch.long)
        weight = torch.zeros(len(chunk), width, dtype=torch.bool)  # positions whose token is scored
        for i, (_, row_ids, first) in enumerate(chunk):
            ids[i, :len(row_ids)] = torch.tensor(row_ids)
            weight[i, first:len(row_ids)] = True
        # Right padding: a causal mask already keeps real tokens from seeing the padding after them.
        logits = model(ids).float()
        nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
        nll = nll * weight[:, 1:]
        for i, (doc, _, _) in enumerate(chunk):
            totals[doc][0] += int(weight[i, 1:].sum())
            totals[doc][1] += float(nll[i].sum())
    return [(int(n), float(s)) for n, s in totals]


def read_documents(path: str | Path, text_field: str = "text", id_field: str = "id") -> Iterator[tuple[str, str]]:
    """(id, text) from a JSONL file (plain, .gz, .zst); a record without an id gets its line number.

    A bad line stops the run with one line naming the file and line (``gristmill.data.readers.jsonl.read_jsonl``).
    """
    try:
        for line in read_jsonl(path, errors="raise"):
            record, n = line.record, line.number
            if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
                raise PerplexityError(f"{path}:{n}: no string field {text_field!r}")
            yield str(record.get(id_field, n)), record[text_field]
    except JsonlError as exc:
        raise PerplexityError(str(exc)) from None
    except OSError as exc:
        raise PerplexityError(f"cannot read {path}: {exc}") from None


def perplexity(run_dir: str | Path, documents: list[tuple[str, str]], batch_size: int = 16,
               stride: int | None = None) -> tuple[list[DocumentScore], dict[str, float]]:
    """Per-document scores and the corpus summary for (id, text) pairs under the decoder in ``run_dir``."""
    model, config, tokdir = load_decoder_run(run_dir)
    tokenizer = load_tokenizer(tokdir)
    token_lists = [[config.bos_id, *tokenizer.encode(text, add_special_tokens=False).ids, config.eos_id]
                   for _, text in documents]
    totals = score_documents(model, config, token_lists, batch_size, stride)
    scores = [DocumentScore(doc_id, n, s) for (doc_id, _), (n, s) in zip(documents, totals)]
    tokens = sum(s.tokens for s in scores)
    nll = sum(s.nll for s in scores)
    summary = {"documents": len(scores), "tokens": tokens, "nll_per_token": nll / max(tokens, 1),
               "perplexity": math.exp(min(nll / max(tokens, 1), 50.0))}
    return scores, summary

"""Text generation from a decoder run: sampling, the KV-cache loop, stop strings and streaming.

:class:`TextGenerator` turns prompts into completions. A prompt is ``[BOS] + tokens`` (``[CLS]`` in
gristmill's shards: every training document starts after one), prompts of a batch are left-padded,
and each step feeds the model only the newest token against the :class:`KVCache` (``use_cache=False``
recomputes the whole sequence each step instead; it exists to show what the cache saves and to test
that both give the same tokens). Each step's scores go through repetition penalty, temperature,
top-k and top-p, in that order (as ``transformers`` does), then argmax (greedy) or a draw from a
seeded generator. A row stops at ``[EOS]`` (``[SEP]``), at a stop string (cut off before it), after
``max_new_tokens``, or when the model's context is full.

Prompts longer than the context are an error unless ``truncate`` is set, which keeps the prompt's
last tokens (see docs/decoder.md). This module owns generation only; the model is
``gristmill.model.decoder`` and the command line and HTTP route call in here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from gristmill.data.readers.jsonl import JsonlError, read_jsonl
from gristmill.errors import GristmillError
from gristmill.model.decoder import KVCache, positions_from_mask
from gristmill.tokenizer import load_tokenizer
from gristmill.train.checkpoint import CheckpointError, load_decoder_run

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from gristmill.model.config import DecoderConfig


class GenerateError(GristmillError, ValueError):
    """A prompt or an option the user can fix (too long, bad sampling values, not a decoder run)."""


@dataclass
class Sampling:
    """How to pick each next token. ``temperature`` 0 means greedy (argmax)."""

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int = 0
    ignore_eos: bool = False
    truncate: bool = False

    def check(self) -> None:
        if self.max_new_tokens < 0:
            raise GenerateError("max_new_tokens must be >= 0")
        if self.temperature < 0:
            raise GenerateError("temperature must be >= 0 (0 = greedy)")
        if self.top_k < 0:
            raise GenerateError("top_k must be >= 0 (0 = off)")
        if not 0.0 < self.top_p <= 1.0:
            raise GenerateError("top_p must be in (0, 1]")
        if self.repetition_penalty <= 0:
            raise GenerateError("repetition_penalty must be positive (1 = off)")
        if any(not s for s in self.stop):
            raise GenerateError("stop strings must not be empty")


@dataclass
class Completion:
    prompt: str
    text: str
    tokens: list[int]
    prompt_tokens: int
    finish_reason: str  # "eos", "stop", "length" (max_new_tokens or the context is full)

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "text": self.text, "prompt_tokens": self.prompt_tokens,
                "new_tokens": len(self.tokens), "finish_reason": self.finish_reason}


# ---------------------------------------------------------------- scores -> next token


def apply_repetition_penalty(scores: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's penalty: scores of tokens already present are divided by ``penalty`` (multiplied if negative).

    ``seen`` is bool [B, V]: which tokens occur in each row's prompt or output so far.
    """
    penalised = torch.where(scores < 0, scores * penalty, scores / penalty)
    return torch.where(seen, penalised, scores)


def filter_top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    if k <= 0 or k >= scores.shape[-1]:
        return scores
    kth = scores.topk(k, dim=-1).values[..., -1:]
    return scores.masked_fill(scores < kth, float("-inf"))


def filter_top_p(scores: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of tokens whose probability adds up to at least ``p`` (always the top one)."""
    if p >= 1.0:
        return scores
    ordered, order = scores.sort(dim=-1, descending=True)
    cumulative = ordered.softmax(-1).cumsum(-1)
    drop = cumulative - ordered.softmax(-1) >= p  # mass before this token already reaches p
    drop[..., 0] = False
    return scores.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


def next_tokens(logits: torch.Tensor, seen: torch.Tensor, sampling: Sampling,
                generator: torch.Generator) -> torch.Tensor:
    """[B, V] logits -> [B] token ids."""
    scores = logits.float()
    if sampling.repetition_penalty != 1.0:
        scores = apply_repetition_penalty(scores, seen, sampling.repetition_penalty)
    if sampling.temperature == 0:
        return scores.argmax(-1)
    scores = filter_top_p(filter_top_k(scores / sampling.temperature, sampling.top_k), sampling.top_p)
    return torch.multinomial(scores.softmax(-1), 1, generator=generator).squeeze(-1)


# ---------------------------------------------------------------- stop strings and streaming text


class RowText:
    """The text of one row's new tokens, with stop strings and a safe prefix for streaming."""

    def __init__(self, decode: Callable[[list[int]], str], stop: list[str]) -> None:
        self.decode, self.stop = decode, stop
        self.hold = max((len(s) for s in stop), default=1) - 1
        self.text = ""
        self.emitted = 0
        self.stopped = False

    def update(self, ids: list[int]) -> None:
        text = self.decode(ids)
        cuts = [i for i in (text.find(s) for s in self.stop) if i >= 0]
        if cuts:
            text, self.stopped = text[:min(cuts)], True
        self.text = text

    def new_piece(self, final: bool = False) -> str:
        """Text not yet streamed that can no longer change: not the start of a stop string, not half a character."""
        end = len(self.text)
        if not final:
            while end > self.emitted and self.text[end - 1] == "\ufffd":  # an unfinished UTF-8 sequence
                end -= 1
            end = max(self.emitted, end - self.hold)
        piece, self.emitted = self.text[self.emitted:end], max(self.emitted, end)
        return piece


# ---------------------------------------------------------------- the generator


class TextGenerator:
    """A decoder run loaded for generation (CPU, eval mode, inference only)."""

    def __init__(self, model: torch.nn.Module, config: DecoderConfig, tokenizer: Tokenizer, source: str = "") -> None:
        self.model, self.config, self.tokenizer = model.eval(), config, tokenizer
        self.source = source
        self.forward_passes = 0

    @classmethod
    def from_run(cls, run_dir: str | Path) -> TextGenerator:
        model, config, tokdir = load_decoder_run(run_dir)
        if not tokdir.is_dir():
            raise CheckpointError(f"{run_dir} has no tokenizer/ folder")
        return cls(model, config, load_tokenizer(tokdir), str(run_dir))

    def encode(self, prompt: str, truncate: bool = False) -> list[int]:
        """``[BOS] + tokens``; a prompt that fills the context is an error (or cut from the left)."""
        ids = [self.config.bos_id] + self.tokenizer.encode(prompt, add_special_tokens=False).ids
        context = self.config.max_position
        if len(ids) >= context:
            if not truncate:
                raise GenerateError(f"the prompt has {len(ids)} tokens (with the start token) but the model's "
                                    f"context is {context}, leaving no room to generate; shorten it or truncate "
                                    f"(keeps the last {context - 1})")
            ids = [self.config.bos_id] + ids[len(ids) - (context - 2):]
        return ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    @torch.inference_mode()
    def generate_ids(self, prompts: list[list[int]], sampling: Sampling, use_cache: bool = True,
                     on_step: Callable[[torch.Tensor], list[bool]] | None = None) -> tuple[list[list[int]], list[str]]:
        """New token ids for each prompt (ids, start token included) and why each row stopped.

        ``on_step`` sees each step's tokens [B] and returns, per row, whether a stop string ended it.
        """
        sampling.check()
        batch = len(prompts)
        lengths = [len(p) for p in prompts]
        width = max(lengths)
        context = self.config.max_position
        if width >= context:
            raise GenerateError(f"a prompt of {width} tokens leaves no room in the model's context of {context}")
        budget = min(sampling.max_new_tokens, context - width)
        out: list[list[int]] = [[] for _ in range(batch)]
        reasons = ["length"] * batch
        if budget == 0 or batch == 0:
            return out, reasons
        pad = self.config.pad_id
        ids = torch.tensor([[pad] * (width - n) + p for p, n in zip(prompts, lengths)], dtype=torch.long)
        mask = torch.tensor([[0] * (width - n) + [1] * n for n in lengths], dtype=torch.long)
        padded = min(lengths) < width
        seen = torch.zeros(batch, self.config.vocab_size, dtype=torch.bool)
        if sampling.repetition_penalty != 1.0:
            seen.scatter_(1, ids, mask.bool())
        generator = torch.Generator().manual_seed(sampling.seed)
        done = [False] * batch
        cache = KVCache(self.config, batch, width + budget) if use_cache else None
        positions = positions_from_mask(mask) if padded else None
        logits = self._forward(ids, mask if padded else None, positions, cache)
        # The loop keeps per-row state in Python lists: for small models a step costs about as much
        # as the Python around it, so it does one tensor-to-list conversion per step and nothing more.
        for step in range(budget):
            token = next_tokens(logits, seen, sampling, generator)
            if any(done):
                token = token.masked_fill(torch.tensor(done), pad)
            values = token.tolist()
            stopped = on_step(token) if on_step is not None else None
            for row, value in enumerate(values):
                if done[row]:
                    continue
                out[row].append(value)
                if stopped is not None and stopped[row]:
                    reasons[row], done[row] = "stop", True
                elif value == self.config.eos_id and not sampling.ignore_eos:
                    reasons[row], done[row] = "eos", True
            if all(done) or step == budget - 1:
                break
            if sampling.repetition_penalty != 1.0:
                seen[torch.arange(batch), token] = True
            if padded:
                mask = torch.cat([mask, torch.ones(batch, 1, dtype=torch.long)], dim=1)
                positions = torch.cat([positions, positions[:, -1:] + 1], dim=1)
            if use_cache:
                logits = self._forward(token[:, None], mask if padded else None,
                                       positions[:, -1:] if padded else None, cache)
            else:
                ids = torch.cat([ids, token[:, None]], dim=1)
                logits = self._forward(ids, mask if padded else None, positions, None)
        return out, reasons

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor | None, positions: torch.Tensor | None,
                 cache: KVCache | None) -> torch.Tensor:
        self.forward_passes += 1
        return self.model(ids, attention_mask=mask, positions=positions, cache=cache, last_only=True)[:, -1]

    def generate(self, prompts: list[str], sampling: Sampling, use_cache: bool = True,
                 stream: Callable[[int, str], None] | None = None) -> list[Completion]:
        """Completions for ``prompts`` (one batch); ``stream(row, piece)`` receives text as it is final."""
        sampling.check()
        encoded = [self.encode(p, sampling.truncate) for p in prompts]
        rows = [RowText(self.decode, sampling.stop) for _ in prompts]
        so_far: list[list[int]] = [[] for _ in prompts]
        watch = bool(sampling.stop) or stream is not None

        def on_step(tokens: torch.Tensor) -> list[bool]:
            stopped = []
            for row, text in enumerate(rows):
                if text.stopped:
                    stopped.append(False)
                    continue
                so_far[row].append(int(tokens[row]))
                text.update(so_far[row])
                if stream is not None:
                    piece = text.new_piece()
                    if piece:
                        stream(row, piece)
                stopped.append(text.stopped)
            return stopped

        ids, reasons = self.generate_ids(encoded, sampling, use_cache, on_step if watch else None)
        completions = []
        for row, prompt in enumerate(prompts):
            text = rows[row]
            if not watch:
                text.update(ids[row])
            if stream is not None:
                piece = text.new_piece(final=True)
                if piece:
                    stream(row, piece)
            completions.append(Completion(prompt, text.text, ids[row], len(encoded[row]), reasons[row]))
        return completions


def read_prompts(path: str | Path, field_name: str = "prompt") -> Iterator[str]:
    """Prompts from a JSONL file (plain, .gz, .zst): objects with a ``prompt`` (or ``text``) field, or JSON strings.

    A bad line stops the run with one line naming the file and line (``gristmill.data.readers.jsonl.read_jsonl``).
    """
    try:
        for line in read_jsonl(path, errors="raise"):
            record, n = line.record, line.number
            if isinstance(record, str):
                yield record
                continue
            if not isinstance(record, dict):
                raise GenerateError(f"{path}:{n}: expected an object with a {field_name!r} field or a string")
            value = record.get(field_name, record.get("text"))
            if not isinstance(value, str):
                raise GenerateError(f"{path}:{n}: no string field {field_name!r} (or 'text')")
            yield value
    except JsonlError as exc:
        raise GenerateError(str(exc)) from None

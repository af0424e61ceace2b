"""Task examples as model inputs: tokenizing texts, text pairs and pre-split words into :class:`Encoded` ids.

``[CLS] text [SEP]`` for one text, ``[CLS] a [SEP] b [SEP]`` for a pair (token types 0 and 1, longest side cut
first), and for token tasks each word's tag on its first subword, the other subwords and the special tokens
getting :data:`IGNORE_INDEX`. Fine-tuning (``gristmill.train.finetune``) and prediction (``gristmill.serve``)
both encode through here, so a model sees at prediction exactly what it saw in training.

This module owns encoding only: it reads no files (``gristmill.train.tasks`` loads and samples the examples),
pads no batches and never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gristmill.model.loss import IGNORE
from gristmill.train.tasks import Example, SequenceExample, TaskError, TaskSpec, TokenExample

if TYPE_CHECKING:
    from tokenizers import Tokenizer

IGNORE_INDEX = IGNORE
"""Label of positions that do not count in the loss or the metrics (PyTorch's cross-entropy default)."""


@dataclass
class Encoded:
    """One example as token ids (special tokens included) and its target(s)."""

    input_ids: list[int]
    token_type_ids: list[int]
    labels: list[int]
    """One class index (sequence task) or one per position, :data:`IGNORE_INDEX` where nothing counts."""
    word_positions: list[int] = field(default_factory=list)
    """Token task: position of each word's first subword, or -1 when the word was cut off or vanished."""
    cut_tokens: int = 0
    """Tokens of the text, pair or words that did not fit in ``max_length`` and were cut off."""


def special_ids(tokenizer: Tokenizer) -> tuple[int, int, int]:
    """``([PAD], [CLS], [SEP])`` ids; a tokenizer without them was not made for these models."""
    ids = []
    for token in ("[PAD]", "[CLS]", "[SEP]"):
        tid = tokenizer.token_to_id(token)
        if tid is None:
            raise TaskError(f"the tokenizer has no {token} token; use a tokenizer made by `gristmill tokenizer train`")
        ids.append(tid)
    return ids[0], ids[1], ids[2]


def plain(tokenizer: Tokenizer) -> Tokenizer:
    """Turn off truncation and padding stored in a tokenizer file; we do both ourselves per batch."""
    if tokenizer.truncation is not None:
        tokenizer.no_truncation()
    if tokenizer.padding is not None:
        tokenizer.no_padding()
    return tokenizer


def _truncate_pair(a: list[int], b: list[int], budget: int) -> tuple[list[int], list[int]]:
    # Longest-first, as BERT does: cut one token at a time from whichever side is longer.
    while len(a) + len(b) > budget:
        if len(a) >= len(b):
            a = a[:-1]
        else:
            b = b[:-1]
    return a, b


def encode_sequences(
    tokenizer: Tokenizer, texts: Sequence[str], max_length: int, pairs: Sequence[str] | None = None,
) -> list[tuple[list[int], list[int]]]:
    """``[CLS] text [SEP]`` (or ``[CLS] a [SEP] b [SEP]``) cut to ``max_length``: (ids, token types)."""
    return [(ids, types) for ids, types, _ in _encode_and_cut(tokenizer, texts, max_length, pairs)]


def _encode_and_cut(
    tokenizer: Tokenizer, texts: Sequence[str], max_length: int, pairs: Sequence[str] | None = None,
) -> list[tuple[list[int], list[int], int]]:
    """:func:`encode_sequences` plus, per example, how many tokens were cut off."""
    _, cls, sep = special_ids(tokenizer)
    plain(tokenizer)
    first = [e.ids for e in tokenizer.encode_batch(list(texts), add_special_tokens=False)]
    if pairs is None:
        return [([cls, *ids[: max_length - 2], sep], [0] * (min(len(ids), max_length - 2) + 2),
                 max(0, len(ids) - (max_length - 2))) for ids in first]
    second = [e.ids for e in tokenizer.encode_batch(list(pairs), add_special_tokens=False)]
    out = []
    for a, b in zip(first, second, strict=True):
        whole = len(a) + len(b)
        a, b = _truncate_pair(a, b, max_length - 3)
        out.append(([cls, *a, sep, *b, sep], [0] * (len(a) + 2) + [1] * (len(b) + 1), whole - len(a) - len(b)))
    return out


def encode_sequence_examples(tokenizer: Tokenizer, examples: Sequence[SequenceExample], spec: TaskSpec) -> list[Encoded]:
    label2id = spec.label2id
    pairs = [ex.text_pair or "" for ex in examples] if spec.pair_field else None
    encoded = _encode_and_cut(tokenizer, [ex.text for ex in examples], spec.max_length, pairs)
    return [Encoded(ids, types, [label2id[ex.label]], cut_tokens=cut)
            for (ids, types, cut), ex in zip(encoded, examples, strict=True)]


def encode_words(tokenizer: Tokenizer, words_batch: Sequence[Sequence[str]], max_length: int) -> list[tuple[list[int], list[int]]]:
    """Pre-split words -> (ids with [CLS]/[SEP], position of each word's first subword or -1)."""
    return [(ids, positions) for ids, positions, _ in _encode_words_and_cut(tokenizer, words_batch, max_length)]


def _encode_words_and_cut(
    tokenizer: Tokenizer, words_batch: Sequence[Sequence[str]], max_length: int,
) -> list[tuple[list[int], list[int], int]]:
    """:func:`encode_words` plus, per example, how many subword tokens were cut off."""
    _, cls, sep = special_ids(tokenizer)
    plain(tokenizer)
    out = []
    for enc in tokenizer.encode_batch([list(w) for w in words_batch], is_pretokenized=True, add_special_tokens=False):
        n_words = max((w for w in enc.word_ids if w is not None), default=-1) + 1
        ids = enc.ids[: max_length - 2]
        positions = [-1] * n_words
        for pos, word in enumerate(enc.word_ids[: len(ids)]):
            if word is not None and positions[word] == -1:
                positions[word] = pos + 1  # +1 for [CLS]
        out.append(([cls, *ids, sep], positions, len(enc.ids) - len(ids)))
    return out


def encode_token_examples(tokenizer: Tokenizer, examples: Sequence[TokenExample], spec: TaskSpec) -> list[Encoded]:
    """Label each word's first subword; other subwords, special tokens and cut-off words are ignored."""
    label2id = spec.label2id
    result = []
    encoded = _encode_words_and_cut(tokenizer, [ex.tokens for ex in examples], spec.max_length)
    for ex, (ids, positions, cut) in zip(examples, encoded, strict=True):
        positions = (positions + [-1] * len(ex.tokens))[: len(ex.tokens)]  # words that produced no subword
        labels = [IGNORE_INDEX] * len(ids)
        for tag, pos in zip(ex.tags, positions, strict=True):
            if pos >= 0:
                labels[pos] = label2id[tag]
        result.append(Encoded(ids, [0] * len(ids), labels, positions, cut_tokens=cut))
    return result


def encode_examples(tokenizer: Tokenizer, examples: Sequence[Example], spec: TaskSpec) -> list[Encoded]:
    if not examples:
        return []
    if spec.type == "token":
        return encode_token_examples(tokenizer, examples, spec)  # type: ignore[arg-type]
    return encode_sequence_examples(tokenizer, examples, spec)  # type: ignore[arg-type]


def cut_summary(encoded: Sequence[Encoded]) -> dict[str, float | int]:
    """How much ``max_length`` cut from a split: texts cut, tokens cut, and that as a share of all their tokens."""
    cut = sum(e.cut_tokens for e in encoded)
    whole = cut + sum(len(e.input_ids) for e in encoded)
    return {"texts": len(encoded), "texts_cut": sum(1 for e in encoded if e.cut_tokens),
            "tokens_cut": cut, "share_of_tokens_cut": round(cut / whole, 4) if whole else 0.0}


def cut_warning(summary: dict[str, float | int], split: str, max_length: int) -> str | None:
    """One line for the log when ``max_length`` cut texts of a split (None when it cut nothing)."""
    if not summary["texts_cut"]:
        return None
    return (f"{summary['texts_cut']} of {summary['texts']} {split} texts are longer than --max-length {max_length} "
            f"and were cut ({summary['share_of_tokens_cut']:.0%} of the split's tokens unseen); a longer "
            "--max-length lets the model read them whole")

"""Train a tokenizer on a corpus with Hugging Face ``tokenizers`` (``gristmill tokenizer train``).

Three kinds, all with the specials ``[PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4`` and a BERT-style
post-processor (``[CLS] A [SEP]`` and ``[CLS] A [SEP] B [SEP]``):

- ``wordpiece`` (default): BERT's normaliser and pre-tokenizer, ``##`` continuation pieces;
- ``bpe``: byte-level BPE as in GPT-2/RoBERTa (never an unknown token);
- ``unigram``: SentencePiece-style Unigram with ``▁`` word markers and whitespace collapsed.

CJK handling (on by default) makes each CJK ideograph its own pre-token, as BERT does, so a Chinese
sentence is not one huge "word". The corpus is streamed in batches; the trainer keeps only counts.
This module builds and trains the pipeline; the file format of the result is ``tokdir.py``'s.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from gristmill.data import storage
from gristmill.tokenizer.source import plan_units, read_unit, resolve_input
from gristmill.tokenizer.tokdir import SPECIAL_TOKENS, TokenizerError, save_tokdir, tokenizer_file

KINDS = ("wordpiece", "bpe", "unigram")
NORMALIZATIONS = ("nfc", "nfd", "nfkc", "nfkd")
# BERT's _is_chinese_char ranges (CJK Unified Ideographs and their extensions, compatibility ideographs).
CJK_CHAR = (r"[\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}"
               r"\x{2B740}-\x{2B81F}\x{2B820}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}]")


def _unicode(form: str | None) -> list[normalizers.Normalizer]:
    if form is None:
        return []
    if form not in NORMALIZATIONS:
        raise TokenizerError(f"unknown Unicode normalisation {form!r}: use one of {', '.join(NORMALIZATIONS)} or none")
    return [getattr(normalizers, form.upper())()]


def _defaults(kind: str, lowercase: bool | None, normalization: str | None) -> tuple[bool, str | None]:
    if kind not in KINDS:
        raise TokenizerError(f"unknown tokenizer kind {kind!r}: use one of {', '.join(KINDS)}")
    if lowercase is None:
        lowercase = kind == "wordpiece"
    if normalization == "auto":
        normalization = "nfkc" if kind == "unigram" else None
    if normalization in ("none", ""):
        normalization = None
    return lowercase, normalization


def build_tokenizer(kind: str = "wordpiece", lowercase: bool | None = None, normalization: str | None = "auto",
                    strip_accents: bool | None = None, cjk: bool = True) -> Tokenizer:
    """An untrained tokenizer pipeline of ``kind``; ``None``/``"auto"`` options take the kind's usual choice.

    Defaults: wordpiece lowercases (BERT uncased: accents stripped with it) and uses no extra Unicode
    form; bpe keeps case and bytes as they are; unigram keeps case and applies NFKC.
    """
    lowercase, normalization = _defaults(kind, lowercase, normalization)
    unk = SPECIAL_TOKENS["unk"]
    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token=unk, max_input_chars_per_word=100))
        tok.normalizer = normalizers.Sequence(_unicode(normalization) + [normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=cjk, strip_accents=strip_accents, lowercase=lowercase)])
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece(prefix="##")
    else:
        steps = _unicode(normalization)
        if strip_accents:
            steps += [normalizers.NFD(), normalizers.StripAccents()]
        if lowercase:
            steps.append(normalizers.Lowercase())
        if kind == "bpe":
            tok = Tokenizer(models.BPE())
            byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
            # A space before an ideograph stays with it, so the space is never a word of its own.
            cjk_split = pre_tokenizers.Split(Regex(" ?" + CJK_CHAR), behavior="isolated")
            tok.pre_tokenizer = pre_tokenizers.Sequence([cjk_split, byte_level]) if cjk else byte_level
            tok.decoder = decoders.ByteLevel()
        else:
            tok = Tokenizer(models.Unigram())
            # SentencePiece's default: runs of whitespace become one space, so newlines never become [UNK].
            steps += [normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()]
            metaspace = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
            cjk_split = pre_tokenizers.Split(Regex("▁?" + CJK_CHAR), behavior="isolated")
            tok.pre_tokenizer = pre_tokenizers.Sequence([metaspace, cjk_split]) if cjk else metaspace
            tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
        if steps:
            tok.normalizer = normalizers.Sequence(steps)
    return tok


def _post_processor(tok: Tokenizer, kind: str) -> processors.PostProcessor:
    cls, sep = SPECIAL_TOKENS["cls"], SPECIAL_TOKENS["sep"]
    template = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))])
    if kind == "bpe":
        return processors.Sequence([processors.ByteLevel(trim_offsets=False), template])
    return template


def _trainer(kind: str, vocab_size: int, min_frequency: int, limit_alphabet: int | None,
             show_progress: bool) -> trainers.Trainer:
    specials = list(SPECIAL_TOKENS.values())
    if kind == "wordpiece":
        return trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
                                         limit_alphabet=limit_alphabet, continuing_subword_prefix="##",
                                         show_progress=show_progress)
    if kind == "bpe":
        return trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
                                   initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=show_progress)
    return trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token=SPECIAL_TOKENS["unk"],
                                   show_progress=show_progress)


LEGACY_TOKENIZER = ("gristmill.json", "tokenizer.json")
"""A tokenizer folder made before output markers: replaceable like a marked one."""


def iter_texts(input: str | Path | list[str | Path], max_documents: int | None = None, text_field: str = "text",
               batch_size: int = 1000, counter: dict[str, int] | None = None) -> Iterator[list[str]]:
    """Stream batches of non-empty texts from a corpus (see ``source.resolve_input``)."""
    files, _ = resolve_input(input)
    seen = 0
    for unit in plan_units(files, docs_per_unit=1 << 62):
        for _, texts in read_unit(unit, text_field=text_field, batch_size=batch_size):
            batch = [t for t in texts if isinstance(t, str) and t.strip()]
            if max_documents is not None:
                batch = batch[: max(0, max_documents - seen)]
            seen += len(batch)
            if counter is not None:
                counter["documents"] = seen
            if batch:
                yield batch
            if max_documents is not None and seen >= max_documents:
                return


def train_tokenizer(input: str | Path | list[str | Path], out: str | Path, kind: str = "wordpiece",
                    vocab_size: int = 32000, lowercase: bool | None = None, normalization: str | None = "auto",
                    strip_accents: bool | None = None, cjk: bool = True, min_frequency: int = 2,
                    limit_alphabet: int | None = 1000, max_documents: int | None = None,
                    model_max_length: int = 512, text_field: str = "text", show_progress: bool = True,
                    overwrite: bool = False, allow_incomplete: bool = False) -> Path:
    """Train a ``kind`` tokenizer on ``input`` and write it as a Hugging Face folder at ``out``.

    ``out`` must not be or contain an input; a non-empty ``out`` is replaced only with ``overwrite`` and only
    when gristmill made it as a tokenizer folder; an unfinished gristmill output is read only with ``allow_incomplete``.
    """
    out = Path(out)
    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise TokenizerError(f"vocab_size {vocab_size} is too small")
    items = [input] if isinstance(input, (str, Path)) else list(input)
    storage.check_not_input(out, items)
    for item in items:
        storage.require_complete(item, allow_incomplete)
    with storage.output_lock(out):
        if storage.has_content(out):
            if (out / "tokenizer.json").exists() and not overwrite:
                raise TokenizerError(f"{out} already holds a tokenizer; pass --overwrite to replace it "
                                     "(token shards made with the old one will refuse the new one)")
            if overwrite:
                storage.remove_output(out, "tokenizer", legacy=LEGACY_TOKENIZER)
            elif storage.output_kind(out, LEGACY_TOKENIZER) not in ("tokenizer", "legacy"):
                raise TokenizerError(f"{out} is not empty and is not a gristmill tokenizer folder; "
                                     "choose a new or empty --out")
        storage.mark_output(out, "tokenizer")
        _train(items, out, kind, vocab_size, lowercase, normalization, strip_accents, cjk, min_frequency,
               limit_alphabet, max_documents, model_max_length, text_field, show_progress)
        storage.mark_complete(out, "tokenizer")
    return out


def _train(input: list[str | Path], out: Path, kind: str, vocab_size: int, lowercase: bool | None,
           normalization: str | None, strip_accents: bool | None, cjk: bool, min_frequency: int,
           limit_alphabet: int | None, max_documents: int | None, model_max_length: int, text_field: str,
           show_progress: bool) -> None:
    """Train and save; the caller holds the output folder's lock."""
    lowercase, normalization = _defaults(kind, lowercase, normalization)
    tok = build_tokenizer(kind, lowercase, normalization, strip_accents, cjk)
    files, _ = resolve_input(input)
    # The trainer's progress bar needs the number of documents; counting is cheap next to training.
    total = sum(u.documents for u in plan_units(files, docs_per_unit=1 << 62))
    if max_documents is not None:
        total = min(total, max_documents)
    counter: dict[str, int] = {"documents": 0}
    t0 = time.perf_counter()
    tok.train_from_iterator(iter_texts(files, max_documents, text_field, counter=counter),
                            _trainer(kind, vocab_size, min_frequency, limit_alphabet, show_progress), length=total)
    seconds = time.perf_counter() - t0
    if counter["documents"] == 0:
        raise TokenizerError(f"{input} holds no documents with text to train on")
    for key, name in SPECIAL_TOKENS.items():
        assert tok.token_to_id(name) == list(SPECIAL_TOKENS).index(key), f"{name} is not at its fixed id"
    tok.post_processor = _post_processor(tok, kind)
    record: dict[str, Any] = {
        "kind": kind, "vocab_size": tok.get_vocab_size(), "requested_vocab_size": vocab_size,
        "lowercase": lowercase, "normalization": normalization, "strip_accents": strip_accents, "cjk": cjk,
        "min_frequency": min_frequency, "limit_alphabet": limit_alphabet,
        "input": [str(f) for f in files], "documents": counter["documents"], "seconds": round(seconds, 3),
    }
    save_tokdir(tok, out, lowercase=lowercase, model_max_length=model_max_length, extra=record)
    tokenizer_file(out)

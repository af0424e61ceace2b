"""Train a tokenizer on a corpus with Hugging Face ``tokenizers`` (``gristmill tokenizer train``).

Three kinds, all with the specials ``[PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4`` and a BERT-style
post-processor (``[CLS] A [SEP]`` and ``[CLS] A [SEP] B [SEP]``):

- ``wordpiece`` (default): BERT's normaliser and pre-tokenizer, ``##`` continuation pieces;
- ``bpe``: byte-level BPE as in GPT-2/RoBERTa (never an unknown token);
- ``unigram``: SentencePiece-style Unigram with ``▁`` word markers and whitespace collapsed.

CJK handling (on by default) makes each CJK ideograph its own pre-token, as BERT does, so a Chinese
sentence is not one huge "word". ``alphabet="cjk"`` (wordpiece, unigram) also puts every common Han
character in the vocabulary whether or not the corpus has it (:func:`cjk_alphabet`), so text the
tokenizer never saw does not turn into ``[UNK]``; byte-level ``bpe`` never needs it. The corpus is
streamed in batches; the trainer keeps only counts.
This module builds and trains the pipeline; the file format of the result is ``tokdir.py``'s.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from gristmill.data import storage
from gristmill.tokenizer.source import plan_units, read_unit, resolve_input
from gristmill.tokenizer.tokdir import (
    SPECIAL_TOKENS,
    TOKENIZER_JSON,
    TokenizerError,
    save_tokdir,
    tokenizer_file,
)

KINDS = ("wordpiece", "bpe", "unigram")
ALPHABETS = ("cjk",)
NORMALIZATIONS = ("nfc", "nfd", "nfkc", "nfkd")
# BERT's _is_chinese_char ranges (CJK Unified Ideographs and their extensions, compatibility ideographs).
CJK_CHAR = (r"[\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}"
               r"\x{2B740}-\x{2B81F}\x{2B820}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}]")


def cjk_alphabet() -> list[str]:
    """Every Han character of GB 2312 (6,763, Simplified) and of Big5's frequent set (5,401, Traditional),
    with CJK and full-width punctuation: 8,883 characters, in code-point order.

    Together they cover all but a few characters in ten thousand of modern Chinese text in either
    script (GB 2312 alone was designed for 99.99% of Simplified usage). Enumerated from Python's own
    codecs, so nothing is downloaded and the list is the same everywhere.
    """
    chars: set[str] = set()
    for lead in range(0xB0, 0xF8):  # GB 2312 rows 16-87: the Han characters
        for trail in range(0xA1, 0xFF):
            with contextlib.suppress(UnicodeDecodeError):
                chars.add(bytes([lead, trail]).decode("gb2312"))
    for lead in range(0xA4, 0xC7):  # Big5 frequently used characters, 0xA440-0xC67E
        for trail in [*range(0x40, 0x7F), *range(0xA1, 0xFF)]:
            if (lead, trail) <= (0xC6, 0x7E):
                with contextlib.suppress(UnicodeDecodeError):
                    chars.add(bytes([lead, trail]).decode("big5"))
    chars.update("、。〈〉《》「」『』【】〔〕〖〗〜・（）！？，．：；｛｝～［］＂＇＜＞＝＋－＊／＼＿｜％＃＆＠")
    return sorted(chars)


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
             show_progress: bool, alphabet: list[str] | None = None) -> trainers.Trainer:
    specials = list(SPECIAL_TOKENS.values())
    if kind == "wordpiece":
        # The trainer ranks the initial alphabet above every corpus character and then cuts the alphabet
        # to limit_alphabet, so the limit must leave room for all of it and for the corpus's own.
        limit = limit_alphabet + len(alphabet) if alphabet and limit_alphabet is not None else limit_alphabet
        return trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
                                         limit_alphabet=limit, initial_alphabet=alphabet or [],
                                         continuing_subword_prefix="##", show_progress=show_progress)
    if kind == "bpe":
        return trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
                                   initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=show_progress)
    return trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token=SPECIAL_TOKENS["unk"],
                                   initial_alphabet=alphabet or [], show_progress=show_progress)


def _alphabet(name: str | None, kind: str, vocab_size: int) -> list[str] | None:
    if name in (None, "", "none"):
        return None
    if name not in ALPHABETS:
        raise TokenizerError(f"unknown alphabet {name!r}: use one of {', '.join(ALPHABETS)} or none")
    if kind == "bpe":
        return None  # byte-level: every character is already reachable through its bytes
    chars = cjk_alphabet()
    if vocab_size < len(chars) + len(SPECIAL_TOKENS) + 1000:
        raise TokenizerError(f"--alphabet cjk puts {len(chars):,} characters in the vocabulary: use a vocab size of at "
                             f"least {len(chars) + len(SPECIAL_TOKENS) + 1000:,} (12000 or more is usual)")
    return chars


def unk_rate(tokenizer: Tokenizer, texts: list[str]) -> tuple[int, int]:
    """(``[UNK]`` tokens, all tokens) when ``tokenizer`` encodes ``texts``, specials not counted."""
    unk = tokenizer.token_to_id(SPECIAL_TOKENS["unk"])
    unknown = total = 0
    for enc in tokenizer.encode_batch(texts, add_special_tokens=False):
        total += len(enc.ids)
        unknown += sum(1 for i in enc.ids if i == unk)
    return unknown, total


LEGACY_TOKENIZER = ("gristmill.json", TOKENIZER_JSON)
"""A tokenizer folder made before output markers: replaceable like a marked one."""


def _distinct_characters(tok: Tokenizer, batches: Iterator[list[str]], alphabet: list[str] | None) -> int:
    """How many characters the unigram trainer must keep: the normalised texts' and the alphabet's (the space
    stands for the word marker ``▁``)."""
    seen: set[str] = set(alphabet or [])
    for batch in batches:
        for text in batch:
            seen.update(tok.normalizer.normalize_str(text))  # unigram's pipeline always has a normaliser
    return len(seen)


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
                    overwrite: bool = False, allow_incomplete: bool = False, alphabet: str | None = None) -> Path:
    """Train a ``kind`` tokenizer on ``input`` and write it as a Hugging Face folder at ``out``.

    ``out`` must not be or contain an input; a non-empty ``out`` is replaced only with ``overwrite`` and only
    when gristmill made it as a tokenizer folder; an unfinished gristmill output is read only with ``allow_incomplete``.
    ``alphabet="cjk"``: every character of :func:`cjk_alphabet` gets a token (wordpiece, unigram).
    """
    out = Path(out)
    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise TokenizerError(f"vocab_size {vocab_size} is too small")
    _alphabet(alphabet, kind, vocab_size)  # its errors come before anything is written
    items = [input] if isinstance(input, (str, Path)) else list(input)
    storage.check_not_input(out, items)
    for item in items:
        storage.require_complete(item, allow_incomplete)
    with storage.output_lock(out):
        if storage.has_content(out):
            if (out / TOKENIZER_JSON).exists() and not overwrite:
                raise TokenizerError(f"{out} already holds a tokenizer; pass --overwrite to replace it "
                                     "(token shards made with the old one will refuse the new one)")
            if overwrite:
                storage.remove_output(out, "tokenizer", legacy=LEGACY_TOKENIZER)
            elif storage.output_kind(out, LEGACY_TOKENIZER) not in ("tokenizer", "legacy"):
                raise TokenizerError(f"{out} is not empty and is not a gristmill tokenizer folder; "
                                     "choose a new or empty --out")
        storage.mark_output(out, "tokenizer")
        _train(items, out, kind, vocab_size, lowercase, normalization, strip_accents, cjk, min_frequency,
               limit_alphabet, max_documents, model_max_length, text_field, show_progress, alphabet)
        storage.mark_complete(out, "tokenizer")
    return out


def _train(input: list[str | Path], out: Path, kind: str, vocab_size: int, lowercase: bool | None,
           normalization: str | None, strip_accents: bool | None, cjk: bool, min_frequency: int,
           limit_alphabet: int | None, max_documents: int | None, model_max_length: int, text_field: str,
           show_progress: bool, alphabet: str | None = None) -> None:
    """Train and save; the caller holds the output folder's lock."""
    lowercase, normalization = _defaults(kind, lowercase, normalization)
    chars = _alphabet(alphabet, kind, vocab_size)
    tok = build_tokenizer(kind, lowercase, normalization, strip_accents, cjk)
    files, _ = resolve_input(input)
    # The trainer's progress bar needs the number of documents; counting is cheap next to training.
    total = sum(u.documents for u in plan_units(files, docs_per_unit=1 << 62))
    if max_documents is not None:
        total = min(total, max_documents)
    counter: dict[str, int] = {"documents": 0}
    t0 = time.perf_counter()
    try:
        tok.train_from_iterator(iter_texts(files, max_documents, text_field, counter=counter),
                                _trainer(kind, vocab_size, min_frequency, limit_alphabet, show_progress, chars),
                                length=total)
    except Exception as e:
        if kind != "unigram" or "not large enough to contain all chars" not in str(e):
            raise
        needed = _distinct_characters(tok, iter_texts(files, max_documents, text_field), chars)
        raise TokenizerError(
            f"the unigram trainer keeps every character it sees, and about {needed:,} different characters "
            f"(with the alphabet, after normalisation) do not fit in --vocab-size {vocab_size:,}: raise it to "
            f"more than {needed + len(SPECIAL_TOKENS):,} (leaving room for longer pieces), or use --kind wordpiece, "
            "whose --limit-alphabet keeps only the most frequent characters") from None
    seconds = time.perf_counter() - t0
    if counter["documents"] == 0:
        raise TokenizerError(f"{input} holds no documents with text to train on")
    for key, name in SPECIAL_TOKENS.items():
        assert tok.token_to_id(name) == list(SPECIAL_TOKENS).index(key), f"{name} is not at its fixed id"
    tok.post_processor = _post_processor(tok, kind)
    record: dict[str, Any] = {
        "kind": kind, "vocab_size": tok.get_vocab_size(), "requested_vocab_size": vocab_size,
        "lowercase": lowercase, "normalization": normalization, "strip_accents": strip_accents, "cjk": cjk,
        "min_frequency": min_frequency, "limit_alphabet": limit_alphabet, "alphabet": alphabet if chars else None,
        "input": [str(f) for f in files], "documents": counter["documents"], "seconds": round(seconds, 3),
    }
    save_tokdir(tok, out, lowercase=lowercase, model_max_length=model_max_length, extra=record)
    tokenizer_file(out)

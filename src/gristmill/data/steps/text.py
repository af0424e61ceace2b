"""Text units the filters count: tokens, words, lines, paragraphs, sentences, per-language profiles.

Every quality rule is a ratio of such units, so they live in one place and all steps agree on them.

Tokens follow the shape of spaCy's English tokenizer (which datatrove uses) closely enough that
the rules decide alike, at a fraction of the cost: one compiled regular expression yields URLs,
words and punctuation tokens. Chinese runs are segmented with jieba; Japanese runs (any kana in the
text) with a script-run scheme: a run of kanji, of katakana or of hiragana is one word. This is
cruder than a morphological analyser but needs no model and keeps word counts in the right range.

This module owns no step; its only state is the lazily loaded jieba dictionary and a small
cache of the last texts' tokens (several steps of a pipeline tokenize the same text).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache

# Tokens in the shape of spaCy's English tokenizer: a word runs from a letter or digit to the last
# letter or digit of its whitespace chunk (``sigemptyset(sigset_t``, ``CVE-2025``, ``a@b.org``)
# and is cut where spaCy cuts inside a word: a hyphen, slash, colon, comparison sign or comma
# between a letter/digit and a letter (``GTK-based``), a period between lower and upper case,
# before an English contraction (``do|n't`` is ``don|'t`` here: same count, same characters).
# Punctuation is one token per character, except runs of periods or hyphens.
_URL = r"(?:https?|ftp)://[^\s<>\"'()\[\]{}]*[^\s<>\"'()\[\]{}.,;:!?]"
_AL = r"[^\W_]"
_CONTRACTION = r"['’](?:s|re|ll|ve|d|m|t|S|RE|LL|VE|D|M|T)\b"
_SPLIT = rf"(?<={_AL})[-:<>=/,](?=[^\W\d_])|(?<=[a-z])\.(?=[A-Z])|{_CONTRACTION}|\.\."
_WORD = rf"{_AL}(?:(?:(?!{_SPLIT})\S)*{_AL})?"
_PUNCT = r"\.\.+|-{2,}|[^\w\s]|_"
TOKEN_RE = re.compile(f"{_URL}|{_WORD}|(?<={_AL}){_CONTRACTION}|{_PUNCT}")

# Han ideographs (with the compatibility and extension-A blocks), kana, the iteration marks.
_CJK_CHARS = "\u3005\u3006\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
CJK_RE = re.compile(f"[{_CJK_CHARS}]")
_KANA_RE = re.compile("[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_NOT_CJK_AL = rf"(?![{_CJK_CHARS}]){_AL}"
_CJK_TOKEN_RE = re.compile(
    rf"{_URL}|[{_CJK_CHARS}]+|{_NOT_CJK_AL}(?:(?:(?!{_SPLIT}|[{_CJK_CHARS}])\S)*{_NOT_CJK_AL})?"
    rf"|(?<={_AL}){_CONTRACTION}|{_PUNCT}")
_JA_RUN_RE = re.compile("[\u3005\u3006\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f]+|[\u3040-\u309f]+")

# A whitespace-separated word that contains no letter (``3.11``, ``--``, ``|``): letters are
# what is left when digits, underscore and non-word characters are excluded.
NO_LETTER_WORD_RE = re.compile(r"(?<!\S)(?:[^\w\s]|[\d_])+(?!\S)")

# Sentence ends used by the terminal-punctuation rules: Latin, CJK full-width, Devanagari danda,
# Arabic and Armenian question marks and full stops, the interrobang family.
TERMINAL_PUNCTUATION = tuple(".!?。！？｡．।॥؟۔։።‼‽⁇⁈⁉")
SENTENCE_END_RE = re.compile(r"(?:\.\.\.|[.!?。！？｡．।؟…])+[\"'”’)\]]*(?=\s|$)|[。！？｡]+(?=\S)")

PARAGRAPH_RE = re.compile(r"\n{2,}")
LINE_RE = re.compile(r"\n+")



def has_cjk(text: str) -> bool:
    return CJK_RE.search(text) is not None


@lru_cache(maxsize=1)
def _jieba():  # type: ignore[no-untyped-def]
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def segment_cjk(run: str, japanese: bool) -> list[str]:
    """Words of a run of CJK characters (no spaces or punctuation inside)."""
    if japanese:
        return _JA_RUN_RE.findall(run)
    return [w for w in _jieba().lcut(run) if not w.isspace()]


_CACHE: dict[tuple[str, str | None], list[str]] = {}
_CACHE_SIZE = 2048
_CACHE_MAX_CHARS = 100_000


def tokens(text: str, lang: str | None = None) -> list[str]:
    """Words and punctuation tokens in order; CJK runs segmented into words.

    Several steps of a pipeline tokenize the same text; a small cache keyed by the text itself
    (whose hash Python keeps on the string) makes the second one free. Callers must not mutate
    the returned list.
    """
    key = (text, lang)
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    toks = _tokenize(text, lang)
    if len(text) <= _CACHE_MAX_CHARS:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[key] = toks
    return toks


_SIMPLE_TAIL = frozenset(",.;:!?)")


def _tokenize(text: str, lang: str | None) -> list[str]:
    if lang not in ("zh", "ja") and not has_cjk(text):
        # Most whitespace chunks are a bare word or a word and one punctuation mark; only the
        # rest need the regular expression (same tokens, about twice as fast).
        out: list[str] = []
        append, extend, findall = out.append, out.extend, TOKEN_RE.findall
        for chunk in text.split():
            if chunk.isalnum():
                append(chunk)
            elif chunk[-1] in _SIMPLE_TAIL and chunk[:-1].isalnum():
                append(chunk[:-1])
                append(chunk[-1])
            else:
                extend(findall(chunk))
        return out
    japanese = lang == "ja" or (lang != "zh" and _KANA_RE.search(text) is not None)
    out: list[str] = []
    for tok in _CJK_TOKEN_RE.findall(text):
        if CJK_RE.match(tok):
            out.extend(segment_cjk(tok, japanese))
        else:
            out.append(tok)
    return out


def word_tokens(toks: list[str]) -> list[str]:
    """The tokens that are words: they start with a letter or digit (or are a contraction like ``'s``)."""
    return [t for t in toks if t[0].isalnum() or (len(t) > 1 and t[0] in "'’")]


def words(text: str, lang: str | None = None) -> list[str]:
    """Tokens that are words (no punctuation tokens)."""
    return word_tokens(tokens(text, lang))


def count_sentences(line: str) -> int:
    """Sentences in a line: terminal punctuation followed by a space or the end, at least one."""
    return max(1, len(SENTENCE_END_RE.findall(line)))


def ends_with_terminal_punct(line: str) -> bool:
    return line.endswith(TERMINAL_PUNCTUATION)


# ------------------------------------------------------------------------------------ languages


def base_language(code: str | None) -> str:
    """``zh-cn`` -> ``zh``, ``pt_BR`` -> ``pt``, None -> ``en``."""
    if not code:
        return "en"
    return code.replace("_", "-").split("-")[0].lower()


@dataclass(frozen=True)
class LanguageProfile:
    """Per-language thresholds of the Gopher and FineWeb rules (see docs/filters.md for sources)."""

    stop_words: tuple[str, ...]
    min_avg_word_length: float = 3
    max_avg_word_length: float = 10
    min_alpha_words_ratio: float = 0.8
    dup_line_frac: float = 0.3
    top_n_grams: tuple[tuple[int, float], ...] = ((2, 0.2), (3, 0.18), (4, 0.16))
    dup_n_grams: tuple[tuple[int, float], ...] = (
        (5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))
    line_punct_thr: float = 0.12
    new_line_ratio: float = 0.3
    source: str = ""


def _ng(*pairs: float) -> tuple[tuple[int, float], ...]:
    start = 2 if len(pairs) == 3 else 5
    return tuple((start + i, p) for i, p in enumerate(pairs))


# English: the Gopher paper (Rae et al. 2021, appendix A) and FineWeb's own defaults. Other
# languages: FineWeb-2's tuned per-language values (huggingface/fineweb-2, configs/<iso3>_<script>.yml),
# which were fitted on their tokenizers (jieba for Chinese as here; SudachiPy for Japanese, coarser
# than our script runs, so the Japanese word-length bounds are kept but not tightened).
PROFILES: dict[str, LanguageProfile] = {
    "en": LanguageProfile(
        stop_words=("the", "be", "to", "of", "and", "that", "have", "with"),
        source="Gopher paper appendix A; FineWeb (datatrove FineWebQualityFilter defaults)",
    ),
    "zh": LanguageProfile(
        stop_words=("的", "年", "在", "月", "是", "和", "日", "了", "於", "·", "為", "有", "被", "人",
                    "中", "为", "他", "與", "後", "也", "而", "由"),
        min_avg_word_length=1, max_avg_word_length=5, min_alpha_words_ratio=0.735, dup_line_frac=0.287,
        top_n_grams=_ng(0.256, 0.201, 0.171), dup_n_grams=_ng(0.198, 0.182, 0.167, 0.154, 0.14, 0.127),
        line_punct_thr=0.106, new_line_ratio=0.178, source="FineWeb-2 configs/cmn_Hani.yml",
    ),
    "ja": LanguageProfile(
        stop_words=("の", "に", "を", "は", "た", "て", "が", "と", "で", "年", "し", "・", "月", "れ", "さ"),
        min_avg_word_length=1, max_avg_word_length=5, min_alpha_words_ratio=0.759, dup_line_frac=0.375,
        top_n_grams=_ng(0.121, 0.129, 0.145), dup_n_grams=_ng(0.307, 0.283, 0.264, 0.248, 0.234, 0.223),
        line_punct_thr=0.167, new_line_ratio=0.162, source="FineWeb-2 configs/jpn_Jpan.yml",
    ),
    "de": LanguageProfile(
        stop_words=("der", "und", "die", "in", "von", "im", "den", "des", "mit", "das", "er", "dem", "als",
                    "wurde", "für"),
        min_avg_word_length=0, max_avg_word_length=15, min_alpha_words_ratio=0.774, dup_line_frac=0.263,
        top_n_grams=_ng(0.169, 0.153, 0.137), dup_n_grams=_ng(0.141, 0.134, 0.126, 0.117, 0.108, 0.098),
        line_punct_thr=0.0, new_line_ratio=0.152, source="FineWeb-2 configs/deu_Latn.yml",
    ),
    "fr": LanguageProfile(
        stop_words=("de", "la", "le", "et", "à", "en", "l'", "des", "du", "les", "est", "d'", "un", "une", "il",
                    "dans", "par", "au"),
        min_avg_word_length=2, max_avg_word_length=11, min_alpha_words_ratio=0.812, dup_line_frac=0.264,
        top_n_grams=_ng(0.161, 0.149, 0.134), dup_n_grams=_ng(0.15, 0.141, 0.131, 0.121, 0.111, 0.1),
        line_punct_thr=0.1, new_line_ratio=0.185, source="FineWeb-2 configs/fra_Latn.yml",
    ),
    "es": LanguageProfile(
        stop_words=("de", "la", "en", "el", "y", "a", "que", "del", "los", "se", "por", "un", "con", "una",
                    "las", "su"),
        min_avg_word_length=4, max_avg_word_length=14, min_alpha_words_ratio=0.825, dup_line_frac=0.265,
        top_n_grams=_ng(0.077, 0.097, 0.112), dup_n_grams=_ng(0.152, 0.137, 0.123, 0.114, 0.107, 0.099),
        line_punct_thr=0.3, new_line_ratio=0.171, source="FineWeb-2 configs/spa_Latn.yml",
    ),
    "it": LanguageProfile(
        stop_words=("di", "e", "il", "la", "in", "a", "del", "che", "è", "della", "un", "per", "nel", "l'",
                    "con", "da", "i", "una"),
        min_avg_word_length=3, max_avg_word_length=21, min_alpha_words_ratio=0.807, dup_line_frac=0.246,
        top_n_grams=_ng(0.198, 0.156, 0.133), dup_n_grams=_ng(0.144, 0.136, 0.127, 0.118, 0.109, 0.1),
        line_punct_thr=0.025, new_line_ratio=0.2, source="FineWeb-2 configs/ita_Latn.yml",
    ),
    "pt": LanguageProfile(
        stop_words=("de", "a", "e", "o", "em", "do", "da", "que", "um", "no", "uma", "com", "para", "na", "é",
                    "foi"),
        min_avg_word_length=3, max_avg_word_length=13, min_alpha_words_ratio=0.814, dup_line_frac=0.325,
        top_n_grams=_ng(0.093, 0.117, 0.139), dup_n_grams=_ng(0.19, 0.172, 0.154, 0.142, 0.131, 0.12),
        line_punct_thr=0.154, new_line_ratio=0.23, source="FineWeb-2 configs/por_Latn.yml",
    ),
}


def profile(lang: str | None) -> LanguageProfile:
    """The profile of ``lang``; languages without one get the English thresholds and no stop-word rule."""
    code = base_language(lang)
    if code in PROFILES:
        return PROFILES[code]
    return LanguageProfile(stop_words=(), source=f"no profile for {code!r}: English thresholds, stop-word rule off")

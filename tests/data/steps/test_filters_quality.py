"""Gopher quality and repetition, C4 and FineWeb rules: each rule fires on its case and only there."""

import pytest

from gristmill.data.document import Document
from gristmill.data.pipeline import StepStats
from gristmill.data.recipe import RecipeError, parse_recipe
from gristmill.data.steps.quality import C4Quality, FineWebQuality, GopherQuality, GopherRepetition

PROSE = (
    "The package provides a small library that reads and writes archive files in several formats.\n"
    "It was written to replace an older tool that had become hard to maintain, and it keeps the same\n"
    "command line options so that existing scripts continue to work without changes.\n\n"
    "Most users install it together with the documentation, which explains how the compression levels\n"
    "trade speed for size and how to recover data from a damaged archive. The authors have tested it on\n"
    "many systems, and they welcome reports of problems through the usual bug tracker of the project.\n\n"
    "Developers who want to embed the library in their own programs should read the chapter about the\n"
    "interface, because several functions changed their behaviour with the second major release."
)
# The same prose with one paragraph per line, as HTML extraction gives it.
PROSE_UNWRAPPED = "\n".join(p.replace("\n", " ") for p in PROSE.split("\n\n"))
CHINESE = (
    "作为系统管理员，粗略地了解系统的启动和配置过程是很有必要的。本章介绍了启动过程的各个阶段，"
    "并说明了在每个阶段中可以进行的配置工作。计算机系统在加电后会经历几个阶段，从固件初始化到内核加载，"
    "再到用户空间的服务启动。了解这些阶段有助于在系统无法正常启动时找到问题所在。\n\n"
    "第一阶段由固件完成，它负责检测硬件并加载引导程序。第二阶段由引导程序完成，它读取配置文件并加载内核"
    "和初始内存盘。第三阶段是一个迷你系统，它挂载真正的根文件系统。最后，常规系统启动各种服务，"
    "用户就可以登录并开始工作了。"
)


def fired(step, text, lang="en"):
    return step.rules_fired(text, lang)


def test_clean_prose_passes_every_rule():
    assert fired(GopherQuality(), PROSE) == []
    assert fired(GopherRepetition(), PROSE) == []
    assert fired(FineWebQuality(), PROSE) == []
    assert C4Quality().rules_fired(PROSE_UNWRAPPED) == []


def test_c4_line_rule_guts_wrapped_text():
    # Why recipes/web-en.yaml turns C4's terminal-punctuation rule off: wrapped lines end mid-sentence.
    assert C4Quality().rules_fired(PROSE) == ["too_few_sentences"]
    assert C4Quality(filter_no_terminal_punct=False).rules_fired(PROSE) == []


@pytest.mark.parametrize("text, rule", [
    ("Too short to be a real document.", "min_words"),
    ("a b c d e f g h i j k l m n o p q r s t u v w x y z " * 4 + "the and of with", "mean_word_length"),
    (PROSE + "\n" + "#" * 40, "symbol_word_ratio"),
    (PROSE + "\n" + "... " * 30, "symbol_word_ratio"),
    ("\n".join(f"- item number {i} of the list and more" for i in range(40)), "bullet_lines"),
    ("\n".join(f"and then the story of item {i} goes on..." for i in range(40)), "ellipsis_lines"),
    (PROSE + "\n" + " ".join(["12 34 56 78 -- || 90"] * 40), "alpha_words"),
    (" ".join(["package library archive format tool option script user system"] * 8), "stop_words"),
])
def test_gopher_quality_rules(text, rule):
    assert rule in fired(GopherQuality(), text)
    doc = Document("d", text)
    GopherQuality().process([doc], StepStats())
    assert doc.reason is not None and doc.reason.startswith("gopher_quality:")


def test_gopher_quality_max_words_and_thresholds():
    assert "max_words" in fired(GopherQuality(max_words=50), PROSE)
    assert fired(GopherQuality(min_words=500), PROSE) == ["min_words"]
    assert fired(GopherQuality(min_words=500, skip=["min_words"]), PROSE) == []


def test_alpha_rule_counts_words_as_written_not_punctuation_tokens():
    # datatrove's version counts '(' ',' '.' as words and would reject this; the paper's does not.
    text = ("The function (see below), the option (-v), and the file (~/.config) are described, "
            "one by one, in the manual; see it, read it, and use it. ") * 5
    assert "alpha_words" not in fired(GopherQuality(), text)


def test_stop_words_ignore_case():
    text = "The library. With care. " + " ".join(["archive"] * 60)
    assert "stop_words" not in fired(GopherQuality(), text)


def test_gopher_repetition_rules():
    line = "Buy cheap watches online today with free shipping worldwide"
    assert "dup_line_frac" in fired(GopherRepetition(), PROSE + "\n" + "\n".join([line] * 30))
    assert "dup_para_frac" in fired(GopherRepetition(), "\n\n".join([PROSE.split("\n\n")[0]] * 4))
    assert "top_2_gram" in fired(GopherRepetition(), PROSE + " " + "cheap watches " * 200)
    assert "dup_5_gram" in fired(GopherRepetition(), PROSE + " " + "visit our shop for cheap watches now. " * 40)
    assert fired(GopherRepetition(), "") == ["empty"]


def test_repetition_word_ngrams_ignore_table_rules():
    table = "\n".join(["─" * 60, "│ name │ value │", "─" * 60])
    text = PROSE + "\n\n" + " ".join("─" * 200)
    assert any(r.startswith("top_") for r in fired(GopherRepetition(), text))
    assert not any(r.startswith(("top_", "dup_5")) for r in fired(GopherRepetition(ngram_tokens="words"), text))
    assert fired(GopherRepetition(ngram_tokens="words"), PROSE + "\n" + table) == []


def test_repetition_annotate_records_numbers():
    doc = Document("d", PROSE)
    GopherRepetition(annotate=True).process([doc], StepStats())
    scores = GopherRepetition().scores(doc)
    assert set(scores) >= {"dup_line_frac", "top_2_gram", "dup_10_gram"} and not doc.rejected
    assert doc.meta["gopher_repetition.top_2_gram"] == scores["top_2_gram"]


def test_c4_rules_and_line_removal():
    assert C4Quality().rules_fired(PROSE_UNWRAPPED + "\nLorem ipsum dolor sit amet, consectetur.") == ["lorem_ipsum"]
    assert C4Quality().rules_fired(PROSE_UNWRAPPED + "\nint main() { return 0; }.") == ["curly_bracket"]
    assert C4Quality().rules_fired("One sentence only.") == ["too_few_sentences"]
    text = PROSE_UNWRAPPED.replace("\n", "\nMenu\nPlease enable JavaScript to view the comments.\n")
    doc = Document("d", text)
    stats = StepStats()
    C4Quality().process([doc], stats)
    assert not doc.rejected
    assert "Menu" not in doc.text and "JavaScript" not in doc.text
    assert stats.counters["lines_removed_javascript"] == 2 and stats.counters["lines_removed"] > 2
    kept_as_is = Document("d", text)
    C4Quality(remove_lines=False).process([kept_as_is], StepStats())
    assert "Menu" in kept_as_is.text


def test_fineweb_rules():
    assert fired(FineWebQuality(), "\n".join(["heading without punctuation"] * 3 + ["x"])) [0] == "line_punct_ratio"
    short = "\n".join(f"Line {i}." for i in range(30))
    assert "short_line_ratio" in fired(FineWebQuality(), short)
    assert "char_dup_ratio" in fired(FineWebQuality(), PROSE + "\n" + "\n".join(["The same line again."] * 5))
    listy = "\n".join(f"{w}." for w in ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"])
    assert "list_ratio" in fired(FineWebQuality(), listy)
    assert fired(FineWebQuality(), "   \n\n ") == ["empty"]


def test_good_chinese_article_is_kept():
    for step in (GopherQuality(language="zh"), GopherRepetition(language="zh"), FineWebQuality(language="zh")):
        assert fired(step, CHINESE, "zh") == [], step.name
    doc = Document("zh", CHINESE)
    GopherQuality(language="zh").process([doc], StepStats())
    assert not doc.rejected
    # the word count uses jieba words, never "two whitespace words"
    assert "min_words" not in fired(GopherQuality(), CHINESE)


def test_auto_language_reads_metadata():
    step = GopherQuality(language="auto")
    zh_doc = Document("zh", CHINESE, {"lang": "zh"})
    en_doc = Document("en", CHINESE, {"lang": "en"})
    step.process([zh_doc, en_doc], StepStats())
    assert not zh_doc.rejected
    assert en_doc.reason in ("gopher_quality:mean_word_length", "gopher_quality:stop_words")


@pytest.mark.parametrize("text", [
    "",
    "word " * 200_000,
    "x" * 300_000,
    "!!! ??? ... ,,, ;;; ::: --- " * 50,
    "English words 中文字符 日本語のテキスト русский текст العربية " * 20,
    "\n\n\n\t\t  \n",
], ids=["empty", "200k-words", "one-giant-line", "only-punctuation", "mixed-scripts", "only-whitespace"])
def test_adversarial_inputs_never_crash(text):
    steps = [GopherQuality(), GopherRepetition(), C4Quality(), FineWebQuality(),
             GopherQuality(language="zh"), GopherRepetition(ngram_tokens="words")]
    for step in steps:
        doc = Document("d", text)
        out = step.process([doc], StepStats())
        assert out == [doc]
        if not text.strip():
            assert doc.rejected


def test_giant_line_and_punctuation_only_are_rejected_with_a_reason():
    doc = Document("d", "x" * 300_000)
    GopherQuality().process([doc], StepStats())
    assert doc.reason == "gopher_quality:min_words"
    doc = Document("d", "!!! ??? ... ,,, " * 100)
    GopherQuality().process([doc], StepStats())
    assert doc.reason == "gopher_quality:min_words"


def test_unknown_rule_in_skip_is_an_error():
    with pytest.raises(ValueError, match="unknown rules"):
        GopherQuality(skip=["no_such_rule"])
    with pytest.raises(RecipeError, match="unknown rules"):
        parse_recipe("input: {paths: [x.jsonl]}\nsteps:\n  - gopher_quality: {skip: [nope]}\noutput: {path: o}")


def test_recipe_types_are_checked():
    pipeline = parse_recipe("input: {paths: [x.jsonl]}\nsteps:\n"
                            "  - gopher_repetition: {top_n_grams: [[2, 0.3]], ngram_tokens: words}\noutput: {path: o}")
    assert pipeline.steps[0].top_n_grams == [[2, 0.3]]
    with pytest.raises(RecipeError, match="expects"):
        parse_recipe("input: {paths: [x.jsonl]}\nsteps:\n  - gopher_quality: {min_words: many}\noutput: {path: o}")

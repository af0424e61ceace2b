"""spam: word salad, keyword lists and repeated sentences."""

import random

from gristmill.data.document import Document
from gristmill.data.pipeline import StepStats
from gristmill.data.steps.spam import Spam, keyword_list_share, word_order_anomalies

PROSE = (
    "The package provides a small library that reads and writes archive files in several formats. "
    "It was written to replace an older tool that had become hard to maintain, and it keeps the same "
    "command line options so that existing scripts continue to work without changes. Most users install "
    "it together with the documentation, which explains how the compression levels trade speed for size "
    "and how to recover data from a damaged archive."
)


def salad(text, seed=0):
    words = text.replace(".", "").split()
    random.Random(seed).shuffle(words)
    return " ".join(w + ("." if i % 9 == 8 else "") for i, w in enumerate(words))


def test_real_english_has_few_order_anomalies():
    words, anomalies = word_order_anomalies(PROSE)
    assert words > 50 and anomalies / words < 0.03
    doc = Document("a", PROSE)
    Spam().process([doc], StepStats())
    assert not doc.rejected


def test_word_salad_is_rejected():
    text = " ".join(salad(PROSE, seed) for seed in range(3))
    words, anomalies = word_order_anomalies(text)
    assert anomalies / words > 0.03
    doc = Document("a", text)
    Spam().process([doc], StepStats())
    assert doc.reason == "spam:word_salad"


def test_word_salad_rule_is_english_only():
    text = " ".join(salad(PROSE, seed) for seed in range(3))
    doc = Document("a", text, {"lang": "de"})
    Spam(language="auto").process([doc], StepStats())
    assert not doc.rejected


def test_keyword_list():
    tags = ", ".join(f"{p} {k}" for p in ("best", "cheap", "free", "buy", "top") for k in ("parasail", "kite", "boat", "sail"))
    text = PROSE + "\n\nTags: " + tags
    assert keyword_list_share(text) >= 0.2
    doc = Document("a", text)
    Spam().process([doc], StepStats())
    assert doc.reason == "spam:keyword_list"
    first = [a + b for a in ("Ka", "Lo", "Mi", "Ne", "Ra") for b in ("ra", "to", "vi", "ne", "sa", "lu", "mo", "da")]
    last = [a + b for a in ("Ber", "Cas", "Dor", "Fen", "Gul") for b in ("ini", "ova", "ez", "sen", "ard", "ic", "oli", "um")]
    names = PROSE + "\n\nThanks to: " + ", ".join(f"{f} {n}" for f, n in zip(first, last))
    assert keyword_list_share(names) < 0.2


def test_repeated_sentence():
    text = PROSE + " " + " ".join(["Click here to get the best deals on watches!"] * 12)
    doc = Document("a", text)
    Spam().process([doc], StepStats())
    assert doc.reason == "spam:repeated_sentence"
    fewer = Document("b", PROSE + " " + " ".join(["Click here to get the best deals on watches!"] * 3))
    Spam().process([fewer], StepStats())
    assert not fewer.rejected


def test_adversarial():
    for text in ("", "!!!", "the " * 10_000, "," * 10_000, "中文 " * 100):
        doc = Document("a", text)
        Spam().process([doc], StepStats())
        assert doc.reason in (None, "spam:word_salad", "spam:repeated_sentence")

"""blocklist: Aho-Corasick word lists on word boundaries, weights, threshold, domains."""

import pickle

import pytest

from gristmill.data.document import Document
from gristmill.data.pipeline import StepStats
from gristmill.data.steps.blocklist import Blocklist


def test_word_boundaries():
    b = Blocklist(languages=[], words=["ass", "cunt"])
    assert b.score("what an ass!")[0] == 1
    assert b.score("ASS hole")[0] == 1
    for innocent in ("a class of passengers", "Scunthorpe United", "assessment", "bass guitar"):
        assert b.score(innocent) == (0.0, []), innocent


def test_weights_threshold_and_distinct_terms():
    b = Blocklist(languages=[], words=["sega\t0.5", "dick\t0.5", "fuck"], threshold=1.0)
    assert b.score("Sega, Sega, Sega and more Sega")[0] == 0.5
    docs = [Document("a", "Sega Genesis games"), Document("b", "Sega and Dick"), Document("c", "fuck")]
    b.process(docs, StepStats())
    assert not docs[0].rejected and docs[0].meta["blocklist_score"] == 0.5
    assert docs[1].reason == "blocklist:words" and docs[2].reason == "blocklist:words"


def test_shipped_lists():
    b = Blocklist(languages=["en", "es", "it"])
    assert b.score("questo è un cazzo di problema")[0] >= 1
    assert b.score("eres un gilipollas")[0] >= 1
    assert b.score("The package builds a shared library for archive files.")[0] == 0
    with pytest.raises(ValueError, match="no shipped blocklist"):
        Blocklist(languages=["xx"])


def test_chinese_terms_match_without_spaces():
    b = Blocklist(languages=["zh"])
    assert b.score("你这个傻逼怎么回事")[0] >= 1
    assert b.score("这是一个关于系统管理的文档")[0] == 0


def test_domains(tmp_path):
    lst = tmp_path / "domains.txt"
    lst.write_text("# bad sites\nbad.example\n", encoding="utf-8")
    b = Blocklist(languages=[], domain_files=[str(lst)], domains=["spam.test"])
    docs = [Document("a", "text", {"url": "https://www.bad.example/page"}),
            Document("b", "text", {"url": "http://spam.test"}),
            Document("c", "text", {"url": "https://notbad.example/x"}),
            Document("d", "text", {})]
    b.process(docs, StepStats())
    assert [d.reason for d in docs] == ["blocklist:domain", "blocklist:domain", None, None]


def test_large_list_from_file(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("\n".join(f"badterm{i}" for i in range(100_000)) + "\nexact phrase\t2\n", encoding="utf-8")
    b = Blocklist(languages=[], word_files=[str(path)])
    assert b.score("this has badterm99999 inside")[0] == 1
    assert b.score("badterm1000000 is not on the list")[0] == 0
    assert b.score("an exact phrase here")[0] == 2


def test_pickles_without_automaton():
    b = Blocklist(languages=["en"])
    b.score("warm up the automaton")
    clone = pickle.loads(pickle.dumps(b))
    assert clone.score("shit happens")[0] >= 1


def test_bad_weight_is_reported(tmp_path):
    path = tmp_path / "w.txt"
    path.write_text("word\tnot-a-number\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1"):
        Blocklist(languages=[], word_files=[str(path)])

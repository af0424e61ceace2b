"""language: offline fastText identification, per document and per paragraph."""

import socket

import pytest

from gristmill.data.document import Document
from gristmill.data.pipeline import StepStats
from gristmill.data.steps import language as lang_mod
from gristmill.data.steps.language import Language, identify

EN = ("The package provides a small library that reads and writes archive files in several formats. "
      "Most users install it together with the documentation, which explains the options in detail.")
DE = ("Das Paket stellt eine kleine Bibliothek bereit, die Archivdateien in mehreren Formaten liest und schreibt. "
      "Die meisten Benutzer installieren es zusammen mit der Dokumentation, die alle Optionen erklärt.")
ZH = "这个软件包提供了一个小型库，可以读写多种格式的归档文件。大多数用户会同时安装文档，文档详细解释了各个选项。"
JA = "このパッケージは、いくつかの形式のアーカイブファイルを読み書きする小さなライブラリを提供します。"


@pytest.mark.parametrize("text, code", [(EN, "en"), (DE, "de"), (ZH, "zh"), (JA, "ja")])
def test_identify(text, code):
    lang, score = identify(text)
    assert lang == code and 0.5 < score <= 1.0


def test_model_is_loaded_from_the_installed_package_without_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the language model tried to use the network")

    lang_mod.load_model.cache_clear()
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    assert lang_mod.model_path().name == "lid.176.ftz" and lang_mod.model_path().is_file()
    assert identify(EN)[0] == "en"


def test_step_keeps_wanted_language_and_writes_metadata():
    docs = [Document("en", EN), Document("de", DE), Document("zh", ZH), Document("empty", "   ")]
    stats = StepStats()
    Language(languages=["en"]).process(docs, stats)
    assert not docs[0].rejected and docs[0].meta["lang"] == "en" and docs[0].meta["lang_score"] > 0.65
    assert docs[1].reason == "language:de"
    assert docs[2].reason == "language:zh" and docs[2].meta["lang"] == "zh"
    assert docs[3].reason == "language:und"


def test_language_codes_are_normalised():
    doc = Document("zh", ZH)
    Language(languages=["zh-cn"]).process([doc], StepStats())
    assert not doc.rejected


def test_low_score_is_rejected():
    doc = Document("x", "zz qx 42 17 kkv ffp zzq xq")
    Language(languages=["en", "de", "fr"], min_score=0.99).process([doc], StepStats())
    assert doc.rejected


def test_mixed_document_is_rejected_for_its_foreign_part():
    mixed = "\n\n".join([EN, EN.replace("library", "tool"), DE, EN.replace("package", "program")])
    doc = Document("mixed", mixed)
    Language(languages=["en"], min_score=0.3, max_foreign_fraction=0.2).process([doc], StepStats())
    assert doc.meta["lang"] == "en"
    assert doc.reason == "language:de" and 0.2 < doc.meta["lang_foreign_share"] < 0.4
    kept = Document("mixed", mixed)
    Language(languages=["en", "de"], min_score=0.3, max_foreign_fraction=0.2).process([kept], StepStats())
    assert not kept.rejected
    # a short foreign quotation is fine
    quoted = Document("q", "\n\n".join([EN, EN.replace("library", "tool"), "Das ist gut so, sagt er."]))
    Language(languages=["en"], max_foreign_fraction=0.2).process([quoted], StepStats())
    assert not quoted.rejected

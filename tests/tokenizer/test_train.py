"""Tokenizer training: special ids, round trips, Hugging Face loading, CJK handling, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gristmill.cli import app
from gristmill.tokenizer import TokenizerError, load_tokenizer, special_ids, tokenizer_hash, train_tokenizer
from tests.tokenizer.conftest import CHINESE

KINDS = ("wordpiece", "bpe", "unigram")


@pytest.fixture(scope="module")
def trained(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("kinds")
    out = {}
    for kind in KINDS:
        # Unigram's EM is slow; a quarter of the corpus keeps the test fast and still covers Chinese.
        limit = 100 if kind == "unigram" else None
        out[kind] = train_tokenizer(corpus, root / kind, kind=kind, vocab_size=1200, max_documents=limit,
                                    show_progress=False)
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_specials_come_first_and_wrap_every_text(trained: dict[str, Path], kind: str) -> None:
    tokdir = trained[kind]
    assert {p.name for p in tokdir.iterdir()} >= {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}
    assert special_ids(tokdir) == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    tok = load_tokenizer(tokdir)
    enc = tok.encode("The package provides a library.")
    assert enc.ids[0] == 2 and enc.ids[-1] == 3 and len(enc.ids) > 3
    pair = tok.encode("first part", "second part")
    assert pair.ids.count(3) == 2 and pair.type_ids[-1] == 1
    assert 1000 <= tok.get_vocab_size() <= 1200


def test_byte_level_bpe_round_trips_any_text(trained: dict[str, Path]) -> None:
    tok = load_tokenizer(trained["bpe"])
    text = "Ünïcode stays:\n\tcafé — 北京 🙂  two  spaces, and 0x1F!"
    ids = tok.encode(text, add_special_tokens=False).ids
    assert 1 not in ids, "byte-level BPE never needs [UNK]"
    assert tok.decode(ids) == text


def test_wordpiece_round_trips_normalised_text(trained: dict[str, Path]) -> None:
    tok = load_tokenizer(trained["wordpiece"])
    text = "The Package provides a small library for reading configuration files."
    ids = tok.encode(text).ids
    assert tok.decode(ids) == text.lower()
    assert tok.decode(ids, skip_special_tokens=False).startswith("[CLS] the package")
    words = tok.encode("configuration", add_special_tokens=False)
    assert len(set(words.word_ids)) == 1


def test_unigram_round_trips_single_spaced_text(trained: dict[str, Path]) -> None:
    tok = load_tokenizer(trained["unigram"])
    text = "This package contains the documentation of the library."
    assert tok.decode(tok.encode(text).ids) == text
    # Whitespace runs are collapsed as SentencePiece does; nothing becomes [UNK].
    ids = tok.encode("two\n\nparagraphs  here", add_special_tokens=False).ids
    assert 1 not in ids and tok.decode(ids) == "two paragraphs here"


@pytest.mark.parametrize("kind", KINDS)
def test_hf_autotokenizer_gives_the_same_ids(trained: dict[str, Path], kind: str) -> None:
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    texts = ["The library reads configuration files.", CHINESE[0], "", "mixed 北京 text, with punctuation!"]
    ours = load_tokenizer(trained[kind])
    for hf in (AutoTokenizer.from_pretrained(trained[kind]), PreTrainedTokenizerFast.from_pretrained(trained[kind])):
        assert (hf.pad_token_id, hf.unk_token_id, hf.cls_token_id, hf.sep_token_id, hf.mask_token_id) == (0, 1, 2, 3, 4)
        for text in texts:
            ids = ours.encode(text).ids
            assert hf(text)["input_ids"] == ids
            assert hf.decode(ids, skip_special_tokens=True) == ours.decode(ids)
        assert hf("first", "second")["input_ids"] == ours.encode("first", "second").ids


@pytest.mark.parametrize("kind", KINDS)
def test_each_cjk_character_is_its_own_pre_token(trained: dict[str, Path], kind: str) -> None:
    tok = load_tokenizer(trained[kind])
    text = "我爱北京天安门"
    enc = tok.encode(text, add_special_tokens=False)
    assert len(set(enc.word_ids)) == len(text)
    assert 1 not in enc.ids, "characters seen in training are in the vocabulary"
    if kind != "wordpiece":
        assert tok.decode(enc.ids) == text
    else:
        assert tok.decode(enc.ids).replace(" ", "") == text


def test_without_cjk_handling_a_chinese_sentence_is_one_word(corpus: Path, tmp_path: Path) -> None:
    tokdir = train_tokenizer(corpus, tmp_path / "nocjk", vocab_size=800, cjk=False, show_progress=False)
    enc = load_tokenizer(tokdir).encode("我爱北京天安门", add_special_tokens=False)
    assert len(set(enc.word_ids)) == 1


def test_options_change_the_normaliser(corpus: Path, tmp_path: Path) -> None:
    cased = train_tokenizer(corpus, tmp_path / "cased", vocab_size=800, lowercase=False, show_progress=False)
    tok = load_tokenizer(cased)
    assert tok.decode(tok.encode("The Library").ids) == "The Library"
    assert json.loads((cased / "tokenizer_config.json").read_text())["do_lower_case"] is False
    nfkc = train_tokenizer(corpus, tmp_path / "nfkc", vocab_size=800, normalization="nfkc", show_progress=False)
    assert load_tokenizer(nfkc).normalizer.normalize_str("ｆｕｌｌ") == "full"
    with pytest.raises(TokenizerError, match="normalisation"):
        train_tokenizer(corpus, tmp_path / "bad", normalization="nfx", show_progress=False)


def test_training_refuses_to_overwrite_unless_asked(corpus: Path, tmp_path: Path) -> None:
    # (HF WordPiece/BPE training breaks count ties in hash-map order, huggingface/tokenizers#1794, so a
    # retrained vocabulary may differ: the hash in every TOKENS manifest is what ties shards to a TOKDIR.)
    out = train_tokenizer(corpus, tmp_path / "tok", vocab_size=800, show_progress=False)
    before = tokenizer_hash(out)
    with pytest.raises(TokenizerError, match="already holds a tokenizer"):
        train_tokenizer(corpus, out, vocab_size=900, show_progress=False)
    assert tokenizer_hash(out) == before
    train_tokenizer(corpus, out, vocab_size=900, show_progress=False, overwrite=True)
    assert load_tokenizer(out).get_vocab_size() == 900


def test_max_documents_limits_training(corpus: Path, tmp_path: Path) -> None:
    out = train_tokenizer(corpus, tmp_path / "few", vocab_size=800, max_documents=30, show_progress=False)
    assert json.loads((out / "gristmill.json").read_text())["documents"] == 30


def test_cli_trains_and_reports_errors(corpus: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    res = runner.invoke(app, ["tokenizer", "train", "--input", str(corpus), "--out", str(out), "--kind", "bpe",
                              "--vocab-size", "700", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert special_ids(out)["mask"] == 4
    res = runner.invoke(app, ["tokenizer", "train", "--input", str(corpus), "--out", str(out), "--no-progress"])
    assert res.exit_code == 2 and "already holds a tokenizer" in " ".join(res.output.split())
    res = runner.invoke(app, ["tokenizer", "train", "--input", str(tmp_path / "missing"), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "no such file" in " ".join(res.output.split())


def test_unigram_with_more_characters_than_tokens_says_how_many(tmp_path: Path) -> None:
    # 400 different Han characters cannot fit in 100 tokens; unigram has no alphabet limit to fall back on.
    chars = [chr(0x4E00 + i) for i in range(400)]
    corpus = tmp_path / "many.jsonl"
    corpus.write_text("".join(json.dumps({"text": "".join(chars[i:i + 40])}) + "\n" for i in range(0, 400, 40)),
                      encoding="utf-8")
    with pytest.raises(TokenizerError, match=r"about 40\d different characters .* --vocab-size 100: raise it"):
        train_tokenizer(corpus, tmp_path / "u", kind="unigram", vocab_size=100, show_progress=False)
    res = CliRunner().invoke(app, ["tokenizer", "train", "--input", str(corpus), "--out", str(tmp_path / "cli"),
                                   "--kind", "unigram", "--vocab-size", "100", "--no-progress"])
    assert res.exit_code == 2 and "Traceback" not in res.output and "--limit-alphabet" in " ".join(res.output.split())

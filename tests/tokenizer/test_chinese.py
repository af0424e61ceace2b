"""A Chinese tokenizer that does not lose characters: ``--alphabet cjk`` on text it has never seen."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gristmill.cli import app
from gristmill.tokenizer import TokenizerError, load_tokenizer, train_tokenizer
from gristmill.tokenizer.train import cjk_alphabet, unk_rate

ZH = Path(__file__).resolve().parents[2] / "sample" / "zh"


def _records(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def poems(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Classical poems of the Chinese sample: a few thousand distinct characters, none of modern technical prose."""
    rows = [r for r in _records(ZH / "corpus.jsonl.gz") if r["source"] == "fortune"][:150]
    path = tmp_path_factory.mktemp("zh") / "poems.jsonl"
    path.write_text("".join(json.dumps({"text": r["text"]}, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def unseen() -> list[str]:
    """Debian's Chinese package descriptions: never in the sample corpus."""
    return [r["text"] for r in _records(ZH / "heldout.jsonl.gz")][:300]


def test_the_alphabet_covers_both_scripts_and_is_stable():
    chars = cjk_alphabet()
    assert len(chars) == len(set(chars)) == 8883 and chars == sorted(chars)
    for c in "数据清洗分词器語言模型臺灣網絡。，、（）":
        assert c in chars


def test_cjk_alphabet_keeps_unseen_chinese_under_one_percent_unk(poems, unseen, tmp_path):
    plain = train_tokenizer(poems, tmp_path / "plain", vocab_size=10000, show_progress=False)
    full = train_tokenizer(poems, tmp_path / "cjk", vocab_size=10000, alphabet="cjk", show_progress=False)
    unk_plain, total_plain = unk_rate(load_tokenizer(plain), unseen)
    unk_full, total_full = unk_rate(load_tokenizer(full), unseen)
    # Trained on poems only, the plain vocabulary misses much of a technical text's characters...
    assert unk_plain / total_plain > 0.05
    # ... and the full alphabet keeps nearly all of them.
    assert unk_full / total_full < 0.01
    assert json.loads((full / "gristmill.json").read_text())["alphabet"] == "cjk"
    # Nothing is lost: decoding gives the characters back.
    tok = load_tokenizer(full)
    text = "软件包管理器负责安装和升级软件。"
    assert tok.decode(tok.encode(text).ids).replace(" ", "") == text


def test_cjk_alphabet_needs_room_in_the_vocabulary(poems, tmp_path):
    with pytest.raises(TokenizerError, match="vocab size"):
        train_tokenizer(poems, tmp_path / "small", vocab_size=4000, alphabet="cjk", show_progress=False)
    with pytest.raises(TokenizerError, match="unknown alphabet"):
        train_tokenizer(poems, tmp_path / "bad", vocab_size=12000, alphabet="latin", show_progress=False)


def test_cli_alphabet_option(poems, tmp_path):
    result = CliRunner().invoke(app, ["tokenizer", "train", "--input", str(poems), "--out", str(tmp_path / "t"),
                                      "--vocab-size", "10000", "--alphabet", "cjk", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert load_tokenizer(tmp_path / "t").get_vocab_size() > 8883
    bad = CliRunner().invoke(app, ["tokenizer", "train", "--input", str(poems), "--out", str(tmp_path / "u"),
                                   "--vocab-size", "2000", "--alphabet", "cjk", "--no-progress"])
    assert bad.exit_code == 2 and "vocab size" in bad.output

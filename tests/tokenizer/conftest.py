"""Fixtures of the tokenizer tests: a small mixed English/Chinese corpus and a tokenizer trained on it."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from gristmill.tokenizer import train_tokenizer
from tests.sample import SAMPLE

CHINESE = [
    "我爱北京天安门。今天天气很好，我们去公园散步。",
    "自然语言处理是人工智能的一个重要方向。",
    "北京是中国的首都，有很多名胜古迹。",
    "数据清洗之后再训练分词器和语言模型。",
]


def sample_texts(n: int) -> list[str]:
    texts = []
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["text"])
            if len(texts) >= n:
                break
    return texts


def write_jsonl(path: Path, records: list[dict]) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 English documents from the bundled sample with a Chinese one after every tenth, as JSONL with ids."""
    texts: list[str] = []
    for i, text in enumerate(sample_texts(400)):
        texts.append(text)
        if i % 10 == 0:
            texts.append(CHINESE[i % len(CHINESE)])
    path = tmp_path_factory.mktemp("corpus") / "docs.jsonl"
    return write_jsonl(path, [{"id": f"d{i}", "text": t} for i, t in enumerate(texts)])


@pytest.fixture(scope="session")
def tokdir(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tokenizer(corpus, tmp_path_factory.mktemp("tok") / "wp", vocab_size=1500, show_progress=False)


@pytest.fixture(scope="session")
def other_tokdir(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tokenizer(corpus, tmp_path_factory.mktemp("tok2") / "wp", vocab_size=1200, show_progress=False)

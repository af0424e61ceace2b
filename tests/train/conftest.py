"""Fixtures of the pretraining tests: small packed token shards and a very small model config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.sample import write_sample_head

from gristmill.model.config import ModelConfig


@pytest.fixture(scope="session")
def pretrain_tokens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Packed shards (32-token sequences) of 300 sample documents with a 1,000-token WordPiece vocabulary."""
    from gristmill.tokenizer import pack_corpus, train_tokenizer

    root = tmp_path_factory.mktemp("pretrain-data")
    docs = write_sample_head(root / "docs.jsonl", 300)
    tok = train_tokenizer(docs, root / "tok", vocab_size=1000, show_progress=False)
    pack_corpus(docs, tok, root / "tokens", seq_len=32, val_fraction=0.1)
    return root / "tokens"


@pytest.fixture(scope="session")
def pretrain_model_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide encoder: big enough to learn token statistics, small enough for 2 shared cores."""
    path = tmp_path_factory.mktemp("model-config") / "model.json"
    ModelConfig(vocab_size=1000, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                max_position=64).to_json(path)
    return path


@pytest.fixture
def one_thread():
    """Two threads on two shared cores are much slower than one for these tiny models."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

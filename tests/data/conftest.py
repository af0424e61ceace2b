"""Fixtures of the corpus tests that need a tokenizer (the hostile-input tests of tokenize and its inputs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sample import write_sample_head


@pytest.fixture(scope="session")
def tokdir_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small wordpiece tokenizer trained on the head of the bundled sample."""
    from gristmill.tokenizer import train_tokenizer

    folder = tmp_path_factory.mktemp("tokdir")
    corpus = write_sample_head(folder / "sample.jsonl", 200)
    return train_tokenizer(corpus, folder / "wp", vocab_size=400, show_progress=False)

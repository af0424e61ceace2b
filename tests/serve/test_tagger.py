"""The Tagger: a token model predicts one tag per word, in files and on the command line, as fine-tuning scored it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gristmill.cli import app


def test_token_model_predicts_one_tag_per_word(tmp_path: Path) -> None:
    import random

    from gristmill.model.config import ModelConfig
    from gristmill.serve.loading import load_tagger
    from gristmill.serve.predict import predict_tags_file
    from gristmill.train.finetune import FineTuneConfig, finetune
    from gristmill.train.tasks import load_task

    from .conftest import tiny_tokenizer

    rng = random.Random(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "with", "some", "fish", "and", "ran", "away", "from", "home"]

    def sentence() -> dict:
        tokens = [str(rng.randint(0, 999)) if rng.random() < 0.3 else rng.choice(words) for _ in range(rng.randint(3, 12))]
        return {"tokens": tokens, "tags": ["B-NUM" if t.isdigit() else "O" for t in tokens]}

    for split, n in (("train", 200), ("dev", 40), ("test", 40)):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(sentence()) + "\n" for _ in range(n)))
    run = tmp_path / "run"
    vocab = tiny_tokenizer(run / "tokenizer")
    ModelConfig(vocab_size=vocab, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                max_position=64).to_json(run / "config.json")
    data = load_task(tmp_path / "train.jsonl", tmp_path / "dev.jsonl", tmp_path / "test.jsonl", max_length=32)
    result = finetune(run, data, FineTuneConfig(lr=3e-3, epochs=8, patience=100), out=tmp_path / "ft",
                      from_scratch=True)

    (tmp_path / "in.jsonl").write_text((tmp_path / "test.jsonl").read_text() + '{"tokens": "not a list"}\n')
    summary = predict_tags_file(load_tagger(tmp_path / "ft"), str(tmp_path / "in.jsonl"), str(tmp_path / "out.jsonl"),
                                window=16, progress=False)
    assert (summary.predicted, summary.errors) == (40, 1)
    assert summary.accuracy is not None and summary.accuracy > 0.9
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert all(len(r["predicted_tags"]) == len(r["tokens"]) == len(r["tag_scores"]) for r in rows[:40])
    # One inference path: the Tagger reproduces the per-word test accuracy fine-tuning reported.
    gold = [t for r in rows[:40] for t in r["tags"]]
    predicted = [t for r in rows[:40] for t in r["predicted_tags"]]
    assert np.mean([g == p for g, p in zip(gold, predicted, strict=True)]) == pytest.approx(
        result.metrics["test"]["accuracy"])
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "ft"), "-i", str(tmp_path / "test.jsonl"),
                                      "-o", str(tmp_path / "cli.jsonl"), "--no-progress"])
    assert result.exit_code == 0 and "labelled words" in result.output
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "ft"), "-i", str(tmp_path / "test.jsonl"),
                                      "-o", str(tmp_path / "x.jsonl"), "--backend", "onnx"])
    assert result.exit_code == 2 and "sequence classification" in " ".join(result.output.split())

"""The quickstart, end to end in a subprocess (shortened setting): every artefact exists and is usable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gristmill.data.run import count_documents
from tests.quickstart_run import REPO, run_fast_quickstart


@pytest.mark.slow
def test_quickstart_fast_runs_the_whole_path(tmp_path):
    out = tmp_path / "qs"
    output, summary = run_fast_quickstart(out, timeout=540)
    assert summary["setting"] == "fast"
    for key in ("clean", "tokenizer", "tokens", "pretrain", "adapt", "ft-pretrained", "ft-adapted", "ft-scratch",
                "predictions", "curve"):
        assert Path(summary["artefacts"][key]).exists(), key
        assert summary["artefacts"][key] in output  # the path is printed

    # Cleaning accounted for every sample document, and kept some for the tokenizer and pretraining.
    kept, rejected = count_documents(out / "clean" / "kept"), count_documents(out / "clean" / "rejected")
    assert kept + rejected == 3356 and kept > 1000

    assert (out / "pretrain" / "model.safetensors").is_file()
    for picture in ("pretrain/loss.png", "ft-pretrained/curves.png", "ft-pretrained/confusion.png", "curve/curve.png",
                    "clean/report.html", "clean/README.md"):
        assert (out / picture).is_file(), picture
    assert (out / "tokenizer" / "tokenizer.json").is_file()
    for init in ("pretrained", "scratch"):
        metrics = json.loads((out / f"ft-{init}" / "metrics.json").read_text())
        assert metrics["init"] == init and metrics["train_examples"] == 360
        assert metrics["test"]["examples"] == 240
        assert summary["results"][init]["test_accuracy"] == metrics["test"]["accuracy"]
    # Task-adaptive pretraining read the training file's texts only, and its run was fine-tuned like the others.
    assert (out / "adapt" / "model.safetensors").is_file()
    adapted = json.loads((out / "adapt" / "adapt.json").read_text())
    assert adapted["texts"] == [str(REPO / "sample" / "task" / "train.jsonl")]
    metrics = json.loads((out / "ft-adapted" / "metrics.json").read_text())
    assert metrics["train_examples"] == 360 and metrics["test"]["examples"] == 240
    assert summary["results"]["pretrained + adapt"]["test_accuracy"] == metrics["test"]["accuracy"]
    assert list(summary["results"])[:4] == ["pretrained", "pretrained + adapt", "scratch", "tfidf-logreg"]
    assert "pretrained + adapt" in output and "pretrained + adapt - scratch:" in output
    baseline = summary["results"]["tfidf-logreg"]  # the baseline sits in the same table
    assert baseline["train_examples"] == 360 and 0.0 <= baseline["test_accuracy"] <= 1.0
    assert "TF-IDF + logistic regression" in output

    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 240
    assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-3 for p in predictions)

    assert "pretrained vs scratch" in output and "test accuracy" in output

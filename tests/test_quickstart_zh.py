"""``gristmill quickstart --lang zh --fast`` end to end in a subprocess: the Chinese path and its table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gristmill.data.run import count_documents
from gristmill.quickstart import QuickstartError, find_repo, run_quickstart
from gristmill.tokenizer import load_tokenizer
from gristmill.tokenizer.train import unk_rate
from tests.quickstart_run import REPO, run_fast_quickstart


def test_unknown_language_is_a_user_error(tmp_path):
    with pytest.raises(QuickstartError, match="no quickstart for language"):
        run_quickstart(tmp_path, fast=True, lang="xx", log=lambda m: None)


def test_chinese_sample_is_found_from_its_folder():
    assert find_repo(None, "zh") == (REPO, REPO / "sample" / "zh")
    assert find_repo(REPO / "sample" / "zh", "zh") == (REPO, REPO / "sample" / "zh")


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_quickstart_zh_fast_runs_the_whole_path(tmp_path):
    out = tmp_path / "qs"
    output, summary = run_fast_quickstart(out, "--lang", "zh", timeout=1100)
    assert summary["setting"] == "fast" and summary["lang"] == "zh" and summary["classes"] == 4
    assert summary["recipe"].endswith("web-zh.yaml")
    for key in ("clean", "tokenizer", "tokens", "pretrain", "adapt", "ft-pretrained", "ft-adapted", "ft-scratch",
                "predictions"):
        assert Path(summary["artefacts"][key]).exists(), key

    # Every Chinese sample document is accounted for, and most clean ones were kept.
    kept, rejected = count_documents(out / "clean" / "kept"), count_documents(out / "clean" / "rejected")
    assert kept + rejected == 1684 and kept > 800
    record = json.loads((out / "tokenizer" / "gristmill.json").read_text())
    assert record["alphabet"] == "cjk" and record["vocab_size"] >= 15000
    # Pieces span Han characters: common words are one token, and no character of the task becomes [UNK].
    assert record["kind"] == "unigram" and record["cjk"] is False
    tokenizer = load_tokenizer(out / "tokenizer")
    assert {"函数", "配置文件"} <= set(tokenizer.encode("此函数返回配置文件的路径", add_special_tokens=False).tokens)
    task_texts = [json.loads(line)["text"] for line in (REPO / "sample" / "zh" / "task" / "test.jsonl").open(encoding="utf-8")]
    assert unk_rate(tokenizer, task_texts)[0] == 0

    # 256-token sequences, half as many per step: the task's texts are read (nearly) whole.
    assert summary["budget"]["seq_len"] == 256 and summary["budget"]["pretrain_batch"] == 8
    assert json.loads((out / "tokens" / "manifest.json").read_text())["seq_len"] == 256
    for init in ("pretrained", "scratch"):
        metrics = json.loads((out / f"ft-{init}" / "metrics.json").read_text())
        assert metrics["train_examples"] == 128 and metrics["test"]["examples"] == 80
        cut = metrics["truncation"]["train"]  # at 128 tokens 53 of 128 texts lost their end
        assert metrics["budget"]["max_length"] == 256 and cut["texts_cut"] == 0
    # Task-adaptive pretraining read the training file's texts only, and its run was fine-tuned like the others.
    assert (out / "adapt" / "model.safetensors").is_file()
    adapted = json.loads((out / "adapt" / "adapt.json").read_text(encoding="utf-8"))
    assert adapted["texts"] == [str(REPO / "sample" / "zh" / "task" / "train.jsonl")]
    metrics = json.loads((out / "ft-adapted" / "metrics.json").read_text())
    assert metrics["train_examples"] == 128 and metrics["test"]["examples"] == 80
    assert summary["results"]["pretrained + adapt"]["test_accuracy"] == metrics["test"]["accuracy"]
    assert list(summary["results"]) == ["pretrained", "pretrained + adapt", "scratch", "tfidf-logreg",
                                        "tf-idf (char 1-3-grams)"]
    tfidf = summary["results"]["tf-idf (char 1-3-grams)"]
    assert tfidf["train_examples"] == 128 and 0.25 <= tfidf["test_accuracy"] <= 1.0

    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(predictions) == 80
    assert set(predictions[0]["probabilities"]) == {"用户命令", "库函数", "概述与约定", "系统管理"}
    assert "4 classes" in output and "tf-idf (char 1-3-grams)" in output
    assert "pretrained + adapt" in output and "pretrained + adapt - scratch:" in output

"""``gristmill adapt``: continued masked-LM training on task texts, mixing, exact resume, user errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gristmill.train import pretrain as pretrain_module
from gristmill.train.adapt import AdaptConfig, AdaptError, MixedTokens, adapt, read_texts
from gristmill.train.checkpoint import list_checkpoints
from gristmill.train.metrics import read_metrics
from gristmill.train.pretrain import PretrainConfig, pretrain

# slow: trains, starts processes or a browser; `pytest -m "not slow"` is the fast tier (README, Development)
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]


@pytest.fixture(scope="module")
def base_run(pretrain_tokens: Path, pretrain_model_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("adapt-base") / "run"
    pretrain(PretrainConfig(data=str(pretrain_tokens), out=str(run), config_file=str(pretrain_model_config), steps=20,
                            batch_size=8, lr=5e-3, warmup=2, eval_every=0, save_every=20, keep=1, progress=False,
                            tensorboard=False))
    return run


@pytest.fixture(scope="module")
def task_texts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A labelled task file (labels are ignored): short technical lines unlike the sample corpus."""
    path = tmp_path_factory.mktemp("adapt-texts") / "train.jsonl"
    words = ["socket", "kernel", "buffer", "signal", "descriptor", "process", "thread", "memory", "file", "pipe"]
    lines = [{"text": f"the {words[i % 10]} call returns the {words[(i * 3) % 10]} of the {words[(i * 7) % 10]} "
                      f"number {i}", "label": str(i % 2)} for i in range(240)]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    return path


def cfg(base: Path, texts: Path, out: Path, **kw) -> AdaptConfig:
    values = dict(run=str(base), texts=[str(texts)], out=str(out), steps=8, batch_size=8, lr=2e-3, eval_every=4,
                  log_every=1, save_every=4, progress=False, extra={"tensorboard": False, "dropout": 0.1})
    values.update(kw)
    return AdaptConfig(**values)


def train_losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(run) if r["kind"] == "train"}


def test_adapt_writes_a_run_that_learns_the_task_texts(base_run, task_texts, tmp_path):
    out = tmp_path / "adapted"
    result = adapt(cfg(base_run, task_texts, out, steps=30, eval_every=10, save_every=30))
    for name in ("config.json", "model.safetensors", "metrics.jsonl", "loss.png", "adapt.json",
                 "tokenizer/tokenizer.json", "tokens/manifest.json"):
        assert (out / name).exists(), name
    record = json.loads((out / "adapt.json").read_text())
    assert record["documents"] == 240 and record["base_run"] == str(base_run.resolve())
    assert record["task_sequences"]["train"] > 0 and record["mix"]["corpus_sequences"] == 0
    evals = [r for r in read_metrics(out) if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [10, 20, 30] and evals[-1]["loss"] < evals[0]["loss"]
    assert result.step == 30
    # it started from the base run's weights, not from random ones
    base, adapted = load_file(str(base_run / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert set(base) == set(adapted)
    assert any(not torch.equal(base[k], adapted[k]) for k in base)


def test_resume_continues_exactly(base_run, task_texts, tmp_path, monkeypatch):
    full = tmp_path / "full"
    adapt(cfg(base_run, task_texts, full))

    run = tmp_path / "killed"
    real, calls = pretrain_module.mlm_loss_sums, {"n": 0}

    def dies_in_step_6(*args, **kwargs):
        calls["n"] += torch.is_grad_enabled()
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(pretrain_module, "mlm_loss_sums", dies_in_step_6)
    with pytest.raises(KeyboardInterrupt):
        adapt(cfg(base_run, task_texts, run))
    monkeypatch.setattr(pretrain_module, "mlm_loss_sums", real)
    assert [p.name for p in list_checkpoints(run)] == ["step-0000004"]
    with pytest.raises(AdaptError, match="--resume"):
        adapt(cfg(base_run, task_texts, run))
    adapt(cfg(base_run, task_texts, run, resume=True))
    expected, got = train_losses(full), train_losses(run)
    assert sorted(got) == list(range(1, 9))
    assert all(got[s] == expected[s] for s in expected)  # bit-identical
    a, b = load_file(str(full / "model.safetensors")), load_file(str(run / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_mixing_takes_the_asked_share_of_corpus_sequences(base_run, task_texts, pretrain_tokens, tmp_path):
    out = tmp_path / "mixed"
    adapt(cfg(base_run, task_texts, out, steps=2, eval_every=0, mix=str(pretrain_tokens), mix_share=0.5, seq_len=32))
    record = json.loads((out / "adapt.json").read_text())
    task, corpus = record["task_sequences"]["train"], record["mix"]["corpus_sequences"]
    assert corpus == task  # half of the sequences come from the corpus

    from gristmill.tokenizer import TokenDataset

    mixed = MixedTokens(TokenDataset(out / "tokens"), TokenDataset(pretrain_tokens), 0.5, seed=0)
    rows = mixed.get_batch([0, len(mixed) - 1])
    assert (rows["input_ids"][0] == TokenDataset(out / "tokens").get_batch([0])["input_ids"][0]).all()
    assert (rows["input_ids"][1] == TokenDataset(pretrain_tokens).get_batch([mixed.corpus_rows[-1]])["input_ids"][0]).all()
    assert sorted(mixed.order(0, 0).tolist()) == list(range(len(mixed)))


def test_mismatched_tokenizer_is_a_clear_error(base_run, task_texts, tmp_path):
    from gristmill.tokenizer import pack_corpus, train_tokenizer

    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": f"d{i}", "text": f"other words number {i} here"}) + "\n"
                            for i in range(200)))
    pack_corpus(docs, train_tokenizer(docs, tmp_path / "tok", vocab_size=100, show_progress=False),
                tmp_path / "other-tokens", seq_len=32, val_fraction=0.0)
    with pytest.raises(AdaptError, match="tokenizer mismatch") as info:
        adapt(cfg(base_run, task_texts, tmp_path / "bad", mix=str(tmp_path / "other-tokens"), mix_share=0.2))
    assert "\n" not in str(info.value)
    assert not (tmp_path / "bad").exists()  # refused before anything was written


def test_empty_text_files_are_clear_errors(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    blank = tmp_path / "blank.txt"
    blank.write_text("  \n", encoding="utf-8")
    packed = tmp_path / "texts.jsonl.gz"
    with gzip.open(packed, "wt", encoding="utf-8") as f:
        f.write(json.dumps({"body": "a text"}) + "\n")
    with pytest.raises(AdaptError, match="no text to adapt on"):
        read_texts([empty])
    with pytest.raises(AdaptError, match="no text to adapt on"):
        read_texts([blank])
    assert read_texts([packed], text_field="body") == [("texts.jsonl.gz:1", "a text")]
    plain = tmp_path / "plain.txt"
    plain.write_text("first text\n\nsecond text\n", encoding="utf-8")
    assert read_texts([plain]) == [("plain.txt:1", "first text"), ("plain.txt:3", "second text")]


def test_command_line(base_run, task_texts, tmp_path):
    from typer.testing import CliRunner

    from gristmill.cli import app

    cli = CliRunner()
    out = tmp_path / "cli"
    done = cli.invoke(app, ["adapt", str(base_run), "--texts", str(task_texts), "--out", str(out), "--steps", "2",
                            "--batch-size", "8", "--eval-every", "2", "--no-progress"])
    assert done.exit_code == 0, done.output
    assert (out / "model.safetensors").exists() and "task val loss" in done.output
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    refused = cli.invoke(app, ["adapt", str(base_run), "--texts", str(empty), "--out", str(tmp_path / "x")])
    assert refused.exit_code == 2
    assert "no text to adapt on" in " ".join(refused.output.split()) and "Traceback" not in refused.output
    exists = cli.invoke(app, ["adapt", str(base_run), "--texts", str(task_texts), "--out", str(out)])
    assert exists.exit_code == 2 and "--resume" in " ".join(exists.output.split())

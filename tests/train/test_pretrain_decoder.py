"""Causal pretraining (--arch decoder): document boundaries, targets, learning, exact resume, accumulation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tests.decoder_run import build_tokens, decoder_config_file
from typer.testing import CliRunner

from gristmill.cli import app
from gristmill.model.config import DecoderConfig, read_config
from gristmill.train import pretrain as pretrain_module
from gristmill.train.causal import IGNORE, causal_labels, document_segments, make_causal_batch
from gristmill.train.checkpoint import list_checkpoints, load_decoder_run
from gristmill.train.metrics import read_metrics
from gristmill.train.pretrain import PretrainConfig, PretrainError, pretrain

# slow: trains, starts processes or a browser; `pytest -m "not slow"` is the fast tier (README, Development)
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tokens(tmp_path_factory.mktemp("decoder-data"))


@pytest.fixture(scope="module")
def model_config(tokens: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return decoder_config_file(tokens, tmp_path_factory.mktemp("decoder-config") / "decoder.json")


def config(tokens: Path, out: Path, model_config: Path, **kw) -> PretrainConfig:
    base = dict(data=str(tokens), out=str(out), arch="decoder", config_file=str(model_config), steps=8, batch_size=8,
                lr=3e-3, warmup=2, log_every=1, eval_every=4, eval_batches=2, save_every=4, keep=2, progress=False,
                tensorboard=False)
    base.update(kw)
    return PretrainConfig(**base)


def train_rows(run: Path) -> dict[int, dict]:
    return {r["step"]: r for r in read_metrics(run) if r["kind"] == "train"}


def test_segments_begin_one_token_before_each_document():
    # [CLS] a a [SEP] b b [SEP] c   (documents start at 1, 4 and 7)
    doc_start = torch.tensor([[False, True, False, False, True, False, False, True]])
    assert document_segments(doc_start).tolist() == [[1, 1, 1, 2, 2, 2, 3, 3]]  # ids only need to differ
    ids = torch.tensor([[2, 10, 11, 3, 12, 13, 3, 14]])
    assert causal_labels(ids, doc_start, pad_id=0).tolist() == [[10, 11, 3, 12, 13, 3, 14, IGNORE]]
    # A row that continues a document: [CLS] cannot know the word in the middle of it; padding is no target.
    cont = torch.tensor([[False, False, False, True, False, False]])
    ids = torch.tensor([[2, 20, 3, 21, 0, 0]])
    assert document_segments(cont).tolist() == [[0, 0, 1, 1, 1, 1]]
    assert causal_labels(ids, cont, pad_id=0).tolist() == [[IGNORE, 3, 21, IGNORE, IGNORE, IGNORE]]


@torch.no_grad()
def test_packed_documents_get_the_logits_they_would_get_alone(tokens, model_config):
    from gristmill.model.decoder import CausalLM
    from gristmill.tokenizer import TokenDataset

    ds = TokenDataset(tokens)
    # A row where one document ends and the next begins (a start after position 1).
    row = next(i for i in range(len(ds)) if ds.get_batch([i])["doc_start"][0][2:].any())
    cfg = read_config(model_config)
    torch.manual_seed(0)
    model = CausalLM(cfg).eval()
    batch = make_causal_batch(ds, [row], cfg.pad_id, torch.device("cpu"), doc_mask=True)
    packed = model(batch.input_ids, segments=batch.segments)[0]
    starts = torch.nonzero(torch.as_tensor(ds.get_batch([row])["doc_start"][0])).flatten().tolist()
    # That document, read as `<the [SEP] before it> text [SEP]` on its own, from position 0.
    later = [s for s in starts if s > 1]
    begin = later[0] - 1
    end = later[1] - 1 if len(later) > 1 else batch.input_ids.shape[1]
    alone = model(batch.input_ids[:, begin:end])[0]
    torch.testing.assert_close(packed[begin:end], alone, atol=1e-5, rtol=0)
    crossing = model(batch.input_ids)[0]  # --no-doc-mask: the second document sees the first
    assert not torch.allclose(crossing[begin:end], alone, atol=1e-4)
    assert make_causal_batch(ds, [row], cfg.pad_id, torch.device("cpu"), doc_mask=False).segments is None


def test_decoder_run_learns_and_writes_the_usual_run(tokens, model_config, tmp_path):
    run = tmp_path / "run"
    result = pretrain(config(tokens, run, model_config, steps=40, batch_size=16, log_every=5, eval_every=20,
                             save_every=20))
    assert result.step == 40
    for name in ("config.json", "model.safetensors", "train.json", "metrics.jsonl", "loss.png",
                 "tokenizer/tokenizer.json"):
        assert (run / name).exists(), name
    assert json.loads((run / "config.json").read_text())["arch"] == "decoder"
    assert [p.name for p in list_checkpoints(run)] == ["step-0000020", "step-0000040"]
    train = [r for r in read_metrics(run) if r["kind"] == "train"]
    evals = [r for r in read_metrics(run) if r["kind"] == "eval"]
    assert train[0]["loss"] > 6.0 and train[-1]["loss"] < train[0]["loss"] - 0.5  # from ln(1000) = 6.9
    assert evals[-1]["loss"] < evals[0]["loss"] and {"perplexity", "accuracy", "targets"} <= set(evals[0])
    model, cfg, _ = load_decoder_run(run)
    assert isinstance(cfg, DecoderConfig) and not model.training


def test_resume_continues_exactly(tokens, model_config, tmp_path, monkeypatch):
    common = dict(grad_accum=2, model_config=model_config, dropout=0.1)
    full = tmp_path / "full"
    pretrain(config(tokens, full, **common))
    run = tmp_path / "interrupted"
    real, calls = pretrain_module.causal_loss_sum, {"n": 0}

    def dies_in_step_6(*args, **kwargs):
        calls["n"] += torch.is_grad_enabled()
        if calls["n"] == 5 * 2 + 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(pretrain_module, "causal_loss_sum", dies_in_step_6)
    with pytest.raises(KeyboardInterrupt):
        pretrain(config(tokens, run, **common))
    monkeypatch.setattr(pretrain_module, "causal_loss_sum", real)
    assert [p.name for p in list_checkpoints(run)] == ["step-0000004"]
    pretrain(config(tokens, run, resume=True, **common))
    expected, got = train_rows(full), train_rows(run)
    assert sorted(got) == list(range(1, 9))
    for step in range(1, 9):
        assert got[step]["loss"] == expected[step]["loss"], step
    a, b = load_file(str(full / "model.safetensors")), load_file(str(run / "model.safetensors"))
    for name in a:
        assert torch.equal(a[name], b[name]), name
    with pytest.raises(PretrainError, match="same --arch"):
        pretrain(config(tokens, run, resume=True, arch="encoder", steps=12, model_config=model_config))


def test_gradient_accumulation_and_bf16(tokens, model_config, tmp_path):
    one = train_rows(Path(pretrain(config(tokens, tmp_path / "one", model_config, steps=3)).run_dir))
    two = train_rows(Path(pretrain(config(tokens, tmp_path / "two", model_config, steps=3, grad_accum=4)).run_dir))
    for step in (1, 2, 3):
        assert abs(one[step]["loss"] - two[step]["loss"]) < 1e-4
    bf16 = pretrain(config(tokens, tmp_path / "bf16", model_config, steps=3, bf16=True, doc_mask=False))
    assert bf16.train_loss is not None and abs(bf16.train_loss - one[3]["loss"]) < 0.2


def test_pretrain_command_with_a_named_size(tokens, tmp_path):
    result = CliRunner().invoke(app, ["pretrain", "--arch", "decoder", "--data", str(tokens), "--out",
                                      str(tmp_path / "run"), "--model-size", "tiny", "--steps", "2", "--batch-size",
                                      "4", "--eval-every", "2", "--eval-batches", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "next-token accuracy" in result.output
    cfg = read_config(tmp_path / "run" / "config.json")
    assert isinstance(cfg, DecoderConfig) and cfg.name == "tiny" and cfg.hidden_size == 128
    bad = CliRunner().invoke(app, ["pretrain", "--arch", "gpt", "--data", str(tokens), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--arch" in bad.output

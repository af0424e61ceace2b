"""The pretraining loop: run layout, learning, exact resume, NaN stop, accumulation, options."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gristmill.model.config import ModelConfig
from gristmill.serve.fill_mask import MaskFiller
from gristmill.train import pretrain as pretrain_module
from gristmill.train.checkpoint import list_checkpoints, load_checkpoint, load_run
from gristmill.train.metrics import read_metrics
from gristmill.train.pretrain import PretrainConfig, TrainingDiverged, lr_lambda, param_groups, pretrain

# slow: trains, starts processes or a browser; `pytest -m "not slow"` is the fast tier (README, Development)
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]


@pytest.fixture
def tokens(pretrain_tokens: Path) -> Path:
    return pretrain_tokens


@pytest.fixture
def model_config(pretrain_model_config: Path) -> Path:
    return pretrain_model_config


def config(tokens: Path, out: Path, model_config: Path, **kw) -> PretrainConfig:
    base = dict(data=str(tokens), out=str(out), config_file=str(model_config) if model_config else None, steps=8, batch_size=8, lr=2e-3,
                warmup=2, log_every=1, eval_every=4, eval_batches=2, save_every=4, keep=2, progress=False,
                tensorboard=False)
    base.update(kw)
    return PretrainConfig(**base)


def train_rows(run: Path) -> dict[int, dict]:
    return {r["step"]: r for r in read_metrics(run) if r["kind"] == "train"}


def test_run_layout_learning_and_fill_mask(tokens, model_config, tmp_path):
    run = tmp_path / "run"
    result = pretrain(PretrainConfig(data=str(tokens), out=str(run), config_file=str(model_config), steps=40,
                                     batch_size=16, lr=5e-3, warmup=4, log_every=5, eval_every=20, eval_batches=2,
                                     save_every=10, keep=2, progress=False))
    assert result.step == 40 and result.tokens == 40 * 16 * 32
    for name in ("config.json", "model.safetensors", "train.json", "metrics.jsonl", "loss.png",
                 "tokenizer/tokenizer.json"):
        assert (run / name).exists(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert [p.name for p in list_checkpoints(run)] == ["step-0000030", "step-0000040"]
    state = json.loads((run / "checkpoints" / "step-0000040" / "state.json").read_text())
    assert state["step"] == 40 and state["sequences_consumed"] == 640 and state["world_size"] == 1
    rows = read_metrics(run)
    train = [r for r in rows if r["kind"] == "train"]
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [r["step"] for r in train] == list(range(5, 41, 5))
    assert {"step", "tokens", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s"} <= set(train[0])
    assert [r["step"] for r in evals] == [20, 40]
    assert {"loss", "accuracy", "perplexity"} <= set(evals[0])
    assert math.isclose(evals[-1]["perplexity"], math.exp(evals[-1]["loss"]), rel_tol=1e-6)
    # from ln(1000) = 6.9 at the start, the model must at least learn the token frequencies
    assert train[0]["loss"] > 6.5 and train[-1]["loss"] < train[0]["loss"] - 0.6
    assert evals[-1]["loss"] < evals[0]["loss"]
    model, cfg, tokdir = load_run(run)
    assert cfg.hidden_size == 32 and cfg.dropout == 0.1 and not model.training  # pretrained without dropout
    assert (tokdir / "tokenizer.json").exists()
    predictions = MaskFiller(run).run_batch([("the [MASK] package provides a library", 3)])[0]
    assert len(predictions) == 1 and len(predictions[0]["candidates"]) == 3
    assert predictions[0]["candidates"][0]["score"] >= predictions[0]["candidates"][1]["score"]


def test_resume_continues_exactly(tokens, model_config, tmp_path, monkeypatch):
    common = dict(grad_accum=2, model_config=model_config, dropout=0.1)  # dropout: its RNG must resume too
    full = tmp_path / "full"
    pretrain(config(tokens, full, **common))

    # The same run, killed during step 6 (after the checkpoint of step 4), then resumed.
    run = tmp_path / "interrupted"
    real, calls = pretrain_module.mlm_loss_sums, {"n": 0}

    def dies_in_step_6(*args, **kwargs):
        calls["n"] += torch.is_grad_enabled()  # training calls only, not evaluation
        if calls["n"] == 5 * 2 + 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(pretrain_module, "mlm_loss_sums", dies_in_step_6)
    with pytest.raises(KeyboardInterrupt):
        pretrain(config(tokens, run, **common))
    monkeypatch.setattr(pretrain_module, "mlm_loss_sums", real)
    assert [p.name for p in list_checkpoints(run)] == ["step-0000004"]
    assert max(train_rows(run)) == 5
    pretrain(config(tokens, run, resume=True, **common))

    expected, got = train_rows(full), train_rows(run)
    assert sorted(got) == list(range(1, 9))  # step 5 was logged before the kill, and only once after
    for step in range(1, 9):
        assert got[step]["loss"] == expected[step]["loss"], step  # bit-identical
        assert got[step]["lr"] == expected[step]["lr"]
    a, b = load_file(str(full / "model.safetensors")), load_file(str(run / "model.safetensors"))
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert any(r["kind"] == "resumed" for r in read_metrics(run))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tokens, model_config, tmp_path, monkeypatch):
    run = tmp_path / "nan"
    real, calls = pretrain_module.mlm_loss_sums, {"n": 0}

    def nan_from_step_6(*args, **kwargs):
        calls["n"] += torch.is_grad_enabled()
        mlm, nsp = real(*args, **kwargs)
        return (mlm * float("nan") if calls["n"] >= 6 else mlm), nsp

    monkeypatch.setattr(pretrain_module, "mlm_loss_sums", nan_from_step_6)
    with pytest.raises(TrainingDiverged) as err:
        pretrain(config(tokens, run, model_config=model_config))
    message = str(err.value)
    assert "nan" in message and "step 6" in message and "step-0000004" in message and "--resume" in message
    assert [p.name for p in list_checkpoints(run)] == ["step-0000004"]
    good = load_checkpoint(run / "checkpoints" / "step-0000004")
    assert good.state.step == 4
    final = load_file(str(run / "model.safetensors"))
    for name, tensor in good.model_state.items():
        assert torch.isfinite(tensor).all()
        assert torch.equal(final[name], tensor)
    assert read_metrics(run)[-1]["kind"] == "stopped"


def test_gradient_accumulation_gives_the_same_steps_as_the_full_batch(tokens, model_config, tmp_path):
    one = pretrain(config(tokens, tmp_path / "one", model_config, steps=4, dropout=0.0, eval_every=0))
    four = pretrain(config(tokens, tmp_path / "four", model_config, steps=4, dropout=0.0, eval_every=0,
                           grad_accum=4))
    for a, b in zip(one.history, four.history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)


def test_options_bf16_whole_word_nsp_pre_ln(tokens, model_config, tmp_path):
    base = pretrain(config(tokens, tmp_path / "fp32", model_config, steps=2, eval_every=0, dropout=0.0))
    bf16 = pretrain(config(tokens, tmp_path / "bf16", model_config, steps=2, eval_every=0, dropout=0.0, bf16=True))
    assert bf16.history[0]["loss"] == pytest.approx(base.history[0]["loss"], abs=0.05)
    run = tmp_path / "nsp"
    res = pretrain(PretrainConfig(data=str(tokens), out=str(run), model_size="tiny", steps=3, batch_size=8,
                                  whole_word=True, nsp=True, pre_ln=True, eval_every=3, eval_batches=1,
                                  progress=False, tensorboard=False))
    assert math.isfinite(res.train_loss) and math.isfinite(res.eval["loss"])
    model, cfg, _ = load_run(run)
    assert cfg.name == "tiny" and cfg.nsp and cfg.pre_ln and model.encoder.final_norm is not None
    assert "nsp_classifier.weight" in model.state_dict()


def test_existing_run_needs_resume_or_overwrite(tokens, model_config, tmp_path):
    run = tmp_path / "run"
    pretrain(config(tokens, run, model_config, steps=1, eval_every=0))
    with pytest.raises(pretrain_module.PretrainError, match="--resume"):
        pretrain(config(tokens, run, model_config, steps=1, eval_every=0))
    with pytest.raises(pretrain_module.PretrainError, match="already at step 1"):
        pretrain(config(tokens, run, model_config, steps=1, eval_every=0, resume=True))
    with pytest.raises(pretrain_module.PretrainError, match="divisible"):
        pretrain(config(tokens, tmp_path / "x", model_config, batch_size=6, grad_accum=4))


def test_learning_rate_schedule_and_weight_decay_groups():
    warm = [lr_lambda(s, 100, 10, "linear", 0.0) for s in range(100)]
    assert warm[0] < warm[5] < warm[9] <= 1.0
    assert warm[10] == 1.0 and warm[99] == pytest.approx(1 / 90)
    assert lr_lambda(55, 100, 10, "cosine", 0.0) == pytest.approx(0.5)
    assert lr_lambda(100, 100, 10, "cosine", 0.1) == pytest.approx(0.1)
    from gristmill.model.transformer import MaskedLM

    model = MaskedLM(ModelConfig(vocab_size=50, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32))
    decay, no_decay = param_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all("norm" in names[id(p)] or names[id(p)].endswith("bias") for p in no_decay["params"])
    assert all(names[id(p)].endswith("weight") and p.ndim == 2 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0


def test_init_from_another_run_needs_the_same_tokenizer(tokens, model_config, tmp_path):
    first = tmp_path / "first"
    pretrain(config(tokens, first, model_config, steps=20, lr=5e-3, eval_every=0))
    fresh = pretrain(config(tokens, tmp_path / "fresh", model_config, steps=1, eval_every=0))
    warm = pretrain(config(tokens, tmp_path / "warm", None, steps=1, eval_every=0, init_from=str(first)))
    assert warm.history[0]["loss"] < fresh.history[0]["loss"] - 0.3  # it starts from the trained weights

    from gristmill.tokenizer import pack_corpus, train_tokenizer

    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": f"d{i}", "text": f"other words number {i} here"}) + "\n"
                            for i in range(200)))
    other = pack_corpus(docs, train_tokenizer(docs, tmp_path / "tok", vocab_size=100, show_progress=False),
                        tmp_path / "other-tokens", seq_len=32, val_fraction=0.0)
    assert other
    with pytest.raises(pretrain_module.PretrainError, match="another tokenizer"):
        pretrain(config(tmp_path / "other-tokens", tmp_path / "bad", None, steps=1, eval_every=0,
                        init_from=str(first)))


def text(result) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def test_command_line_verbs(tokens, model_config, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from gristmill.cli import app

    cli = CliRunner()
    run = tmp_path / "run"
    args = ["pretrain", "--data", str(tokens), "--out", str(run), "--config", str(model_config), "--steps", "3",
            "--batch-size", "8", "--eval-every", "3", "--eval-batches", "1", "--no-progress"]
    done = cli.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "step 3" in text(done) and "val loss" in text(done)
    filled = cli.invoke(app, ["fill-mask", str(run), "the [MASK] is installed", "--top-k", "4"])
    assert filled.exit_code == 0, filled.output
    assert "probability" in text(filled)
    no_mask = cli.invoke(app, ["fill-mask", str(run), "nothing to fill"])
    assert no_mask.exit_code == 2 and "[MASK]" in text(no_mask)
    # One fill-mask: the CLI's --json is the service's POST /fill-mask response, from the same MaskFiller.
    as_json = cli.invoke(app, ["fill-mask", str(run), "the [MASK] is [MASK]", "--top-k", "2", "--json"])
    assert as_json.exit_code == 0, as_json.output
    printed = json.loads(as_json.stdout)
    assert printed == {"results": MaskFiller(run).run_batch([("the [MASK] is [MASK]", 2)])}
    assert [len(m["candidates"]) for m in printed["results"][0]] == [2, 2]
    assert set(printed["results"][0][0]["candidates"][0]) == {"token", "token_id", "score"}
    import gristmill.train.commands as train_commands

    assert not hasattr(train_commands, "fill_mask")
    missing = cli.invoke(app, ["pretrain", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r2")])
    assert missing.exit_code == 2 and "manifest.json" in text(missing)

    real = pretrain_module.mlm_loss_sums

    def nan(*a, **k):
        mlm, nsp = real(*a, **k)
        return mlm * float("inf"), nsp

    monkeypatch.setattr(pretrain_module, "mlm_loss_sums", nan)
    diverged = cli.invoke(app, args[:4] + [str(tmp_path / "r3")] + args[5:])
    assert diverged.exit_code == 3
    assert "inf" in text(diverged) and "No checkpoint" in text(diverged)


def test_without_tensorboard_the_run_says_so_once_and_records_it(tokens, model_config, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "tensorboard", None)  # as on an install without the extra
    run = tmp_path / "run"
    pretrain(config(tokens, run, model_config, steps=4, tensorboard=True))
    assert json.loads((run / "train.json").read_text())["tensorboard"] is False
    assert not (run / "tensorboard").exists()
    assert (run / "metrics.jsonl").exists() and (run / "loss.png").exists()
    err = capsys.readouterr().err
    assert err.count("tensorboard is not installed") == 1 and 'gristmill[tensorboard]' in err


def test_the_run_tokenizer_says_the_length_the_model_was_trained_on(tokens, model_config, tmp_path):
    from gristmill.tokenizer.tokdir import model_max_length

    run = tmp_path / "run"
    pretrain(config(tokens, run, model_config, steps=1, eval_every=0, save_every=1))
    source = json.loads((tokens / "manifest.json").read_text())
    assert source["seq_len"] == 32 and model_max_length(tokens / "tokenizer") == 512  # the input is left as it was
    assert model_max_length(run / "tokenizer") == 32
    assert json.loads((run / "tokenizer" / "tokenizer_config.json").read_text())["model_max_length"] == 32


def test_pretrain_json_summary(tokens, model_config, tmp_path):
    from typer.testing import CliRunner

    from gristmill.cli import app

    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["pretrain", "--data", str(tokens), "-o", str(run), "--config", str(model_config),
                                      "--steps", "2", "--batch-size", "8", "--eval-every", "2", "--eval-batches", "1",
                                      "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # one JSON object and nothing else on stdout
    assert summary["run"] == str(run) and summary["step"] == 2 and summary["tokens"] == 2 * 8 * 32
    assert summary["eval"]["loss"] > 0 and summary["train_loss"] > 0 and summary["arch"] == "encoder"

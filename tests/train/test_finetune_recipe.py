"""The few-label recipe's pieces: layer-wise learning rates, mean pooling, re-initialised top blocks."""

from __future__ import annotations

import pytest
import torch

from gristmill.model.config import ConfigError, ModelConfig
from gristmill.model.transformer import SequenceClassifier
from gristmill.train.finetune import FineTuneConfig, _optimizer, layer_depth, reinit_top_layers


def config(**kw) -> ModelConfig:
    return ModelConfig(vocab_size=50, hidden_size=16, num_layers=3, num_heads=2, intermediate_size=32, max_position=16,
                       **kw)


def test_layer_wise_learning_rates_fall_by_depth():
    model = SequenceClassifier(config(), 3)
    groups = _optimizer(model, FineTuneConfig(lr=1e-3, layer_decay=0.5)).param_groups
    by_id = {id(p): g["lr"] for g in groups for p in g["params"]}
    lr = {name: by_id[id(p)] for name, p in model.named_parameters()}
    assert lr["classifier.weight"] == pytest.approx(1e-3) and lr["pooler.dense.weight"] == pytest.approx(1e-3)
    assert lr[next(n for n in lr if n.startswith("encoder.layers.2."))] == pytest.approx(5e-4)
    assert lr[next(n for n in lr if n.startswith("encoder.layers.0."))] == pytest.approx(1.25e-4)
    assert lr["encoder.embeddings.word_embeddings.weight"] == pytest.approx(6.25e-5)
    assert layer_depth("encoder.layers.1.attention.qkv.weight", 3) == 2
    # without decay: one rate, and weight decay still spares biases and LayerNorms
    plain = _optimizer(model, FineTuneConfig(lr=1e-3)).param_groups
    assert {g["lr"] for g in plain} == {1e-3} and sorted(g["weight_decay"] for g in plain) == [0.0, 0.01]


def test_mean_pooling_ignores_padding():
    torch.manual_seed(0)
    model = SequenceClassifier(config(pooling="mean", dropout=0.0, attention_dropout=0.0), 3).eval()
    ids = torch.tensor([[2, 7, 8, 9, 3]])
    padded = torch.tensor([[2, 7, 8, 9, 3, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0]])
    assert torch.allclose(model(ids), model(padded, mask), atol=1e-5)
    cls = SequenceClassifier(config(dropout=0.0, attention_dropout=0.0), 3).eval()
    cls.load_state_dict(model.state_dict())
    assert not torch.allclose(cls(ids), model(ids))  # a different summary of the same states
    with pytest.raises(ConfigError, match="pooling"):
        config(pooling="max")


def test_reinit_resets_only_the_top_blocks():
    torch.manual_seed(0)
    model = SequenceClassifier(config(), 3)
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(1.0)  # stand-in for pretrained weights
    before = {k: v.clone() for k, v in model.state_dict().items()}
    reinit_top_layers(model, model.config, 1)
    after = model.state_dict()
    changed = {k.split(".")[2] for k in after if k.startswith("encoder.layers.") and not torch.equal(after[k], before[k])}
    assert changed == {"2"}
    assert torch.equal(after["encoder.embeddings.word_embeddings.weight"], before["encoder.embeddings.word_embeddings.weight"])


def _tiny_run_and_task(tmp_path):
    """A 2-layer RUN folder with a word-level tokenizer, and a two-class task as train/dev/test JSONL."""
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers

    from gristmill.model.transformer import MaskedLM
    from gristmill.tokenizer.tokdir import save_tokdir
    from gristmill.train.checkpoint import save_run_weights

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "red", "blue", "cat", "dog", "the"]
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    run = tmp_path / "run"
    save_tokdir(tok, run / "tokenizer", lowercase=False, model_max_length=16)
    cfg = ModelConfig(vocab_size=len(vocab), hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
                      max_position=16)
    cfg.to_json(run / "config.json")
    save_run_weights(MaskedLM(cfg), run / "model.safetensors")
    rows = [{"text": f"the {w} {w}", "label": label} for label, ws in (("colour", ("red", "blue")), ("animal", ("cat", "dog")))
            for w in ws for _ in range(4)]
    for split in ("train", "dev", "test"):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_recipe_options_reach_the_saved_model(tmp_path):
    """--pooling mean is saved in FT/config.json, so prediction pools as training did."""
    import json

    from typer.testing import CliRunner

    from gristmill.cli import app
    from gristmill.serve.loading import classifier_from
    from gristmill.train.finetuned import load_finetuned

    run = _tiny_run_and_task(tmp_path)
    out = tmp_path / "ft"
    done = CliRunner().invoke(app, ["finetune", "--model", str(run), "--train", str(tmp_path / "train.jsonl"),
                                    "--dev", str(tmp_path / "dev.jsonl"), "--test", str(tmp_path / "test.jsonl"),
                                    "--epochs", "1", "--max-length", "16", "--pooling", "mean", "--layer-decay", "0.8",
                                    "--reinit-layers", "1", "--out", str(out)])
    assert done.exit_code == 0, done.output
    budget = json.loads((out / "metrics.json").read_text())["budget"]
    assert budget["pooling"] == "mean" and budget["layer_decay"] == 0.8 and budget["reinit_layers"] == 1
    ft = load_finetuned(out)
    assert ft.config.pooling == "mean" and classifier_from(ft).predict_proba(["the cat"]).shape == (1, 2)
    bad = CliRunner().invoke(app, ["finetune", "--model", str(run), "--train", str(tmp_path / "train.jsonl"),
                                   "--pooling", "max", "--max-length", "16", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "pooling" in bad.output


def test_bf16_autocast_trains_and_saves_fp32_weights(tmp_path):
    """--bf16 runs the training forward pass in bf16 (so the weights differ from an fp32 run with the same
    seed) and still saves fp32 weights that predict."""
    import json

    from safetensors.torch import load_file
    from typer.testing import CliRunner

    from gristmill.cli import app

    run = _tiny_run_and_task(tmp_path)
    weights = {}
    for precision in ("--bf16", "--fp32"):
        out = tmp_path / f"ft{precision}"
        done = CliRunner().invoke(app, ["finetune", "--model", str(run), "--train", str(tmp_path / "train.jsonl"),
                                        "--dev", str(tmp_path / "dev.jsonl"), "--test", str(tmp_path / "test.jsonl"),
                                        "--epochs", "2", "--max-length", "16", precision, "--out", str(out)])
        assert done.exit_code == 0, done.output
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["budget"]["bf16"] is (precision == "--bf16") and 0 <= metrics["test"]["accuracy"] <= 1
        weights[precision] = load_file(out / "model.safetensors")
    assert {t.dtype for w in weights.values() for t in w.values() if t.is_floating_point()} == {torch.float32}
    assert any(not torch.equal(weights["--bf16"][k], weights["--fp32"][k]) for k in weights["--fp32"])

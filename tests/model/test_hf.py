"""Hugging Face interoperability: export to BertForMaskedLM and import from it, logits equal within 1e-4."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from gristmill.model.config import ModelConfig
from gristmill.model.hf import HFError, export_hf, import_hf
from gristmill.model.transformer import MaskedLM
from gristmill.train.checkpoint import load_run, save_run_weights
from tests.sample import write_sample_head

transformers = pytest.importorskip("transformers")
TEXTS = ["The package provides a command line tool for the system.", "Python documentation: the re module."]


@pytest.fixture(scope="module")
def tokdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gristmill.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("hf-tok")
    docs = write_sample_head(root / "docs.jsonl", 200)
    return train_tokenizer(docs, root / "tok", vocab_size=600, show_progress=False)


def make_run(path: Path, tokdir: Path, **overrides) -> tuple[Path, MaskedLM]:
    config = ModelConfig(vocab_size=600, hidden_size=48, num_layers=2, num_heads=3, intermediate_size=96,
                         max_position=64, **overrides)
    torch.manual_seed(0)
    model = MaskedLM(config)
    with torch.no_grad():  # larger than BERT's init so that a wrong mapping cannot hide in tiny numbers
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    path.mkdir(parents=True)
    config.to_json(path / "config.json")
    save_run_weights(model, path / "model.safetensors")
    shutil.copytree(tokdir, path / "tokenizer")
    return path, model.eval()


def batch(tokenizer) -> dict[str, torch.Tensor]:
    enc = tokenizer(TEXTS, padding=True, return_tensors="pt")
    enc["token_type_ids"][1, 4:] = 1  # exercise the segment embeddings too
    return enc


def test_export_loads_in_transformers_with_equal_logits(tokdir, tmp_path):
    run, model = make_run(tmp_path / "run", tokdir)
    out = export_hf(run, tmp_path / "hf")
    bert = transformers.BertForMaskedLM.from_pretrained(out).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    from gristmill.tokenizer import load_tokenizer

    ours = load_tokenizer(run / "tokenizer")
    assert tokenizer(TEXTS[0])["input_ids"] == ours.encode(TEXTS[0]).ids
    enc = batch(tokenizer)
    assert (enc["attention_mask"] == 0).any()
    with torch.no_grad():
        theirs = bert(**enc).logits
        mine = model(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    keep = enc["attention_mask"].bool()
    assert (theirs[keep] - mine[keep]).abs().max() < 1e-4
    assert theirs.abs().max() > 1.0  # the comparison is not between two near-zero tensors


def test_import_from_a_local_bert_gives_the_same_logits(tokdir, tmp_path):
    config = transformers.BertConfig(vocab_size=600, hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
                                     intermediate_size=96, max_position_embeddings=64, hidden_act="gelu_new",
                                     pad_token_id=0)
    torch.manual_seed(1)
    bert = transformers.BertForMaskedLM(config).eval()
    with torch.no_grad():
        for p in bert.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    hf_dir = tmp_path / "bert"
    bert.save_pretrained(hf_dir)
    transformers.AutoTokenizer.from_pretrained(tokdir).save_pretrained(hf_dir)

    run = import_hf(hf_dir, tmp_path / "run")
    model, cfg, run_tokdir = load_run(run)
    assert cfg.activation == "gelu_tanh" and cfg.num_layers == 2
    from gristmill.tokenizer import load_tokenizer, special_ids

    assert special_ids(run_tokdir)["mask"] == 4
    assert load_tokenizer(run_tokdir).encode(TEXTS[1]).ids == load_tokenizer(tokdir).encode(TEXTS[1]).ids
    enc = batch(transformers.AutoTokenizer.from_pretrained(hf_dir))
    with torch.no_grad():
        theirs = bert(**enc).logits
        mine = model(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    keep = enc["attention_mask"].bool()
    assert (theirs[keep] - mine[keep]).abs().max() < 1e-4
    assert not json.loads((run / "import.json").read_text())["mlm_head_initialised_randomly"]

    # and back out again: the round trip gives the same weights
    again = export_hf(run, tmp_path / "again")
    bert2 = transformers.BertForMaskedLM.from_pretrained(again)
    for name, tensor in bert.state_dict().items():
        torch.testing.assert_close(bert2.state_dict()[name], tensor, rtol=0, atol=0)
    with pytest.raises(HFError, match="not empty"):
        import_hf(hf_dir, run)


def test_pre_ln_runs_cannot_be_exported_as_bert(tokdir, tmp_path):
    run, _ = make_run(tmp_path / "run", tokdir, pre_ln=True)
    with pytest.raises(HFError, match="pre-LN"):
        export_hf(run, tmp_path / "hf")


def test_import_rejects_what_it_cannot_represent(tmp_path):
    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, position_embedding_type="relative_key")
    transformers.BertForMaskedLM(config).save_pretrained(tmp_path / "rel")
    with pytest.raises(HFError, match="position_embedding_type"):
        import_hf(tmp_path / "rel", tmp_path / "run")
    with pytest.raises(HFError, match="config.json"):
        import_hf(tmp_path / "nothing", tmp_path / "run2")


def test_import_hf_command(tokdir, tmp_path):
    from typer.testing import CliRunner

    from gristmill.cli import app

    config = transformers.BertConfig(vocab_size=600, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=32)
    transformers.BertModel(config).save_pretrained(tmp_path / "encoder-only")  # no MLM head in the checkpoint
    no_tokenizer = CliRunner().invoke(app, ["import-hf", str(tmp_path / "encoder-only"), "--out", str(tmp_path / "r")])
    assert no_tokenizer.exit_code == 2 and "no tokenizer" in " ".join(no_tokenizer.output.split())
    transformers.AutoTokenizer.from_pretrained(tokdir).save_pretrained(tmp_path / "encoder-only")
    result = CliRunner().invoke(app, ["import-hf", str(tmp_path / "encoder-only"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "MLM head" in " ".join(result.output.split())
    assert json.loads((tmp_path / "run" / "import.json").read_text())["mlm_head_initialised_randomly"]
    bad = CliRunner().invoke(app, ["import-hf", str(tmp_path / "missing"), "--out", str(tmp_path / "run2")])
    assert bad.exit_code == 2 and "config.json" in " ".join(bad.output.split())


@pytest.mark.parametrize("kind", ["roberta", "distilbert"])
def test_import_hf_refuses_an_architecture_it_cannot_map(tokdir, tmp_path, kind):
    from typer.testing import CliRunner

    from gristmill.cli import app

    if kind == "roberta":
        config = transformers.RobertaConfig(vocab_size=600, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                            intermediate_size=32, max_position_embeddings=40)
        model = transformers.RobertaForMaskedLM(config)
    else:
        config = transformers.DistilBertConfig(vocab_size=600, dim=16, n_layers=1, n_heads=2, hidden_dim=32,
                                               max_position_embeddings=32)
        model = transformers.DistilBertForMaskedLM(config)
    model.save_pretrained(tmp_path / kind)
    transformers.AutoTokenizer.from_pretrained(tokdir).save_pretrained(tmp_path / kind)
    result = CliRunner().invoke(app, ["import-hf", str(tmp_path / kind), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert f"'{kind}' checkpoint" in message and "maps 'bert' and 'llama' only" in message
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_import_hf_refuses_a_bert_with_missing_encoder_weights(tokdir, tmp_path):
    from safetensors.torch import load_file, save_file
    from typer.testing import CliRunner

    from gristmill.cli import app

    config = transformers.BertConfig(vocab_size=600, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=32)
    hf_dir = tmp_path / "bert"
    transformers.BertForMaskedLM(config).save_pretrained(hf_dir)
    transformers.AutoTokenizer.from_pretrained(tokdir).save_pretrained(hf_dir)
    weights = load_file(hf_dir / "model.safetensors")
    dropped = next(k for k in weights if "encoder.layer.0.attention.self.query.weight" in k)
    del weights[dropped]
    save_file(weights, hf_dir / "model.safetensors", metadata={"format": "pt"})
    result = CliRunner().invoke(app, ["import-hf", str(hf_dir), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "lacks 1 encoder weight(s)" in message and "query.weight" in message
    assert not (tmp_path / "run" / "model.safetensors").exists()

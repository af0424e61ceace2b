"""The decoder: Llama equality, the KV cache, block-diagonal documents, left padding, HF export/import."""

from __future__ import annotations

import json

import pytest
import torch

from gristmill.model.config import ConfigError, DecoderConfig, ModelConfig, read_config, swiglu_width
from gristmill.model.decoder import CausalLM, DecoderSequenceClassifier, KVCache, positions_from_mask
from gristmill.model.hf import HFError, export_hf, from_llama_config, import_hf, to_llama, to_llama_config
from gristmill.train.checkpoint import save_run_weights

transformers = pytest.importorskip("transformers")


def small(**kw) -> DecoderConfig:
    base = dict(vocab_size=300, hidden_size=64, num_layers=2, num_heads=4, intermediate_size=96, max_position=64,
                pad_id=0, bos_id=1, eos_id=2, rope_theta=500.0, rms_norm_eps=1e-5)
    base.update(kw)
    return DecoderConfig(**base)


def model(config: DecoderConfig, seed: int = 0) -> CausalLM:
    torch.manual_seed(seed)
    m = CausalLM(config).eval()
    with torch.no_grad():  # RMSNorm weights away from 1, so a wrong mapping of them would show
        for name, p in m.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    return m


def test_named_sizes_and_config_round_trip(tmp_path):
    tiny = DecoderConfig.named("tiny", 1000)
    assert (tiny.num_layers, tiny.hidden_size, tiny.num_heads, tiny.intermediate_size) == (2, 128, 2, 384)
    assert DecoderConfig.named("mini", 1000).intermediate_size == swiglu_width(256) == 704
    assert DecoderConfig.named("small", 1000).hidden_size == 512
    tiny.to_json(tmp_path / "config.json")
    assert read_config(tmp_path / "config.json") == tiny
    with pytest.raises(ConfigError, match="is a decoder"):
        ModelConfig.from_json(tmp_path / "config.json")
    with pytest.raises(ConfigError, match="even size"):
        small(hidden_size=60, num_heads=4)
    with pytest.raises(ConfigError, match="eos_id"):
        small(eos_id=300)


def test_logits_equal_transformers_llama():
    config = small()
    ours = model(config)
    llama = to_llama(ours, config)
    ids = torch.randint(0, config.vocab_size, (3, 40))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), llama(ids).logits, atol=1e-4, rtol=0)
    assert to_llama_config(config).tie_word_embeddings and from_llama_config(to_llama_config(config)) == \
        DecoderConfig(**{**config.to_dict(), "name": None})


@torch.no_grad()
def test_kv_cache_gives_the_logits_of_the_full_sequence():
    config = small()
    m = model(config)
    ids = torch.randint(0, config.vocab_size, (2, 30))
    full = m(ids)
    cache = KVCache(config, 2, 30)
    parts = [m(ids[:, :12], cache=cache), m(ids[:, 12:13], cache=cache), m(ids[:, 13:20], cache=cache)]
    parts += [m(ids[:, t:t + 1], cache=cache) for t in range(20, 30)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=0)
    assert cache.length == 30
    with pytest.raises(ValueError, match="positions"):
        m(ids[:, :1], cache=cache)


@torch.no_grad()
def test_block_diagonal_segments_give_each_document_its_own_logits():
    config = small()
    m = model(config)
    a, b = torch.randint(3, config.vocab_size, (1, 9)), torch.randint(3, config.vocab_size, (1, 14))
    packed = torch.cat([a, b], dim=1)
    segments = torch.tensor([[0] * 9 + [1] * 14])
    out = m(packed, segments=segments)
    torch.testing.assert_close(out[:, :9], m(a), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, 9:], m(b), atol=1e-5, rtol=0)  # as if alone, at position 0
    # without the mask, b sees a: different logits
    assert not torch.allclose(m(packed)[:, 9:], m(b), atol=1e-3)


@torch.no_grad()
def test_left_padding_with_positions_matches_unpadded_rows():
    config = small()
    m = model(config)
    short, long = torch.randint(3, 300, (1, 6)), torch.randint(3, 300, (1, 10))
    ids = torch.cat([torch.cat([torch.zeros(1, 4, dtype=torch.long), short], 1), long])
    mask = torch.tensor([[0] * 4 + [1] * 6, [1] * 10])
    out = m(ids, attention_mask=mask, positions=positions_from_mask(mask))
    torch.testing.assert_close(out[0, 4:], m(short)[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], m(long)[0], atol=1e-5, rtol=0)


@torch.no_grad()
def test_sequence_classifier_pools_the_last_real_token():
    config = small()
    clf = DecoderSequenceClassifier(config, 3).eval()
    ids = torch.randint(3, 300, (2, 8))
    ids[1, 5:] = 0
    mask = (ids != 0).long()
    mask[0] = 1
    logits = clf(ids, mask)
    alone = clf(ids[1:, :5], torch.ones(1, 5, dtype=torch.long))
    torch.testing.assert_close(logits[1:], alone, atol=1e-5, rtol=0)
    assert logits.shape == (2, 3)


def write_run(tmp_path, config: DecoderConfig, m: CausalLM):
    """A decoder RUN with a byte-level BPE tokenizer whose [PAD]/[CLS]/[SEP] are the config's ids."""
    from gristmill.tokenizer import TokenDataset
    from tests.decoder_run import build_tokens

    tokens = build_tokens(tmp_path / "data", docs=60)
    ds = TokenDataset(tokens)
    config = DecoderConfig(**{**config.to_dict(), "vocab_size": ds.vocab_size, "pad_id": ds.special["pad"],
                              "bos_id": ds.special["cls"], "eos_id": ds.special["sep"]})
    m = model(config)
    run = tmp_path / "run"
    run.mkdir()
    config.to_json(run / "config.json")
    save_run_weights(m, run / "model.safetensors")
    import shutil

    shutil.copytree(tokens / "tokenizer", run / "tokenizer")
    return run, config, m


def test_export_loads_with_auto_model_and_generates_the_same_tokens(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gristmill.serve.generate import Sampling, TextGenerator

    run, config, m = write_run(tmp_path, small(), None)
    out = export_hf(run, tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(out, local_files_only=True).eval()
    assert type(hf).__name__ == "LlamaForCausalLM"
    ids = torch.randint(0, config.vocab_size, (2, 50))
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, m(ids), atol=1e-4, rtol=0)
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert tokenizer.eos_token_id == config.eos_id and tokenizer.bos_token_id == config.bos_id

    generator = TextGenerator.from_run(run)
    prompt = "The package provides"
    (ours,) = generator.generate([prompt], Sampling(max_new_tokens=20, ignore_eos=True))
    prompt_ids = torch.tensor([generator.encode(prompt)])
    theirs = hf.generate(prompt_ids, max_new_tokens=20, do_sample=False, min_new_tokens=20,
                         pad_token_id=config.pad_id)
    assert theirs[0, prompt_ids.shape[1]:].tolist() == ours.tokens


def test_import_of_an_exported_llama_gives_the_same_run(tmp_path):
    from safetensors.torch import load_file

    run, config, _ = write_run(tmp_path, small(), None)
    hf = export_hf(run, tmp_path / "hf")
    back = import_hf(hf, tmp_path / "back")
    assert read_config(back / "config.json") == DecoderConfig(**{**config.to_dict(), "name": None})
    a, b = load_file(str(run / "model.safetensors")), load_file(str(back / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert json.loads((back / "import.json").read_text())["architecture"] == "LlamaForCausalLM"


def test_import_rejects_llamas_it_cannot_represent(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    gqa = LlamaConfig(vocab_size=100, hidden_size=64, intermediate_size=96, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    LlamaForCausalLM(gqa).save_pretrained(tmp_path / "gqa")
    with pytest.raises(HFError, match="grouped-query"):
        import_hf(tmp_path / "gqa", tmp_path / "run")
    untied = LlamaConfig(vocab_size=100, hidden_size=64, intermediate_size=96, num_hidden_layers=1,
                         num_attention_heads=4, tie_word_embeddings=False)
    LlamaForCausalLM(untied).save_pretrained(tmp_path / "untied")
    with pytest.raises(HFError, match="untied"):
        import_hf(tmp_path / "untied", tmp_path / "run2")


def test_labels_give_the_summed_loss_and_gradients_of_the_logits():
    """Training passes ``labels`` and never sees the logits; loss and gradients must be those of the logits."""
    config = small()
    ids = torch.randint(3, 300, (2, 12), generator=torch.Generator().manual_seed(0))
    labels = torch.full_like(ids, -100)
    labels[:, :-1] = ids[:, 1:]
    fused, plain = model(config).train(), model(config).train()
    loss = fused(ids, labels=labels)
    loss.backward()
    logits = plain(ids)
    expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="sum")
    expected.backward()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-4)
    for (name, a), b in zip(fused.named_parameters(), plain.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)

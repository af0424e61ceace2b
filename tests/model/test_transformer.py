"""The encoder against the formulas it implements, and the heads' contracts."""

from __future__ import annotations

import math

import pytest
import torch

from gristmill.model.config import ConfigError, ModelConfig
from gristmill.model.transformer import Encoder, MaskedLM, SelfAttention, SequenceClassifier, TokenClassifier


def tiny(**kw) -> ModelConfig:
    base = dict(vocab_size=50, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, max_position=40,
                dropout=0.0, attention_dropout=0.0)
    base.update(kw)
    return ModelConfig(**base)


def reference_attention(attn: SelfAttention, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d_k)) V per head, written out with plain tensor operations."""
    B, T, H = x.shape
    heads, d = attn.num_heads, attn.head_dim
    wq, wk, wv = attn.qkv.weight.split(H)
    bq, bk, bv = attn.qkv.bias.split(H)
    outs = []
    for h in range(heads):
        cols = slice(h * d, (h + 1) * d)
        q = x @ wq[cols].T + bq[cols]
        k = x @ wk[cols].T + bk[cols]
        v = x @ wv[cols].T + bv[cols]
        scores = q @ k.transpose(1, 2) / math.sqrt(d)
        if keep is not None:
            scores = scores.masked_fill(~keep[:, None, :].bool(), float("-inf"))
        outs.append(torch.softmax(scores, dim=-1) @ v)
    return torch.cat(outs, dim=-1) @ attn.out.weight.T + attn.out.bias


def test_attention_matches_the_formula_with_and_without_padding():
    torch.manual_seed(0)
    attn = SelfAttention(tiny()).eval()
    for p in attn.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(3, 7, 32)
    keep = torch.ones(3, 7, dtype=torch.long)
    keep[1, 5:] = 0
    keep[2, 2:] = 0
    with torch.no_grad():
        torch.testing.assert_close(attn(x), reference_attention(attn, x, None), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(attn(x, keep.bool()[:, None, None, :]), reference_attention(attn, x, keep),
                                   atol=1e-5, rtol=1e-5)


def test_padding_does_not_change_the_real_tokens():
    torch.manual_seed(1)
    for pre_ln in (False, True):
        model = Encoder(tiny(pre_ln=pre_ln)).eval()
        ids = torch.randint(5, 50, (1, 6))
        padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
        mask = torch.cat([torch.ones(1, 6), torch.zeros(1, 4)], dim=1).long()
        with torch.no_grad():
            short = model(ids)
            long = model(padded, attention_mask=mask)
        torch.testing.assert_close(long[:, :6], short, atol=1e-5, rtol=1e-5)


def test_post_ln_and_pre_ln_differ_in_structure():
    post, pre = Encoder(tiny()), Encoder(tiny(pre_ln=True))
    assert post.final_norm is None and pre.final_norm is not None
    # post-LN ends in a LayerNorm, so every position has mean ~0 and variance ~1 before the affine part
    with torch.no_grad():
        out = post(torch.randint(5, 50, (2, 9)))
    torch.testing.assert_close(out.mean(-1), torch.zeros(2, 9), atol=1e-4, rtol=0)


@pytest.mark.parametrize("pre_ln", [False, True])
def test_masked_positions_give_the_same_logits_and_gradients_as_the_full_model(pre_ln):
    torch.manual_seed(2)
    model = MaskedLM(tiny(pre_ln=pre_ln))
    ids = torch.randint(5, 50, (3, 10))
    keep = torch.ones(3, 10, dtype=torch.long)
    keep[2, 7:] = 0
    chosen = torch.zeros(3, 10, dtype=torch.bool)
    chosen[0, [1, 4, 5]] = True
    chosen[2, [0, 6]] = True  # row 1 has none: the last layer pads rows to different query counts
    full = model(ids, keep)
    assert full.shape == (3, 10, 50)
    sparse = model(ids, keep, masked_positions=chosen)  # last layer runs at the chosen positions only
    by_index = model(ids, keep, masked_positions=chosen.flatten().nonzero().squeeze(1))
    assert sparse.shape == (5, 50)
    assert model(ids, keep, masked_positions=torch.zeros_like(chosen)).shape == (0, 50)
    torch.testing.assert_close(sparse, full[chosen], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(by_index, full[chosen], atol=1e-5, rtol=1e-5)
    weights = torch.randn(5, 50)
    grads = []
    for logits in (full[chosen], sparse):
        model.zero_grad()
        (logits * weights).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-5, rtol=1e-4)


def test_masked_positions_under_bf16_autocast():
    torch.manual_seed(3)
    model = MaskedLM(tiny()).eval()
    ids = torch.randint(5, 50, (4, 12))
    chosen = torch.rand(4, 12) < 0.3
    with torch.no_grad():
        reference = model(ids)[chosen]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            sparse = model(ids, masked_positions=chosen)
    assert sparse.dtype == torch.bfloat16
    torch.testing.assert_close(sparse.float(), reference, atol=0.02, rtol=0.02)


def test_decoder_is_tied_to_the_input_embeddings():
    model = MaskedLM(tiny())
    names = list(model.state_dict())
    assert sum("word_embeddings" in n for n in names) == 1
    assert "head.bias" in names
    logits = model(torch.randint(5, 50, (1, 5)))
    logits[0, 0, 7].backward()
    # the output projection's gradient reaches the embedding row of token 7 even though 7 is not in the input
    assert model.encoder.embeddings.word_embeddings.weight.grad[7].abs().sum() > 0


def test_heads_shapes_and_shared_encoder_names():
    config = tiny()
    ids = torch.randint(5, 50, (3, 8))
    seq, tok, mlm = SequenceClassifier(config, 6), TokenClassifier(config, 4), MaskedLM(config)
    assert seq(ids).shape == (3, 6)
    assert tok(ids).shape == (3, 8, 4)
    assert set(seq.encoder.state_dict()) == set(mlm.encoder.state_dict()) == set(tok.encoder.state_dict())


def test_too_long_input_is_a_clear_error():
    with pytest.raises(ValueError, match="max_position"):
        Encoder(tiny())(torch.randint(5, 50, (1, 41)))


def test_named_sizes_follow_the_bert_miniatures(tmp_path):
    expected = {"tiny": (2, 128), "mini": (4, 256), "small": (4, 512), "medium": (8, 512), "base": (12, 768)}
    for name, (layers, hidden) in expected.items():
        c = ModelConfig.named(name, vocab_size=1000)
        assert (c.num_layers, c.hidden_size, c.num_heads, c.intermediate_size) == (layers, hidden, hidden // 64,
                                                                                  4 * hidden)
    c = ModelConfig.named("mini", vocab_size=30522)
    params = sum(p.numel() for p in MaskedLM(c).parameters())
    assert 11_000_000 < params < 11_500_000  # BERT-mini has 11.2M parameters
    c.to_json(tmp_path / "config.json")
    assert ModelConfig.from_json(tmp_path / "config.json") == c


def test_config_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match="divisible"):
        ModelConfig(vocab_size=10, hidden_size=30, num_heads=4)
    with pytest.raises(ConfigError, match="unknown model size"):
        ModelConfig.named("huge", 10)
    (tmp_path / "c.json").write_text('{"vocab_size": 10, "hiden_size": 8}')
    with pytest.raises(ConfigError, match="hiden_size"):
        ModelConfig.from_json(tmp_path / "c.json")


def test_dropout_is_active_only_in_training():
    model = MaskedLM(tiny(dropout=0.5, attention_dropout=0.5))
    ids = torch.randint(5, 50, (2, 6))
    model.train()
    assert not torch.equal(model(ids), model(ids))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(ids), model(ids))


@pytest.mark.parametrize("nsp", [False, True])
def test_labels_give_the_summed_masked_lm_loss_and_gradients_of_the_logits(nsp):
    """Pretraining passes ``labels`` for the masked positions; loss and gradients must be those of the logits."""
    config = tiny(nsp=nsp)
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(5, 50, (3, 16), generator=generator)
    masked = torch.rand(3, 16, generator=generator) < 0.3
    labels = torch.randint(5, 50, (int(masked.sum()),), generator=generator)
    torch.manual_seed(0)
    fused = MaskedLM(config)
    plain = MaskedLM(config)
    plain.load_state_dict(fused.state_dict())
    if nsp:
        loss, nsp_logits = fused(ids, masked_positions=masked, labels=labels, return_nsp=True)
        logits, nsp_plain = plain(ids, masked_positions=masked, return_nsp=True)
        torch.testing.assert_close(nsp_logits, nsp_plain)
        (loss + nsp_logits.sum()).backward()
        expected = torch.nn.functional.cross_entropy(logits, labels, reduction="sum")
        (expected + nsp_plain.sum()).backward()
    else:
        loss = fused(ids, masked_positions=masked, labels=labels)
        loss.backward()
        expected = torch.nn.functional.cross_entropy(plain(ids, masked_positions=masked), labels, reduction="sum")
        expected.backward()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-4)
    for (name, a), b in zip(fused.named_parameters(), plain.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)

"""linear_cross_entropy must give the loss and gradients of projection + F.cross_entropy, chunk by chunk."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gristmill.model import loss as loss_module
from gristmill.model.loss import IGNORE, linear_cross_entropy


def reference(hidden, weight, labels, bias=None):
    logits = F.linear(hidden, weight, bias)
    return F.cross_entropy(logits.float().flatten(0, -2), labels.flatten(), ignore_index=IGNORE, reduction="sum")


def leaves(*tensors):
    return [t.detach().clone().requires_grad_() if t is not None else None for t in tensors]


def grads_of(fn, hidden, weight, bias, labels):
    h, w, b = leaves(hidden, weight, bias)
    value = fn(h, w, labels, b)
    (value * 0.5).backward()  # a scale on the way back, as the training loop divides by the target count
    return value.detach(), h.grad, w.grad, None if b is None else b.grad


@pytest.mark.parametrize("with_bias", [False, True])
def test_loss_and_gradients_equal_projection_then_cross_entropy(with_bias, monkeypatch):
    monkeypatch.setattr(loss_module, "chunk_rows", lambda device, vocab_size: 7)  # many chunks and a ragged last one
    torch.manual_seed(0)
    hidden, weight = torch.randn(3, 20, 16), torch.randn(50, 16) * 0.3
    bias = torch.randn(50) if with_bias else None
    labels = torch.randint(0, 50, (3, 20))
    labels[0, :5] = IGNORE
    labels[2, -1] = IGNORE
    ours = grads_of(linear_cross_entropy, hidden, weight, bias, labels)
    theirs = grads_of(reference, hidden, weight, bias, labels)
    for a, b in zip(ours, theirs):
        if b is not None:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert ours[1][0, :5].abs().sum() == 0  # ignored rows get no gradient


def test_bf16_autocast_is_close_to_the_autocast_reference():
    torch.manual_seed(1)
    hidden, weight = torch.randn(600, 32), torch.randn(300, 32) * 0.2
    labels = torch.randint(0, 300, (600,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = grads_of(linear_cross_entropy, hidden, weight, None, labels)
        theirs = grads_of(reference, hidden, weight, None, labels)
    assert ours[0].dtype == torch.float32 and ours[2].dtype == torch.float32
    for a, b in zip(ours[:3], theirs[:3]):
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2)


def test_without_grad_it_only_computes_the_loss():
    hidden, weight = torch.randn(10, 8), torch.randn(12, 8, requires_grad=True)
    labels = torch.randint(0, 12, (10,))
    with torch.no_grad():
        value = linear_cross_entropy(hidden, weight, labels)
    assert not value.requires_grad
    torch.testing.assert_close(value, reference(hidden, weight.detach(), labels))


def test_all_rows_ignored_is_zero_loss_and_zero_gradient():
    hidden = torch.randn(4, 8, requires_grad=True)
    weight = torch.randn(12, 8, requires_grad=True)
    value = linear_cross_entropy(hidden, weight, torch.full((4,), IGNORE))
    value.backward()
    assert float(value.detach()) == 0.0 and hidden.grad.abs().sum() == 0 and weight.grad.abs().sum() == 0


def test_a_tied_weight_sums_both_gradients():
    """The decoder's embedding matrix is also its output projection: both paths must reach one .grad."""
    torch.manual_seed(2)
    emb = torch.randn(30, 8, requires_grad=True)
    ids, labels = torch.randint(0, 30, (2, 6)), torch.randint(0, 30, (2, 6))
    linear_cross_entropy(torch.tanh(F.embedding(ids, emb)), emb, labels).backward()
    ours = emb.grad.clone()
    emb.grad = None
    reference(torch.tanh(F.embedding(ids, emb)), emb, labels).backward()
    torch.testing.assert_close(ours, emb.grad, rtol=1e-5, atol=1e-5)


def test_a_gpu_chunk_holds_a_bounded_number_of_logits():
    """The point of the fused loss is bounded memory: a large vocabulary must mean fewer rows per chunk."""
    cuda = torch.device("cuda")
    assert loss_module.chunk_rows(cuda, 8192) == 4096
    for vocab in (128_000, 256_000):
        assert loss_module.chunk_rows(cuda, vocab) * vocab <= loss_module.GPU_CHUNK_LOGITS
    assert loss_module.chunk_rows(torch.device("cpu"), 128_000) == 256

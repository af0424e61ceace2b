"""The vocabulary projection and its cross-entropy as one step, without the [N, V] logits in memory.

Pretraining ends in ``cross_entropy(h @ W^T + b, labels)``. Done as two steps, autograd keeps the
logits, their fp32 copy and the log-softmax ([N, V] each) for the backward pass, and runs several
passes over them. For the decoder this was most of a small model's step (issue 18: on one CPU core, a
`tiny` step spent 0.6 of 0.8 s there, 0.15 s of it in the softmax passes alone).

``linear_cross_entropy`` walks the rows in chunks. For each chunk it computes the logits, the loss, and
at once the gradient of the loss with respect to the logits (``softmax - one_hot``), which it turns
into the gradients of ``h``, ``W`` and ``b`` before it moves on. The chunk's logits fit in the cache and
are never kept. Backward then only scales the stored gradients. Same matmuls, same result up to float
rounding (tests/model/test_loss.py); the idea is Liger Kernel's and Apple's Cut Cross-Entropy.

Rows labelled ``IGNORE`` cost nothing. Under autocast the matmuls run in the autocast dtype and the
softmax in fp32, as ``F.cross_entropy(logits.float())`` on autocast logits would.
"""

from __future__ import annotations

from typing import Any

import torch

IGNORE = -100
GPU_CHUNK_LOGITS = 1 << 25


def chunk_rows(device: torch.device, vocab_size: int) -> int:
    # On the CPU, 256 rows of logits stay in the cache and the [256, D] x [D, V] matmul runs at its best
    # rate (measured 78 GFLOP/s against 55 for all 4,096 rows at once). A GPU wants fewer, larger launches:
    # chunks of up to 32 M logits (128 MB in fp32), 4,096 rows at an 8,192-token vocabulary.
    return 256 if device.type == "cpu" else max(1, GPU_CHUNK_LOGITS // vocab_size)


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                labels: torch.Tensor, dtype: torch.dtype, want_grads: bool) -> torch.Tensor:
        keep = labels != IGNORE
        rows, targets = hidden[keep], labels[keep]
        w = weight.to(dtype)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_rows = torch.empty_like(rows) if want_grads else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if want_grads else None
        grad_bias = torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device) \
            if want_grads and bias is not None else None
        step = chunk_rows(hidden.device, weight.shape[0])
        for start in range(0, rows.shape[0], step):
            h, y = rows[start:start + step].to(dtype), targets[start:start + step]
            logits = (h @ w.t()).float()
            if bias is not None:
                logits += bias.float()
            target = logits.gather(1, y[:, None]).squeeze(1)
            # log-sum-exp by hand, in place, so that its exponentials are also the softmax for the gradient
            top = logits.amax(dim=-1, keepdim=True)
            exps = logits.sub_(top).exp_()
            sums = exps.sum(dim=-1)
            total += (top.squeeze(1) + sums.log() - target).sum()
            if not want_grads:
                continue
            probs = exps.div_(sums[:, None])  # d loss / d logits = softmax - one_hot
            probs[torch.arange(y.shape[0], device=y.device), y] -= 1.0
            if grad_bias is not None:
                grad_bias += probs.sum(0)
            g = probs.to(dtype)
            grad_rows[start:start + step] = g @ w
            if dtype == torch.float32:
                grad_weight.addmm_(g.t(), h)  # in place: no [V, D] temporary per chunk
            else:
                grad_weight += g.t() @ h
        if want_grads:
            grad_hidden = torch.zeros_like(hidden)
            grad_hidden[keep] = grad_rows
            ctx.save_for_backward(grad_hidden, grad_weight.to(weight.dtype),
                                  None if grad_bias is None else grad_bias.to(bias.dtype))
        return total

    @staticmethod
    def backward(ctx: Any, grad_total: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        return (grad_hidden * grad_total, grad_weight * grad_total,
                None if grad_bias is None else grad_bias * grad_total, None, None, None)


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                         bias: torch.Tensor | None = None) -> torch.Tensor:
    """Summed ``cross_entropy(hidden @ weight.T + bias, labels)`` over rows not labelled ``IGNORE``.

    ``hidden`` [..., D], ``weight`` [V, D], ``labels`` [...] -> a float32 scalar; rows labelled ``IGNORE``
    (-100) count for nothing.
    """
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
    want_grads = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad
                                              or (bias is not None and bias.requires_grad))
    with torch.autocast(device, enabled=False):
        return _LinearCrossEntropy.apply(hidden.reshape(-1, hidden.shape[-1]), weight, bias, labels.reshape(-1),
                                         dtype, want_grads)

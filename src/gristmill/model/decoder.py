"""The decoder: a GPT-style causal language model in the Llama family, and the heads built on it.

Token embeddings -> N pre-norm blocks (RMSNorm -> causal self-attention with rotary positions ->
residual; RMSNorm -> SwiGLU feed-forward -> residual) -> final RMSNorm -> the embedding matrix again
(tied) as the output projection. Every tensor maps one to one onto ``transformers.LlamaForCausalLM``
(``model/hf.py``); Q, K and V are one fused matrix, and so are the gate and up projections, so each
block runs four matmuls instead of seven.

Attention is ``softmax(Q K^T / sqrt(d) + causal) V`` through ``scaled_dot_product_attention``. Three
ways to call the model:

- training on packed rows: ``segments`` ([B, T] ints, equal within one document) makes the mask
  block-diagonal, so no token attends to another document; because rotary positions only enter
  attention as differences, a document then gets exactly the logits it would get alone;
- generation: a :class:`KVCache` keeps each layer's keys and values, so a step with one new token
  costs one position (its query against the cached keys);
- padded batches (perplexity, classification, batched generation): ``attention_mask`` marks real
  tokens; with left padding, ``positions`` count from each row's first real token.

This module owns the modules only: no training, no files, no sampling (``gristmill.serve.generate``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gristmill.model.config import DecoderConfig
from gristmill.model.loss import linear_cross_entropy


class RMSNorm(nn.Module):
    """x / rms(x) * weight, computed in float32 (as Llama does) and returned in the input's dtype."""

    def __init__(self, hidden: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).to(x.dtype)
        return self.weight * normed


def rotary_tables(config: DecoderConfig, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin [length, head_dim] for positions 0..length-1 (Llama's half-split layout)."""
    d = config.head_dim
    inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    angles = torch.outer(torch.arange(length, dtype=torch.float32), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (i, i + d/2) of each head by the position's angle: x*cos + rotate_half(x)*sin."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


@dataclass
class LayerCache:
    """Keys and values [B, heads, capacity, head_dim] of one layer; ``length`` positions are filled."""

    keys: torch.Tensor
    values: torch.Tensor


class KVCache:
    """Preallocated keys and values for every layer, up to ``capacity`` positions per row."""

    def __init__(self, config: DecoderConfig, batch: int, capacity: int, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> None:
        if capacity > config.max_position:
            raise ValueError(f"a cache of {capacity} positions is longer than the model's context "
                             f"({config.max_position})")
        shape = (batch, config.num_heads, capacity, config.head_dim)
        self.layers = [LayerCache(torch.empty(shape, dtype=dtype, device=device),
                                  torch.empty(shape, dtype=dtype, device=device)) for _ in range(config.num_layers)]
        self.length = 0
        self.capacity = capacity

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this step's keys and values after the cached ones; return all of them so far."""
        cache, new = self.layers[layer], k.shape[2]
        end = self.length + new
        if end > self.capacity:
            raise ValueError(f"the cache holds {self.capacity} positions; {end} were asked for")
        cache.keys[:, :, self.length:end] = k
        cache.values[:, :, self.length:end] = v
        return cache.keys[:, :, :end], cache.values[:, :, :end]

    def advance(self, new: int) -> None:
        self.length += new

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Drop finished rows of a batch (``rows``: indices of the rows to keep)."""
        for cache in self.layers:
            cache.keys, cache.values = cache.keys[rows], cache.values[rows]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.num_heads, self.head_dim = config.num_heads, config.head_dim
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=False)
        self.out = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.dropout_p = config.dropout

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        batch, seq_len, hidden = x.shape
        # [B, T, 3H] -> 3 x [B, heads, T, head_dim]; the weight rows are [q; k; v], each ordered by head.
        q, k, v = self.qkv(x).view(batch, seq_len, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.append(layer, k.to(cache.layers[layer].keys.dtype), v.to(cache.layers[layer].values.dtype))
            q = q.to(k.dtype)
        # Without an explicit mask: plain causal when queries and keys start together; a single new
        # query after cached keys may see all of them.
        causal = mask is None and past == 0 and seq_len > 1
        if mask is None and past and seq_len > 1:
            mask = causal_mask(seq_len, past, x.device)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                           dropout_p=self.dropout_p if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(batch, seq_len, hidden).to(x.dtype))


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)); gate and up are one fused matrix, rows [gate; up]."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.gate_up = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.down = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    """Pre-norm: x + attention(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.attention_norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.attention = CausalSelfAttention(config)
        self.mlp_norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = SwiGLU(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.attention_norm(x), cos, sin, mask, cache, layer))
        return x + self.dropout(self.mlp(self.mlp_norm(x)))


def causal_mask(seq_len: int, past: int, device: torch.device | str) -> torch.Tensor:
    """bool [T, past + T]: query i (at position past + i) may see keys 0..past + i."""
    keys = torch.arange(past + seq_len, device=device)
    return keys[None, :] <= (past + torch.arange(seq_len, device=device))[:, None]


def segment_mask(segments: torch.Tensor) -> torch.Tensor | None:
    """[B, T] segment ids -> bool [B, 1, T, T]: causal and within one segment; None if no row has two."""
    if not bool((segments[:, 1:] != segments[:, :-1]).any()):
        return None
    seq_len = segments.shape[1]
    same = segments[:, :, None] == segments[:, None, :]
    return (same & causal_mask(seq_len, 0, segments.device))[:, None]


def padded_mask(attention_mask: torch.Tensor, past: int, seq_len: int) -> torch.Tensor:
    """Causal mask over ``past + seq_len`` keys that also hides padding keys: bool [B, 1, T, past + T]."""
    keys = attention_mask.bool()[:, None, None, :]
    mask = causal_mask(seq_len, past, attention_mask.device)[None, None] & keys
    # A query on a padding position would see no key at all and give NaN; let it see itself instead.
    eye = torch.zeros_like(mask)
    eye[..., torch.arange(seq_len), past + torch.arange(seq_len)] = True
    return mask | eye


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, T] 1/0 -> position of each token counted from its row's first real token (left padding)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class Decoder(nn.Module):
    """Token ids -> final hidden states [B, T, H] (after the last RMSNorm)."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.final_norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        cos, sin = rotary_tables(config, config.max_position)
        # Not saved: recomputed from the config, so checkpoints hold weights only.
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(lambda module: init_weights(module, config))

    def forward(self, input_ids: torch.Tensor, segments: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, positions: torch.Tensor | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        batch, seq_len = input_ids.shape
        past = cache.length if cache is not None else 0
        if past + seq_len > self.config.max_position:
            raise ValueError(f"{past + seq_len} positions are more than the model's context "
                             f"({self.config.max_position})")
        if positions is None:
            cos = self.rope_cos[past:past + seq_len]
            sin = self.rope_sin[past:past + seq_len]
        else:  # per-row positions [B, T] -> [B, 1, T, head_dim], broadcast over heads
            cos, sin = self.rope_cos[positions][:, None], self.rope_sin[positions][:, None]
        mask = None
        if segments is not None:
            mask = segment_mask(segments)
        elif attention_mask is not None and not bool(attention_mask.all()):
            mask = padded_mask(attention_mask, past, seq_len)
        x = self.dropout(self.embeddings(input_ids))
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, mask, cache, i)
        if cache is not None:
            cache.advance(seq_len)
        return self.final_norm(x)


def init_weights(module: nn.Module, config: DecoderConfig) -> None:
    """N(0, 0.02) for matrices and embeddings; RMSNorm weights start at 1 (their own init)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=config.initializer_range)


class CausalLM(nn.Module):
    """Decoder + the tied output projection -> next-token logits [B, T, V] (or at ``last_only``, [B, 1, V]).

    With ``labels`` ([B, T], -100 where nothing is to be predicted) it returns the summed cross-entropy
    instead, through ``linear_cross_entropy``: training never holds the [B, T, V] logits.
    """

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        self.decoder = Decoder(config)

    def forward(self, input_ids: torch.Tensor, segments: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, positions: torch.Tensor | None = None,
                cache: KVCache | None = None, last_only: bool = False,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.decoder(input_ids, segments, attention_mask, positions, cache)
        if labels is not None:
            return linear_cross_entropy(hidden, self.decoder.embeddings.weight, labels)
        if last_only:  # generation needs the next token only: skip the projection elsewhere
            hidden = hidden[:, -1:]
        return F.linear(hidden, self.decoder.embeddings.weight)


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last real token for right-padded rows [B, T] -> [B]."""
    return attention_mask.long().sum(-1).clamp(min=1) - 1


class DecoderSequenceClassifier(nn.Module):
    """Decoder + dropout + linear layer on the hidden state of the last real token -> logits [B, num_labels].

    The last token is the only one that has seen the whole text under a causal mask (as in
    ``LlamaForSequenceClassification``). Rows are right-padded.
    """

    def __init__(self, config: DecoderConfig, num_labels: int) -> None:
        super().__init__()
        self.config = config
        self.num_labels = num_labels
        self.decoder = Decoder(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.hidden_size, num_labels)
        nn.init.normal_(self.classifier.weight, std=config.initializer_range)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        # Right padding: causal attention already keeps real tokens from seeing the padding after them.
        hidden = self.decoder(input_ids)
        if attention_mask is None:
            pooled = hidden[:, -1]
        else:
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last_token_index(attention_mask)]
        return self.classifier(self.dropout(pooled))

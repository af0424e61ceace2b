"""The transformer encoder, written the way the BERT paper describes it, and the heads built on it.

Embeddings (token + position + segment, LayerNorm, dropout) -> N blocks of multi-head self-attention
and a GELU feed-forward network, each wrapped in a residual connection with LayerNorm (post-LN as in
BERT by default, pre-LN as an option) -> hidden states. Heads: masked-LM (tied to the input
embeddings), sequence classification (BERT pooler on [CLS]) and token classification.

Attention computes ``softmax(Q K^T / sqrt(d_k)) V`` through ``scaled_dot_product_attention``, which
picks a fused kernel on CPU and GPU. Q, K and V come from one fused linear layer (one matmul instead
of three). This module owns the modules only: no training, no files (see ``gristmill.train``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gristmill.model.config import ModelConfig
from gristmill.model.loss import linear_cross_entropy


def activation(config: ModelConfig, x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh" if config.activation == "gelu_tanh" else "none")


def padding_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """[B, T] with 1 for tokens and 0 for padding -> boolean [B, 1, 1, T], True where a key may be attended."""
    if attention_mask is None:
        return None
    return attention_mask.bool()[:, None, None, :]


class Embeddings(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_id)
        self.position_embeddings = nn.Embedding(config.max_position, config.hidden_size)
        self.token_type_embeddings = (nn.Embedding(config.type_vocab_size, config.hidden_size)
                                      if config.type_vocab_size else None)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        seq_len = input_ids.shape[1]
        if seq_len > self.position_embeddings.num_embeddings:
            raise ValueError(f"sequence of {seq_len} tokens is longer than the model's "
                             f"max_position {self.position_embeddings.num_embeddings}")
        positions = torch.arange(seq_len, device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        if self.token_type_embeddings is not None:
            if token_type_ids is None:
                x = x + self.token_type_embeddings.weight[0]
            else:
                x = x + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.layer_norm(x))


class SelfAttention(nn.Module):
    """Multi-head self-attention: softmax(Q K^T / sqrt(d_k)) V per head, heads concatenated and projected."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout_p = config.attention_dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                select: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T, H] -> [B, T, H]; with ``select`` (bool [B, T]) only those queries -> [N, H], row-major."""
        if select is not None:
            return self._selected_queries(x, mask, select)
        batch, seq_len, hidden = x.shape
        # [B, T, 3H] -> 3 x [B, heads, T, head_dim]; the weight rows are [q; k; v], each ordered by head.
        q, k, v = self.qkv(x).view(batch, seq_len, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout_p if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(batch, seq_len, hidden))

    def _selected_queries(self, x: torch.Tensor, mask: torch.Tensor | None, select: torch.Tensor) -> torch.Tensor:
        # Keys and values for every position, queries only where an output is wanted. Rows have
        # different numbers of queries, so they are padded to the longest row and unpadded after.
        batch, seq_len, hidden = x.shape
        w_q, w_kv = self.qkv.weight[:hidden], self.qkv.weight[hidden:]
        b_q, b_kv = self.qkv.bias[:hidden], self.qkv.bias[hidden:]
        k, v = F.linear(x, w_kv, b_kv).view(batch, seq_len, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        rows, cols = select.nonzero(as_tuple=True)
        slot = (select.cumsum(1) - 1)[rows, cols]
        width = int(select.sum(1).max()) if rows.numel() else 0
        q_selected = F.linear(x[rows, cols], w_q, b_q)
        q = q_selected.new_zeros(batch, width, hidden).index_put((rows, slot), q_selected)
        q = q.view(batch, width, self.num_heads, self.head_dim).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout_p if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(batch, width, hidden)[rows, slot])


class FeedForward(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.up = nn.Linear(config.hidden_size, config.intermediate_size)
        self.down = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(activation(self.config, self.up(x)))


class Block(nn.Module):
    """Attention and feed-forward sub-layers, each with dropout, a residual connection and LayerNorm."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.pre_ln = config.pre_ln
        self.attention = SelfAttention(config)
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = FeedForward(config)
        self.output_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                select: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T, H] -> [B, T, H], or [N, H] for the positions in ``select`` (bool [B, T]) only."""
        residual = x if select is None else x[select]
        if self.pre_ln:
            x = residual + self.dropout(self.attention(self.attention_norm(x), mask, select))
            return x + self.dropout(self.feed_forward(self.output_norm(x)))
        x = self.attention_norm(residual + self.dropout(self.attention(x, mask, select)))
        return self.output_norm(x + self.dropout(self.feed_forward(x)))


class Encoder(nn.Module):
    """Token ids -> contextual hidden states [B, T, H]."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        # Pre-LN leaves the residual stream unnormalised, so it needs one LayerNorm at the end.
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if config.pre_ln else None
        self.apply(lambda module: init_weights(module, config))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, output_positions: torch.Tensor | None = None,
                ) -> torch.Tensor:
        """Hidden states [B, T, H]; with ``output_positions`` (bool [B, T]) only those, as [N, H] row-major.

        Only the last layer gets cheaper: its keys and values still come from every position, but
        its queries, feed-forward network and LayerNorms run at the selected positions only.
        """
        mask = padding_mask(attention_mask)
        x = self.embeddings(input_ids, token_type_ids)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x, mask, output_positions if i == last else None)
        return self.final_norm(x) if self.final_norm is not None else x


def init_weights(module: nn.Module, config: ModelConfig) -> None:
    """BERT's initialisation: N(0, 0.02) weights, zero biases, identity LayerNorm, zero padding embedding."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=config.initializer_range)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=config.initializer_range)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class MLMHead(nn.Module):
    """Dense + GELU + LayerNorm, then the decoder: the input embedding matrix (tied) plus a bias."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden: torch.Tensor, embedding_weight: torch.Tensor) -> torch.Tensor:
        return F.linear(self.transform(hidden), embedding_weight, self.bias)

    def transform(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(activation(self.config, self.dense(hidden)))

    def loss(self, hidden: torch.Tensor, embedding_weight: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Summed cross-entropy of ``forward``'s logits against ``labels``, without holding those logits."""
        return linear_cross_entropy(self.transform(hidden), embedding_weight, labels, self.bias)


class Pooler(nn.Module):
    """BERT's pooler: dense + tanh on the hidden state of the first token ([CLS]), or on the mean of the
    non-padding tokens' states with ``config.pooling == "mean"``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.mean = config.pooling == "mean"

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if not self.mean:
            return torch.tanh(self.dense(hidden[:, 0]))
        if attention_mask is None:
            return torch.tanh(self.dense(hidden.mean(1)))
        weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
        return torch.tanh(self.dense((hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)))


class MaskedLM(nn.Module):
    """Encoder + masked-LM head (+ the next-sentence head when ``config.nsp``).

    With ``masked_positions`` (a boolean [B, T] mask, or flat indices into B*T) the head and the
    vocabulary projection run only at those positions and the logits are [N, V] in row-major order;
    about 15% of the positions are masked, so this skips most of the largest matmul of pretraining.
    With a boolean mask the last encoder layer also computes only those positions (besides keys and
    values). Without ``masked_positions`` the logits are [B, T, V]. With ``labels`` (one per selected
    position) it returns their summed cross-entropy instead of the logits (``model/loss.py``).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.head = MLMHead(config)
        if config.nsp:
            self.nsp_pooler = Pooler(config)
            self.nsp_classifier = nn.Linear(config.hidden_size, 2)
        for module in self.children():
            if module is not self.encoder:
                module.apply(lambda m: init_weights(m, config))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, masked_positions: torch.Tensor | None = None,
                return_nsp: bool = False, labels: torch.Tensor | None = None,
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if return_nsp and not self.config.nsp:
            raise ValueError("this model has no next-sentence head (config.nsp is false)")
        weight = self.encoder.embeddings.word_embeddings.weight

        def project(selected: torch.Tensor) -> torch.Tensor:  # the logits, or with labels their summed loss
            return self.head(selected, weight) if labels is None else self.head.loss(selected, weight, labels)

        if masked_positions is not None and masked_positions.dtype == torch.bool and not return_nsp:
            # The last layer runs only at the masked positions as well (NSP needs [CLS] too, so not then).
            selected = self.encoder(input_ids, attention_mask, token_type_ids, output_positions=masked_positions)
            return project(selected)
        hidden = self.encoder(input_ids, attention_mask, token_type_ids)
        selected = hidden
        if masked_positions is not None:
            if masked_positions.dtype == torch.bool:
                selected = hidden[masked_positions]
            else:
                selected = hidden.reshape(-1, hidden.shape[-1]).index_select(0, masked_positions)
        out = project(selected)
        if return_nsp:
            return out, self.nsp_classifier(self.nsp_pooler(hidden))
        return out


class SequenceClassifier(nn.Module):
    """Encoder + BERT pooler ([CLS] or mean, ``config.pooling``) + dropout + linear layer -> logits [B, num_labels]."""

    def __init__(self, config: ModelConfig, num_labels: int) -> None:
        super().__init__()
        self.config = config
        self.num_labels = num_labels
        self.encoder = Encoder(config)
        self.pooler = Pooler(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.hidden_size, num_labels)
        for module in (self.pooler, self.classifier):
            module.apply(lambda m: init_weights(m, config))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.encoder(input_ids, attention_mask, token_type_ids)
        return self.classifier(self.dropout(self.pooler(hidden, attention_mask)))


class TokenClassifier(nn.Module):
    """Encoder + dropout + linear layer on every position -> logits [B, T, num_labels]."""

    def __init__(self, config: ModelConfig, num_labels: int) -> None:
        super().__init__()
        self.config = config
        self.num_labels = num_labels
        self.encoder = Encoder(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.hidden_size, num_labels)
        self.classifier.apply(lambda m: init_weights(m, config))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.encoder(input_ids, attention_mask, token_type_ids)
        return self.classifier(self.dropout(hidden))

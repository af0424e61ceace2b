"""The masked-language-model objective's corruption: BERT's 80/10/10 masking, vectorised in torch.

Choose ``mask_prob`` of the positions (never special tokens), replace 80% of the chosen ones with
[MASK], 10% with a random ordinary token and keep 10%; the model must predict the original token at
every chosen position. With ``whole_word`` a word's sub-word pieces are chosen together (the
word-start flags come from the token shards). Masks are drawn fresh for every batch (dynamic
masking, as in RoBERTa).

The random numbers (:class:`MaskNoise`) are drawn separately from their use, per row of the global
batch, so the masks of a sequence depend only on the seed, the step and its row, not on how the
batch is split over processes or accumulation steps. Also the optional next-sentence pairs
(:func:`nsp_pairs`). This module owns no model and no data loading.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MaskingSpec:
    vocab_size: int
    mask_id: int
    special_ids: tuple[int, ...]
    mask_prob: float = 0.15
    replace_prob: float = 0.8
    random_prob: float = 0.1
    whole_word: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.mask_prob < 1.0:
            raise ValueError(f"mask probability must be in (0, 1), got {self.mask_prob}")
        if self.replace_prob < 0 or self.random_prob < 0 or self.replace_prob + self.random_prob > 1.0:
            raise ValueError("replace and random probabilities must be >= 0 and sum to at most 1")
        if self.mask_id not in self.special_ids:
            raise ValueError("the [MASK] id must be one of the special ids")

    def candidates(self) -> torch.Tensor:
        """Ordinary token ids, the pool for random replacements."""
        keep = torch.ones(self.vocab_size, dtype=torch.bool)
        keep[list(self.special_ids)] = False
        return keep.nonzero().squeeze(1)


@dataclass
class MaskNoise:
    """The random draws for a batch: selection and action uniforms, and random replacement tokens."""

    select: torch.Tensor  # float [B, T]
    action: torch.Tensor  # float [B, T]
    random_tokens: torch.Tensor  # int64 [B, T]

    def rows(self, index: slice | torch.Tensor) -> MaskNoise:
        return MaskNoise(self.select[index], self.action[index], self.random_tokens[index])


@dataclass
class MaskedBatch:
    input_ids: torch.Tensor  # int64 [B, T], corrupted
    masked: torch.Tensor  # bool [B, T], positions to predict
    labels: torch.Tensor  # int64 [N], original ids at the masked positions, row-major

    @property
    def num_masked(self) -> int:
        return int(self.labels.numel())


def draw_noise(spec: MaskingSpec, batch: int, seq_len: int, generator: torch.Generator) -> MaskNoise:
    candidates = spec.candidates()
    select = torch.rand(batch, seq_len, generator=generator)
    action = torch.rand(batch, seq_len, generator=generator)
    pick = torch.randint(len(candidates), (batch, seq_len), generator=generator)
    return MaskNoise(select, action, candidates[pick])


def special_mask(input_ids: torch.Tensor, special_ids: tuple[int, ...]) -> torch.Tensor:
    return torch.isin(input_ids, torch.tensor(special_ids, dtype=input_ids.dtype, device=input_ids.device))


def word_noise(select: torch.Tensor, word_start: torch.Tensor, special: torch.Tensor) -> torch.Tensor:
    """Give every token the selection draw of the first piece of its word, so whole words are chosen.

    A word starts at a word-start flag, at a special token, after a special token, and at column 0.
    """
    starts = word_start.bool() | special
    starts[:, 1:] |= special[:, :-1]
    starts[:, 0] = True
    columns = torch.arange(select.shape[1], device=select.device).expand_as(select)
    first_piece = torch.where(starts, columns, torch.zeros_like(columns)).cummax(dim=1).values
    return select.gather(1, first_piece)


def apply_mask(input_ids: torch.Tensor, spec: MaskingSpec, noise: MaskNoise,
               word_start: torch.Tensor | None = None) -> MaskedBatch:
    """Corrupt ``input_ids`` with the draws in ``noise`` (same shape) -> inputs, positions, labels."""
    input_ids = torch.as_tensor(input_ids, dtype=torch.long)
    special = special_mask(input_ids, spec.special_ids)
    select = noise.select
    if spec.whole_word:
        if word_start is None:
            raise ValueError("whole-word masking needs the word-start flags")
        select = word_noise(select, torch.as_tensor(word_start), special)
    masked = (select < spec.mask_prob) & ~special
    to_mask = masked & (noise.action < spec.replace_prob)
    to_random = masked & (noise.action >= spec.replace_prob) & (noise.action < spec.replace_prob + spec.random_prob)
    corrupted = torch.where(to_mask, torch.full_like(input_ids, spec.mask_id), input_ids)
    corrupted = torch.where(to_random, noise.random_tokens, corrupted)
    return MaskedBatch(corrupted, masked, input_ids[masked])


def mask_tokens(input_ids: torch.Tensor, spec: MaskingSpec, generator: torch.Generator,
                word_start: torch.Tensor | None = None) -> MaskedBatch:
    """Draw fresh masks for one batch: :func:`draw_noise` then :func:`apply_mask`."""
    batch, seq_len = input_ids.shape
    return apply_mask(input_ids, spec, draw_noise(spec, batch, seq_len, generator), word_start)


def nsp_pairs(input_ids: torch.Tensor, sep_id: int, generator: torch.Generator,
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Next-sentence prediction examples from packed rows -> (input_ids, token_type_ids, is_random).

    Each row is cut in the middle: segment A is its first half; segment B is its own second half
    (label 0, "is next") or, for half of the rows, the second half of another row of the batch
    (label 1, "random"). A [SEP] closes segment A and token types mark the segments, as in BERT.
    Packed rows can contain a document boundary inside a half, so "is next" is approximate.
    """
    batch, seq_len = input_ids.shape
    half = seq_len // 2
    ids = input_ids.clone()
    is_random = torch.rand(batch, generator=generator) < 0.5
    if batch < 2:
        is_random[:] = False
    # Row i takes its B segment from row (i + shift) % batch, shift in [1, batch), never itself.
    shift = torch.randint(1, max(batch, 2), (batch,), generator=generator)
    donor = (torch.arange(batch) + shift) % batch
    ids[is_random, half:] = input_ids[donor[is_random], half:]
    ids[:, half - 1] = sep_id
    token_types = torch.zeros_like(ids)
    token_types[:, half:] = 1
    return ids, token_types, is_random.long()

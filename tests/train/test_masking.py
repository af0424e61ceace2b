"""BERT's 80/10/10 masking: statistics, special tokens, whole words, and independence from batch splits."""

from __future__ import annotations

import pytest
import torch

from gristmill.train.masking import MaskingSpec, apply_mask, draw_noise, mask_tokens, nsp_pairs

SPECIAL = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
VOCAB = 1000


def spec(**kw) -> MaskingSpec:
    return MaskingSpec(vocab_size=VOCAB, mask_id=SPECIAL["mask"], special_ids=tuple(SPECIAL.values()), **kw)


def packed_batch(rows: int, seq_len: int, seed: int = 0) -> torch.Tensor:
    """Rows like the packer writes: [CLS] ... [SEP] ... with a little padding and [UNK]."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (rows, seq_len), generator=g)
    ids[:, 0] = SPECIAL["cls"]
    ids[:, seq_len // 3] = SPECIAL["sep"]
    ids[:, -1] = SPECIAL["sep"]
    ids[::7, -10:] = SPECIAL["pad"]
    ids[:, 5] = SPECIAL["unk"]
    return ids


def test_80_10_10_statistics_and_no_special_tokens():
    ids = packed_batch(512, 128)
    out = mask_tokens(ids, spec(), torch.Generator().manual_seed(1))
    special = torch.isin(ids, torch.tensor(list(SPECIAL.values())))
    eligible = ~special
    assert not (out.masked & special).any(), "a special token was chosen"
    assert torch.equal(out.labels, ids[out.masked])
    share = out.masked.sum() / eligible.sum()
    assert abs(float(share) - 0.15) < 0.005
    chosen_in, chosen_orig = out.input_ids[out.masked], ids[out.masked]
    as_mask = (chosen_in == SPECIAL["mask"]).float().mean()
    kept = (chosen_in == chosen_orig).float().mean()
    random = 1 - as_mask - kept
    assert abs(float(as_mask) - 0.8) < 0.01
    assert abs(float(random) - 0.1) < 0.01
    assert abs(float(kept) - 0.1) < 0.01
    # random replacements are ordinary tokens, and positions not chosen are untouched
    replaced = out.masked & (out.input_ids != SPECIAL["mask"]) & (out.input_ids != ids)
    assert not torch.isin(out.input_ids[replaced], torch.tensor(list(SPECIAL.values()))).any()
    assert torch.equal(out.input_ids[~out.masked], ids[~out.masked])


def test_mask_probability_is_configurable():
    ids = packed_batch(256, 128)
    out = mask_tokens(ids, spec(mask_prob=0.4), torch.Generator().manual_seed(2))
    eligible = ~torch.isin(ids, torch.tensor(list(SPECIAL.values())))
    assert abs(float(out.masked.sum() / eligible.sum()) - 0.4) < 0.01


def test_masks_are_dynamic_and_reproducible():
    ids = packed_batch(8, 64)
    a = mask_tokens(ids, spec(), torch.Generator().manual_seed(3))
    b = mask_tokens(ids, spec(), torch.Generator().manual_seed(3))
    c = mask_tokens(ids, spec(), torch.Generator().manual_seed(4))
    assert torch.equal(a.masked, b.masked) and torch.equal(a.input_ids, b.input_ids)
    assert not torch.equal(a.masked, c.masked)


def test_whole_word_masking_takes_all_pieces_of_a_word():
    ids = packed_batch(256, 96)
    g = torch.Generator().manual_seed(5)
    word_start = torch.rand(ids.shape, generator=g) < 0.6
    word_start[:, 0] = True
    out = mask_tokens(ids, spec(whole_word=True), torch.Generator().manual_seed(6), word_start=word_start)
    special = torch.isin(ids, torch.tensor(list(SPECIAL.values())))
    assert not (out.masked & special).any()
    # inside a word (a non-start, non-special token after a non-special token) the choice is the same
    inside = ~word_start[:, 1:] & ~special[:, 1:] & ~special[:, :-1]
    assert torch.equal(out.masked[:, 1:][inside], out.masked[:, :-1][inside])
    eligible = ~special
    assert abs(float(out.masked.sum() / eligible.sum()) - 0.15) < 0.02
    with pytest.raises(ValueError, match="word-start"):
        mask_tokens(ids, spec(whole_word=True), torch.Generator())


def test_masks_of_a_row_do_not_depend_on_how_the_batch_is_split():
    ids = packed_batch(12, 40)
    noise = draw_noise(spec(), 12, 40, torch.Generator().manual_seed(7))
    whole = apply_mask(ids, spec(), noise)
    rows = torch.tensor([1, 3, 5, 7, 9, 11])
    part = apply_mask(ids[rows], spec(), noise.rows(rows))
    assert torch.equal(part.input_ids, whole.input_ids[rows])
    assert torch.equal(part.masked, whole.masked[rows])


def test_spec_validation():
    with pytest.raises(ValueError):
        spec(mask_prob=0.0)
    with pytest.raises(ValueError):
        spec(replace_prob=0.9, random_prob=0.2)


def test_nsp_pairs_mix_own_and_other_second_halves():
    ids = torch.arange(64 * 20).reshape(64, 20) + 10
    pairs, types, is_random = nsp_pairs(ids, SPECIAL["sep"], torch.Generator().manual_seed(8))
    assert (pairs[:, 9] == SPECIAL["sep"]).all()
    assert (types[:, :10] == 0).all() and (types[:, 10:] == 1).all()
    assert torch.equal(pairs[:, :9], ids[:, :9])
    own = is_random == 0
    assert torch.equal(pairs[own, 10:], ids[own, 10:])
    assert not (pairs[~own, 10:] == ids[~own, 10:]).all(dim=1).any()
    assert 0.3 < float(is_random.float().mean()) < 0.7

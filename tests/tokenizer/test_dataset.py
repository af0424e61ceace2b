"""TokenDataset: random access, batches across shards, deterministic epoch order and the split over ranks."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from gristmill.tokenizer import TokenDataset, pack_corpus


@pytest.fixture(scope="module")
def tokens(corpus: Path, tokdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "tokens"
    pack_corpus(corpus, tokdir, out, seq_len=48, val_fraction=0.05, docs_per_unit=80)
    return out


def test_batches_match_single_items_across_shards(tokens: Path) -> None:
    ds = TokenDataset(tokens)
    assert len(ds.manifest["splits"]["train"]["shards"]) >= 5 and len(ds) == ds.manifest["splits"]["train"]["sequences"]
    idx = np.array([len(ds) - 1, 0, 17, 17, len(ds) // 2, -1, 3])
    batch = ds.get_batch(idx)
    assert batch["input_ids"].shape == (7, 48) and batch["input_ids"].dtype == np.int64
    assert batch["word_start"].dtype == bool and batch["doc_start"].shape == (7, 48)
    for row, i in enumerate(idx):
        item = ds[int(i)]
        for key in ("input_ids", "word_start", "doc_start"):
            np.testing.assert_array_equal(batch[key][row], item[key])
    np.testing.assert_array_equal(ds[-1]["input_ids"], ds[len(ds) - 1]["input_ids"])
    raw = np.memmap(tokens / "train" / "00000.ids.bin", dtype=np.uint16, mode="r").reshape(-1, 48)
    np.testing.assert_array_equal(ds[0]["input_ids"], raw[0])
    assert ds.tokens == int((ds.get_batch(np.arange(len(ds)))["input_ids"] != ds.special["pad"]).sum())
    with pytest.raises(IndexError):
        ds.get_batch([len(ds)])
    with pytest.raises(IndexError):
        ds[-len(ds) - 1]
    assert ds.get_batch([])["input_ids"].shape == (0, 48)


def test_val_split_and_bad_split_name(tokens: Path) -> None:
    val = TokenDataset(tokens, "val")
    assert 0 < len(val) < len(TokenDataset(tokens))
    assert val[0]["input_ids"][0] == val.special["cls"]
    with pytest.raises(ValueError, match="split"):
        TokenDataset(tokens, "test")


def test_pickles_without_copying_the_arrays(tokens: Path) -> None:
    ds = TokenDataset(tokens)
    ds.get_batch([0, 1])
    blob = pickle.dumps(ds)
    assert len(blob) < 50_000
    again = pickle.loads(blob)
    np.testing.assert_array_equal(again[5]["input_ids"], ds[5]["input_ids"])


def test_order_is_deterministic_per_seed_and_epoch(tokens: Path) -> None:
    ds = TokenDataset(tokens)
    a = ds.order(seed=1, epoch=0)
    np.testing.assert_array_equal(a, ds.order(seed=1, epoch=0))
    np.testing.assert_array_equal(np.sort(a), np.arange(len(ds)))
    assert not np.array_equal(a, ds.order(seed=1, epoch=1))
    assert not np.array_equal(a, ds.order(seed=2, epoch=0))
    np.testing.assert_array_equal(a, TokenDataset(tokens).order(1, 0))  # a new reader, the same order


@pytest.mark.parametrize("world_size", [1, 2, 3, 7])
def test_ranks_split_the_epoch_evenly_and_disjointly(tokens: Path, world_size: int) -> None:
    ds = TokenDataset(tokens)
    parts = [ds.order(seed=5, epoch=2, rank=r, world_size=world_size) for r in range(world_size)]
    per_rank = len(ds) // world_size
    assert all(len(p) == per_rank for p in parts)
    joined = np.concatenate(parts)
    assert len(np.unique(joined)) == len(joined) == per_rank * world_size
    np.testing.assert_array_equal(joined, ds.order(seed=5, epoch=2)[: per_rank * world_size])


def test_bad_rank_is_refused(tokens: Path) -> None:
    ds = TokenDataset(tokens)
    with pytest.raises(ValueError, match="rank"):
        ds.order(0, 0, rank=2, world_size=2)

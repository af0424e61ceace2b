"""Random access to packed token sequences for the training loop.

:class:`TokenDataset` maps the shards of one split of a ``TOKENS`` folder (see ``manifest.py``) with
``np.memmap`` and serves sequences one at a time or as a batch, plus a deterministic per-epoch
order split across ranks. It never loads a split into memory and never writes anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from gristmill.tokenizer.manifest import (
    SPLITS,
    ShardError,
    flag_bytes,
    read_manifest,
    shard_path,
    verify_shard,
)
from gristmill.tokenizer.tokdir import TokenizerError


class TokenSequences(Protocol):
    """What the training loop reads of a split: a :class:`TokenDataset`, or one made of several.

    (``gristmill.train.adapt.MixedTokens`` mixes a task's sequences with a corpus's and offers the same.)
    """

    root: Path
    tokenizer_dir: Path
    manifest: dict[str, Any]
    seq_len: int
    vocab_size: int
    special: dict[str, int]

    def __len__(self) -> int: ...

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]: ...

    def order(self, seed: int, epoch: int, rank: int = 0, world_size: int = 1) -> np.ndarray: ...


class TokenDataset:
    """Sequences of one split of a ``TOKENS`` folder.

    ``ds[i]`` and ``ds.get_batch(indices)`` give ``input_ids`` (int64), ``word_start`` (bool: the token
    begins a word, [CLS] and [SEP] count as words of their own, [PAD] does not) and ``doc_start`` (bool:
    the first token of a document; a document continued from the previous sequence has none).
    """

    def __init__(self, tokens_dir: str | Path, split: str = "train", check: bool = True, verify: bool = False):
        if split not in SPLITS:
            raise TokenizerError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
        self.root = Path(tokens_dir)
        self.split = split
        self.manifest: dict[str, Any] = read_manifest(self.root, check=check, verify=verify)
        self.seq_len: int = int(self.manifest["seq_len"])
        self.dtype = np.dtype(self.manifest["dtype"])
        self.vocab_size: int = int(self.manifest["tokenizer"]["vocab_size"])
        self.special: dict[str, int] = dict(self.manifest["tokenizer"]["special"])
        self.tokenizer_dir = self.root / "tokenizer"
        self._shards: list[dict[str, Any]] = [s for s in self.manifest["splits"][split]["shards"] if s["sequences"]]
        counts = np.array([s["sequences"] for s in self._shards], dtype=np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._maps: list[tuple[np.memmap, np.memmap]] | None = None
        # Shards whose checksums were checked: all of them with ``verify``, else each on its first use.
        self._verified: set[int] = set(range(len(self._shards))) if verify or not check else set()

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __repr__(self) -> str:
        return f"TokenDataset({str(self.root)!r}, split={self.split!r}, sequences={len(self)}, seq_len={self.seq_len})"

    @property
    def tokens(self) -> int:
        """Non-padding tokens in this split ([CLS] and [SEP] included)."""
        return int(self.manifest["splits"][self.split]["tokens"])

    def _open(self) -> list[tuple[np.memmap, np.memmap]]:
        # Opened lazily (and dropped when pickled) so DataLoader workers map the files themselves
        # instead of receiving copies of the arrays.
        if self._maps is None:
            nb = flag_bytes(self.seq_len)
            self._maps = [
                (np.memmap(shard_path(self.root, s["ids"]), dtype=self.dtype, mode="r", shape=(s["sequences"], self.seq_len)),
                 np.memmap(shard_path(self.root, s["flags"]), dtype=np.uint8, mode="r", shape=(s["sequences"], 2, nb)))
                for s in self._shards
            ]
        return self._maps

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_maps"] = None
        return state

    def _locate(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(self)
        if indices.size and (indices.min() < -n or indices.max() >= n):
            raise IndexError(f"sequence index out of range for {n} sequences")
        indices = np.where(indices < 0, indices + n, indices)
        shard = np.searchsorted(self._offsets, indices, side="right") - 1
        return shard, indices - self._offsets[shard]

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """Sequences ``indices`` as arrays of shape ``[B, seq_len]``, in the order given."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        maps = self._open()
        shard, local = self._locate(idx)
        ids = np.empty((idx.size, self.seq_len), dtype=np.int64)
        flags = np.empty((idx.size, 2, flag_bytes(self.seq_len)), dtype=np.uint8)
        for s in np.unique(shard):
            if s not in self._verified:
                verify_shard(self.root, self._shards[s])
                self._verified.add(int(s))
            rows = np.flatnonzero(shard == s)
            ids_map, flags_map = maps[s]
            ids[rows] = ids_map[local[rows]]
            flags[rows] = flags_map[local[rows]]
            # One comparison per batch: a damaged shard without checksums must not index past the embeddings.
            if ids[rows].max(initial=0) >= self.vocab_size:
                raise ShardError(f"{self.root / self._shards[s]['ids']} holds token id {int(ids[rows].max())}, beyond "
                                 f"the vocabulary of {self.vocab_size}: the shard is damaged; pack the corpus again")
        bits = np.unpackbits(flags, axis=2, count=self.seq_len).astype(bool)
        return {"input_ids": ids, "word_start": bits[:, 0], "doc_start": bits[:, 1]}

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"index with an int (use get_batch for many), not {type(i).__name__}")
        return {k: v[0] for k, v in self.get_batch([int(i)]).items()}

    def order(self, seed: int, epoch: int, rank: int = 0, world_size: int = 1) -> np.ndarray:
        """This rank's part of a permutation of all indices that depends only on ``seed`` and ``epoch``.

        Every rank gets ``len(self) // world_size`` indices; the parts of all ranks are disjoint and
        together cover the permutation except its last ``len(self) % world_size`` entries.
        """
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch)]))
        perm = rng.permutation(len(self))
        per_rank = len(self) // world_size
        return perm[rank * per_rank:(rank + 1) * per_rank]

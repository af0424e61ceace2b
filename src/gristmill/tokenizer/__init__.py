"""Tokenizer training (HF ``tokenizers``) and packed token shards for pretraining.

Public API::

    train_tokenizer(input, out, kind="wordpiece", vocab_size=32000, ...) -> Path   # a HF tokenizer folder
    load_tokenizer(tokdir) -> tokenizers.Tokenizer
    special_ids(tokdir_or_tokenizer) -> {"pad", "unk", "cls", "sep", "mask"}
    pack_corpus(input, tokdir, out, seq_len=128, val_fraction=0.01, workers=1, resume=False) -> manifest
    TokenDataset(tokens_dir, split="train")                                        # random access for training
"""

from gristmill.tokenizer.dataset import TokenDataset
from gristmill.tokenizer.manifest import read_manifest
from gristmill.tokenizer.pack import pack_corpus
from gristmill.tokenizer.tokdir import (
    SPECIAL_TOKENS,
    TokenizerError,
    load_tokenizer,
    special_ids,
    tokenizer_hash,
)
from gristmill.tokenizer.train import build_tokenizer, train_tokenizer

__all__ = [
    "SPECIAL_TOKENS",
    "TokenDataset",
    "TokenizerError",
    "build_tokenizer",
    "load_tokenizer",
    "pack_corpus",
    "read_manifest",
    "special_ids",
    "tokenizer_hash",
    "train_tokenizer",
]

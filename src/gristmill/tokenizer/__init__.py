"""Tokenizer training (HF ``tokenizers``) and packed token shards for pretraining.

Public API::

    train_tokenizer(input, out, kind="wordpiece", vocab_size=32000, ...) -> Path   # a HF tokenizer folder
    load_tokenizer(tokdir) -> tokenizers.Tokenizer
    special_ids(tokdir_or_tokenizer) -> {"pad", "unk", "cls", "sep", "mask"}
    pack_corpus(input, tokdir, out, seq_len=128, val_fraction=0.01, workers=1, resume=False) -> manifest
    TokenDataset(tokens_dir, split="train")                                        # random access for training

The names above are imported on first use (``gristmill.lazy``), so ``import gristmill.tokenizer`` (and the CLI,
which registers this package's verbs) loads neither ``tokenizers`` nor pyarrow.
"""

from gristmill.lazy import lazy_exports

_EXPORTS = {  # public name -> the module that defines it
    "TokenDataset": "gristmill.tokenizer.dataset", "read_manifest": "gristmill.tokenizer.manifest",
    "pack_corpus": "gristmill.tokenizer.pack",
    "SPECIAL_TOKENS": "gristmill.tokenizer.tokdir", "TokenizerError": "gristmill.tokenizer.tokdir",
    "load_tokenizer": "gristmill.tokenizer.tokdir", "special_ids": "gristmill.tokenizer.tokdir",
    "tokenizer_hash": "gristmill.tokenizer.tokdir",
    "build_tokenizer": "gristmill.tokenizer.train", "train_tokenizer": "gristmill.tokenizer.train",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

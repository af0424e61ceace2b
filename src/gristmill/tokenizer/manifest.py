"""The on-disk format of packed token shards (``TOKENS/``) and its validation.

Layout of a finished ``TOKENS`` folder::

    TOKENS/manifest.json              written last: tokenizer hash, seq_len, dtype, per split the shards,
                                      sequences and tokens, the source corpus and its stats
    TOKENS/tokenizer/                 a copy of the TOKDIR the shards were made with
    TOKENS/train/00000.ids.bin        token ids, raw ``dtype`` array of shape (sequences, seq_len)
    TOKENS/train/00000.flags.bin      uint8 array (sequences, 2, ceil(seq_len / 8)): row 0 = word_start,
                                      row 1 = doc_start, each ``np.packbits`` over the sequence
    TOKENS/val/...                    the same for the validation split
    TOKENS/_work/                     resume state: the pack settings and one done-marker per input unit

Shards are plain arrays so that ``np.memmap`` maps them without a header. This module reads and checks
the manifest; it neither writes shards (``pack.py``) nor serves sequences (``dataset.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from gristmill.tokenizer.tokdir import TokenizerError, tokenizer_hash

FORMAT = "gristmill.tokens/1"
SPLITS = ("train", "val")


def token_dtype(vocab_size: int) -> str:
    """``uint16`` when every id fits in it, else ``uint32``."""
    return "uint16" if vocab_size <= 65535 else "uint32"


def flag_bytes(seq_len: int) -> int:
    return (seq_len + 7) // 8


def shard_nbytes(sequences: int, seq_len: int, dtype: str) -> tuple[int, int]:
    """Expected sizes of a shard's ids and flags files."""
    return sequences * seq_len * np.dtype(dtype).itemsize, sequences * 2 * flag_bytes(seq_len)


def read_manifest(tokens_dir: str | Path, check: bool = True) -> dict[str, Any]:
    """Load ``TOKENS/manifest.json``; with ``check``, also verify the tokenizer copy and every shard's size."""
    root = Path(tokens_dir)
    file = root / "manifest.json"
    if not file.is_file():
        if (root / "_work" / "config.json").is_file():
            raise TokenizerError(f"{root} is an unfinished pack: run `gristmill tokenize ... --out {root} --resume`")
        raise TokenizerError(f"{root} holds no packed token shards (no manifest.json); make them with `gristmill tokenize`")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TokenizerError(f"{file} is not valid JSON: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise TokenizerError(f"{file}: format {manifest.get('format')!r} is not {FORMAT!r}")
    if check:
        check_manifest(root, manifest)
    return manifest


def check_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Refuse shards that do not belong together: another tokenizer, a missing or truncated file."""
    expected = manifest["tokenizer"]["hash"]
    actual = tokenizer_hash(root / "tokenizer")
    if actual != expected:
        raise TokenizerError(f"{root}/tokenizer does not match the tokenizer the shards were made with "
                             f"(hash {actual[:12]} != {expected[:12]}); the folder mixes tokenizers")
    seq_len, dtype = manifest["seq_len"], manifest["dtype"]
    if dtype != token_dtype(manifest["tokenizer"]["vocab_size"]):
        raise TokenizerError(f"{root}: dtype {dtype} does not fit the vocabulary of {manifest['tokenizer']['vocab_size']}")
    for split, info in manifest["splits"].items():
        total = 0
        for shard in info["shards"]:
            if shard.get("tokenizer_hash") != expected:
                raise TokenizerError(f"{root}/{shard['ids']} was made with another tokenizer; refusing to mix shards")
            want_ids, want_flags = shard_nbytes(shard["sequences"], seq_len, dtype)
            for key, want in (("ids", want_ids), ("flags", want_flags)):
                path = root / shard[key]
                if not path.is_file():
                    raise TokenizerError(f"{path} is missing")
                if path.stat().st_size != want:
                    raise TokenizerError(f"{path} has {path.stat().st_size:,} bytes, the manifest says {want:,}")
            total += shard["sequences"]
        if total != info["sequences"]:
            raise TokenizerError(f"{root}/manifest.json: split {split} lists {total} sequences in shards "
                                 f"but {info['sequences']} in total")

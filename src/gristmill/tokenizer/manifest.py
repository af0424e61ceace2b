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

from gristmill import checksums, options
from gristmill.errors import BadDataError
from gristmill.tokenizer.tokdir import TokenizerError, load_tokenizer, tokenizer_hash

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


class ShardError(TokenizerError, BadDataError):
    """Token shards or a manifest whose content is damaged: wrong size or checksum, ids beyond the vocabulary,
    a path outside the folder (exit status 3)."""


def read_manifest(tokens_dir: str | Path, check: bool = True, verify: bool = False) -> dict[str, Any]:
    """Load ``TOKENS/manifest.json``; with ``check``, also verify the tokenizer copy and every shard's size,
    with ``verify`` every shard's checksum too (reads every shard once)."""
    root = Path(tokens_dir)
    file = root / "manifest.json"
    if not file.is_file():
        if (root / "_work" / "config.json").is_file():
            raise TokenizerError(f"{root} is an unfinished pack: run `gristmill tokenize ... --out {root} --resume`")
        raise TokenizerError(f"{root} holds no packed token shards (no manifest.json); make them with `gristmill tokenize`")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # also bytes that are not UTF-8
        raise ShardError(f"{file} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise TokenizerError(f"{file}: format {found!r} is not {FORMAT!r}")
    if check:
        try:
            check_manifest(root, manifest)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, TokenizerError):
                raise
            raise ShardError(f"{file} is damaged: {type(exc).__name__} {exc}; make the shards again with "
                             "`gristmill tokenize`") from None
        if verify:
            for split in manifest["splits"].values():
                for shard in split["shards"]:
                    verify_shard(root, shard)
    return manifest


def shard_path(root: Path, relative: str) -> Path:
    """``root / relative``, refusing a manifest entry that leads outside ``root`` (absolute, ``..``, a link)."""
    path = root / relative
    if Path(relative).is_absolute() or not path.resolve().is_relative_to(root.resolve()):
        raise ShardError(f"{root / 'manifest.json'} names {relative!r}, outside the folder; refusing to read it")
    return path


def verify_shard(root: Path, shard: dict[str, Any]) -> None:
    """Check both files of a shard against the checksums recorded when they were packed (if any)."""
    for key in ("ids", "flags"):
        digest = shard.get(f"{key}_xxh3_64")
        if digest:
            try:
                checksums.verify(shard_path(root, shard[key]), {"xxh3_64": digest},
                                 what="changed or damaged after packing; pack the corpus again")
            except checksums.CorruptFileError as exc:
                raise ShardError(str(exc)) from None


def check_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Refuse shards that do not belong together: another tokenizer, a missing or truncated file, sizes or
    paths the manifest cannot mean."""
    expected = manifest["tokenizer"]["hash"]
    actual = tokenizer_hash(root / "tokenizer")
    if actual != expected:
        raise TokenizerError(f"{root}/tokenizer does not match the tokenizer the shards were made with "
                             f"(hash {actual[:12]} != {expected[:12]}); the folder mixes tokenizers")
    seq_len, dtype, vocab_size = manifest["seq_len"], manifest["dtype"], manifest["tokenizer"]["vocab_size"]
    message = options.problem("seq_len", seq_len, options.POSITIONS)
    if message:
        raise ShardError(f"{root}/manifest.json: {message}; no model gristmill builds holds such sequences")
    real_vocab = load_tokenizer(root / "tokenizer").get_vocab_size(with_added_tokens=True)
    if vocab_size != real_vocab:
        raise ShardError(f"{root}/manifest.json says the vocabulary has {vocab_size} tokens, but its tokenizer has "
                         f"{real_vocab}; the manifest was edited or damaged: pack the corpus again")
    bad_special = {k: v for k, v in manifest["tokenizer"]["special"].items() if not 0 <= int(v) < vocab_size}
    if bad_special:
        raise ShardError(f"{root}/manifest.json: special token ids {bad_special} are outside the vocabulary")
    if dtype != token_dtype(vocab_size):
        raise TokenizerError(f"{root}: dtype {dtype} does not fit the vocabulary of {vocab_size}")
    for split, info in manifest["splits"].items():
        total = 0
        for shard in info["shards"]:
            if shard.get("tokenizer_hash") != expected:
                raise TokenizerError(f"{root}/{shard['ids']} was made with another tokenizer; refusing to mix shards")
            want_ids, want_flags = shard_nbytes(shard["sequences"], seq_len, dtype)
            for key, want in (("ids", want_ids), ("flags", want_flags)):
                path = shard_path(root, shard[key])
                if not path.is_file():
                    raise TokenizerError(f"{path} is missing")
                if path.stat().st_size != want:
                    raise ShardError(f"{path} has {path.stat().st_size:,} bytes, the manifest says {want:,}")
            total += shard["sequences"]
        if total != info["sequences"]:
            raise ShardError(f"{root}/manifest.json: split {split} lists {total} sequences in shards "
                             f"but {info['sequences']} in total")

"""What a tokenizer folder (TOKDIR) is: Hugging Face files on disk, loaded, hashed and described.

A TOKDIR holds ``tokenizer.json`` (the whole HF ``tokenizers`` pipeline: normaliser, pre-tokenizer,
model, post-processor, decoder), ``tokenizer_config.json`` and ``special_tokens_map.json``, so
``transformers.AutoTokenizer.from_pretrained(TOKDIR)`` loads it offline and gives the same ids as
:func:`load_tokenizer`. This module reads and writes those files; it does not train (``train.py``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from gristmill.data.storage import atomic_write_text
from gristmill.errors import GristmillError

SPECIAL_TOKENS = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
"""The special tokens of every gristmill tokenizer, ids 0..4 in this order."""


TOKENIZER_JSON = "tokenizer.json"
"""The file of a TOKDIR that holds the whole tokenizer (the Hugging Face ``tokenizers`` format)."""


class TokenizerError(GristmillError, ValueError):
    """A problem with a tokenizer folder or token shards that the user can fix."""


def tokenizer_file(tokdir: str | Path) -> Path:
    """``tokenizer.json`` of a TOKDIR (or the file itself when given)."""
    path = Path(tokdir)
    file = path / TOKENIZER_JSON if path.is_dir() else path
    if not file.is_file():
        raise TokenizerError(f"{tokdir} is not a tokenizer folder: {file} does not exist "
                             "(train one with `gristmill tokenizer train`)")
    return file


def load_tokenizer(tokdir: str | Path) -> Tokenizer:
    """The HF ``tokenizers.Tokenizer`` of a TOKDIR (folder or path of its ``tokenizer.json``)."""
    file = tokenizer_file(tokdir)
    try:
        return Tokenizer.from_file(str(file))
    except Exception as exc:  # the Rust side raises a bare Exception for any malformed file
        raise TokenizerError(f"{file} is not a valid tokenizer.json: {exc}") from None


def tokenizer_hash(tokdir: str | Path) -> str:
    """sha256 of the canonical ``tokenizer.json``: equal hashes mean equal ids for every text."""
    data = json.loads(tokenizer_file(tokdir).read_text(encoding="utf-8"))
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def model_max_length(tokdir: str | Path) -> int | None:
    """``model_max_length`` of ``tokenizer_config.json`` (the longest input the tokenizer is meant for), if set."""
    file = Path(tokdir) / "tokenizer_config.json"
    try:
        value = json.loads(file.read_text(encoding="utf-8")).get("model_max_length")
    except (OSError, ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1 else None


def _special_names(tokdir: Path) -> dict[str, str]:
    """Names of the special tokens, from ``special_tokens_map.json`` when the folder has one."""
    names = dict(SPECIAL_TOKENS)
    map_file = (tokdir if tokdir.is_dir() else tokdir.parent) / "special_tokens_map.json"
    if map_file.is_file():
        data = json.loads(map_file.read_text(encoding="utf-8"))
        for key in names:
            value = data.get(f"{key}_token")
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                names[key] = value
    return names


def special_ids(tokdir_or_tokenizer: str | Path | Tokenizer) -> dict[str, int]:
    """Ids of the special tokens: ``{"pad", "unk", "cls", "sep", "mask"}``."""
    if isinstance(tokdir_or_tokenizer, Tokenizer):
        tok, names = tokdir_or_tokenizer, dict(SPECIAL_TOKENS)
    else:
        tok, names = load_tokenizer(tokdir_or_tokenizer), _special_names(Path(tokdir_or_tokenizer))
    ids = {key: tok.token_to_id(name) for key, name in names.items()}
    missing = [names[k] for k, v in ids.items() if v is None]
    if missing:
        raise TokenizerError(f"the tokenizer has no {', '.join(missing)} token; gristmill needs "
                             f"{', '.join(names.values())}")
    return ids  # type: ignore[return-value]


def save_tokdir(tok: Tokenizer, out: Path, *, lowercase: bool, model_max_length: int,
                extra: dict[str, Any] | None = None) -> Path:
    """Write ``tok`` as a Hugging Face tokenizer folder; each file replaced atomically."""
    out.mkdir(parents=True, exist_ok=True)
    specials = {f"{k}_token": v for k, v in SPECIAL_TOKENS.items()}
    # PreTrainedTokenizerFast (not BertTokenizerFast): it takes tokenizer.json as it is, whereas the
    # model-specific classes may rebuild the normaliser from their own options and change the ids.
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": model_max_length,
        "do_lower_case": lowercase,
        # Our decoders already join word pieces; a second clean-up would make HF decode differ from ours.
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
        **specials,
    }
    files = {
        TOKENIZER_JSON: tok.to_str(pretty=True),
        "tokenizer_config.json": json.dumps(config, indent=2),
        "special_tokens_map.json": json.dumps(specials, indent=2),
    }
    if extra is not None:
        files["gristmill.json"] = json.dumps(extra, indent=2, default=str)
    for name, text in files.items():
        atomic_write_text(out / name, text)
    return out

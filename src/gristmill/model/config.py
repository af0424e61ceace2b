"""The models' hyper-parameters: encoder and decoder dataclasses on one base, the named sizes, the JSON file.

This module owns the shape of a model (``RUN/config.json``); it knows nothing about training or torch.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from gristmill.errors import GristmillError
from gristmill.folders import RunFolder, write_record
from gristmill.options import MAX_POSITIONS

# The BERT miniatures (Turc et al., 2019) and BERT-base: name -> (layers, hidden). Heads = hidden / 64,
# feed-forward = 4 x hidden, as in the released checkpoints.
NAMED_SIZES: dict[str, tuple[int, int]] = {
    "tiny": (2, 128),
    "mini": (4, 256),
    "small": (4, 512),
    "medium": (8, 512),
    "base": (12, 768),
}

ACTIVATIONS = ("gelu", "gelu_tanh")
POOLINGS = ("cls", "mean")


class ConfigError(GristmillError, ValueError):
    """A model configuration that cannot describe a working encoder; the message says which field."""


C = TypeVar("C", bound="SizedConfig")


@dataclass
class SizedConfig:
    """What every gristmill model config shares: the size fields, the named sizes and the JSON file.

    :class:`ModelConfig` (the encoder) and :class:`DecoderConfig` add their own fields and checks.
    """

    KIND: ClassVar[str] = "model"
    """How messages name the config ("model config: ...", "decoder config: ...")."""

    vocab_size: int
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 1024
    max_position: int = 512

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        positive = ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size", "max_position")
        for key in positive:
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{self.KIND} config: {key} must be a positive integer, got {value!r}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @staticmethod
    def feed_forward_width(hidden: int) -> int:
        """The feed-forward units of a named size: 4 x hidden (BERT's GELU network)."""
        return 4 * hidden

    @classmethod
    def named(cls: type[C], size: str, vocab_size: int, **overrides: Any) -> C:
        """One of the named sizes (tiny, mini, small, medium, base) for ``vocab_size`` tokens."""
        if size not in NAMED_SIZES:
            raise ConfigError(f"unknown model size {size!r}; choose one of {', '.join(NAMED_SIZES)}")
        layers, hidden = NAMED_SIZES[size]
        fields = {"vocab_size": vocab_size, "hidden_size": hidden, "num_layers": layers,
                  "num_heads": hidden // 64, "intermediate_size": cls.feed_forward_width(hidden), "name": size}
        fields.update(overrides)
        return cls(**fields)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{cls.KIND} config: unknown field(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(known))}")
        if "vocab_size" not in data:
            raise ConfigError(f"{cls.KIND} config: vocab_size is required")
        return cls(**data)

    def to_json(self, path: str | Path) -> None:
        write_record(Path(path), self.to_dict())

    @classmethod
    def from_json(cls: type[C], path: str | Path) -> C:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        return cls.from_dict(data)


@dataclass
class ModelConfig(SizedConfig):
    """Shape of a gristmill encoder. Field meanings follow BERT's ``BertConfig`` where they overlap."""

    type_vocab_size: int = 2
    dropout: float = 0.1
    attention_dropout: float = 0.1
    pre_ln: bool = False
    layer_norm_eps: float = 1e-12
    pad_id: int = 0
    initializer_range: float = 0.02
    activation: str = "gelu"
    # Next-sentence prediction head (BERT's second objective); off by default, see docs/pretraining.md.
    nsp: bool = False
    name: str | None = None
    # What a sequence classifier pools before its head: the [CLS] state (BERT) or the mean of all tokens.
    pooling: str = "cls"

    def validate(self) -> None:
        super().validate()
        if self.max_position > MAX_POSITIONS:
            raise ConfigError(f"model config: max_position {self.max_position} is more than gristmill builds "
                              f"({MAX_POSITIONS}): attention over such sequences would not finish a step")
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"model config: hidden_size {self.hidden_size} is not divisible by "
                              f"num_heads {self.num_heads}")
        if self.type_vocab_size < 0:
            raise ConfigError("model config: type_vocab_size must be >= 0")
        for key in ("dropout", "attention_dropout"):
            if not 0.0 <= float(getattr(self, key)) < 1.0:
                raise ConfigError(f"model config: {key} must be in [0, 1), got {getattr(self, key)!r}")
        if not 0 <= self.pad_id < self.vocab_size:
            raise ConfigError(f"model config: pad_id {self.pad_id} is outside the vocabulary ({self.vocab_size})")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"model config: pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"model config: activation must be one of {ACTIVATIONS}, got {self.activation!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        if data.get("arch") == "decoder":
            raise ConfigError("this run is a decoder (arch: decoder), not an encoder; use generate, perplexity "
                              "or finetune with it")
        return super().from_dict(data)


# ---------------------------------------------------------------- the decoder (Llama family)

# Decoder sizes use the encoder's (layers, hidden); heads = hidden / 64; the SwiGLU feed-forward has
# 8/3 x hidden units rounded up to a multiple of 64, so its three matrices hold as many weights as a
# 4 x hidden GELU network (Llama's rule).
def swiglu_width(hidden: int) -> int:
    return -(-(8 * hidden // 3) // 64) * 64


@dataclass
class DecoderConfig(SizedConfig):
    """Shape of a gristmill decoder; every field maps onto ``transformers.LlamaConfig`` (see ``hf.py``).

    ``arch`` is written to ``RUN/config.json`` so that every verb knows which model a run holds.
    ``bos_id`` begins every sequence ([CLS] in gristmill's packed shards) and ``eos_id`` ends every
    document ([SEP]); generation stops at ``eos_id``.
    """

    KIND: ClassVar[str] = "decoder"

    intermediate_size: int = 704
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6
    dropout: float = 0.0
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    initializer_range: float = 0.02
    name: str | None = None
    arch: str = "decoder"

    def validate(self) -> None:
        super().validate()
        if self.hidden_size % self.num_heads or (self.hidden_size // self.num_heads) % 2:
            raise ConfigError(f"decoder config: hidden_size {self.hidden_size} must split into num_heads "
                              f"{self.num_heads} heads of an even size (rotary positions rotate pairs)")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ConfigError(f"decoder config: dropout must be in [0, 1), got {self.dropout!r}")
        for key in ("pad_id", "bos_id", "eos_id"):
            if not 0 <= getattr(self, key) < self.vocab_size:
                raise ConfigError(f"decoder config: {key} {getattr(self, key)} is outside the vocabulary "
                                  f"({self.vocab_size})")
        if self.rope_theta <= 0 or self.rms_norm_eps <= 0:
            raise ConfigError("decoder config: rope_theta and rms_norm_eps must be positive")
        if self.arch != "decoder":
            raise ConfigError(f"decoder config: arch must be 'decoder', got {self.arch!r}")

    @staticmethod
    def feed_forward_width(hidden: int) -> int:
        """SwiGLU units of a named size (:func:`swiglu_width`)."""
        return swiglu_width(hidden)


def read_config(path: str | Path) -> ModelConfig | DecoderConfig:
    """``RUN/config.json`` as the config of the model it describes (``"arch": "decoder"`` or an encoder)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    if data.get("arch") == "decoder":
        return DecoderConfig.from_dict(data)
    return ModelConfig.from_dict(data)


def is_decoder_run(run_dir: str | Path) -> bool:
    path = RunFolder(run_dir).config
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("arch") == "decoder"
    except (OSError, json.JSONDecodeError, AttributeError):
        return False

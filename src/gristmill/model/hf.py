"""Hugging Face interoperability: a gristmill RUN <-> a ``transformers`` BERT (or Llama) folder.

``export_hf`` writes a folder that ``transformers.BertForMaskedLM.from_pretrained`` loads (with the
run's tokenizer), giving the same logits; ``import_hf`` turns a local BERT checkpoint into a RUN so
pretraining can continue on domain text and fine-tuning can start from it. The only real work is
the name map between the two state dicts (gristmill fuses Q, K and V into one matrix). Nothing here
downloads anything: ``from_pretrained`` is only ever given a local folder.

Decoder runs (``"arch": "decoder"``) go to and come from ``LlamaForCausalLM`` the same way: the fused
QKV and gate/up matrices are split and joined, everything else is a rename.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from gristmill.errors import GristmillError
from gristmill.folders import RunFolder, write_record
from gristmill.model.config import DecoderConfig, ModelConfig, is_decoder_run
from gristmill.model.decoder import CausalLM
from gristmill.model.run_folder import load_decoder_run, load_run, save_run_weights
from gristmill.model.transformer import MaskedLM
from gristmill.tokenizer.tokdir import TOKENIZER_JSON

if TYPE_CHECKING:
    from transformers import BertConfig, LlamaConfig, LlamaForCausalLM


class HFError(GristmillError, ValueError):
    """A checkpoint or run that cannot be converted; the message says why."""


_ACT_TO_HF = {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh"}
_ACT_FROM_HF = {"gelu": "gelu", "gelu_python": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                "gelu_fast": "gelu_tanh"}

# gristmill name suffix -> BERT name suffix, per layer (the fused qkv is handled on its own).
_LAYER_NAMES = {
    "attention.out": "attention.output.dense",
    "attention_norm": "attention.output.LayerNorm",
    "feed_forward.up": "intermediate.dense",
    "feed_forward.down": "output.dense",
    "output_norm": "output.LayerNorm",
}
_FIXED_NAMES = {
    "encoder.embeddings.word_embeddings": "bert.embeddings.word_embeddings",
    "encoder.embeddings.position_embeddings": "bert.embeddings.position_embeddings",
    "encoder.embeddings.token_type_embeddings": "bert.embeddings.token_type_embeddings",
    "encoder.embeddings.layer_norm": "bert.embeddings.LayerNorm",
    "head.dense": "cls.predictions.transform.dense",
    "head.layer_norm": "cls.predictions.transform.LayerNorm",
}


def to_bert_config(config: ModelConfig) -> BertConfig:
    from transformers import BertConfig

    if config.pre_ln:
        raise HFError("this run uses pre-LN blocks; transformers' BERT is post-LN only, so it cannot be exported "
                      "as BertForMaskedLM")
    if config.type_vocab_size == 0:
        raise HFError("BERT needs segment embeddings (type_vocab_size > 0)")
    return BertConfig(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size, num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads, intermediate_size=config.intermediate_size,
        hidden_act=_ACT_TO_HF[config.activation], hidden_dropout_prob=config.dropout,
        attention_probs_dropout_prob=config.attention_dropout, max_position_embeddings=config.max_position,
        type_vocab_size=config.type_vocab_size, initializer_range=config.initializer_range,
        layer_norm_eps=config.layer_norm_eps, pad_token_id=config.pad_id, tie_word_embeddings=True,
        architectures=["BertForMaskedLM"],
    )


def from_bert_config(bert: BertConfig) -> ModelConfig:
    position_type = getattr(bert, "position_embedding_type", "absolute")
    if position_type != "absolute":
        raise HFError(f"position_embedding_type {position_type!r} is not supported (only 'absolute')")
    if getattr(bert, "is_decoder", False):
        raise HFError("this checkpoint is a decoder (is_decoder=true), not a BERT encoder")
    act = bert.hidden_act if isinstance(bert.hidden_act, str) else ""
    if act not in _ACT_FROM_HF:
        raise HFError(f"activation {bert.hidden_act!r} is not supported (gelu or gelu_new)")
    pad_id = bert.pad_token_id if bert.pad_token_id is not None else 0
    return ModelConfig(
        vocab_size=bert.vocab_size, hidden_size=bert.hidden_size, num_layers=bert.num_hidden_layers,
        num_heads=bert.num_attention_heads, intermediate_size=bert.intermediate_size,
        max_position=bert.max_position_embeddings, type_vocab_size=bert.type_vocab_size,
        dropout=bert.hidden_dropout_prob, attention_dropout=bert.attention_probs_dropout_prob,
        layer_norm_eps=bert.layer_norm_eps, pad_id=pad_id, initializer_range=bert.initializer_range,
        activation=_ACT_FROM_HF[act],
    )


def to_bert_state_dict(state: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """gristmill MaskedLM state dict -> BertForMaskedLM names (the decoder weight is tied, so not listed)."""
    out: dict[str, torch.Tensor] = {}
    for ours, theirs in _FIXED_NAMES.items():
        for kind in ("weight", "bias"):
            if f"{ours}.{kind}" in state:
                out[f"{theirs}.{kind}"] = state[f"{ours}.{kind}"]
    out["cls.predictions.bias"] = state["head.bias"]
    for i in range(config.num_layers):
        src, dst = f"encoder.layers.{i}", f"bert.encoder.layer.{i}"
        for kind in ("weight", "bias"):
            q, k, v = state[f"{src}.attention.qkv.{kind}"].chunk(3, dim=0)
            out[f"{dst}.attention.self.query.{kind}"] = q
            out[f"{dst}.attention.self.key.{kind}"] = k
            out[f"{dst}.attention.self.value.{kind}"] = v
            for ours, theirs in _LAYER_NAMES.items():
                out[f"{dst}.{theirs}.{kind}"] = state[f"{src}.{ours}.{kind}"]
    return {k: v.contiguous() for k, v in out.items()}


def from_bert_state_dict(state: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """BertForMaskedLM state dict -> gristmill MaskedLM names (inverse of :func:`to_bert_state_dict`)."""
    out: dict[str, torch.Tensor] = {}
    for ours, theirs in _FIXED_NAMES.items():
        for kind in ("weight", "bias"):
            if f"{theirs}.{kind}" in state:
                out[f"{ours}.{kind}"] = state[f"{theirs}.{kind}"]
    out["head.bias"] = state["cls.predictions.bias"]
    for i in range(config.num_layers):
        src, dst = f"bert.encoder.layer.{i}", f"encoder.layers.{i}"
        for kind in ("weight", "bias"):
            out[f"{dst}.attention.qkv.{kind}"] = torch.cat(
                [state[f"{src}.attention.self.{name}.{kind}"] for name in ("query", "key", "value")], dim=0)
            for ours, theirs in _LAYER_NAMES.items():
                out[f"{dst}.{ours}.{kind}"] = state[f"{src}.{theirs}.{kind}"]
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def _tokenizer_files(tokenizer_dir: Path, out_dir: Path, special: dict[str, str]) -> None:
    """Copy the tokenizer and make sure ``AutoTokenizer.from_pretrained(out_dir)`` knows its special tokens."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for item in tokenizer_dir.iterdir():
        if item.is_file():
            shutil.copy2(item, out_dir / item.name)
    config_path = out_dir / "tokenizer_config.json"
    tok_config: dict[str, Any] = {}
    if config_path.exists():
        tok_config = json.loads(config_path.read_text(encoding="utf-8"))
    tok_config.setdefault("tokenizer_class", "PreTrainedTokenizerFast")
    for key, token in special.items():
        tok_config.setdefault(f"{key}_token", token)
    write_record(config_path, tok_config)


def _special_tokens(tokenizer_dir: Path, config: ModelConfig) -> dict[str, str]:
    """Token strings of the special ids ([PAD], [CLS], ...), read from the run's tokenizer.json."""
    from tokenizers import Tokenizer

    path = tokenizer_dir / TOKENIZER_JSON
    if not path.exists():
        return {}
    tok = Tokenizer.from_file(str(path))
    out = {}
    for key, default in (("pad", "[PAD]"), ("unk", "[UNK]"), ("cls", "[CLS]"), ("sep", "[SEP]"), ("mask", "[MASK]")):
        if tok.token_to_id(default) is not None:
            out[key] = default
    return out


def export_hf(run_dir: str | Path, out_dir: str | Path) -> Path:
    """Write ``out_dir`` with config.json, model.safetensors and the tokenizer, loadable by BertForMaskedLM."""
    from transformers import BertForMaskedLM

    if is_decoder_run(run_dir):
        return export_decoder_hf(run_dir, out_dir)
    model, config, tokenizer_dir = load_run(run_dir)
    out = Path(out_dir)
    bert = BertForMaskedLM(to_bert_config(config))
    result = bert.load_state_dict(to_bert_state_dict(model.state_dict(), config), strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("cls.predictions.decoder.")
               and not k.endswith("position_ids")]
    if missing or result.unexpected_keys:
        raise AssertionError(f"name map incomplete: missing {missing}, unexpected {result.unexpected_keys}")
    bert.tie_weights()
    out.mkdir(parents=True, exist_ok=True)
    bert.save_pretrained(out)
    if tokenizer_dir.is_dir():
        _tokenizer_files(tokenizer_dir, out, _special_tokens(tokenizer_dir, config))
    return out


def import_hf(hf_dir: str | Path, run_dir: str | Path, overwrite: bool = False) -> Path:
    """Turn a local BERT checkpoint folder into a RUN (config.json, model.safetensors, tokenizer/)."""
    try:
        return _import_hf(Path(hf_dir), Path(run_dir), overwrite)
    except OSError as exc:
        if exc.errno is not None:  # the machine said no (disk full, permissions): the command line words it
            raise
        # transformers says "no file named pytorch_model.bin ..." as a bare OSError: a folder the user can fix
        raise HFError(f"{hf_dir}: transformers cannot load it: {exc}") from None


def _import_hf(hf_dir: Path, run_dir: Path, overwrite: bool) -> Path:
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    src, run = Path(hf_dir), Path(run_dir)
    hf_config = src / "config.json"  # the Hugging Face folder's own file (named as ours, by the same convention)
    if not hf_config.exists():
        raise HFError(f"{src} has no config.json: not a transformers model folder")
    if run.exists() and any(run.iterdir()) and not overwrite:
        raise HFError(f"{run} already exists and is not empty (use --overwrite)")
    model_type = json.loads(hf_config.read_text(encoding="utf-8")).get("model_type")
    if model_type == "llama":
        return import_decoder_hf(src, run)
    if model_type != "bert":
        # BertConfig.from_pretrained reads any config without complaint, and BertForMaskedLM then loads none of
        # a RoBERTa's or DistilBERT's weights: the "import" would be a randomly initialised encoder.
        raise HFError(f"{src} is a {model_type!r} checkpoint (config.json model_type); import-hf maps 'bert' "
                      "and 'llama' only")
    bert_config = BertConfig.from_pretrained(src, local_files_only=True)
    config = from_bert_config(bert_config)
    if not any((src / name).exists() for name in (TOKENIZER_JSON, "vocab.txt")):
        raise HFError(f"{src} has no tokenizer (tokenizer.json or vocab.txt); copy the checkpoint's tokenizer "
                      "files into it")
    bert, info = BertForMaskedLM.from_pretrained(src, local_files_only=True, output_loading_info=True)
    missing_keys, unexpected_keys = sorted(info["missing_keys"]), sorted(info["unexpected_keys"])
    head_missing = [k for k in missing_keys if k.startswith("cls.")
                    and not k.startswith("cls.predictions.decoder.")]
    encoder_missing = [k for k in missing_keys if not k.startswith("cls.")]
    if encoder_missing:
        raise HFError(f"{src} lacks {len(encoder_missing)} encoder weight(s), e.g. {encoder_missing[0]}: "
                      "refusing to import a partly random encoder")
    model = MaskedLM(config)
    model.load_state_dict(from_bert_state_dict(bert.state_dict(), config), strict=True)
    folder = RunFolder(run)
    run.mkdir(parents=True, exist_ok=True)
    config.to_json(folder.config)
    save_run_weights(model, folder.weights)
    tokenizer = AutoTokenizer.from_pretrained(src, local_files_only=True)
    if len(tokenizer) > config.vocab_size:
        raise HFError(f"the tokenizer has {len(tokenizer)} tokens but the model only {config.vocab_size}")
    tokenizer.save_pretrained(folder.tokenizer)
    # gristmill finds its special tokens by name through special_tokens_map.json.
    names = {f"{key}_token": getattr(tokenizer, f"{key}_token", None) for key in ("pad", "unk", "cls", "sep", "mask")}
    missing = [key for key, value in names.items() if not value]
    if missing:
        raise HFError(f"the tokenizer has no {', '.join(missing)}: gristmill needs pad, unk, cls, sep and mask tokens")
    write_record(folder.tokenizer / "special_tokens_map.json", names)
    write_record(folder.import_record, {
        "source": str(src.resolve()), "mlm_head_initialised_randomly": bool(head_missing),
        "missing_keys": missing_keys, "unexpected_keys": unexpected_keys,
    })
    return run


# ---------------------------------------------------------------- decoders <-> LlamaForCausalLM

# gristmill name suffix -> Llama name suffix, per layer (the fused qkv and gate_up are split on their own).
_LLAMA_LAYER_NAMES = {
    "attention.out": "self_attn.o_proj",
    "attention_norm": "input_layernorm",
    "mlp.down": "mlp.down_proj",
    "mlp_norm": "post_attention_layernorm",
}


def to_llama_config(config: DecoderConfig) -> LlamaConfig:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads, head_dim=config.head_dim, hidden_act="silu",
        max_position_embeddings=config.max_position, initializer_range=config.initializer_range,
        rms_norm_eps=config.rms_norm_eps, pad_token_id=config.pad_id, bos_token_id=config.bos_id,
        eos_token_id=config.eos_id, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
        attention_bias=False, mlp_bias=False, attention_dropout=0.0, architectures=["LlamaForCausalLM"],
    )


def from_llama_config(llama: LlamaConfig) -> DecoderConfig:
    rope = getattr(llama, "rope_parameters", None) or {"rope_type": "default",
                                                       "rope_theta": getattr(llama, "rope_theta", 10000.0)}
    if rope.get("rope_type", "default") != "default":
        raise HFError(f"rope scaling {rope.get('rope_type')!r} is not supported (only the default rotary positions)")
    kv_heads = llama.num_key_value_heads or llama.num_attention_heads
    if kv_heads != llama.num_attention_heads:
        raise HFError(f"grouped-query attention ({kv_heads} key/value heads for {llama.num_attention_heads} query "
                      "heads) is not supported")
    head_dim = getattr(llama, "head_dim", None) or llama.hidden_size // llama.num_attention_heads
    if head_dim * llama.num_attention_heads != llama.hidden_size:
        raise HFError("head_dim x num_attention_heads must equal hidden_size")
    if llama.hidden_act != "silu" or getattr(llama, "attention_bias", False) or getattr(llama, "mlp_bias", False):
        raise HFError("only SiLU feed-forward networks without biases (plain Llama) are supported")
    if not getattr(llama, "tie_word_embeddings", False):
        raise HFError("the checkpoint has an untied output layer (tie_word_embeddings false); gristmill's decoder "
                      "ties it to the input embeddings")
    eos = llama.eos_token_id[0] if isinstance(llama.eos_token_id, list) else llama.eos_token_id
    return DecoderConfig(
        vocab_size=llama.vocab_size, hidden_size=llama.hidden_size, num_layers=llama.num_hidden_layers,
        num_heads=llama.num_attention_heads, intermediate_size=llama.intermediate_size,
        max_position=llama.max_position_embeddings, rope_theta=float(rope["rope_theta"]),
        rms_norm_eps=llama.rms_norm_eps, pad_id=llama.pad_token_id if llama.pad_token_id is not None else 0,
        bos_id=llama.bos_token_id if llama.bos_token_id is not None else 0, eos_id=eos if eos is not None else 0,
        initializer_range=llama.initializer_range,
    )


def to_llama_state_dict(state: dict[str, torch.Tensor], config: DecoderConfig) -> dict[str, torch.Tensor]:
    """gristmill CausalLM state dict -> LlamaForCausalLM names (lm_head is tied, so not listed)."""
    out = {"model.embed_tokens.weight": state["decoder.embeddings.weight"],
           "model.norm.weight": state["decoder.final_norm.weight"]}
    for i in range(config.num_layers):
        src, dst = f"decoder.layers.{i}", f"model.layers.{i}"
        q, k, v = state[f"{src}.attention.qkv.weight"].chunk(3, dim=0)
        out.update({f"{dst}.self_attn.q_proj.weight": q, f"{dst}.self_attn.k_proj.weight": k,
                    f"{dst}.self_attn.v_proj.weight": v})
        gate, up = state[f"{src}.mlp.gate_up.weight"].chunk(2, dim=0)
        out.update({f"{dst}.mlp.gate_proj.weight": gate, f"{dst}.mlp.up_proj.weight": up})
        for ours, theirs in _LLAMA_LAYER_NAMES.items():
            out[f"{dst}.{theirs}.weight"] = state[f"{src}.{ours}.weight"]
    return {k: v.contiguous() for k, v in out.items()}


def from_llama_state_dict(state: dict[str, torch.Tensor], config: DecoderConfig) -> dict[str, torch.Tensor]:
    """LlamaForCausalLM state dict -> gristmill CausalLM names (inverse of :func:`to_llama_state_dict`)."""
    out = {"decoder.embeddings.weight": state["model.embed_tokens.weight"],
           "decoder.final_norm.weight": state["model.norm.weight"]}
    for i in range(config.num_layers):
        src, dst = f"model.layers.{i}", f"decoder.layers.{i}"
        out[f"{dst}.attention.qkv.weight"] = torch.cat(
            [state[f"{src}.self_attn.{name}_proj.weight"] for name in ("q", "k", "v")], dim=0)
        out[f"{dst}.mlp.gate_up.weight"] = torch.cat(
            [state[f"{src}.mlp.{name}_proj.weight"] for name in ("gate", "up")], dim=0)
        for ours, theirs in _LLAMA_LAYER_NAMES.items():
            out[f"{dst}.{ours}.weight"] = state[f"{src}.{theirs}.weight"]
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def to_llama(model: torch.nn.Module, config: DecoderConfig) -> LlamaForCausalLM:
    """A ``transformers.LlamaForCausalLM`` holding this CausalLM's weights (in eval mode)."""
    from transformers import LlamaForCausalLM

    llama = LlamaForCausalLM(to_llama_config(config))
    result = llama.load_state_dict(to_llama_state_dict(model.state_dict(), config), strict=False)
    missing = [k for k in result.missing_keys if k != "lm_head.weight"]
    if missing or result.unexpected_keys:
        raise AssertionError(f"name map incomplete: missing {missing}, unexpected {result.unexpected_keys}")
    llama.tie_weights()
    return llama.eval()


def _decoder_special_tokens(tokenizer_dir: Path, config: DecoderConfig) -> dict[str, str]:
    """bos, eos and pad token strings for the tokenizer config (read from the run's tokenizer.json)."""
    from tokenizers import Tokenizer

    path = tokenizer_dir / TOKENIZER_JSON
    if not path.exists():
        return {}
    tok = Tokenizer.from_file(str(path))
    out = {key: tok.id_to_token(getattr(config, f"{key}_id")) for key in ("bos", "eos", "pad")}
    return {key: value for key, value in out.items() if value is not None}


def export_decoder_hf(run_dir: str | Path, out_dir: str | Path) -> Path:
    """Write ``out_dir`` (config.json, model.safetensors, tokenizer) that LlamaForCausalLM loads."""
    from transformers import GenerationConfig

    model, config, tokenizer_dir = load_decoder_run(run_dir)
    out = Path(out_dir)
    llama = to_llama(model, config)
    llama.generation_config = GenerationConfig(bos_token_id=config.bos_id, eos_token_id=config.eos_id,
                                               pad_token_id=config.pad_id)
    out.mkdir(parents=True, exist_ok=True)
    llama.save_pretrained(out)
    if tokenizer_dir.is_dir():
        _tokenizer_files(tokenizer_dir, out, _decoder_special_tokens(tokenizer_dir, config))
    return out


def import_decoder_hf(src: Path, run: Path) -> Path:
    """A local LlamaForCausalLM folder -> a decoder RUN (config.json, model.safetensors, tokenizer/)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    config = from_llama_config(LlamaConfig.from_pretrained(src, local_files_only=True))
    llama = LlamaForCausalLM.from_pretrained(src, local_files_only=True)
    model = CausalLM(config)
    model.load_state_dict(from_llama_state_dict(llama.state_dict(), config), strict=True)
    tokenizer = AutoTokenizer.from_pretrained(src, local_files_only=True)
    if len(tokenizer) > config.vocab_size:
        raise HFError(f"the tokenizer has {len(tokenizer)} tokens but the model only {config.vocab_size}")
    folder = RunFolder(run)
    run.mkdir(parents=True, exist_ok=True)
    config.to_json(folder.config)
    save_run_weights(model, folder.weights)
    tokenizer.save_pretrained(folder.tokenizer)
    write_record(folder.import_record, {"source": str(src.resolve()), "architecture": "LlamaForCausalLM"})
    return run

"""The weights of a RUN folder: write them, find them, and load a model back from them.

``RUN/config.json`` and ``RUN/model.safetensors`` (or, for a run stopped early, the newest
``RUN/checkpoints/step-*/model.safetensors``). Here, below ``train``, so that the model package
(``hf`` import and export) can read and write runs; ``gristmill.train.checkpoint`` owns the training
checkpoints (optimizer, scheduler, RNG state) and re-exports these names.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gristmill import checksums, folders
from gristmill.errors import BadDataError, GristmillError
from gristmill.folders import RunFolder
from gristmill.model.config import DecoderConfig, ModelConfig, read_config
from gristmill.model.decoder import CausalLM
from gristmill.model.transformer import MaskedLM

CHECKPOINT_PREFIX = "step-"


class CheckpointError(GristmillError, ValueError):
    """A run or checkpoint that cannot be loaded as asked; the message says what is wrong."""


class CheckpointDataError(CheckpointError, BadDataError):
    """Weights or training state whose file is damaged: truncated, overwritten, not what was written."""


def step_dir_name(step: int) -> str:
    return f"{CHECKPOINT_PREFIX}{step:07d}"


def save_run_weights(model: torch.nn.Module, path: Path) -> None:
    """Write a state dict as safetensors, atomically (temporary file, then rename)."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file(state, str(tmp), metadata={"format": "pt"})
    checksums.replace_recorded(tmp, path)


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    folder = RunFolder(run_dir).checkpoints
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir()
             if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX) and (p / "state.json").exists()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def check_weights(path: Path) -> None:
    """Refuse a weights file that is missing, or differs from the checksum recorded when it was written."""
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    try:
        checksums.verify_sidecar(path)
    except checksums.CorruptFileError as exc:
        raise CheckpointDataError(str(exc)) from None


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, after :func:`check_weights`; a damaged file is a CheckpointDataError."""
    check_weights(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointDataError(f"{path} is damaged or not a safetensors file ({exc}); "
                                  "restore it or train again") from None


def run_weights_path(run_dir: Path) -> Path:
    """RUN/model.safetensors, or the newest checkpoint's weights when the run stopped before writing it."""
    run = RunFolder(run_dir)
    if run.weights.exists():
        return run.weights
    latest = latest_checkpoint(run.root)
    if latest is not None:
        return latest / folders.WEIGHTS
    raise CheckpointError(folders.run_problem(run.root)
                          or f"{run.root} has no {folders.WEIGHTS} and no checkpoint: not a gristmill run folder")


def check_run(run_dir: str | Path) -> RunFolder:
    """``run_dir`` as a :class:`RunFolder`, or a :class:`CheckpointError` saying why it is not one."""
    problem = folders.run_problem(run_dir)
    if problem:
        raise CheckpointError(problem)
    return RunFolder(run_dir)


def load_run(run_dir: str | Path) -> tuple[MaskedLM, ModelConfig, Path]:
    """A finished (or running) pretraining run -> (MaskedLM in eval mode on CPU, its config, tokenizer dir)."""
    run = check_run(run_dir)
    config = ModelConfig.from_json(run.config)
    model = MaskedLM(config)
    state = load_state_dict_file(run_weights_path(run.root))
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(f"{run.root}: weights do not match {folders.CONFIG} (missing {result.missing_keys[:5]}, "
                              f"unexpected {result.unexpected_keys[:5]})")
    model.eval()
    return model, config, run.tokenizer


def load_decoder_run(run_dir: str | Path) -> tuple[CausalLM, DecoderConfig, Path]:
    """A decoder run -> (CausalLM in eval mode on CPU, its DecoderConfig, tokenizer dir)."""
    run = check_run(run_dir)
    config = read_config(run.config)
    if not isinstance(config, DecoderConfig):
        raise CheckpointError(f"{run.root} holds an encoder; this needs a decoder run (pretrain --arch decoder)")
    model = CausalLM(config)
    result = model.load_state_dict(load_state_dict_file(run_weights_path(run.root)), strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(f"{run.root}: weights do not match {folders.CONFIG} (missing {result.missing_keys[:5]}, "
                              f"unexpected {result.unexpected_keys[:5]})")
    model.eval()
    return model, config, run.tokenizer

"""The RUN folder on disk: weights, training checkpoints, and loading a pretrained model back.

Layout of a run::

    RUN/config.json                   ModelConfig
    RUN/model.safetensors             MaskedLM weights, latest (and at the end, final)
    RUN/tokenizer/                    copy of the HF tokenizer folder the tokens were made with
    RUN/train.json                    the pretraining arguments
    RUN/metrics.jsonl, RUN/loss.png   see gristmill.train.metrics
    RUN/checkpoints/step-0000500/     model.safetensors, optimizer.pt, scheduler.pt, rng.pt, state.json

A checkpoint is written into a hidden temporary folder and renamed into place, so a folder named
``step-*`` is always complete; only the last K are kept. Weights are safetensors; optimizer,
scheduler and RNG states are plain tensors and numbers that ``torch.load(weights_only=True)`` reads.
``state.json`` holds the step and the data position as a global count of sequences, so a run can
resume with a different number of processes. This module owns files only, not the training loop.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gristmill import checksums, folders
from gristmill.errors import BadDataError
from gristmill.folders import RunFolder
from gristmill.model.config import ModelConfig
from gristmill.model.transformer import MaskedLM

CHECKPOINT_PREFIX = "step-"


class CheckpointError(ValueError):
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


@dataclass
class TrainingState:
    """Everything besides weights that a resumed run needs to continue exactly."""

    step: int
    epoch: int
    position: int  # sequences of this epoch's order already consumed (global, over all processes)
    sequences_consumed: int  # since the start of the run, over all processes
    tokens: int
    extra: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "epoch": self.epoch, "position": self.position,
                "sequences_consumed": self.sequences_consumed, "tokens": self.tokens, **self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainingState:
        known = ("step", "epoch", "position", "sequences_consumed", "tokens")
        return cls(**{k: int(data[k]) for k in known}, extra={k: v for k, v in data.items() if k not in known})


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, state: TrainingState, keep: int) -> Path:
    """Write ``RUN/checkpoints/step-N`` atomically, refresh ``RUN/model.safetensors``, keep the last ``keep``."""
    folder = RunFolder(run_dir).checkpoints
    final = folder / step_dir_name(state.step)
    tmp = folder / f".{final.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_run_weights(model, tmp / folders.WEIGHTS)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps({**state.to_json(), "saved_at": time.time()}, indent=2) + "\n",
                                    encoding="utf-8")
    if final.exists():  # only when a run is redone from an earlier checkpoint
        old = folder / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
        shutil.rmtree(old)
    os.replace(tmp, final)
    save_run_weights(model, RunFolder(run_dir).weights)
    for stale in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(stale, ignore_errors=True)
    return final


@dataclass
class LoadedCheckpoint:
    path: Path
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    scheduler_state: dict[str, Any]
    rng: dict[str, Any]
    state: TrainingState


def load_checkpoint(path: Path) -> LoadedCheckpoint:
    path = Path(path)
    model_state = load_state_dict_file(path / folders.WEIGHTS)
    try:
        return LoadedCheckpoint(
            path=path,
            model_state=model_state,
            optimizer_state=torch.load(path / "optimizer.pt", weights_only=True),
            scheduler_state=torch.load(path / "scheduler.pt", weights_only=True),
            rng=torch.load(path / "rng.pt", weights_only=True),
            state=TrainingState.from_json(json.loads((path / "state.json").read_text(encoding="utf-8"))),
        )
    except (OSError, KeyError, ValueError, RuntimeError, pickle.UnpicklingError, EOFError) as exc:
        raise CheckpointDataError(f"cannot read checkpoint {path}: {exc}; resume from an earlier checkpoint "
                                  "(delete this step folder)") from None


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


def check_run(run_dir: str | Path) -> RunFolder:
    """``run_dir`` as a :class:`RunFolder`, or a :class:`CheckpointError` saying why it is not one."""
    problem = folders.run_problem(run_dir)
    if problem:
        raise CheckpointError(problem)
    return RunFolder(run_dir)


def load_encoder_into(model: torch.nn.Module, run_dir: str | Path) -> int:
    """Copy a run's pretrained encoder weights into ``model.encoder``; returns the number of tensors copied.

    Strict: every encoder tensor must be present with the same shape, and nothing extra; otherwise a
    :class:`CheckpointError` lists the missing and unexpected names (or the mismatched shapes).
    """
    body = "decoder" if hasattr(model, "decoder") else "encoder"  # a decoder classifier's body is .decoder
    encoder = getattr(model, body, None)
    if encoder is None:
        raise CheckpointError(f"{type(model).__name__} has no .encoder to load pretrained weights into")
    state = load_state_dict_file(run_weights_path(Path(run_dir)))
    prefix = f"{body}."
    weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    wanted = encoder.state_dict()
    missing = sorted(set(wanted) - set(weights))
    unexpected = sorted(set(weights) - set(wanted))
    if missing or unexpected:
        raise CheckpointError(f"encoder weights of {run_dir} do not match the model: missing {missing}, "
                              f"unexpected {unexpected}")
    mismatched = [f"{k}: run {tuple(weights[k].shape)} vs model {tuple(v.shape)}"
                  for k, v in wanted.items() if tuple(v.shape) != tuple(weights[k].shape)]
    if mismatched:
        raise CheckpointError(f"encoder of {run_dir} has other shapes than the model (config differs): "
                              + "; ".join(mismatched[:5]))
    encoder.load_state_dict(weights, strict=True)
    return len(weights)


def load_decoder_run(run_dir: str | Path) -> tuple[torch.nn.Module, Any, Path]:
    """A decoder run -> (CausalLM in eval mode on CPU, its DecoderConfig, tokenizer dir)."""
    from gristmill.model.config import DecoderConfig, read_config
    from gristmill.model.decoder import CausalLM

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

"""The RUN folder on disk: training checkpoints (written, listed, resumed); its weights: gristmill.model.run_folder.

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

from gristmill import durable, folders
from gristmill.folders import RunFolder
from gristmill.model.run_folder import (  # noqa: F401  (re-exported: the training side names them from here)
    CHECKPOINT_PREFIX,
    CheckpointDataError,
    CheckpointError,
    check_run,
    check_weights,
    latest_checkpoint,
    list_checkpoints,
    load_decoder_run,
    load_run,
    load_state_dict_file,
    run_weights_path,
    save_run_weights,
    step_dir_name,
)


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
                    scheduler: torch.optim.lr_scheduler.LRScheduler, state: TrainingState, keep: int) -> Path:
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
    durable.replace(tmp, final)
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



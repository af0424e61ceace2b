"""Where a training loop runs: the meaning of ``--device``, shared by ``pretrain`` (and ``adapt``) and ``finetune``.

``auto`` takes the GPU when there is one, ``cpu`` never does, and ``cuda`` without a GPU is refused before any
work, with one line naming the flag.
"""

from __future__ import annotations

import torch

from gristmill.options import OptionError


def training_device(name: str, index: int | None = None) -> torch.device:
    """The GPU (``index``: which one, e.g. a torchrun process's local rank) for ``cuda``, and for ``auto`` when
    there is one; else the CPU."""
    if name == "cuda" and not torch.cuda.is_available():
        raise OptionError("--device cuda was asked for but no CUDA device is available")
    return torch.device("cuda", index) if name != "cpu" and torch.cuda.is_available() else torch.device("cpu")

"""Scorer plug-ins for the data layer's ``classifier`` step: fine-tuned encoders and their ONNX exports.

The corpus refinery must not import this layer, so these factories reach it by name: the
``gristmill.scorers`` entry points in ``pyproject.toml`` (``encoder``, ``onnx``) and
:func:`register_builtin_scorers`, which the command line calls so that an install whose metadata
predates the entry points still finds them. Each factory returns the serve layer's
:class:`~gristmill.serve.classifier.Classifier` (``labels`` + ``predict_proba``), which already batches
by length and cuts every text to the model's ``max_length`` tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gristmill.data.classify.scorers import ENCODER, ONNX, register_scorer
from gristmill.serve.loading import load_classifier

if TYPE_CHECKING:
    from gristmill.serve.classifier import Classifier


def _torch_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def load_encoder_scorer(folder: str | Path, quantize: str = "none", threads: int | None = 1,
                        batch_size: int = 32) -> Classifier:
    """A fine-tuned ``FT/`` folder on PyTorch (``quantize: int8``: dynamic int8 linear layers)."""
    _torch_threads(threads)
    return load_classifier(folder, backend="torch", quantize=quantize, batch_size=batch_size, threads=threads)


def load_onnx_scorer(folder: str | Path, quantize: str = "none", threads: int | None = 1,
                     batch_size: int = 32) -> Classifier:
    """An ONNX export folder on onnxruntime (``quantize: int8`` reads ``model.int8.onnx``)."""
    return load_classifier(folder, backend="onnx", quantize=quantize, batch_size=batch_size, threads=threads)


def register_builtin_scorers() -> None:
    register_scorer(ENCODER, f"{__name__}:load_encoder_scorer")
    register_scorer(ONNX, f"{__name__}:load_onnx_scorer")

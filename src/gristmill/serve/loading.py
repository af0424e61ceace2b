"""Model folders to predictors: a :class:`~gristmill.serve.classifier.Classifier` or a
:class:`~gristmill.serve.tagger.Tagger` from an ``FT/`` folder, or a classifier from an ONNX export folder.

Owns the choice of backend (``gristmill.serve.backends``: PyTorch, optionally int8-quantized in process, or
onnxruntime) and the refusals a user can fix (an unknown backend, the wrong kind of model or folder), each a
:class:`~gristmill.serve.backends.PredictError`. It runs no model: prediction is the predictors' job, and
files of inputs are ``gristmill.serve.predict``'s.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gristmill import folders
from gristmill.folders import FinetunedFolder
from gristmill.serve.backends import (
    BACKENDS,
    ONNX_FP32,
    ONNX_INT8,
    QUANTIZE,
    OnnxBackend,
    PredictError,
    TorchBackend,
    is_onnx_export,
    quantize_torch_int8,
    read_task,
)
from gristmill.serve.classifier import Classifier
from gristmill.serve.onnx import export_onnx
from gristmill.serve.tagger import Tagger
from gristmill.tokenizer.tokdir import load_tokenizer

if TYPE_CHECKING:
    from gristmill.train.finetuned import FineTuned


def load_classifier(
    path: str | Path, backend: str = "torch", quantize: str = "none", batch_size: int = 32,
    threads: int | None = None, log: Callable[[str], None] | None = None,
) -> Classifier:
    """A :class:`Classifier` from an ``FT/`` folder (either backend) or an ONNX export folder (onnx).

    With ``backend="onnx"`` on an ``FT/`` folder the model is exported to a temporary folder first
    (seconds for small models); ``gristmill export`` does that once and for all.
    """
    folder = Path(path)
    if backend not in BACKENDS:
        raise PredictError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if quantize not in QUANTIZE:
        raise PredictError(f"unknown quantization {quantize!r}; choose one of {', '.join(QUANTIZE)}")
    if batch_size < 1:
        raise PredictError(f"batch size must be at least 1, got {batch_size}")
    if not folder.is_dir():
        raise PredictError(f"{folder} is not a folder")
    if is_onnx_export(folder):
        if backend != "onnx":
            raise PredictError(f"{folder} is an ONNX export; use --backend onnx (the torch backend needs the FT folder)")
        return _load_onnx_export(folder, quantize, batch_size, threads)
    read_task(folder)  # refuses a token model or a broken task.json before anything is loaded
    if backend == "onnx":
        tmp = Path(tempfile.mkdtemp(prefix="gristmill-onnx-"))
        if log:
            log(f"exporting {folder} to ONNX in {tmp} (run `gristmill export --format onnx` once to skip this)")
        try:
            export_onnx(folder, tmp, quantize=quantize, verify=False, threads=threads)
            clf = _load_onnx_export(tmp, quantize, batch_size, threads)
        finally:
            # The session holds the model in memory; the files are no longer needed.
            shutil.rmtree(tmp, ignore_errors=True)
        clf.source = f"{folder} (onnx{'-int8' if quantize == 'int8' else ''})"
        return clf
    from gristmill.train.finetuned import load_finetuned

    return classifier_from(load_finetuned(folder), quantize, batch_size)


def classifier_from(ft: FineTuned, quantize: str = "none", batch_size: int = 32) -> Classifier:
    """The :class:`Classifier` of a loaded :class:`~gristmill.train.finetuned.FineTuned` sequence model (PyTorch)."""
    spec = ft.spec
    if spec.type != "sequence":
        raise PredictError(f"{ft.path} is a {spec.type!r} classification model; use a Tagger (load_tagger)")
    return Classifier(TorchBackend(ft.model, quantize), ft.tokenizer, list(spec.labels), int(spec.max_length),
                      batch_size=batch_size, pair_field=spec.pair_field, text_field=spec.text_field,
                      source=str(ft.path))


def _load_onnx_export(folder: Path, quantize: str, batch_size: int, threads: int | None) -> Classifier:
    spec = read_task(folder)
    model_file = folder / (ONNX_INT8 if quantize == "int8" else ONNX_FP32)
    if not model_file.is_file():
        hint = " (export with --quantize int8)" if quantize == "int8" else ""
        raise PredictError(f"{folder} has no {model_file.name}{hint}")
    return Classifier(OnnxBackend(model_file, threads), load_tokenizer(folder / "tokenizer"), list(spec.labels),
                      int(spec.max_length), batch_size=batch_size, pair_field=spec.pair_field,
                      text_field=spec.text_field, source=str(model_file))


def load_tagger(path: str | Path, quantize: str = "none", batch_size: int = 32) -> Tagger:
    """A :class:`Tagger` from the ``FT/`` folder of a token-classification model (PyTorch backend)."""
    from gristmill.train.finetuned import load_finetuned

    folder = Path(path)
    spec = read_task(folder, allow_token=True)
    if spec.type != "token":
        raise PredictError(f"{folder} is not a token-classification model")
    return tagger_from(load_finetuned(folder), quantize, batch_size)


def tagger_from(ft: FineTuned, quantize: str = "none", batch_size: int = 32) -> Tagger:
    """The :class:`Tagger` of a loaded :class:`~gristmill.train.finetuned.FineTuned` token model."""
    spec = ft.spec
    if spec.type != "token":
        raise PredictError(f"{ft.path} is not a token-classification model")
    model = quantize_torch_int8(ft.model) if quantize == "int8" else ft.model
    return Tagger(model, ft.tokenizer, list(spec.labels), int(spec.max_length), spec.tokens_field, spec.tags_field,
                  batch_size, str(ft.path))


def task_type_of(path: str | Path) -> str:
    """``sequence`` or ``token`` for an FT or export folder (``sequence`` when it cannot tell)."""
    try:
        return str(folders.read_record(FinetunedFolder(path).task).get("type", "sequence"))
    except (OSError, ValueError, AttributeError):
        return "sequence"

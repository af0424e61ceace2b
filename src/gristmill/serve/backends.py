"""What a classifier runs on: the PyTorch and onnxruntime backends, and the files of a model folder.

Shared by ``predict`` (which loads and runs classifiers) and ``onnx`` (which exports and checks them),
so that neither imports the other's module for these. torch and onnxruntime are imported only when a
backend is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from gristmill import folders
from gristmill.errors import GristmillError
from gristmill.folders import FinetunedFolder
from gristmill.train.forward import torch_forward
from gristmill.train.tasks import TaskSpec

if TYPE_CHECKING:
    import torch

BACKENDS = ("torch", "onnx")
QUANTIZE = ("none", "int8")
ONNX_FP32 = "model.onnx"
ONNX_INT8 = "model.int8.onnx"


class PredictError(GristmillError):
    """A problem the user can fix (wrong folder, unsupported task, unreadable input)."""


# ------------------------------------------------------------------------------------------------ backends


class Backend(Protocol):
    """Turns a padded batch of token ids into logits; counts nothing, knows nothing about labels."""

    name: str

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray: ...


def quantize_torch_int8(model: torch.nn.Module) -> torch.nn.Module:
    """PyTorch dynamic int8 quantization of every ``nn.Linear`` (weights int8, activations quantized on the fly)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao (not installed); the API still works.
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


class TorchBackend:
    """The fine-tuned PyTorch model, run under ``torch.inference_mode``."""

    def __init__(self, model: torch.nn.Module, quantize: str = "none") -> None:
        model.eval()
        self.model = quantize_torch_int8(model) if quantize == "int8" else model
        self.name = "torch-int8" if quantize == "int8" else "torch"
        self.logits = torch_forward(self.model)


class OnnxBackend:
    """An exported ONNX model run by onnxruntime on the CPU."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.name = "onnx-int8" if Path(path).name == ONNX_INT8 else "onnx"

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        feed = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        return self.session.run(["logits"], {k: v for k, v in feed.items() if k in self.input_names})[0]


def is_onnx_export(path: Path) -> bool:
    return (path / ONNX_FP32).is_file() or (path / ONNX_INT8).is_file()


def read_task(folder: Path, allow_token: bool = False) -> TaskSpec:
    """The :class:`~gristmill.train.tasks.TaskSpec` in ``task.json`` of an FT or export folder."""
    problem = folders.finetuned_problem(folder)
    if problem:
        raise PredictError(f"{problem} (or an ONNX export folder: gristmill export --format onnx)")
    task_file = FinetunedFolder(folder).task
    try:
        spec = TaskSpec.from_json(folders.read_record(task_file))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PredictError(f"{task_file} is not a readable task description: {exc}") from None
    if len(spec.labels) < 2:
        raise PredictError(f"{task_file} lists fewer than two labels")
    if spec.type != "sequence" and not (allow_token and spec.type == "token"):
        raise PredictError(f"{folder} is a {spec.type!r} classification model; export, serve and the onnx backend "
                           "handle sequence classification models (gristmill predict --backend torch takes both)")
    return spec

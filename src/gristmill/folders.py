"""The model folders as code: what a pretraining ``RUN/`` and a fine-tuned ``FT/`` hold, and what is not one.

::

    RUN/  config.json  model.safetensors  tokenizer/  train.json  metrics.jsonl  checkpoints/  (import.json)
    FT/   config.json  model.safetensors  tokenizer/  task.json   metrics.json   curves.png  confusion.png

Every module that reads or writes these folders names their files through here (:class:`RunFolder`,
:class:`FinetunedFolder`) and words "this is not such a folder" with :func:`run_problem` and
:func:`finetuned_problem`, so a Hugging Face folder gets the same hint (``gristmill import-hf``)
wherever it is given. Like ``gristmill.errors`` it imports nothing from gristmill, so every layer may use
it (``data.classify`` looks into FT folders too); it loads no weights and raises nothing: callers raise
their own error with the message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
TOKENIZER = "tokenizer"
TRAIN = "train.json"
IMPORT = "import.json"
METRICS_LOG = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
TASK = "task.json"
METRICS = "metrics.json"


class RunFolder:
    """``RUN/``, written by ``gristmill pretrain`` (or ``import-hf``, or ``adapt``): the paths of its files."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def weights(self) -> Path:
        return self.root / WEIGHTS

    @property
    def tokenizer(self) -> Path:
        return self.root / TOKENIZER

    @property
    def train_record(self) -> Path:
        """``train.json``: the pretraining settings and provenance (absent in imported runs)."""
        return self.root / TRAIN

    @property
    def import_record(self) -> Path:
        """``import.json``: where ``gristmill import-hf`` took the weights from."""
        return self.root / IMPORT

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    @property
    def metrics_log(self) -> Path:
        """``metrics.jsonl``: one line per logged step and evaluation (``gristmill.train.metrics``)."""
        return self.root / METRICS_LOG


class FinetunedFolder(RunFolder):
    """``FT/``, written by ``gristmill finetune``: a run folder's files plus the task and its scores."""

    @property
    def task(self) -> Path:
        """``task.json``: task type, labels in index order, field names, max_length, pair option."""
        return self.root / TASK

    @property
    def metrics(self) -> Path:
        return self.root / METRICS


LEGACY_RUN = (CONFIG, TRAIN)
"""A pretraining run made before output markers: replaceable like a marked one."""

LEGACY_FT = (TASK, METRICS, WEIGHTS)
"""A fine-tuned folder made before output markers: replaceable like a marked one."""


def read_record(path: Path) -> Any:
    """A JSON file of these folders (``config.json``, ``task.json``, ``train.json``, ...)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_record(path: Path, data: Any) -> None:
    """The same files as written: indented JSON with a final newline."""
    Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def hf_hint(folder: Path) -> str | None:
    """For a Hugging Face model folder (its config.json names ``architectures``): what to run first."""
    try:
        config = read_record(Path(folder) / CONFIG)
    except (OSError, ValueError):
        return None
    if isinstance(config, dict) and config.get("architectures"):
        return (f"{folder} is a Hugging Face model folder, not a gristmill run folder: "
                f"run `gristmill import-hf {folder} --out RUN` first")
    return None


def run_problem(folder: str | Path) -> str | None:
    """Why ``folder`` is not a gristmill run folder (a ``RUN/`` or ``FT/``), or None when it is one."""
    root = Path(folder)
    if not root.is_dir():
        return f"{root}: no such model folder (expected the --out folder of `gristmill pretrain`)"
    hint = hf_hint(root)
    if hint:
        return hint
    if not RunFolder(root).config.is_file():
        return (f"{root} has no {CONFIG}: not a gristmill run folder (expected the --out folder of "
                "`gristmill pretrain` or `gristmill finetune`)")
    return None


def finetuned_problem(folder: str | Path) -> str | None:
    """Why ``folder`` is not a fine-tuned model folder, or None when it is one."""
    root = Path(folder)
    if not root.is_dir():
        return f"{root}: no such folder"
    hint = hf_hint(root)
    if hint:
        return hint
    if not FinetunedFolder(root).task.is_file():
        return f"{root} has no {TASK}: expected the --out folder of `gristmill finetune`"
    return None


def is_mlm_run(folder: str | Path) -> bool:
    """A pretraining run (weights and config, no task.json); says nothing about encoder or decoder."""
    ft = FinetunedFolder(folder)
    return ft.config.is_file() and ft.weights.is_file() and not ft.task.exists()


def is_finetuned(folder: str | Path) -> bool:
    return FinetunedFolder(folder).task.is_file()

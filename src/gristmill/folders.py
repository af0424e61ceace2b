"""The model folders as code: what a pretraining ``RUN/`` and a fine-tuned ``FT/`` hold, and what is not one.

::

    RUN/  config.json  model.safetensors  tokenizer/  train.json  metrics.jsonl  checkpoints/  (import.json)
    FT/   config.json  model.safetensors  tokenizer/  task.json   metrics.json   curves.png  confusion.png

Every module that reads or writes these folders names their files through here (:class:`RunFolder`,
:class:`FinetunedFolder`) and words "this is not such a folder" with :func:`run_problem` and
:func:`finetuned_problem`, so a Hugging Face folder gets the same hint (``gristmill import-hf``)
wherever it is given. It imports only ``gristmill.durable``, which imports nothing from gristmill, so every
layer may use it (``data.classify`` looks into FT folders too); it loads no weights and raises nothing:
callers raise their own error with the message.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gristmill import durable

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
TOKENIZER = "tokenizer"
TRAIN = "train.json"
IMPORT = "import.json"
METRICS_LOG = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
TASK = "task.json"
METRICS = "metrics.json"


def _file(name: str, doc: str) -> property:
    """A folder's path ``root / name`` as a read-only attribute."""
    return property(lambda self: self.root / name, doc=doc)


class RunFolder:
    """``RUN/``, written by ``gristmill pretrain`` (or ``import-hf``, or ``adapt``): the paths of its files."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    config = _file(CONFIG, "``config.json``: the model's shape (``gristmill.model.config``).")
    weights = _file(WEIGHTS, "``model.safetensors``: the latest weights.")
    tokenizer = _file(TOKENIZER, "``tokenizer/``: the tokenizer folder the model was trained with.")
    train_record = _file(TRAIN, "``train.json``: the pretraining settings and provenance (absent in imported runs).")
    import_record = _file(IMPORT, "``import.json``: where ``gristmill import-hf`` took the weights from.")
    checkpoints = _file(CHECKPOINTS, "``checkpoints/step-N/``: the training checkpoints.")
    metrics_log = _file(METRICS_LOG, "``metrics.jsonl``: one line per logged step and evaluation.")


class FinetunedFolder(RunFolder):
    """``FT/``, written by ``gristmill finetune``: a run folder's files plus the task and its scores."""

    task = _file(TASK, "``task.json``: task type, labels in index order, field names, max_length, pair option.")
    metrics = _file(METRICS, "``metrics.json``: dev/test scores, budget and history.")


LEGACY_RUN = (CONFIG, TRAIN)
"""A pretraining run made before output markers: replaceable like a marked one."""

LEGACY_FT = (TASK, METRICS, WEIGHTS)
"""A fine-tuned folder made before output markers: replaceable like a marked one."""


def read_record(path: Path) -> Any:
    """A JSON file of these folders (``config.json``, ``task.json``, ``train.json``, ...)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_record(path: Path, data: Any) -> None:
    """The same files as written: indented JSON with a final newline, replacing the old file whole.

    A killed write or a crash leaves the old file or none, never half of one. (``data.storage.atomic_write_text``
    does the same for any path, but this module stays below ``gristmill.data``; the temporary name is storage's,
    so its cleanup of stale temporaries applies.)
    """
    path = Path(path)
    text = json.dumps(data, indent=2) + "\n"
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        durable.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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


def _problem(folder: str | Path, required: str, absent: str, lacking: str) -> str | None:
    root = Path(folder)
    if not root.is_dir():
        return f"{root}: {absent}"
    return hf_hint(root) or (None if (root / required).is_file() else f"{root} has no {required}: {lacking}")


def run_problem(folder: str | Path) -> str | None:
    """Why ``folder`` is not a gristmill run folder (a ``RUN/`` or ``FT/``), or None when it is one."""
    return _problem(folder, CONFIG, "no such model folder (expected the --out folder of `gristmill pretrain`)",
                    "not a gristmill run folder (expected the --out folder of `gristmill pretrain` or "
                    "`gristmill finetune`)")


def finetuned_problem(folder: str | Path) -> str | None:
    """Why ``folder`` is not a fine-tuned model folder, or None when it is one."""
    return _problem(folder, TASK, "no such folder", "expected the --out folder of `gristmill finetune`")


def is_mlm_run(folder: str | Path) -> bool:
    """A pretraining run (weights and config, no task.json); says nothing about encoder or decoder."""
    ft = FinetunedFolder(folder)
    return ft.config.is_file() and ft.weights.is_file() and not ft.task.exists()


def is_finetuned(folder: str | Path) -> bool:
    return FinetunedFolder(folder).task.is_file()

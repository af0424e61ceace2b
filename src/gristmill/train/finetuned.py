"""A fine-tuned model on disk: the ``FT/`` folder written and loaded back, and the ``RUN/`` it starts from.

Output folder ``FT/`` (file names in ``gristmill.folders``)::

    FT/config.json        the encoder's ModelConfig
    FT/task.json          task type, labels in index order, field names, max_length, pair option
    FT/model.safetensors  the whole classifier (encoder + head)
    FT/tokenizer/         a copy of the tokenizer folder the model was trained with
    FT/metrics.json       dev/test accuracy, macro-F1, per-class report, confusion matrix, budget, history
    FT/curves.png         train/dev loss and dev accuracy per evaluation; FT/confusion.png: the confusion matrix

:func:`load_finetuned` is the contract with ``gristmill.serve``, which owns prediction (its ``Classifier``
and ``Tagger``). Reading a model folder (its config, its tokenizer, whether a tokenizer fits it) lives here
too, as fine-tuning, learning curves and loading all start that way. Every problem a user can fix is a
:class:`FineTuneError` message. This module does not train (``gristmill.train.finetune``) and does not score.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from gristmill import checksums, durable, folders
from gristmill.data import storage
from gristmill.folders import FinetunedFolder, RunFolder
from gristmill.model.config import ConfigError, DecoderConfig, ModelConfig, read_config
from gristmill.model.decoder import DecoderSequenceClassifier
from gristmill.model.transformer import SequenceClassifier, TokenClassifier
from gristmill.tokenizer.tokdir import TokenizerError, load_tokenizer
from gristmill.train.checkpoint import CheckpointDataError, check_weights
from gristmill.train.encoding import plain, special_ids
from gristmill.train.pictures import plot_confusion, plot_finetune_curves
from gristmill.train.tasks import TaskError, TaskSpec

if TYPE_CHECKING:
    from tokenizers import Tokenizer


class FineTuneError(TaskError):
    """A problem with the model folder, tokenizer or options that the user can fix."""


# ------------------------------------------------------------------------------------------ model folders


def load_tokenizer_dir(tokdir: Path) -> Tokenizer:
    """The tokenizer of a ``tokenizer/`` folder, with stored truncation and padding turned off."""
    if not tokdir.is_dir():
        raise FineTuneError(f"{tokdir}: no tokenizer folder")
    try:
        return plain(load_tokenizer(tokdir))
    except TokenizerError as exc:
        raise FineTuneError(str(exc)) from None


def read_model_config(folder: Path) -> ModelConfig:
    """The ModelConfig of a RUN or FT folder; a folder that is not one is a :class:`FineTuneError`."""
    problem = folders.run_problem(folder)
    if problem:
        raise FineTuneError(problem)
    try:
        return read_config(RunFolder(folder).config)  # type: ignore[return-value]  # a DecoderConfig for decoder runs
    except ConfigError as exc:
        raise FineTuneError(str(exc)) from None


def check_tokenizer(tokenizer: Tokenizer, config: ModelConfig, tokdir: Path, model_tokdir: Path | None) -> None:
    """Refuse a tokenizer whose ids do not mean what the model's embeddings were trained on."""
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    if size > config.vocab_size:
        raise FineTuneError(
            f"tokenizer mismatch: {tokdir} has {size:,} tokens but the model's embedding table has "
            f"{config.vocab_size:,} rows; use the tokenizer the model was pretrained with"
            + (f" ({model_tokdir})" if model_tokdir else ""))
    pad, _, _ = special_ids(tokenizer)
    if pad != config.pad_id:
        raise FineTuneError(f"tokenizer mismatch: {tokdir} has [PAD] = {pad} but the model expects {config.pad_id}")
    if model_tokdir is None or not model_tokdir.is_dir() or model_tokdir.resolve() == tokdir.resolve():
        return
    reference = load_tokenizer_dir(model_tokdir)
    ours, theirs = tokenizer.get_vocab(with_added_tokens=True), reference.get_vocab(with_added_tokens=True)
    if ours != theirs:
        differing = sum(1 for tok, i in ours.items() if theirs.get(tok) != i)
        raise FineTuneError(
            f"tokenizer mismatch: {tokdir} maps {differing:,} of its {len(ours):,} tokens to other ids than "
            f"{model_tokdir}, the tokenizer the model was pretrained with; drop --tokenizer to use that one")


def build_classifier(config: ModelConfig, spec: TaskSpec) -> nn.Module:
    """The (untrained) classifier that ``spec`` needs on ``config``'s architecture: what ``FT/`` weights load into."""
    if isinstance(config, DecoderConfig):  # last-token pooling (model/decoder.py)
        if spec.type == "token":
            raise FineTuneError("token classification needs an encoder: a decoder's tokens cannot see the words "
                                "after them")
        return DecoderSequenceClassifier(config, len(spec.labels))
    cls = TokenClassifier if spec.type == "token" else SequenceClassifier
    return cls(config, len(spec.labels))


def resolve_tokenizer_dir(run_dir: Path, tokenizer_dir: Path | None) -> Path:
    """``--tokenizer`` when given, else the run folder's own ``tokenizer/``."""
    if tokenizer_dir is not None:
        return tokenizer_dir
    if RunFolder(run_dir).tokenizer.is_dir():
        return RunFolder(run_dir).tokenizer
    raise FineTuneError(f"{run_dir} has no tokenizer/ folder; name the model's tokenizer with --tokenizer")


# ------------------------------------------------------------------------------------------------ saving


def save_finetuned(out: Path, model: nn.Module, config: ModelConfig, spec: TaskSpec, tokdir: Path,
                   metrics: dict[str, Any]) -> None:
    """Write ``FT/`` under a temporary name and rename it, so a killed run leaves no half folder."""
    from safetensors.torch import save_model

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    ft = FinetunedFolder(tmp)
    config.to_json(ft.config)
    folders.write_record(ft.task, spec.to_json())
    save_model(model, str(ft.weights), metadata={"format": "pt", "gristmill": "finetuned"})
    checksums.record_sidecar(ft.weights)
    shutil.copytree(tokdir, ft.tokenizer)
    folders.write_record(ft.metrics, metrics)
    write_pictures(tmp, metrics, out.name)
    storage.mark_complete(tmp, "finetune")
    if out.exists():
        storage.remove_output(out, "finetune", legacy=folders.LEGACY_FT, whole=True)
    durable.replace(tmp, out)


def write_pictures(folder: Path, metrics: dict[str, Any], name: str) -> None:
    """``curves.png`` (loss and dev accuracy per evaluation) and ``confusion.png`` (test, else dev)."""
    what = f"{name}: {metrics.get('init', '')} {metrics.get('model_size') or ''} encoder, {metrics.get('train_examples')} examples"
    plot_finetune_curves(metrics.get("history", []), folder / "curves.png", f"fine-tuning {what}")
    for split in ("test", "dev"):
        confusion = (metrics.get(split) or {}).get("confusion_matrix")
        if confusion:
            scores = metrics[split]
            plot_confusion(confusion, folder / "confusion.png",
                           f"{name}, {split} set: accuracy {scores.get('accuracy', 0):.3f}, "
                           f"macro-F1 {scores.get('macro_f1', 0):.3f}")
            break


# ------------------------------------------------------------------------------------------------ loading


@dataclass
class FineTuned:
    """A fine-tuned model ready to predict (``model`` is in eval mode)."""

    model: nn.Module
    tokenizer: Tokenizer
    labels: list[str]
    max_length: int
    task: dict[str, Any]
    config: ModelConfig
    path: Path

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec.from_json(self.task)


def load_finetuned(ft_dir: str | Path) -> FineTuned:
    """Load ``FT/`` written by ``gristmill.train.finetune.finetune``; problems are :class:`FineTuneError` messages."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    folder = Path(ft_dir)
    problem = folders.finetuned_problem(folder)
    if problem:
        raise FineTuneError(problem)
    ft = FinetunedFolder(folder)
    try:
        task = folders.read_record(ft.task)
        spec = TaskSpec.from_json(task)
    except (ValueError, KeyError, TypeError) as exc:
        raise FineTuneError(f"{ft.task} is not a valid task description: {exc}") from None
    config = read_model_config(folder)
    tokenizer = load_tokenizer_dir(ft.tokenizer)
    check_tokenizer(tokenizer, config, ft.tokenizer, None)
    model = build_classifier(config, spec)
    weights = ft.weights
    if not weights.is_file():
        raise FineTuneError(f"{folder} has no {folders.WEIGHTS}")
    check_weights(weights)
    try:
        load_model(model, str(weights))
    except (SafetensorError, OSError) as exc:
        raise CheckpointDataError(f"{weights} is damaged or not a safetensors file ({exc}); restore it or "
                                  "fine-tune again") from None
    except (RuntimeError, KeyError, ValueError) as exc:
        raise FineTuneError(f"{weights} does not match {ft.config} and {folders.TASK}: {exc}") from None
    model.eval()
    return FineTuned(model=model, tokenizer=tokenizer, labels=list(spec.labels), max_length=spec.max_length,
                     task=task, config=config, path=folder)

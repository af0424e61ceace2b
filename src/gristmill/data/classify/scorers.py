"""Which scorer reads a model folder, the plug-in registry that supplies it, and long-document chunking.

A *scorer* turns texts into one probability (or score) per label: ``labels`` and ``predict_proba``.
The data layer ships two (the linear classifier, the hashed n-gram language model). Scorers that need
the layers above (a fine-tuned encoder, its ONNX or int8 export, the encoder's pseudo-log-likelihood)
are *plug-ins*: this module never imports ``serve`` or ``train``. A plug-in is a ``module:function``
string naming a factory ``f(folder, **options) -> scorer``, registered under a folder kind

- through the ``gristmill.scorers`` entry-point group (``[project.entry-points."gristmill.scorers"]`` in
  ``pyproject.toml``; gristmill's own encoder scorers are declared there, and any package can add
  kinds the same way), or
- at run time with :func:`register_scorer` (the command line does this for gristmill's own kinds, so a
  checkout whose installed metadata predates an entry point still finds them).

Steps resolve the kind to its ``module:function`` string when the recipe is loaded (a missing or
wrong-kind folder, or a kind without a plug-in, is an error before any work) and carry that string to
the workers, which import it there: so Ray workers need neither the driver's registry nor metadata.
:func:`cached_scorer` loads each (factory, folder, options) once per worker process.

Must not: import ``gristmill.serve``, ``gristmill.train`` or ``gristmill.model``, or unpickle anything.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from gristmill.data.classify.linear import KIND as LINEAR_KIND
from gristmill.data.classify.linear import ModelFolderError, read_config
from gristmill.folders import FinetunedFolder, read_record

ENTRY_POINT_GROUP = "gristmill.scorers"
AGGREGATIONS = ("max", "mean", "first")
CHUNKING = ("words", "paragraphs")

LINEAR = "linear"
NGRAM_LM = "ngram-lm"
ENCODER = "encoder"  # a fine-tuned classifier folder (gristmill finetune --out)
ONNX = "onnx"  # its ONNX export (gristmill export --format onnx, optionally int8)
ENCODER_PLL = "encoder-pll"  # a pretrained encoder RUN folder scored by pseudo-log-likelihood

_TARGETS: dict[str, str] = {
    LINEAR: "gristmill.data.classify.linear:load_linear",
    NGRAM_LM: "gristmill.data.classify.ngram_lm:load_ngram_lm",
}
_entry_points_read = False


class Scorer(Protocol):
    labels: list[str]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """``[len(texts), len(labels)]`` scores."""
        ...


def register_scorer(kind: str, target: str) -> None:
    """Make ``module:function`` the factory of model folders of ``kind``."""
    if ":" not in target:
        raise ValueError(f"scorer target {target!r} must be 'module:function'")
    _TARGETS[kind] = target


def _read_entry_points() -> None:
    global _entry_points_read
    if _entry_points_read:
        return
    _entry_points_read = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _TARGETS.setdefault(ep.name, ep.value)


def scorer_target(kind: str) -> str:
    """The ``module:function`` registered for ``kind``, or a one-line error saying how to get one."""
    _read_entry_points()
    if kind not in _TARGETS:
        raise ModelFolderError(f"no scorer is installed for {kind!r} model folders (plug-ins come from the "
                               f"{ENTRY_POINT_GROUP!r} entry points; gristmill's encoder scorers need the "
                               "'serve' extra)")
    return _TARGETS[kind]


def folder_kind(folder: str | Path) -> str:
    """What a model folder holds, from its files alone (nothing is loaded); a clear error otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(f"model folder {folder} does not exist")
    config: dict[str, Any] = {}
    ft = FinetunedFolder(folder)
    if ft.config.is_file():
        config = read_config(folder)
    if config.get("kind") == LINEAR_KIND:
        return LINEAR
    if config.get("kind") == "gristmill-ngram-lm":
        return NGRAM_LM
    if ft.task.is_file():
        if not ft.tokenizer.is_dir():
            raise ModelFolderError(f"{folder} has task.json but no tokenizer/ folder: not a complete fine-tuned "
                                   "model or export")
        if (folder / "model.onnx").is_file() or (folder / "model.int8.onnx").is_file():
            return ONNX
        if ft.weights.is_file():
            return ENCODER
    elif ft.weights.is_file() and config:
        return ENCODER_PLL
    raise ModelFolderError(
        f"{folder} is not a model folder gristmill can score with: expected a linear classifier "
        "(gristmill classify train), a fine-tuned encoder (gristmill finetune --out) or its ONNX export "
        "(gristmill export), or for perplexity an n-gram model (gristmill classify lm) or a pretrained RUN folder")


def load_target(target: str) -> Callable[..., Scorer]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


_CACHE: dict[str, Scorer] = {}


def cached_scorer(target: str, folder: str, options: dict[str, Any] | None = None) -> Scorer:
    """The scorer for ``folder``, loaded once per process for each (factory, folder, options)."""
    key = json.dumps([target, str(Path(folder).resolve()), options or {}], sort_keys=True)
    if key not in _CACHE:
        _CACHE[key] = load_target(target)(folder, **(options or {}))
    return _CACHE[key]


_PARAGRAPH = re.compile(r"\n[ \t]*\n")


def chunk_text(text: str, chunk_words: int, max_chunks: int, by: str = "words") -> list[str]:
    """The first ``max_chunks`` chunks of a text (at least one).

    ``words``: consecutive runs of ``chunk_words`` white-space separated words. ``paragraphs``: each
    paragraph (blank-line separated) on its own, a paragraph longer than ``chunk_words`` cut into runs
    of that many words, so a short passage is scored without the text around it diluting it.
    """
    if chunk_words <= 0:
        return [text]
    if by == "paragraphs":
        out: list[str] = []
        for para in _PARAGRAPH.split(text):
            words = para.split()
            for i in range(0, len(words), chunk_words):
                out.append(" ".join(words[i:i + chunk_words]))
                if len(out) >= max_chunks:
                    return out
        return out or [text]
    words = text.split(None, chunk_words * max_chunks)[: chunk_words * max_chunks]
    if not words:
        return [text]
    return [" ".join(words[i:i + chunk_words]) for i in range(0, len(words), chunk_words)]


def score_documents(scorer: Scorer, texts: Sequence[str], chunk_words: int, max_chunks: int,
                    aggregate: str, by: str = "words") -> np.ndarray:
    """Per-document scores ``[len(texts), labels]``: every chunk scored in one batch, then aggregated.

    ``max``: the highest score of any chunk, per label (a document with one toxic paragraph is toxic);
    ``mean``: the average over chunks; ``first``: the first chunk only.
    """
    if aggregate not in AGGREGATIONS:
        raise ValueError(f"aggregate must be one of {', '.join(AGGREGATIONS)}")
    chunks: list[str] = []
    owner: list[int] = []
    for i, text in enumerate(texts):
        parts = chunk_text(text, chunk_words, 1 if aggregate == "first" else max_chunks, by)
        chunks.extend(parts)
        owner.extend([i] * len(parts))
    n_labels = len(scorer.labels)
    if not chunks:
        return np.zeros((0, n_labels))
    probs = np.asarray(scorer.predict_proba(chunks), dtype=np.float64)
    idx = np.asarray(owner)
    out = np.zeros((len(texts), n_labels))
    if aggregate == "max":
        out[:] = -np.inf
        np.maximum.at(out, idx, probs)
    else:
        np.add.at(out, idx, probs)
        out /= np.bincount(idx, minlength=len(texts))[:, None]
    return out


def folder_labels(folder: str | Path, kind: str) -> list[str]:
    """The labels of a classifier folder, read from its JSON files without loading any weights."""
    folder = Path(folder)
    if kind == LINEAR:
        labels = read_config(folder).get("labels")
    elif kind in (ENCODER, ONNX):
        try:
            labels = read_record(FinetunedFolder(folder).task).get("labels")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
            raise ModelFolderError(f"{FinetunedFolder(folder).task} is not readable JSON: {exc}") from None
    else:
        raise ModelFolderError(f"{folder} is a {kind!r} model folder, not a classifier")
    if not isinstance(labels, list) or len(labels) < 2:
        raise ModelFolderError(f"{folder} does not list two or more labels")
    return [str(label) for label in labels]

"""Train a linear classifier folder from JSONL files, evaluate it, and write it with its metrics.

Inputs are either separate positive and negative files (every line's text gets that file's label) or
one file with a label field. ``OUT/`` receives the model (:mod:`gristmill.data.classify.linear`) and
``metrics.json`` (label counts, seconds, and with an evaluation file: accuracy, precision, recall and
F1 per label at the 0.5 decision of the two-label model / the arg-max of a multi-label one).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gristmill.data.classify.linear import LinearClassifier, VectorizerConfig, train_linear
from gristmill.data.classify.ngram_lm import train_ngram_lm
from gristmill.data.readers.jsonl import JsonlError, read_jsonl
from gristmill.data.readers.output import read_texts
from gristmill.errors import BadDataError, GristmillError
from gristmill.folders import write_record


class TrainingDataError(GristmillError, ValueError):
    """Unreadable, empty or one-label training data (a user error)."""


class TrainingRecordError(TrainingDataError, BadDataError):
    """A line of a training file that is not a usable record (named by file and line; exit 3)."""


def read_labelled(path: str, text_field: str = "text", label_field: str | None = "label",
                  label: str | None = None) -> tuple[list[str], list[str]]:
    """(texts, labels) of a JSONL file: each record's ``label_field``, or ``label`` for every line."""
    texts: list[str] = []
    labels: list[str] = []
    try:
        for line in read_jsonl(path, errors="raise"):
            record = line.record
            text = record.get(text_field) if isinstance(record, dict) else None
            value = label if label is not None else (record.get(label_field) if isinstance(record, dict) else None)
            if not isinstance(text, str) or value is None:
                raise TrainingRecordError(f"{path}:{line.number}: needs a string {text_field!r}"
                                         + ("" if label is not None else f" and a {label_field!r}"))
            texts.append(text)
            labels.append(str(value))
    except JsonlError as exc:
        raise TrainingDataError(str(exc)) from None
    except OSError as exc:
        raise TrainingDataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not texts:
        raise TrainingDataError(f"{path} has no records")
    return texts, labels


def evaluate(model: LinearClassifier, texts: Sequence[str], gold: Sequence[str]) -> dict[str, Any]:
    """Accuracy and per-label precision / recall / F1 of the model's arg-max label."""
    probs = model.predict_proba(texts)
    pred = [model.labels[i] for i in probs.argmax(axis=1)]
    out: dict[str, Any] = {"examples": len(gold), "accuracy": round(float(np.mean([p == g for p, g in zip(pred, gold)])), 4)}
    for label in model.labels:
        tp = sum(p == label and g == label for p, g in zip(pred, gold))
        fp = sum(p == label and g != label for p, g in zip(pred, gold))
        fn = sum(p != label and g == label for p, g in zip(pred, gold))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[label] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
                      "support": sum(g == label for g in gold)}
    return out


def _empty_out(out: str | Path, overwrite: bool) -> Path:
    folder = Path(out)
    if folder.exists() and any(folder.iterdir()):
        if not overwrite:
            raise TrainingDataError(f"{folder} exists and is not empty; pass --overwrite to replace it")
        shutil.rmtree(folder)
    return folder


def train_lm_folder(out: str | Path, inputs: Sequence[str], text_field: str = "text", buckets_log2: int = 20,
                    overwrite: bool = False) -> dict[str, Any]:
    """Train the n-gram language model on ``inputs`` (JSONL files or run output folders) and write ``OUT/``."""
    if not 10 <= buckets_log2 <= 26:
        raise TrainingDataError("--buckets must be between 10 and 26 (2**n bins per table)")
    for path in inputs:
        if not Path(path).exists():
            raise TrainingDataError(f"{path} does not exist")
    folder = _empty_out(out, overwrite)
    t0 = time.perf_counter()

    def batches() -> Iterator[list[str]]:
        for path in inputs:
            yield from read_texts(path, text_field)

    model = train_ngram_lm(batches(), buckets=1 << buckets_log2)
    if model.tokens == 0:
        raise TrainingDataError("the training text has no words")
    seconds = round(time.perf_counter() - t0, 2)
    model.save(folder, {"trained_on": [str(p) for p in inputs], "seconds": seconds})
    return {"tokens": model.tokens, "distinct_words": model.distinct, "seconds": seconds}


def train_folder(out: str | Path, *, positive: Sequence[str] = (), negative: Sequence[str] = (),
                 inputs: Sequence[str] = (), positive_label: str = "positive", negative_label: str = "negative",
                 text_field: str = "text", label_field: str = "label", eval_file: str | None = None,
                 c: float = 4.0, balanced: bool = True, n_features_log2: int = 20,
                 overwrite: bool = False) -> dict[str, Any]:
    """Read the data, train, evaluate, write ``OUT/``; returns the metrics written to ``metrics.json``.

    ``inputs`` carry their own labels; ``positive`` / ``negative`` files add examples of one label each
    (for example a task's labelled file plus extra in-domain negatives).
    """
    if not inputs and not (positive and negative):
        raise TrainingDataError("give --positive and --negative files, or --input files with a label field "
                                "(extra --positive/--negative files may be added to those)")
    if positive_label == negative_label:
        raise TrainingDataError("the positive and negative labels must differ")
    if not 10 <= n_features_log2 <= 26:
        raise TrainingDataError("--features must be between 10 and 26 (2**n hash buckets)")
    folder = _empty_out(out, overwrite)
    texts: list[str] = []
    labels: list[str] = []
    sources = [(p, positive_label) for p in positive] + [(p, negative_label) for p in negative]
    sources += [(p, None) for p in inputs]
    for path, label in sources:
        t, y = read_labelled(path, text_field, label_field, label)
        texts += t
        labels += y
    if len(set(labels)) < 2:
        raise TrainingDataError(f"the training data has one label only ({labels[0]!r})")
    t0 = time.perf_counter()
    model = train_linear(texts, labels, c=c, balanced=balanced,
                         vectorizer=VectorizerConfig(n_features=1 << n_features_log2))
    metrics: dict[str, Any] = {"labels": model.labels, "trained_on": model.meta["trained_on"],
                               "train_seconds": round(time.perf_counter() - t0, 2)}
    if eval_file:
        eval_texts, gold = read_labelled(eval_file, text_field, label_field)
        unknown = sorted(set(gold) - set(model.labels))
        if unknown:
            raise TrainingDataError(f"{eval_file} has labels the model was not trained on: {', '.join(unknown)}")
        metrics["eval"] = {"file": eval_file, **evaluate(model, eval_texts, gold)}
    model.meta["metrics"] = metrics
    model.save(folder)
    write_record(folder / "metrics.json", metrics)
    return metrics

"""Batch prediction with a fine-tuned classifier: length-sorted batches and streaming JSONL in and out.

Loads a :class:`~gristmill.serve.classifier.Classifier` on one of the backends of
``gristmill.serve.backends`` (PyTorch, optionally int8-quantized in-process, or onnxruntime) from an
``FT/`` folder or an ONNX export folder (those names are re-exported here), and owns :func:`predict_file`, the streaming loop behind ``gristmill predict``. Also here: the
:class:`Tagger` for token-classification models (PyTorch only) and the :class:`MaskFiller` behind the
service's ``/fill-mask``.

Must not: hold more than one window of an input file in memory, unpickle anything, or let one malformed
input line stop a run (it gets an output line with an ``error`` field instead, so every input line has
exactly one output line, in order).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gristmill import folders
from gristmill.data.storage import open_binary
from gristmill.errors import describe_os_error
from gristmill.folders import FinetunedFolder
from gristmill.progress import progress_bar
from gristmill.serve.backends import (
    BACKENDS,
    ONNX_FP32,
    ONNX_INT8,
    QUANTIZE,
    Backend,
    OnnxBackend,
    PredictError,
    TorchBackend,
    is_onnx_export,
    quantize_torch_int8,
    read_task,
)
from gristmill.serve.classifier import Classifier, clean_text
from gristmill.serve.onnx import export_onnx
from gristmill.tokenizer.tokdir import load_tokenizer
from gristmill.train.encoding import encode_sequences, encode_words, plain, special_ids
from gristmill.train.forward import batched_logits, length_sorted_batches, pad_batch, softmax, torch_forward

__all__ = [
    "BACKENDS", "ONNX_FP32", "ONNX_INT8", "QUANTIZE", "Backend", "Classifier", "OnnxBackend",
    "PredictError", "TorchBackend", "clean_text", "is_onnx_export", "quantize_torch_int8", "read_task",
    "load_classifier", "classifier_from", "predict_file", "Tagger", "load_tagger", "tagger_from", "predict_tags_file",
    "task_type_of", "MaskFiller",
]


# ------------------------------------------------------------------------------------------------- loading


def load_classifier(
    path: str | Path, backend: str = "torch", quantize: str = "none", batch_size: int = 32,
    threads: int | None = None, log: Any = None,
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


def classifier_from(ft: Any, quantize: str = "none", batch_size: int = 32) -> Classifier:
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


# --------------------------------------------------------------------------------------------- file loop


@dataclass
class PredictSummary:
    lines: int = 0
    predicted: int = 0
    errors: int = 0
    labelled: int = 0
    correct: int = 0
    unknown_labels: int = 0
    seconds: float = 0.0
    forward_passes: int = 0
    error_examples: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    def as_dict(self) -> dict[str, Any]:
        return {"lines": self.lines, "predicted": self.predicted, "errors": self.errors, "labelled": self.labelled,
                "accuracy": self.accuracy, "unknown_labels": self.unknown_labels, "seconds": round(self.seconds, 3),
                "texts_per_second": round(self.predicted / self.seconds, 1) if self.seconds else None,
                "forward_passes": self.forward_passes}


def _open_input(path: str) -> io.BufferedIOBase:
    if path == "-":
        return sys.stdin.buffer  # type: ignore[return-value]
    if not os.path.isfile(path):
        raise PredictError(f"{path}: no such file")
    return open_binary(path)


def _count_lines(path: str) -> int | None:
    """Line count for the progress bar; None for stdin or when the file cannot be counted cheaply."""
    if path == "-":
        return None
    n = 0
    try:
        with _open_input(path) as f:
            while chunk := f.read(1 << 22):
                n += chunk.count(b"\n")
    except Exception:  # a corrupt tail is reported by the real read; the bar just has no total
        return None
    return n


def string_fields(fields: Sequence[str]) -> Callable[[dict[str, Any]], str | None]:
    """A record check: each of ``fields`` must be a string."""
    def check(record: dict[str, Any]) -> str | None:
        missing = [f for f in fields if not isinstance(record.get(f), str)]
        return f"field {missing[0]!r} is missing or not a string" if missing else None
    return check


def iter_records(
    lines: Iterable[bytes], check: Callable[[dict[str, Any]], str | None],
) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """``(line_number, record, error)`` for each non-blank line; a record is usable when error is None."""
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError as exc:
            yield number, None, f"line {number}: not valid JSON ({exc.__class__.__name__}: {str(exc)[:80]})"
            continue
        if not isinstance(record, dict):
            yield number, None, f"line {number}: not a JSON object"
            continue
        problem = check(record)
        yield number, record, (f"line {number}: {problem}" if problem else None)


class _Output:
    """Where predictions go: stdout, or a file written under a temporary name and renamed when complete."""

    def __init__(self, path: str) -> None:
        self.path = path
        if path == "-":
            self.tmp = None
            self.stream: Any = sys.stdout
            return
        target = Path(path)
        if target.is_dir():
            raise PredictError(f"{path} is a folder; --output names a JSONL file")
        if target.exists() and not target.is_file():
            # A device or pipe (/dev/null, a FIFO): written in place. Renaming a file over it would
            # replace the device node itself.
            self.tmp = None
            raw = open(target, "wb")  # noqa: SIM115
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = target.with_name(target.name + ".part")
            raw = open(self.tmp, "wb")  # noqa: SIM115
        binary: Any = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=5) if path.endswith(".gz") else raw
        self._raw = raw
        self._binary = binary
        self.stream = io.TextIOWrapper(binary, encoding="utf-8", newline="\n")

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False)
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from the input: keep it, as a JSON escape
            line = json.dumps(record)
        try:
            self.stream.write(line + "\n")
        except OSError as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: OSError) -> Exception:
        """A write that failed (disk full, a closed pipe) as a message naming the output, not the input."""
        return PredictError(describe_os_error(exc, self.path) or f"{self.path}: cannot write: {exc}")

    def close(self, ok: bool) -> None:
        if self.path == "-":
            self.stream.flush()
            return
        try:
            self.stream.close()
            if self._binary is not self._raw:
                self._raw.close()
        except OSError as exc:  # the last buffer did not fit on the disk
            if self.tmp is not None:
                self.tmp.unlink(missing_ok=True)
            raise self._failed(exc) from None
        if self.tmp is None:
            return
        if ok:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def _stream(
    input_path: str, output_path: str, check: Callable[[dict[str, Any]], str | None], window: int, progress: bool,
    process: Callable[[list[dict[str, Any]]], Iterator[dict[str, Any]]],
) -> PredictSummary:
    """Read JSONL ``window`` lines at a time; ``process`` maps the window's usable records to output records.

    Malformed lines become error records in place, so the output has one line per input line, in order.
    """
    if window < 1:
        raise PredictError(f"window must be at least 1, got {window}")
    summary = PredictSummary()
    total = _count_lines(input_path) if progress else None
    started = time.perf_counter()
    source = _open_input(input_path)
    out = _Output(output_path)
    ok = False
    pending: list[tuple[int, dict[str, Any] | None, str | None]] = []

    def flush() -> None:
        results = process([rec for _, rec, err in pending if err is None])  # type: ignore[misc]
        for number, rec, err in pending:
            if err is not None:
                summary.errors += 1
                if len(summary.error_examples) < 5:
                    summary.error_examples.append(err)
                out.write({"line": number, "error": err, **({"record": rec} if rec is not None else {})})
            else:
                out.write(next(results))
                summary.predicted += 1
        bar.update(task, advance=pending[-1][0] - summary.lines)
        summary.lines = pending[-1][0]
        pending.clear()

    try:
        with source, progress_bar(progress) as bar:
            task = bar.add_task("predict", total=total, rate="lines")
            for item in iter_records(source, check):
                pending.append(item)
                if len(pending) >= window:
                    flush()
            if pending:
                flush()
        ok = True
    except (OSError, EOFError) as exc:
        raise PredictError(f"{input_path}: cannot read past line {summary.lines}: {exc}") from None
    finally:
        out.close(ok)
    summary.seconds = time.perf_counter() - started
    return summary


def predict_file(
    classifier: Classifier, input_path: str, output_path: str, text_field: str | None = None,
    label_field: str | None = "label", window: int = 4096, progress: bool = True, drop_text: bool = False,
) -> PredictSummary:
    """Predict every line of a JSONL file (plain, .gz or .zst; ``-`` for stdin) into a JSONL file (``-``: stdout).

    Each output line is the input record plus ``prediction``, ``score`` and ``probabilities``; a malformed
    line becomes ``{"line": N, "error": ...}``. Lines are read ``window`` at a time, sorted by length inside
    the window, and written back in input order, so memory stays bounded whatever the file size. When the
    records carry ``label_field`` the summary includes accuracy.
    """
    text_field = text_field or classifier.text_field
    pair_field = classifier.pair_field
    fields = [text_field] + ([pair_field] if pair_field else [])
    known = set(classifier.labels)
    passes_before = classifier.forward_passes
    tally = {"labelled": 0, "correct": 0, "unknown": 0}

    def process(records: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        pairs = [rec[pair_field] for rec in records] if pair_field else None
        for rec, row in zip(records, classifier.predict_proba([rec[text_field] for rec in records], pairs), strict=True):
            result = classifier.describe(row)
            gold = rec.get(label_field) if label_field else None
            if gold is not None:
                if str(gold) in known:
                    tally["labelled"] += 1
                    tally["correct"] += int(str(gold) == result["label"])
                else:
                    tally["unknown"] += 1
            if drop_text:
                rec = {k: v for k, v in rec.items() if k not in fields}
            yield {**rec, "prediction": result["label"], "score": result["score"],
                   "probabilities": result["probabilities"]}

    summary = _stream(input_path, output_path, string_fields(fields), window, progress, process)
    summary.labelled, summary.correct, summary.unknown_labels = tally["labelled"], tally["correct"], tally["unknown"]
    summary.forward_passes = classifier.forward_passes - passes_before
    return summary


# --------------------------------------------------------------------------------------------- token tasks


@dataclass
class Tagger:
    """A token-classification (NER-style) model: one tag per input word, on its first subword."""

    model: Any
    tokenizer: Any
    labels: list[str]
    max_length: int
    tokens_field: str = "tokens"
    tags_field: str = "tags"
    batch_size: int = 32
    source: str = ""
    forward_passes: int = 0

    def __post_init__(self) -> None:
        plain(self.tokenizer)
        self.pad_id = special_ids(self.tokenizer)[0]
        self._forward = torch_forward(self.model)

    def predict_words(self, words_batch: Sequence[Sequence[str]]) -> list[list[tuple[str, float | None]]]:
        """``(tag, probability)`` per word; a word cut off by ``max_length`` gets "O" (or the first label), None."""
        encoded = encode_words(self.tokenizer, [[clean_text(w) for w in words] for words in words_batch],
                               self.max_length)
        fallback = self.labels.index("O") if "O" in self.labels else 0

        def forward(ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
            self.forward_passes += 1
            return self._forward(ids, mask, types)

        logits = batched_logits([(ids, [0] * len(ids)) for ids, _ in encoded], self.pad_id, forward,
                                self.batch_size, per_token=True)
        out: list[list[tuple[str, float | None]]] = []
        for (_, word_positions), words, lg in zip(encoded, words_batch, logits, strict=True):
            probs = softmax(lg)
            positions = (list(word_positions) + [-1] * len(words))[: len(words)]
            out.append([(self.labels[int(probs[p].argmax())], round(float(probs[p].max()), 6)) if p >= 0
                        else (self.labels[fallback], None) for p in positions])
        return out


def load_tagger(path: str | Path, quantize: str = "none", batch_size: int = 32) -> Tagger:
    """A :class:`Tagger` from the ``FT/`` folder of a token-classification model (PyTorch backend)."""
    from gristmill.train.finetuned import load_finetuned

    folder = Path(path)
    spec = read_task(folder, allow_token=True)
    if spec.type != "token":
        raise PredictError(f"{folder} is not a token-classification model")
    return tagger_from(load_finetuned(folder), quantize, batch_size)


def tagger_from(ft: Any, quantize: str = "none", batch_size: int = 32) -> Tagger:
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


def predict_tags_file(tagger: Tagger, input_path: str, output_path: str, window: int = 4096,
                      progress: bool = True) -> PredictSummary:
    """Like :func:`predict_file` for token models: adds ``predicted_tags`` and ``tag_scores`` (one per word).

    When the records carry the gold tags, the summary's accuracy is per word.
    """
    field_name = tagger.tokens_field
    passes_before = tagger.forward_passes
    tally = {"labelled": 0, "correct": 0, "unknown": 0}
    known = set(tagger.labels)

    def check(record: dict[str, Any]) -> str | None:
        words = record.get(field_name)
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            return f"field {field_name!r} is missing or not a list of strings"
        return None

    def process(records: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for rec, tagged in zip(records, tagger.predict_words([rec[field_name] for rec in records]), strict=True):
            gold = rec.get(tagger.tags_field)
            if isinstance(gold, list) and len(gold) == len(tagged):
                for g, (tag, _) in zip(gold, tagged, strict=True):
                    if str(g) in known:
                        tally["labelled"] += 1
                        tally["correct"] += int(str(g) == tag)
                    else:
                        tally["unknown"] += 1
            yield {**rec, "predicted_tags": [t for t, _ in tagged], "tag_scores": [p for _, p in tagged]}

    summary = _stream(input_path, output_path, check, window, progress, process)
    summary.labelled, summary.correct, summary.unknown_labels = tally["labelled"], tally["correct"], tally["unknown"]
    summary.forward_passes = tagger.forward_passes - passes_before
    return summary


# ------------------------------------------------------------------------------------------------ fill-mask


class MaskFiller:
    """A pretrained masked-LM (``RUN/`` folder): the top candidates for each ``[MASK]`` of a text."""

    def __init__(self, run_dir: str | Path, batch_size: int = 32) -> None:
        from gristmill.train.checkpoint import load_run

        self.model, self.config, tokdir = load_run(run_dir)
        self.model.eval()
        self.tokenizer = plain(load_tokenizer(tokdir))
        self.pad_id = special_ids(self.tokenizer)[0]
        self.mask_id = self.tokenizer.token_to_id("[MASK]")
        if self.mask_id is None:
            raise PredictError(f"the tokenizer of {run_dir} has no [MASK] token")
        self.max_length = int(self.config.max_position)
        self.batch_size = batch_size
        self.source = str(run_dir)
        self.forward_passes = 0

    def encode(self, texts: Sequence[str]) -> list[tuple[list[int], list[int]]]:
        return encode_sequences(self.tokenizer, [clean_text(t) for t in texts], self.max_length)

    def check(self, texts: Sequence[str], max_masks: int = 32) -> list[str | None]:
        """Per text, why it cannot be filled (no [MASK] within the model's length, too many), or None."""
        problems: list[str | None] = []
        for ids, _ in self.encode(texts):
            n = ids.count(self.mask_id)
            if n == 0:
                problems.append(f"no [MASK] token within the first {self.max_length} tokens")
            elif n > max_masks:
                problems.append(f"{n} [MASK] tokens; at most {max_masks}")
            else:
                problems.append(None)
        return problems

    def run_batch(self, items: list[tuple[str, int]]) -> list[list[dict[str, Any]]]:
        """For each ``(text, top_k)``: ``[{"position", "candidates": [{"token", "token_id", "score"}]}]`` per mask."""
        import torch

        encoded = self.encode([t for t, _ in items])
        results: list[list[dict[str, Any]]] = [[] for _ in items]
        for rows in length_sorted_batches(encoded, self.batch_size):
            ids, mask, types = pad_batch([encoded[i] for i in rows], self.pad_id)
            masked = ids == self.mask_id
            with torch.inference_mode():
                logits = self.model(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                                    token_type_ids=torch.from_numpy(types), masked_positions=torch.from_numpy(masked))
                probs = torch.softmax(logits.float(), dim=-1)
            self.forward_passes += 1
            flat = 0  # logits rows follow the masked positions in row-major order
            for k, row in enumerate(rows):
                top_k = items[row][1]
                for position in np.flatnonzero(masked[k]):
                    scores, token_ids = probs[flat].topk(min(top_k, probs.shape[-1]))
                    results[row].append({"position": int(position), "candidates": [
                        {"token": self.tokenizer.id_to_token(int(t)), "token_id": int(t), "score": round(float(s), 6)}
                        for s, t in zip(scores, token_ids, strict=True)]})
                    flat += 1
        return results

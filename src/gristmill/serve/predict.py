"""Batch prediction over JSONL files: the streaming loop behind ``gristmill predict``.

:func:`predict_file` runs a :class:`~gristmill.serve.classifier.Classifier` and :func:`predict_tags_file` a
:class:`~gristmill.serve.tagger.Tagger` over every line of a file (plain, .gz or .zst; ``-`` for stdin), a
window of lines at a time, and writes one output line per input line, in order, to a JSONL file written
under a temporary name and renamed when complete (or to stdout); :class:`PredictSummary` counts what
happened. Loading the model is ``gristmill.serve.loading``'s job.

Must not: hold more than one window of an input file in memory, unpickle anything, or let one malformed
input line stop a run (it gets an output line with an ``error`` field instead, so every input line has
exactly one output line, in order).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from gristmill import durable
from gristmill.data.storage import open_binary
from gristmill.errors import describe_os_error
from gristmill.progress import progress_bar
from gristmill.serve.backends import PredictError

if TYPE_CHECKING:
    from gristmill.serve.classifier import Classifier
    from gristmill.serve.tagger import Tagger

Record = dict[str, Any]
"""One parsed JSONL line: any JSON object."""

Check = Callable[[Record], str | None]
"""A record check: why a record cannot be predicted, or None when it can."""


@dataclass
class PredictSummary:
    """What a run did: lines read, predictions and error records written, and accuracy on the labelled lines."""

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

    def as_dict(self) -> dict[str, int | float | None]:
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


def string_fields(fields: Sequence[str]) -> Check:
    """A record check: each of ``fields`` must be a string."""
    def check(record: Record) -> str | None:
        missing = [f for f in fields if not isinstance(record.get(f), str)]
        return f"field {missing[0]!r} is missing or not a string" if missing else None
    return check


def iter_records(
    lines: Iterable[bytes], check: Check,
) -> Iterator[tuple[int, Record | None, str | None]]:
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
            self.stream: TextIO = sys.stdout
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
        binary: io.BufferedIOBase = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=5) if path.endswith(".gz") else raw
        self._raw = raw
        self._binary = binary
        self.stream = io.TextIOWrapper(binary, encoding="utf-8", newline="\n")

    def write(self, record: Record) -> None:
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
            durable.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def _stream(
    input_path: str, output_path: str, check: Check, window: int, progress: bool,
    process: Callable[[list[Record]], Iterator[Record]],
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
    pending: list[tuple[int, Record | None, str | None]] = []

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

    def process(records: list[Record]) -> Iterator[Record]:
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


def predict_tags_file(tagger: Tagger, input_path: str, output_path: str, window: int = 4096,
                      progress: bool = True) -> PredictSummary:
    """Like :func:`predict_file` for token models: adds ``predicted_tags`` and ``tag_scores`` (one per word).

    When the records carry the gold tags, the summary's accuracy is per word.
    """
    field_name = tagger.tokens_field
    passes_before = tagger.forward_passes
    tally = {"labelled": 0, "correct": 0, "unknown": 0}
    known = set(tagger.labels)

    def check(record: Record) -> str | None:
        words = record.get(field_name)
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            return f"field {field_name!r} is missing or not a list of strings"
        return None

    def process(records: list[Record]) -> Iterator[Record]:
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

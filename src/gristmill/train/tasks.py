"""Labelled task data for fine-tuning: the task spec, JSONL loading and validation, label maps, sampling.

Two task types:

* ``sequence``: one record per example, ``{"text": ..., "label": ...}`` (field names configurable),
  optionally with a second text for pairs (``pair_field``).
* ``token``: NER-style, ``{"tokens": [...], "tags": [...]}`` with one tag per word.

Everything a user can get wrong in these files (missing fields, empty texts, one class, labels in
dev/test that training never saw) raises :class:`TaskError` with a message naming the file and line.

This module owns data only: it never tokenizes (``gristmill.train.encoding`` turns examples into ids),
never builds a model and never imports torch, so it stays cheap to import from the command line.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gristmill import options
from gristmill.data.readers import jsonl as corpus_jsonl
from gristmill.errors import BadDataError, GristmillError

TaskType = Literal["sequence", "token"]


class TaskError(GristmillError):
    """A problem with the user's task files or options; printed as a message, never as a traceback."""


class TaskDataError(TaskError, BadDataError):
    """A task file whose bytes are damaged: not UTF-8, not JSON, lone surrogates (exit status 3)."""


@dataclass(frozen=True)
class SequenceExample:
    text: str
    label: str
    text_pair: str | None = None
    line: int = 0


@dataclass(frozen=True)
class TokenExample:
    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    line: int = 0


Example = SequenceExample | TokenExample


@dataclass
class TaskSpec:
    """What ``FT/task.json`` records: how to read inputs and what the output indices mean."""

    type: TaskType
    labels: list[str]
    max_length: int = 128
    text_field: str = "text"
    label_field: str = "label"
    pair_field: str | None = None
    tokens_field: str = "tokens"
    tags_field: str = "tags"

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "labels": list(self.labels),
            "max_length": self.max_length,
            "text_field": self.text_field,
            "text_fields": [self.text_field] + ([self.pair_field] if self.pair_field else []),
            "pair": self.pair_field is not None,
            "pair_field": self.pair_field,
            "label_field": self.label_field,
            "tokens_field": self.tokens_field,
            "tags_field": self.tags_field,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskSpec:
        return cls(
            type=data["type"],
            labels=list(data["labels"]),
            max_length=int(data.get("max_length", 128)),
            text_field=data.get("text_field", "text"),
            label_field=data.get("label_field", "label"),
            pair_field=data.get("pair_field"),
            tokens_field=data.get("tokens_field", "tokens"),
            tags_field=data.get("tags_field", "tags"),
        )


@dataclass
class TaskData:
    """A validated task: its spec and the examples of each split (dev and test may be empty)."""

    spec: TaskSpec
    train: list[Example]
    dev: list[Example] = field(default_factory=list)
    test: list[Example] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------- reading


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, record)`` for each non-blank line (plain, .gz, .zst), read by ``gristmill.data.readers.jsonl``.

    A line that is not UTF-8, not JSON, not an object, or holds a lone surrogate (``"\\ud800"``, which no
    tokenizer can encode) is a :class:`TaskDataError` naming the file and line.
    """
    p = Path(path)
    if not p.is_file():
        raise TaskError(f"{p}: no such file")
    try:
        for line in corpus_jsonl.read_jsonl(p, errors="raise"):
            if not isinstance(line.record, dict):
                raise TaskDataError(f"{p}:{line.number}: expected a JSON object, got {type(line.record).__name__}")
            yield line.number, line.record
    except corpus_jsonl.JsonlError as exc:
        raise TaskDataError(str(exc)) from None


def _field(record: dict[str, Any], name: str, where: str, option: str) -> Any:
    if name not in record:
        fields = ", ".join(sorted(record)) or "none"
        raise TaskError(f"{where}: no field {name!r} (fields: {fields}); use {option} to name it")
    return record[name]


def _label_str(value: Any, where: str) -> str:
    # JSON numbers and booleans are common label encodings; nested values are a mistake.
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (str, int)):
        text = str(value)
        if not text.strip():
            raise TaskError(f"{where}: the label is empty")
        return text
    raise TaskError(f"{where}: the label must be a string or an integer, got {json.dumps(value)[:60]}")


def _text(value: Any, where: str, name: str) -> str:
    if not isinstance(value, str):
        raise TaskError(f"{where}: field {name!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise TaskError(f"{where}: field {name!r} is empty; remove the line or give it text")
    return value


def load_sequence_examples(
    path: str | Path, text_field: str = "text", label_field: str = "label", pair_field: str | None = None,
    labelled: bool = True,
) -> list[SequenceExample]:
    """Read a sequence-classification JSONL file; every record needs a non-empty text (and label)."""
    examples = []
    for number, record in read_jsonl(path):
        where = f"{path}:{number}"
        text = _text(_field(record, text_field, where, "--text-field"), where, text_field)
        pair = None
        if pair_field is not None:
            pair = _text(_field(record, pair_field, where, "--pair-field"), where, pair_field)
        label = _label_str(_field(record, label_field, where, "--label-field"), where) if labelled else ""
        examples.append(SequenceExample(text=text, label=label, text_pair=pair, line=number))
    if not examples:
        raise TaskError(f"{path}: no examples (the file is empty)")
    return examples


def load_token_examples(path: str | Path, tokens_field: str = "tokens", tags_field: str = "tags") -> list[TokenExample]:
    """Read an NER-style JSONL file: a list of words and a list of tags of the same length per line."""
    examples = []
    for number, record in read_jsonl(path):
        where = f"{path}:{number}"
        tokens = _field(record, tokens_field, where, "--tokens-field")
        tags = _field(record, tags_field, where, "--tags-field")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise TaskError(f"{where}: field {tokens_field!r} must be a list of strings")
        if not isinstance(tags, list):
            raise TaskError(f"{where}: field {tags_field!r} must be a list of tags")
        if not tokens:
            raise TaskError(f"{where}: field {tokens_field!r} is empty; remove the line or give it words")
        if len(tokens) != len(tags):
            raise TaskError(f"{where}: {len(tokens)} tokens but {len(tags)} tags; each word needs exactly one tag")
        if any(not t.strip() for t in tokens):
            raise TaskError(f"{where}: field {tokens_field!r} contains an empty word")
        examples.append(TokenExample(tokens=tuple(tokens), tags=tuple(_label_str(t, where) for t in tags), line=number))
    if not examples:
        raise TaskError(f"{path}: no examples (the file is empty)")
    return examples


def detect_task_type(path: str | Path, tokens_field: str = "tokens", tags_field: str = "tags") -> TaskType:
    """``token`` when the first record has a list under the tokens and tags fields, else ``sequence``."""
    for _, record in read_jsonl(path):
        if isinstance(record.get(tokens_field), list) and isinstance(record.get(tags_field), list):
            return "token"
        return "sequence"
    raise TaskError(f"{path}: no examples (the file is empty)")


# ---------------------------------------------------------------- labels


def example_labels(example: Example) -> Sequence[str]:
    return example.tags if isinstance(example, TokenExample) else (example.label,)


def build_labels(train: Sequence[Example], path: str | Path = "training file") -> list[str]:
    """The label list in index order (sorted, so the same file always gives the same indices)."""
    counts = Counter(label for ex in train for label in example_labels(ex))
    if len(counts) < 2:
        only = next(iter(counts), "")
        raise TaskError(f"{path}: every example has the label {only!r}; a classifier needs at least two classes")
    return sorted(counts)


def check_known_labels(examples: Sequence[Example], labels: Sequence[str], path: str | Path) -> None:
    """Reject dev/test files with labels the model cannot predict (they would silently count as errors)."""
    known = set(labels)
    unknown: Counter = Counter()
    first_line: dict[str, int] = {}
    for ex in examples:
        for label in example_labels(ex):
            if label not in known:
                unknown[label] += 1
                first_line.setdefault(label, ex.line)
    if unknown:
        shown = ", ".join(f"{lab!r} ({n}x, first at line {first_line[lab]})" for lab, n in unknown.most_common(5))
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise TaskError(
            f"{path}: labels not in the training file: {shown}{more}. "
            f"Known labels: {', '.join(labels)}"
        )


def label_counts(examples: Sequence[Example]) -> Counter:
    return Counter(label for ex in examples for label in example_labels(ex))


def load_task(
    train: str | Path,
    dev: str | Path | None = None,
    test: str | Path | None = None,
    *,
    task_type: str = "auto",
    text_field: str = "text",
    label_field: str = "label",
    pair_field: str | None = None,
    tokens_field: str = "tokens",
    tags_field: str = "tags",
    max_length: int = 128,
) -> TaskData:
    """Load and validate the splits of a task; labels come from the (whole) training file."""
    if task_type == "auto":
        task_type = detect_task_type(train, tokens_field, tags_field)
    if task_type not in ("sequence", "token"):
        raise TaskError(f"unknown task type {task_type!r}: use sequence, token or auto")
    message = options.problem("--max-length", max_length, options.POSITIONS)
    if message:
        raise TaskError(message)

    def load(path: str | Path) -> list[Example]:
        if task_type == "token":
            return load_token_examples(path, tokens_field, tags_field)  # type: ignore[return-value]
        return load_sequence_examples(path, text_field, label_field, pair_field)  # type: ignore[return-value]

    train_ex = load(train)
    labels = build_labels(train_ex, train)
    data = TaskData(
        spec=TaskSpec(type=task_type, labels=labels, max_length=max_length, text_field=text_field,
                      label_field=label_field, pair_field=pair_field, tokens_field=tokens_field, tags_field=tags_field),
        train=train_ex,
        paths={"train": str(train)},
    )
    for split, path in (("dev", dev), ("test", test)):
        if path is None:
            continue
        examples = load(path)
        check_known_labels(examples, labels, path)
        setattr(data, split, examples)
        data.paths[split] = str(path)
    return data


# ---------------------------------------------------------------- sampling


@dataclass
class Sample:
    """A subset of the training examples and what could not be met (class -> examples available)."""

    examples: list[Example]
    short: dict[str, int] = field(default_factory=dict)


def stratified_sample(examples: Sequence[SequenceExample], per_class: int, seed: int) -> Sample:
    """Take ``per_class`` examples of each label, chosen at random with ``seed``.

    A class with fewer examples contributes all of them (reported in ``Sample.short``). With the
    same seed, the sample for a smaller ``per_class`` is a subset of the one for a larger value, so
    the points of a learning curve differ only by the added labels. The result keeps file order.
    """
    if per_class < 1:
        raise TaskError(f"--per-class must be at least 1, got {per_class}")
    by_label: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        by_label.setdefault(ex.label, []).append(i)
    chosen: list[int] = []
    short: dict[str, int] = {}
    for label in sorted(by_label):
        # One generator per class, seeded from (seed, label): a class's sample does not depend on
        # the other classes' sizes, so adding data for one class leaves the others' samples alone.
        order = list(by_label[label])
        random.Random(f"{seed}\x00{label}").shuffle(order)
        chosen.extend(order[:per_class])
        if len(order) < per_class:
            short[label] = len(order)
    return Sample(examples=[examples[i] for i in sorted(chosen)], short=short)


def entity_type(tag: str) -> str | None:
    """``B-PER`` / ``I-PER`` / ``PER`` -> ``PER``; ``O`` -> None."""
    if tag == "O":
        return None
    return tag[2:] if tag[:2] in ("B-", "I-", "E-", "S-", "L-", "U-") else tag


def token_sample(examples: Sequence[TokenExample], per_class: int, seed: int) -> Sample:
    """Few-shot sampling for token tasks: sentences until each entity type occurs in ``per_class`` of them.

    Greedy over a seeded shuffle (the usual few-shot NER scheme): a sentence is taken when it
    contains a type that still has fewer than ``per_class`` sentences. Types that never reach the
    target are reported in ``Sample.short``.
    """
    if per_class < 1:
        raise TaskError(f"--per-class must be at least 1, got {per_class}")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    have: Counter = Counter()
    total: Counter = Counter()
    chosen = []
    for i in order:
        types = {t for t in map(entity_type, examples[i].tags) if t is not None}
        total.update(types)
        if any(have[t] < per_class for t in types):
            chosen.append(i)
            have.update(types)
    short = {t: have[t] for t in sorted(total) if have[t] < per_class}
    return Sample(examples=[examples[i] for i in sorted(chosen)], short=short)


def sample_training(examples: Sequence[Example], per_class: int | None, seed: int) -> Sample:
    if per_class is None:
        return Sample(examples=list(examples))
    if examples and isinstance(examples[0], TokenExample):
        return token_sample(examples, per_class, seed)  # type: ignore[arg-type]
    return stratified_sample(examples, per_class, seed)  # type: ignore[arg-type]

"""Task files: validation messages and stratified sampling (encoding: test_encoding.py)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from gristmill.train.tasks import (
    SequenceExample,
    TaskError,
    TokenExample,
    load_task,
    stratified_sample,
    token_sample,
)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def examples(counts: dict[str, int]) -> list[SequenceExample]:
    out = []
    for label, n in counts.items():
        out.extend(SequenceExample(text=f"{label} {i}", label=label, line=len(out) + 1) for i in range(n))
    return out


# ---------------------------------------------------------------- sampling


def test_stratified_sample_takes_n_per_class_and_is_seeded():
    data = examples({"a": 50, "b": 30, "c": 12})
    s1 = stratified_sample(data, 10, seed=1)
    assert Counter(e.label for e in s1.examples) == {"a": 10, "b": 10, "c": 10}
    assert s1.short == {}
    assert stratified_sample(data, 10, seed=1).examples == s1.examples
    assert stratified_sample(data, 10, seed=2).examples != s1.examples
    # File order is kept, so the sample is a sub-sequence of the input.
    positions = [data.index(e) for e in s1.examples]
    assert positions == sorted(positions)


def test_stratified_sample_is_nested_across_sizes_and_reports_short_classes():
    data = examples({"a": 50, "b": 30, "c": 12})
    small = stratified_sample(data, 8, seed=3)
    large = stratified_sample(data, 20, seed=3)
    assert set(small.examples) <= set(large.examples)
    assert large.short == {"c": 12}
    assert Counter(e.label for e in large.examples) == {"a": 20, "b": 20, "c": 12}


def test_stratified_sample_of_one_class_does_not_depend_on_other_classes():
    base = examples({"a": 40, "b": 40})
    more_b = base + [SequenceExample(text=f"extra {i}", label="b") for i in range(25)]
    pick = [e for e in stratified_sample(base, 5, seed=0).examples if e.label == "a"]
    pick_more = [e for e in stratified_sample(more_b, 5, seed=0).examples if e.label == "a"]
    assert pick == pick_more


def test_token_sample_reaches_target_per_entity_type():
    rows = []
    for i in range(60):
        tags = ["O", "B-PER", "I-PER"] if i % 3 == 0 else (["B-LOC", "O", "O"] if i % 3 == 1 else ["O", "O", "O"])
        rows.append(TokenExample(tokens=("w", "x", "y"), tags=tuple(tags), line=i + 1))
    rows.append(TokenExample(tokens=("z",), tags=("B-ORG",), line=99))
    sample = token_sample(rows, 4, seed=0)
    seen = Counter(t for ex in sample.examples for t in {tag[2:] for tag in ex.tags if tag != "O"})
    assert seen["PER"] >= 4 and seen["LOC"] >= 4
    assert sample.short == {"ORG": 1}
    assert len(sample.examples) < 20  # sentences with only O tags or saturated types are skipped


# ---------------------------------------------------------------- bad input


def test_unknown_label_in_dev_names_label_and_line(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [{"text": "x", "label": "a"}, {"text": "y", "label": "b"}])
    dev = write_jsonl(tmp_path / "dev.jsonl", [{"text": "x", "label": "a"}, {"text": "z", "label": "zebra"}])
    with pytest.raises(TaskError, match=r"dev.jsonl: labels not in the training file: 'zebra' \(1x, first at line 2\)"):
        load_task(train, dev)


def test_empty_text_names_line(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [{"text": "x", "label": "a"}, {"text": "  ", "label": "b"}])
    with pytest.raises(TaskError, match=r"train.jsonl:2: field 'text' is empty"):
        load_task(train)


def test_one_class_training_file(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [{"text": "x", "label": "a"}, {"text": "y", "label": "a"}])
    with pytest.raises(TaskError, match="every example has the label 'a'; a classifier needs at least two classes"):
        load_task(train)


def test_missing_field_suggests_option(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [{"body": "x", "label": "a"}])
    with pytest.raises(TaskError, match=r":1: no field 'text' \(fields: body, label\); use --text-field"):
        load_task(train)


def test_bad_json_and_empty_file(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x", "label": "a"}\n{"text": oops}\n')
    with pytest.raises(TaskError, match="bad.jsonl:2: invalid JSON"):
        load_task(bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(TaskError, match="no examples"):
        load_task(empty)
    with pytest.raises(TaskError, match="no such file"):
        load_task(tmp_path / "missing.jsonl")


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst"])
def test_compressed_task_files_read_like_plain_ones(tmp_path, suffix):
    import gzip

    import zstandard

    rows = [{"text": "x", "label": "a"}, {"text": "y", "label": "b"}]
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    path = tmp_path / f"train{suffix}"
    path.write_bytes(gzip.compress(body) if suffix.endswith(".gz") else zstandard.ZstdCompressor().compress(body))
    assert load_task(path).spec.labels == load_task(write_jsonl(tmp_path / "plain.jsonl", rows)).spec.labels == ["a", "b"]


def test_token_file_length_mismatch(tmp_path):
    train = write_jsonl(tmp_path / "ner.jsonl", [{"tokens": ["a", "b"], "tags": ["O"]}])
    with pytest.raises(TaskError, match="2 tokens but 1 tags"):
        load_task(train)


def test_integer_labels_are_accepted_as_strings(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [{"text": "x", "label": 1}, {"text": "y", "label": 0}])
    data = load_task(train)
    assert data.spec.labels == ["0", "1"]
    assert data.spec.type == "sequence"

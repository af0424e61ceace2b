"""Batch prediction over JSONL files: files stream, order is kept, bad lines are kept as errors, exit statuses."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gristmill.cli import app
from gristmill.serve.loading import load_classifier
from gristmill.serve.predict import predict_file

from .conftest import TASK, task_test_split


def test_predict_file_accuracy_matches_finetuning_metrics(tiny_ft: Path, tmp_path: Path) -> None:
    clf = load_classifier(tiny_ft)
    out = tmp_path / "pred.jsonl"
    summary = predict_file(clf, str(TASK / "test.jsonl"), str(out), progress=False)
    metrics = json.loads((tiny_ft / "metrics.json").read_text())
    assert summary.predicted == summary.labelled == metrics["test"]["examples"] == 240
    assert summary.accuracy == pytest.approx(metrics["test"]["accuracy"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    inputs = [json.loads(line) for line in (TASK / "test.jsonl").read_text().splitlines() if line.strip()]
    assert [r["text"] for r in rows] == [r["text"] for r in inputs]
    for row in rows[:10]:
        assert set(row["probabilities"]) == set(clf.labels)
        assert row["prediction"] == max(row["probabilities"], key=row["probabilities"].get)
        assert row["score"] == row["probabilities"][row["prediction"]]


def test_predict_file_streams_in_windows_and_keeps_order(tiny_ft: Path, tmp_path: Path) -> None:
    texts, _ = task_test_split(50)
    src = tmp_path / "in.jsonl.gz"
    with gzip.open(src, "wt", encoding="utf-8") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"id": i, "text": t}) + "\n")
    clf = load_classifier(tiny_ft, batch_size=4)
    calls: list[int] = []
    original = clf.predict_proba

    def spy(batch_texts, pairs=None):
        calls.append(len(batch_texts))
        return original(batch_texts, pairs)

    clf.predict_proba = spy  # type: ignore[method-assign]
    small = tmp_path / "small.jsonl"
    predict_file(clf, str(src), str(small), window=7, progress=False)
    assert max(calls) <= 7 and sum(calls) == 50  # never more than one window of the file in memory
    clf.predict_proba = original  # type: ignore[method-assign]
    big = tmp_path / "big.jsonl.gz"
    predict_file(clf, str(src), str(big), window=4096, progress=False, drop_text=True)
    a = [json.loads(line) for line in small.read_text().splitlines()]
    b = [json.loads(line) for line in gzip.open(big, "rt").read().splitlines()]
    assert [r["id"] for r in a] == list(range(50)) == [r["id"] for r in b]
    assert [r["prediction"] for r in a] == [r["prediction"] for r in b]
    assert "text" not in b[0] and "text" in a[0]
    assert not list(tmp_path.glob("*.part"))


def test_malformed_lines_get_error_records(tiny_ft: Path, tmp_path: Path) -> None:
    src = tmp_path / "mixed.jsonl"
    src.write_text("\n".join([
        json.dumps({"text": "a computer program", "label": "computers"}),
        "{not json",
        json.dumps({"body": "no text field"}),
        "",
        json.dumps(["a", "list"]),
        json.dumps({"text": 42}),
        json.dumps({"text": "lone surrogate \ud800 is replaced, not fatal"}),
        json.dumps({"text": "", "label": "nonsense-label"}),
    ]) + "\n")
    out = tmp_path / "out.jsonl"
    summary = predict_file(load_classifier(tiny_ft), str(src), str(out), progress=False)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 7  # one per non-blank input line
    assert (summary.predicted, summary.errors, summary.labelled, summary.unknown_labels) == (3, 4, 1, 1)
    assert [r.get("line") for r in rows if "error" in r] == [2, 3, 5, 6]
    assert "not valid JSON" in rows[1]["error"] and rows[2]["record"] == {"body": "no text field"}
    assert "prediction" in rows[5] and "prediction" in rows[6]


def test_cli_predict_and_exit_status(tiny_ft: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "p.jsonl"
    result = runner.invoke(app, ["predict", str(tiny_ft), "--input", str(TASK / "dev.jsonl"), "--output", str(out),
                                 "--no-progress", "--batch-size", "16"])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output
    assert len(out.read_text().splitlines()) == 120
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\nnot json\n')
    result = runner.invoke(app, ["predict", str(tiny_ft), "-i", str(bad), "-o", str(tmp_path / "b.jsonl"), "--no-progress"])
    assert result.exit_code == 3
    result = runner.invoke(app, ["predict", str(tmp_path), "-i", str(bad), "-o", str(tmp_path / "c.jsonl")])
    assert result.exit_code == 2 and "task.json" in result.output
    result = runner.invoke(app, ["predict", str(tiny_ft), "-i", str(tmp_path / "missing.jsonl"), "-o", "-"])
    assert result.exit_code == 2 and "no such file" in " ".join(result.output.split())


def test_cli_predict_json_summary(tiny_ft: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    result = CliRunner().invoke(app, ["predict", str(tiny_ft), "-i", str(TASK / "dev.jsonl"), "-o", str(out),
                                      "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # one JSON object and nothing else on stdout
    assert summary["out"] == str(out) and summary["predicted"] == 120 == len(out.read_text().splitlines())
    assert summary["backend"] == "torch" and 0 <= summary["accuracy"] <= 1 and summary["errors"] == 0
    to_stdout = CliRunner().invoke(app, ["predict", str(tiny_ft), "-i", str(TASK / "dev.jsonl"), "-o", "-", "--json"])
    assert to_stdout.exit_code == 2 and "--json" in to_stdout.stderr

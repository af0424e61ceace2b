"""ONNX export (fp32 and int8) agrees with PyTorch; the transformers export gives the same predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gristmill.cli import app
from gristmill.serve.backends import OnnxBackend, TorchBackend
from gristmill.serve.loading import load_classifier
from gristmill.serve.onnx import check_texts
from gristmill.train.forward import pad_batch

from .conftest import TASK, THREADS

# slow: trains, starts processes or a browser; `pytest -m "not slow"` is the fast tier (README, Development)
pytestmark = pytest.mark.slow


def test_export_report_parity_and_int8_accuracy(tiny_onnx: Path) -> None:
    report = json.loads((tiny_onnx / "export.json").read_text())
    assert report["checked_on"]["examples"] == 240
    assert report["parity"]["onnx"]["argmax_agreement"] == 1.0
    assert report["parity"]["onnx"]["max_prob_diff"] < 1e-4
    acc = report["accuracy"]
    assert acc["onnx"] == pytest.approx(acc["torch"])
    assert abs(acc["onnx-int8"] - acc["onnx"]) <= 0.01  # int8 within 1 point of fp32
    assert abs(acc["torch-int8"] - acc["torch"]) <= 0.01
    assert report["parity"]["onnx-int8"]["argmax_agreement"] >= 0.95
    assert report["files"]["model.int8.onnx"] < report["files"]["model.onnx"]
    for name in ("model.onnx", "model.int8.onnx", "task.json", "config.json", "tokenizer/tokenizer.json"):
        assert (tiny_onnx / name).is_file()


def test_onnx_axes_are_dynamic_and_match_torch(tiny_ft: Path, tiny_onnx: Path) -> None:
    clf = load_classifier(tiny_ft)
    onnx = OnnxBackend(tiny_onnx / "model.onnx", THREADS)
    torch_backend = clf.backend
    assert isinstance(torch_backend, TorchBackend)
    texts = check_texts(clf.tokenizer, n=12, seed=3, max_words=80)
    for batch in ([texts[0]], texts[:5], texts):  # batch sizes 1, 5 and 12, each with its own length
        ids, mask, types = pad_batch(clf.encode(batch), clf.pad_id)
        np.testing.assert_allclose(onnx.logits(ids, mask, types), torch_backend.logits(ids, mask, types), atol=1e-4)
    long_ids, long_mask, long_types = pad_batch(clf.encode([" ".join(texts)]), clf.pad_id)
    assert long_ids.shape[1] == clf.max_length  # truncated to the tuned length, still a valid shape
    np.testing.assert_allclose(onnx.logits(long_ids, long_mask, long_types),
                               torch_backend.logits(long_ids, long_mask, long_types), atol=1e-4)


def test_onnx_backend_predictions_equal_torch(tiny_ft: Path, tiny_onnx: Path) -> None:
    texts = [json.loads(line)["text"] for line in (TASK / "dev.jsonl").read_text().splitlines()[:50]]
    torch_probs = load_classifier(tiny_ft).predict_proba(texts)
    from_export = load_classifier(tiny_onnx, backend="onnx", threads=THREADS).predict_proba(texts)
    # The onnx backend on an FT folder exports to a temporary folder first.
    on_the_fly = load_classifier(tiny_ft, backend="onnx", threads=THREADS).predict_proba(texts)
    np.testing.assert_allclose(from_export, torch_probs, atol=1e-4)
    np.testing.assert_allclose(on_the_fly, from_export, atol=1e-6)
    int8 = load_classifier(tiny_onnx, backend="onnx", quantize="int8", threads=THREADS)
    assert int8.backend.name == "onnx-int8"
    assert (int8.predict_proba(texts).argmax(1) == torch_probs.argmax(1)).mean() >= 0.9


def test_cli_export_onnx(tiny_ft: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "onnx"
    result = runner.invoke(app, ["export", str(tiny_ft), "--format", "onnx", "--out", str(out), "--threads", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "export.json").read_text())
    assert report["checked_on"]["file"] is None and report["parity"]["onnx"]["argmax_agreement"] == 1.0
    assert not (out / "model.int8.onnx").exists()
    result = runner.invoke(app, ["export", str(tiny_ft), "--format", "onnx", "--out", str(out)])
    assert result.exit_code == 2 and "--overwrite" in result.output
    result = runner.invoke(app, ["export", str(tiny_ft), "--format", "tflite", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2


def test_export_onnx_refuses_a_pretraining_run(tiny_mlm: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export", str(tiny_mlm), "--format", "onnx", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "task.json" in result.output


def test_hf_classifier_export_matches_gristmill(tiny_ft: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer, BertForSequenceClassification, pipeline

    out = tmp_path / "hf"
    result = CliRunner().invoke(app, ["export", str(tiny_ft), "--format", "hf", "--out", str(out)])
    assert result.exit_code == 0, result.output
    clf = load_classifier(tiny_ft)
    texts = [json.loads(line)["text"] for line in (TASK / "test.jsonl").read_text().splitlines()[:24]]
    ours = clf.predict_proba(texts)
    bert = BertForSequenceClassification.from_pretrained(out, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert bert.config.id2label[0] == clf.labels[0]
    card = (out / "README.md").read_text()
    assert "pipeline_tag: text-classification" in card and "test: accuracy" in card
    pipe = pipeline("text-classification", model=bert, tokenizer=tokenizer, device="cpu")
    theirs = pipe(texts, batch_size=8, truncation=True, top_k=None)
    for row, predictions in zip(ours, theirs, strict=True):
        probs = {p["label"]: p["score"] for p in predictions}
        np.testing.assert_allclose([probs[label] for label in clf.labels], row, atol=1e-4)


def test_hf_export_of_a_pretraining_run_delegates_to_export_hf(tiny_mlm: Path, tmp_path: Path) -> None:
    from transformers import BertForMaskedLM

    out = tmp_path / "mlm-hf"
    result = CliRunner().invoke(app, ["export", str(tiny_mlm), "--format", "hf", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert BertForMaskedLM.from_pretrained(out, local_files_only=True).config.vocab_size > 100
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "pipeline_tag: fill-mask" in card and "## Intended use and limits" in card

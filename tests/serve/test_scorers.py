"""The classifier step on fine-tuned encoders and their ONNX/int8 exports, through the scorer plug-ins;
and the layering rule that lets the data layer use them without importing serve."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from gristmill.data import InputSpec, OutputSpec, Pipeline, build_step
from gristmill.data.classify import scorers as sc
from gristmill.data.readers.output import read_documents
from gristmill.data.recipe import RecipeError
from gristmill.serve.loading import load_classifier
from gristmill.serve.scorers import register_builtin_scorers

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "sample" / "task"


def run_classifier(tmp_path: Path, name: str, params: dict) -> dict:
    texts = [json.loads(line)["text"] for line in (TASK / "test.jsonl").read_text().splitlines()[:24]]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / name
    step = build_step("classifier", params)
    Pipeline(InputSpec(paths=[str(src)], shard_size=10), [step], OutputSpec(str(out))).run(progress=False)
    docs = {d.id: d for d in read_documents(out / "kept")}
    if (out / "rejected").exists():
        docs.update({d.id: d for d in read_documents(out / "rejected")})
    return {"texts": texts, "docs": docs}


def test_encoder_and_onnx_int8_folders(tiny_ft: Path, tiny_onnx: Path, tmp_path: Path) -> None:
    register_builtin_scorers()
    assert sc.folder_kind(tiny_ft) == sc.ENCODER and sc.folder_kind(tiny_onnx) == sc.ONNX
    labels = json.loads((tiny_ft / "task.json").read_text())["labels"]
    ft = run_classifier(tmp_path, "ft", {"model": str(tiny_ft), "chunk_words": 0, "threads": 1,
                                         "columns": {labels[0]: "first_score"}, "reject_label": labels[0]})
    # The step's scores are the serve layer's probabilities (one chunk: the whole text).
    reference = load_classifier(tiny_ft, threads=1).predict_proba(ft["texts"])[:, 0]
    got = np.array([ft["docs"][f"d{i}"].meta["first_score"] for i in range(len(ft["texts"]))])
    assert np.allclose(got, reference, atol=1e-5)
    rejected = {i for i, d in ft["docs"].items() if d.reason == f"classifier:{labels[0]}"}
    assert rejected == {f"d{i}" for i in np.flatnonzero(reference >= 0.5)}
    onnx = run_classifier(tmp_path, "onnx", {"model": str(tiny_onnx), "quantize": "int8", "chunk_words": 0,
                                             "mode": "annotate"})
    int8 = np.array([[onnx["docs"][f"d{i}"].meta[f"{label}_score"] for label in labels]
                     for i in range(len(onnx["texts"]))])
    full = load_classifier(tiny_ft, threads=1).predict_proba(onnx["texts"])
    assert np.allclose(int8.sum(axis=1), 1, atol=1e-4)
    assert (int8.argmax(axis=1) == full.argmax(axis=1)).mean() >= 0.8


def test_pretrained_run_folder_is_not_a_classifier(tiny_mlm: Path) -> None:
    assert sc.folder_kind(tiny_mlm) == sc.ENCODER_PLL
    with pytest.raises(RecipeError, match="not a classifier"):
        build_step("classifier", {"model": str(tiny_mlm)})


def test_entry_points_are_declared() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split('[project.entry-points."gristmill.scorers"]', 1)[1].split("\n[", 1)[0]
    declared = dict(re.findall(r'^(\w+) = "([^"]+)"', section, re.M))
    assert declared == {"encoder": "gristmill.serve.scorers:load_encoder_scorer",
                        "onnx": "gristmill.serve.scorers:load_onnx_scorer"}
    for target in declared.values():
        assert callable(sc.load_target(target))


def test_data_layer_imports_nothing_above_it() -> None:
    upward = re.compile(r"^\s*(from|import)\s+gristmill\.(serve|train|model|tokenizer)\b", re.M)
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "src" / "gristmill" / "data").rglob("*.py")
                 if upward.search(p.read_text(encoding="utf-8"))]
    assert offenders == []

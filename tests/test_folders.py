"""RUN/ and FT/ folders as code: one place names their files and says when a folder is not one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gristmill import folders
from gristmill.cli import app

SRC = Path(__file__).resolve().parents[1] / "src" / "gristmill"
FILE_NAMES = ("config.json", "model.safetensors", "task.json", "train.json", "import.json", "metrics.json",
              "metrics.jsonl")


def hf_folder(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"architectures": ["BertForMaskedLM"], "model_type": "bert"}))
    (root / "model.safetensors").write_bytes(b"")
    return root


def one_line(result) -> str:
    return " ".join((result.output or "").split())


def test_only_the_folders_module_spells_the_file_names() -> None:
    # The data classifiers (linear, n-gram LM) write folders of their own, tokenizer packing its
    # _work/config.json, and model/hf.py reads a Hugging Face folder's config.json.
    own_files = {"folders.py", "data/classify/linear.py", "data/classify/ngram_lm.py", "data/classify/training.py",
                 "tokenizer/pack.py", "tokenizer/manifest.py", "model/hf.py"}
    offenders = []
    for path in SRC.rglob("*.py"):
        if str(path.relative_to(SRC)) in own_files:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search("|".join(re.escape(f'"{name}"') for name in FILE_NAMES), line):
                offenders.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert offenders == []


def test_problems_name_the_folder_and_what_to_do(tmp_path: Path) -> None:
    hf = hf_folder(tmp_path / "bert")
    assert "run `gristmill import-hf" in (folders.run_problem(hf) or "")
    assert "run `gristmill import-hf" in (folders.finetuned_problem(hf) or "")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "not a gristmill run folder" in (folders.run_problem(empty) or "")
    assert "no task.json" in (folders.finetuned_problem(empty) or "")
    assert "no such model folder" in (folders.run_problem(tmp_path / "nowhere") or "")
    run = tmp_path / "run"
    run.mkdir()
    folders.write_record(folders.RunFolder(run).config, {"vocab_size": 10})
    assert folders.run_problem(run) is None and folders.read_record(run / "config.json") == {"vocab_size": 10}


def test_a_record_is_replaced_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """train.json or tokenizer_config.json of a run killed mid-write must not be left as half a JSON file."""
    record = tmp_path / "train.json"
    folders.write_record(record, {"steps": 100})

    def killed(src: object, dst: object) -> None:
        raise KeyboardInterrupt  # the write is stopped after the new text is on disk, before it takes the name

    monkeypatch.setattr(folders.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        folders.write_record(record, {"steps": 200, "note": "x" * 100_000})
    monkeypatch.undo()
    assert folders.read_record(record) == {"steps": 100}
    assert [p.name for p in tmp_path.iterdir()] == ["train.json"]
    folders.write_record(record, {"steps": 200})
    assert record.read_text(encoding="utf-8") == '{\n  "steps": 200\n}\n'


@pytest.mark.parametrize("args", [
    ["fill-mask", "{hf}", "a [MASK]"],
    ["finetune", "--model", "{hf}", "--train", "{train}", "--out", "{out}"],
    ["predict", "{hf}", "-i", "{train}", "-o", "{out}"],
    ["serve", "{hf}"],
])
def test_a_hugging_face_folder_is_refused_with_the_import_hint(tmp_path: Path, args: list[str]) -> None:
    hf = hf_folder(tmp_path / "bert")
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"text": f"t {i}", "label": "ab"[i % 2]}) + "\n" for i in range(8)))
    values = {"hf": str(hf), "train": str(train), "out": str(tmp_path / "out")}
    result = CliRunner().invoke(app, [a.format(**values) for a in args])
    assert result.exit_code == 2, result.output
    assert "Hugging Face model folder" in one_line(result) and "gristmill import-hf" in one_line(result)

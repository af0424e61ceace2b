"""Damaged model folders at inference: predict, serve and finetune name the file and exit 3, no traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gristmill.cli import app
from gristmill.errors import BAD_DATA

from .conftest import TASK


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    lines = result.output.strip().splitlines()
    assert "Traceback" not in result.output and sum(line.startswith("error:") for line in lines) == 1, result.output
    return result, " ".join(result.output.split())


@pytest.fixture
def ft(tiny_ft: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_ft, tmp_path / "ft"))


def test_finetuned_weights_carry_a_checksum(tiny_ft: Path) -> None:
    from gristmill import checksums

    assert checksums.verify_sidecar(tiny_ft / "model.safetensors")


@pytest.mark.parametrize("damage", ["truncate", "zero", "flip", "truncate-unrecorded", "empty"])
def test_predict_and_serve_on_damaged_weights(ft: Path, tmp_path: Path, damage: str) -> None:
    weights = ft / "model.safetensors"
    data = weights.read_bytes()
    if damage.startswith("truncate"):
        weights.write_bytes(data[:5000])
    elif damage == "zero":
        weights.write_bytes(b"\0" * len(data))
    elif damage == "empty":
        weights.write_bytes(b"")
    else:  # a few bytes of one tensor changed: the file still parses
        weights.write_bytes(data[:-100] + bytes(b ^ 0xFF for b in data[-100:]))
    if damage.endswith("unrecorded"):
        (ft / "checksums.json").unlink()
    result, text = invoke("predict", ft, "-i", TASK / "dev.jsonl", "-o", tmp_path / "out.jsonl", "--no-progress")
    assert result.exit_code == BAD_DATA and "model.safetensors" in text
    assert not (tmp_path / "out.jsonl").exists()
    result, text = invoke("serve", ft, "--port", "1")  # fails while loading, before it binds
    assert result.exit_code == BAD_DATA and "model.safetensors" in text


def test_finetune_from_damaged_pretrained_weights(tiny_mlm: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(tiny_mlm, tmp_path / "run"))
    weights = run / "model.safetensors"
    weights.write_bytes(b"\0" * weights.stat().st_size)
    result, text = invoke("finetune", "--model", run, "--train", TASK / "train.jsonl", "--out", tmp_path / "ft",
                          "--epochs", "1")
    assert result.exit_code == BAD_DATA and "checksum" in text and "do not fit" not in text
    assert not (tmp_path / "ft").exists()


def test_damaged_task_json_is_a_message(ft: Path, tmp_path: Path) -> None:
    (ft / "task.json").write_text(json.dumps({"labels": "oops"}))
    result, text = invoke("predict", ft, "-i", TASK / "dev.jsonl", "-o", tmp_path / "o.jsonl", "--no-progress")
    assert result.exit_code in (2, 3) and "task.json" in text

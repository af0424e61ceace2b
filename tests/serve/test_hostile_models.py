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


# ------------------------------------------------------------------------------- where output cannot go


def run_main(monkeypatch, capsys, *args) -> tuple[int, str]:
    """``gristmill.cli.main`` as the console script runs it (file-system errors are handled there)."""
    import sys

    from gristmill.cli import main

    monkeypatch.setattr(sys, "argv", ["gristmill", *[str(a) for a in args]])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return int(exit_info.value.code or 0), " ".join(err.split())


def test_disk_full_while_predicting_is_one_line(tiny_ft: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import errno
    import io

    from gristmill.serve import predict

    original = predict._Output.__init__

    class FullDisk(io.TextIOBase):
        def __init__(self, real) -> None:
            self.real = real

        def write(self, text: str) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self) -> None:
            self.real.close()

    def init(self, path: str) -> None:
        original(self, path)
        self.stream = FullDisk(self.stream)

    monkeypatch.setattr(predict._Output, "__init__", init)
    out = tmp_path / "out.jsonl"
    code, err = run_main(monkeypatch, capsys, "predict", tiny_ft, "-i", TASK / "dev.jsonl", "-o", out, "--no-progress")
    assert code == 2 and err.count("error:") == 1 and "the disk is full" in err
    assert not out.exists() and not list(tmp_path.glob("*.part"))  # nothing half-written is left


@pytest.mark.parametrize("verb", ["tokenize", "finetune", "predict", "export"])
def test_output_path_that_is_a_file(verb: str, tiny_ft: Path, tiny_mlm: Path, tmp_path: Path, monkeypatch,
                                    capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("mine")
    args = {
        "tokenize": ["tokenize", "-i", TASK / "train.jsonl", "-t", tiny_mlm / "tokenizer", "-o", blocker / "t"],
        "finetune": ["finetune", "--model", tiny_mlm, "--train", TASK / "train.jsonl", "--out", blocker],
        "predict": ["predict", tiny_ft, "-i", TASK / "dev.jsonl", "-o", blocker / "x.jsonl", "--no-progress"],
        "export": ["export", tiny_ft, "--format", "onnx", "--out", blocker / "x"],
    }[verb]
    code, err = run_main(monkeypatch, capsys, *args)
    assert code == 2 and err.count("error:") == 1 and "a-file" in err
    assert blocker.read_text() == "mine"


def test_predict_into_a_pipe_writes_in_place(tiny_ft: Path, tmp_path: Path) -> None:
    """A device or FIFO as --output is written, never replaced by a renamed file (as root, /dev/null was)."""
    import os
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    result = CliRunner().invoke(app, ["predict", str(tiny_ft), "-i", str(TASK / "dev.jsonl"), "-o", str(fifo),
                                      "--no-progress"])
    reader.join(timeout=60)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(fifo.stat().st_mode) and received and received[0].count(b"\n") > 10

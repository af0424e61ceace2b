"""One root for user errors, caught in one place: the ``gristmill`` app prints a GristmillError as one line
(exit 2, or 3 for damaged input), a bug keeps its traceback (exit 1), and user text prints literally."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import gristmill.cli as cli
import gristmill.data.rescore as rescore_module
from gristmill.errors import BadDataError, GristmillError, exit_code
from gristmill.model.run_folder import CheckpointDataError
from gristmill.train.pretrain import TrainingDiverged

SRC = Path(__file__).resolve().parents[1] / "src"


def package_error_classes() -> list[type]:
    """Every exception class of gristmill named ``...Error`` (and TrainingDiverged), imported from its module."""
    found = []
    for path in sorted((SRC / "gristmill").rglob("*.py")):
        names = [node.name for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                 if isinstance(node, ast.ClassDef) and (node.name.endswith("Error") or node.name == "TrainingDiverged")]
        if names:
            parts = list(path.relative_to(SRC).with_suffix("").parts)
            module = importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
            found += [c for c in (getattr(module, name) for name in names) if issubclass(c, BaseException)]
    return found


def test_every_package_error_derives_from_gristmill_error() -> None:
    classes = package_error_classes()
    assert len(classes) > 25
    strays = [c.__qualname__ for c in classes if c is not BadDataError and not issubclass(c, GristmillError)]
    assert strays == []


def test_errors_callers_catch_as_value_error_still_are() -> None:
    from gristmill.model.config import ConfigError
    from gristmill.options import OptionError
    from gristmill.tokenizer.tokdir import TokenizerError

    assert all(issubclass(c, ValueError) for c in (ConfigError, OptionError, TokenizerError))


def test_exit_codes() -> None:
    assert exit_code(GristmillError("x")) == 2
    assert exit_code(CheckpointDataError("truncated")) == 3
    assert exit_code(TrainingDiverged("loss is nan")) == 3


def invoke(monkeypatch: pytest.MonkeyPatch, exc: BaseException, *args: str):
    """``gristmill rescore ...`` with the work replaced by raising ``exc``."""
    def boom(*_a: object, **_k: object) -> None:
        raise exc

    monkeypatch.setattr(rescore_module, "rescore", boom)  # the verb imports it when it runs
    return CliRunner().invoke(cli.app, ["rescore", "OUT", "--set", "noop.x=1", "--out", "DEST", *args])


def test_a_user_error_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    result = invoke(monkeypatch, GristmillError("OUT is not a finished run"))
    assert result.exit_code == 2
    assert [line for line in result.output.splitlines() if line.strip()] == ["error: OUT is not a finished run"]
    assert "Traceback" not in result.output


def test_damaged_input_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    result = invoke(monkeypatch, CheckpointDataError("RUN/model.safetensors is truncated"))
    assert result.exit_code == 3
    assert result.output.strip() == "error: RUN/model.safetensors is truncated"


@pytest.mark.parametrize("bug", [ValueError("an internal invariant broke"), RuntimeError("a bug"), KeyError("k")])
def test_a_bug_is_not_swallowed_into_one_line(monkeypatch: pytest.MonkeyPatch, bug: Exception) -> None:
    result = invoke(monkeypatch, bug)
    assert result.exit_code == 1
    assert result.exception is bug  # it reaches the interpreter, which prints its traceback
    assert "error:" not in result.output


def test_a_bug_prints_its_traceback_through_main(tmp_path: Path) -> None:
    # gristmill.cli.main() as the console script runs it, with a genuine bug in the verb's work
    script = ("import gristmill.cli as cli\n"
              "import gristmill.data.rescore as rescore_module\n"
              "def buggy(*args, **kwargs):\n"
              "    raise ValueError('a bug in gristmill')\n"
              "rescore_module.rescore = buggy\n"
              "cli.main()\n")
    proc = subprocess.run([sys.executable, "-c", script, "rescore", "OUT", "--set", "a.b=1", "--out", "D"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(SRC)})
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "ValueError: a bug in gristmill" in proc.stderr
    assert "error:" not in proc.stderr


def test_user_text_prints_literally_not_as_markup(tmp_path: Path) -> None:
    recipe = tmp_path / "recipes" / "[red]x.yaml"
    result = CliRunner().invoke(cli.app, ["run", str(recipe)])
    assert result.exit_code == 2
    line = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(line) == 1 and "[red]x.yaml" in line[0], result.output


def test_a_summary_path_prints_literally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rescore_module, "rescore", lambda *a, **k: {"totals": {"changed_decisions": 1, "kept": 2,
                                                                                "rejected": 3, "seconds": 0.5}})
    dest = tmp_path / "[bold]out"
    result = CliRunner().invoke(cli.app, ["rescore", "OUT", "--set", "noop.x=1", "--out", str(dest)])
    assert result.exit_code == 0, result.output
    assert str(dest) in result.output


def test_info_lines_print_user_paths_literally(tmp_path: Path) -> None:
    # The tokenizer verbs' info lines name the output folder; brackets in it are no markup.
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(f'{{"text": "word{i % 50} and more words {i}"}}\n' for i in range(200)), encoding="utf-8")
    out = tmp_path / "[red]tok"
    result = CliRunner().invoke(cli.app, ["tokenizer", "train", "--input", str(texts), "--vocab-size", "200",
                                          "-o", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output


def test_user_error_class_is_gone() -> None:
    import gristmill.console

    assert not hasattr(gristmill.console, "UserError")  # one way: raise a GristmillError subclass, or fail()

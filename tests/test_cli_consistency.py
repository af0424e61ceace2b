"""One command line: every verb spells the same thing the same way, and every option says what it does."""

from __future__ import annotations

from typing import Any

import pytest
import typer

from gristmill.cli import app

# typer builds click objects (its own copy of click in recent versions): recognise them by their parts.


def _commands(group: Any = None, prefix: str = "") -> dict[str, Any]:
    """Every verb of the app, sub-verbs as "tokenizer train", mapped to its click command."""
    group = group or typer.main.get_command(app)
    found: dict[str, Any] = {}
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found.update(_commands(command, f"{prefix}{name} "))
        else:
            found[f"{prefix}{name}"] = command
    return found


COMMANDS = _commands()
OPTIONS = [(verb, param) for verb, command in COMMANDS.items() for param in command.params
           if param.param_type_name == "option" and not param.hidden and param.name != "help"]


def test_the_walk_finds_the_verbs() -> None:
    assert {"run", "steps", "pretrain", "finetune", "predict", "tokenizer train", "classify lm"} <= set(COMMANDS)


@pytest.mark.parametrize(("verb", "param"), OPTIONS, ids=[f"{v}:{p.name}" for v, p in OPTIONS])
def test_every_option_has_help(verb: str, param: Any) -> None:
    assert (param.help or "").strip(), f"gristmill {verb} {param.opts[0]} has no help text"


def test_the_output_is_always_out_with_o() -> None:
    for verb, param in OPTIONS:
        names = set(param.opts) | set(param.secondary_opts)
        assert "--output" not in names, f"gristmill {verb} shows --output; spell it --out (-o)"
        if "--out" in names or "-o" in names:
            assert {"--out", "-o"} <= names, f"gristmill {verb}: {sorted(names)} should be --out with -o"


def test_the_model_argument_has_one_name() -> None:
    model_args = {verb: param.name for verb, command in COMMANDS.items() for param in command.params
                  if param.param_type_name == "argument" and param.name in ("run", "model", "run_dir", "model_dir")}
    assert model_args and set(model_args.values()) == {"model"}, model_args


@pytest.mark.parametrize("flag", ["--progress", "--threads", "--seed"])
def test_common_flags_are_spelled_alike(flag: str) -> None:
    """Where a verb has such a setting, it is the common flag (not --show-progress, --num-threads, ...)."""
    words = {"--progress": "progress", "--threads": "thread", "--seed": "seed"}[flag]
    for verb, param in OPTIONS:
        if words in (param.name or "") and param.name not in ("seeds",):
            assert flag in param.opts, f"gristmill {verb} spells {flag} as {param.opts}"


def test_long_running_verbs_have_the_common_flags() -> None:
    for verb in ("run", "tokenize", "tokenizer train", "pretrain", "adapt", "predict", "ablate"):
        assert "--progress" in {o for p in COMMANDS[verb].params for o in p.opts}, verb
    for verb in ("pretrain", "adapt", "finetune", "curve", "predict", "export", "serve", "generate",
                 "perplexity", "fill-mask", "ablate", "quickstart"):
        assert "--threads" in {o for p in COMMANDS[verb].params for o in p.opts}, verb
    for verb in ("pretrain", "adapt", "finetune", "generate", "bias"):
        assert "--seed" in {o for p in COMMANDS[verb].params for o in p.opts}, verb


@pytest.mark.parametrize(("args", "valid"), [
    (["run", "recipe.yaml", "--executor", "slurm"], "local"),
    (["pretrain", "--data", "d", "--out", "o", "--arch", "rnn"], "decoder"),
    (["pretrain", "--data", "d", "--out", "o", "--model-size", "huge"], "mini"),
    (["pretrain", "--data", "d", "--out", "o", "--schedule", "step"], "cosine"),
    (["finetune", "--model", "m", "--train", "t", "--out", "o", "--task", "regression"], "sequence"),
    (["finetune", "--model", "m", "--train", "t", "--out", "o", "--pooling", "max"], "mean"),
    (["predict", "m", "-i", "x", "-o", "y", "--backend", "tf"], "onnx"),
    (["predict", "m", "-i", "x", "-o", "y", "--quantize", "int4"], "int8"),
    (["export", "m", "--format", "tflite", "--out", "o"], "onnx"),
    (["report", "runs/x", "--format", "pdf"], "md"),
    (["tokenizer", "train", "-i", "x", "-o", "y", "--kind", "sentencepiece"], "unigram"),
    (["quickstart", "--lang", "fr"], "zh"),
])
def test_a_bad_choice_is_refused_by_the_parser_with_the_valid_values(args: list[str], valid: str, tmp_path,
                                                                    monkeypatch) -> None:
    from typer.testing import CliRunner

    monkeypatch.chdir(tmp_path)  # were a choice not checked, the verb would start writing its relative paths here

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "Invalid value" in message and valid in message, message
    assert not list(tmp_path.iterdir())  # refused before any work


# ---------------------------------------------------------------- global flags and machine-readable results


def test_global_quiet_verbose_and_shell_completion() -> None:
    root = {o for p in typer.main.get_command(app).params for o in p.opts}
    assert {"-q", "--quiet", "-v", "--verbose", "--install-completion", "--show-completion"} <= root


def test_quiet_keeps_errors_and_verbose_adds_the_traceback(tmp_path) -> None:
    from typer.testing import CliRunner

    from gristmill import verbosity

    try:
        plain = CliRunner().invoke(app, ["report", str(tmp_path / "missing")])
        quiet = CliRunner().invoke(app, ["-q", "report", str(tmp_path / "missing")])
        loud = CliRunner().invoke(app, ["-v", "report", str(tmp_path / "missing")])
    finally:
        verbosity.set_level()
    for result in (plain, quiet, loud):
        assert result.exit_code == 2 and "no stats.json" in " ".join(result.stderr.split())
    assert "Traceback" not in plain.stderr and "Traceback" not in quiet.stderr
    assert "Traceback" in loud.stderr and "ReportError" in loud.stderr


def test_steps_json_is_one_object_on_stdout() -> None:
    import json

    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["steps", "--json"])
    assert result.exit_code == 0, result.output
    steps = json.loads(result.stdout)["steps"]
    assert steps["exact_dedup"]["description"] and "normalize" in steps["exact_dedup"]["parameters"]
    assert steps["gopher_quality"]["parameters"]["min_words"] == 50


def test_every_verb_is_in_the_readme_table() -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `gristmill ([a-z-]+(?: [a-z-]+)?)(?: [A-Z_]+)*` \|", readme, flags=re.MULTILINE)
    assert sorted(set(rows)) == sorted(COMMANDS), "README.md's command-line table and the app's verbs differ"

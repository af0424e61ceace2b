"""Helpers of the hostile-input tests: small corpora, recipes, and the command line in- and out-of-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from gristmill.cli import app

GOOD = "An ordinary document with enough words in it to pass every filter of the test recipe."
HERE = Path(__file__).parent


def write_jsonl(path: Path, records: list[dict], n_good: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    lines += [json.dumps({"id": f"{path.stem}-g{i}", "text": f"{GOOD} {i}"}) for i in range(n_good)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_recipe(path: Path, inputs: list[str] | str, out: Path | str, steps: str = "  - noop\n", extra: str = "") -> Path:
    paths = inputs if isinstance(inputs, list) else [inputs]
    path.write_text(f"input: {{paths: {json.dumps([str(p) for p in paths])}{extra}}}\nsteps:\n{steps}"
                    f"output: {{path: '{out}'}}\n", encoding="utf-8")
    return path


def invoke(*args: object) -> tuple[int, str]:
    """Run the command line in this process; (exit code, stdout + stderr)."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def gristmill(*args: object, cwd: Path | None = None, pythonpath: Path | None = None,
              timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m gristmill ARGS`` in a subprocess (as a user runs it); never a traceback."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = f"{pythonpath}{os.pathsep}{env.get('PYTHONPATH', '')}"
    proc = subprocess.run([sys.executable, "-m", "gristmill", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def one_line_error(output: str) -> str:
    """The error line of a failed command (and a check that it is one line, no traceback)."""
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]

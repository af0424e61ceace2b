"""Small real runs for the report tests: a generated corpus with hostile text, duplicates and PII."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gristmill.cli import app

HOSTILE = "<script>alert(1)</script>"
IMG = "</pre><img src=x onerror=alert(2)>"

GOOD = [
    "The package provides a library for parsing configuration files written in a simple format.",
    "This manual page documents the command line options of the backup tool and its exit codes.",
    "Write to the maintainer at someone@example.org if the service does not start after upgrading.",
    "She maintains the documentation and he reviews the patches; the woman and the man share the work.",
]


def write_corpus(path: Path, texts: list[str]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for i, text in enumerate(texts):
            f.write(json.dumps({"id": f"d{i:03d}", "text": text, "source": "web" if i % 2 else "docs"}) + "\n")
    return path


def write_recipe(path: Path, corpus: Path, out: Path, min_chars: int = 40) -> Path:
    path.write_text(f"""input:
  paths: [{corpus}]
  format: jsonl
steps:
  - length:
      min_chars: {min_chars}
  - pii
  - exact_dedup
output:
  path: {out}
""", encoding="utf-8")
    return path


def run(recipe: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(recipe), "--no-progress"])
    assert result.exit_code == 0, result.output


def default_texts() -> list[str]:
    # 3 copies of one document: a duplicate cluster of 3; two hostile documents are too short.
    return [*GOOD, GOOD[0], GOOD[0], HOSTILE, IMG, "tiny"] + [f"{g} Copy number {i} differs." for i, g in
                                                             enumerate(GOOD * 3)]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("report")
    out = work / "out"
    run(write_recipe(work / "recipe.yaml", write_corpus(work / "corpus.jsonl", default_texts()), out))
    return out

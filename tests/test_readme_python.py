"""The README's "From Python" examples run as written (outputs redirected to a temporary folder)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# slow: cleans the sample, pretrains and fine-tunes; `pytest -m "not slow"` is the fast tier
pytestmark = pytest.mark.slow


def readme_python_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## From Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_has_an_example_per_stage():
    stages = [block.splitlines()[0] for block in readme_python_blocks()]
    assert len(stages) == 5, stages
    for word, stage in zip(["Clean", "tokenizer", "Pretrain", "Fine-tune", "Predict"], stages):
        assert word in stage, stage


def test_readme_python_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the examples name recipes/ and sample/ from the repository root
    namespace: dict[str, object] = {}
    for block in readme_python_blocks():
        exec(compile(block.replace("runs/python", str(tmp_path)), "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert re.search(r"kept [\d,]+ of [\d,]+", out)
    assert re.search(r"test accuracy 0\.\d{3}", out)
    assert (tmp_path / "ft" / "model.safetensors").is_file()
    label, score = out.strip().splitlines()[-1].split()
    assert 0.0 < float(score) <= 1.0 and label in namespace["task"].spec.labels

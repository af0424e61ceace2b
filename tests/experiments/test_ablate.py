"""`gristmill ablate` end to end on a tiny spec: outputs, kill -9 and resume, reproducible cells."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gristmill.experiments.ablate import Cell, plan_cells
from gristmill.experiments.spec import budget_name, parse_spec
from tests.sample import write_sample_head

ROOT = Path(__file__).resolve().parents[2]


def tiny_spec(tmp_path: Path) -> Path:
    corpus = write_sample_head(tmp_path / "corpus.jsonl", 240)
    task = ROOT / "sample" / "task"
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"""
corpus: {{paths: [{corpus}]}}
variants:
  raw: []
  long: [{{gopher_quality: {{min_words: 80}}}}]
heldout: {{fraction: 0.1, max_sequences: 16}}
tokenizer: {{vocab_size: 200}}
pretrain: {{model_size: tiny, tokens: [1k], seeds: [0, 1], batch_size: 4, seq_len: 32}}
task: {{train: {task / 'train.jsonl'}, dev: {task / 'dev.jsonl'}, test: {task / 'test.jsonl'}, per_class: [2],
        seeds: [0], dev_per_class: 2, finetune: {{min_steps: 2, min_epochs: 1, max_epochs: 1}}}}
""")
    return spec


def ablate(spec: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "gristmill", "ablate", str(spec), "--out", str(out), "--threads", "1",
                             "--no-progress", *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)


def test_plan_and_names(tmp_path: Path) -> None:
    spec = parse_spec(tiny_spec(tmp_path).read_text(), "s")
    assert [c.label() for c in plan_cells(spec)] == ["raw @ 1k tokens, seed 0", "long @ 1k tokens, seed 0",
                                                     "raw @ 1k tokens, seed 1", "long @ 1k tokens, seed 1"]
    assert [budget_name(t) for t in (500_000, 2_000_000, 1_500_000, 1234)] == ["500k", "2M", "1.5M", "1234"]


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_kill_9_resume_and_reproducible_cells(tmp_path: Path) -> None:
    spec, out = tiny_spec(tmp_path), tmp_path / "abl"
    first = out / "cells" / "raw" / "1k" / "seed0" / "cell.json"
    proc = ablate(spec, out)
    deadline = time.time() + 900
    while not first.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert first.is_file(), proc.communicate()[0] if proc.poll() is not None else "no cell finished in time"
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9, mid-way through the next cell (or the report)
    proc.wait()
    before = (first.read_text(), first.stat().st_mtime_ns)

    again = ablate(spec, out)
    log = again.communicate(timeout=900)[0]
    assert again.returncode == 2 and "pass --resume" in log  # never overwrites silently
    resumed = ablate(spec, out, "--resume")
    log = resumed.communicate(timeout=900)[0]
    assert resumed.returncode == 0, log
    assert "1 already done" in log or "2 already done" in log
    assert (first.read_text(), first.stat().st_mtime_ns) == before  # the finished cell was not redone
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {(r["variant"], r["pretrain_seed"]) for r in rows if r["init"] == "pretrained"} == \
        {("raw", 0), ("long", 0), ("raw", 1), ("long", 1)}
    assert any(r["variant"] == "scratch" for r in rows)
    long_cell = next(r for r in rows if r["variant"] == "long")
    assert long_cell["epochs"] > 0 and long_cell["steps"] == 8  # 1k tokens / (4 x 32)
    summary = (out / "summary.md").read_text()
    assert "Held-out masked-LM loss" in summary and "Differences against `raw`" in summary
    assert (out / "ablation.png").stat().st_size > 1000
    for folder in ("split/kept", "heldout/tokens", "variants/long/corpus/kept", "variants/long/tokens", "tokenizer",
                   "cells/long/1k/seed1/run", "cells/long/1k/seed1/curve", "scratch"):
        assert (out / folder).exists(), folder

    # Reproducible from the seeds: a cell redone from nothing gives the same numbers.
    cell = Cell("long", 1000, 1).folder(out)
    old = json.loads((cell / "cell.json").read_text())
    import shutil

    shutil.rmtree(cell)
    redo = ablate(spec, out, "--resume")
    log = redo.communicate(timeout=900)[0]
    assert redo.returncode == 0, log
    new = json.loads((cell / "cell.json").read_text())
    for key in ("heldout_loss", "heldout_accuracy", "steps", "epochs"):
        assert new["pretrain"][key] == old["pretrain"][key], key
    assert [(r["test_accuracy"], r["test_macro_f1"]) for r in new["rows"]] == \
        [(r["test_accuracy"], r["test_macro_f1"]) for r in old["rows"]]

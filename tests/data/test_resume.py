"""A run killed with SIGKILL half way resumes to exactly the output of an uninterrupted run."""

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gristmill.data.readers.output import read_documents

HERE = Path(__file__).parent


def _write_corpus(path: Path, n: int) -> None:
    with gzip.open(path, "wt") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"doc{i}", "text": f"document {i} " + "word " * (i % 30)}) + "\n")
        f.write("{not json}\n")


def _recipe(tmp: Path, corpus: Path, out: Path) -> Path:
    recipe = tmp / f"{out.name}.yaml"
    recipe.write_text(
        f"input: {{paths: ['{corpus}'], shard_size: 500}}\n"
        "steps:\n  - length: {min_chars: 15}\n  - step_fixtures:Sleepy: {seconds: 0.001}\n"
        f"output: {{path: '{out}'}}\n"
    )
    return recipe


def _run(recipe: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen([sys.executable, "-m", "gristmill", "run", str(recipe), "--workers", "2", "--no-progress", *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _outcome(out: Path) -> tuple[list[str], list[tuple[str, str]]]:
    kept = sorted(d.id for d in read_documents(out / "kept"))
    rejected = sorted((d.id, d.reason) for d in read_documents(out / "rejected"))
    return kept, rejected


@pytest.mark.slow
def test_kill_and_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl.gz"
    _write_corpus(corpus, 6000)
    killed = tmp_path / "killed"
    proc = _run(_recipe(tmp_path, corpus, killed))
    done = killed / "_work" / "stage1" / "done"
    deadline = time.time() + 60
    while time.time() < deadline and (not done.exists() or len(list(done.iterdir())) < 3):
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; make the corpus larger"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    n_done = len(list(done.iterdir()))
    assert 0 < n_done < 13
    assert not (killed / "stats.json").exists()

    resumed = _run(_recipe(tmp_path, corpus, killed), "--resume")
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 3, err  # the bad JSON line is quarantined
    straight = tmp_path / "straight"
    ref = _run(_recipe(tmp_path, corpus, straight))
    ref.communicate(timeout=120)

    kept, rejected = _outcome(killed)
    assert (kept, rejected) == _outcome(straight)
    assert len(kept) == len(set(kept))
    assert len(kept) + len(rejected) == 6001
    stats = json.loads((killed / "stats.json").read_text())
    assert stats["totals"]["docs_in"] == 6001 == stats["totals"]["kept"] + stats["totals"]["rejected"]


def test_existing_output_needs_resume_or_overwrite(tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl.gz"
    _write_corpus(corpus, 10)
    out = tmp_path / "o"
    recipe = _recipe(tmp_path, corpus, out)
    assert _run(recipe).wait(60) == 3
    again = _run(recipe)
    _, err = again.communicate(timeout=60)
    assert again.returncode == 2 and "--resume" in err and "Traceback" not in err

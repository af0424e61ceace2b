"""The quickstart, end to end in a subprocess (shortened setting): every artefact exists and is usable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gristmill.data.run import count_documents

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quickstart_fast_runs_the_whole_path(tmp_path):
    out = tmp_path / "qs"
    env = {**os.environ, "COLUMNS": "300"}  # so that printed paths are not wrapped
    # One thread: on a machine shared with other jobs, PyTorch's threads spin-waiting for each other's
    # cores make tiny models many times slower. Own session, so a timeout can stop the whole tree.
    proc = subprocess.Popen([sys.executable, "-m", "gristmill", "quickstart", "--fast", "--threads", "1",
                             "--out", str(out)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=540)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"the fast quickstart took more than 9 minutes:\n{output[-4000:]}")
    assert proc.returncode == 0, output[-4000:]

    summary = json.loads((out / "summary.json").read_text())
    assert summary["setting"] == "fast"
    for key in ("clean", "tokenizer", "tokens", "pretrain", "ft-pretrained", "ft-scratch", "predictions", "curve"):
        assert Path(summary["artefacts"][key]).exists(), key
        assert summary["artefacts"][key] in output  # the path is printed

    # Cleaning accounted for every sample document, and kept some for the tokenizer and pretraining.
    kept, rejected = count_documents(out / "clean" / "kept"), count_documents(out / "clean" / "rejected")
    assert kept + rejected == 3356 and kept > 1000

    assert (out / "pretrain" / "model.safetensors").is_file()
    for picture in ("pretrain/loss.png", "ft-pretrained/curves.png", "ft-pretrained/confusion.png", "curve/curve.png",
                    "clean/report.html", "clean/README.md"):
        assert (out / picture).is_file(), picture
    assert (out / "tokenizer" / "tokenizer.json").is_file()
    for init in ("pretrained", "scratch"):
        metrics = json.loads((out / f"ft-{init}" / "metrics.json").read_text())
        assert metrics["init"] == init and metrics["train_examples"] == 360
        assert metrics["test"]["examples"] == 240
        assert summary["results"][init]["test_accuracy"] == metrics["test"]["accuracy"]
    baseline = summary["results"]["tfidf-logreg"]  # the baseline sits in the same table
    assert baseline["train_examples"] == 360 and 0.0 <= baseline["test_accuracy"] <= 1.0
    assert "TF-IDF + logistic regression" in output

    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 240
    assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-3 for p in predictions)

    assert "pretrained vs scratch" in output and "test accuracy" in output

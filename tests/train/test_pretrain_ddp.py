"""Distributed data parallel: 2 CPU processes under torchrun (gloo) match 1 process with the same global batch,
and a checkpoint written by 2 processes resumes on 1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gristmill.train.metrics import read_metrics
from gristmill.train.pretrain import PretrainConfig, pretrain

# slow: trains, starts processes or a browser; `pytest -m "not slow"` is the fast tier (README, Development)
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]

ARGS = dict(steps=6, batch_size=8, lr=2e-3, warmup=2, log_every=1, eval_every=3, eval_batches=2, save_every=3,
            keep=5, dropout=0.0)


def rows(run: Path, kind: str) -> dict[int, dict]:
    found = [r for r in read_metrics(run) if r["kind"] == kind]
    assert len({r["step"] for r in found}) == len(found), "a step was logged twice (more than one writer?)"
    return {r["step"]: r for r in found}


def assert_same_training(a: Path, b: Path, steps: range) -> None:
    ta, tb, ea, eb = rows(a, "train"), rows(b, "train"), rows(a, "eval"), rows(b, "eval")
    for step in steps:
        assert tb[step]["loss"] == pytest.approx(ta[step]["loss"], rel=1e-5), step
        assert tb[step]["grad_norm"] == pytest.approx(ta[step]["grad_norm"], rel=1e-4), step
    for step in ea:
        if step in steps:
            assert eb[step]["loss"] == pytest.approx(ea[step]["loss"], rel=1e-5)
            assert eb[step]["masked_tokens"] == ea[step]["masked_tokens"]
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    for name in wa:
        torch.testing.assert_close(wb[name], wa[name], rtol=1e-4, atol=1e-5)


@pytest.mark.timeout(300)
def test_two_processes_match_one_and_resume_on_one(pretrain_tokens, pretrain_model_config, tmp_path):
    single = tmp_path / "single"
    pretrain(PretrainConfig(data=str(pretrain_tokens), out=str(single), config_file=str(pretrain_model_config),
                            progress=False, tensorboard=False, **ARGS))

    double = tmp_path / "double"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "gristmill", "pretrain", "--data", str(pretrain_tokens), "--out", str(double),
           "--config", str(pretrain_model_config), "--no-progress"]
    for key, value in ARGS.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = json.loads((double / "checkpoints" / "step-0000006" / "state.json").read_text())
    assert state["world_size"] == 2 and state["sequences_consumed"] == 6 * 8
    assert not list((double / "checkpoints").glob(".*")), "a temporary checkpoint folder was left behind"
    assert_same_training(single, double, range(1, 7))

    # A checkpoint of the 2-process run (step 3) continues on 1 process as if nothing had changed.
    moved = tmp_path / "moved"
    shutil.copytree(double, moved)
    shutil.rmtree(moved / "checkpoints" / "step-0000006")
    (moved / "model.safetensors").unlink()
    pretrain(PretrainConfig(data=str(pretrain_tokens), out=str(moved), config_file=str(pretrain_model_config),
                            resume=True, progress=False, tensorboard=False, **ARGS))
    assert_same_training(single, moved, range(4, 7))
    resumed = [r for r in read_metrics(moved) if r["kind"] == "resumed"]
    assert resumed[-1]["step"] == 3 and resumed[-1]["world_size"] == 1

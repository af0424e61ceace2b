"""Fixtures for the inference tests: one tiny fine-tuned classifier for the whole session.

The model is really trained (from scratch, a few hundred steps of the fine-tuning loop on the bundled
six-class fortune task) so that accuracies mean something, but it is small enough to build in seconds:
a WordPiece tokenizer trained on the task's texts and a 2-layer, 64-wide encoder.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "sample" / "task"


def tiny_tokenizer(out: Path) -> int:
    """gristmill's WordPiece tokenizer trained on the task's training texts; returns its vocabulary size."""
    from gristmill.tokenizer.tokdir import load_tokenizer
    from gristmill.tokenizer.train import train_tokenizer

    train_tokenizer(TASK / "train.jsonl", out, vocab_size=1500, show_progress=False, model_max_length=128)
    return load_tokenizer(out).get_vocab_size()


def build_tiny_mlm_run(work: Path) -> Path:
    """A RUN folder (config, tokenizer, MaskedLM weights) as pretraining writes it; the weights are random."""
    import torch

    from gristmill.model.config import ModelConfig
    from gristmill.model.transformer import MaskedLM
    from gristmill.train.checkpoint import save_run_weights

    run = work / "mlm"
    vocab = tiny_tokenizer(run / "tokenizer")
    config = ModelConfig(vocab_size=vocab, hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128,
                         max_position=128)
    config.to_json(run / "config.json")
    torch.manual_seed(0)
    save_run_weights(MaskedLM(config), run / "model.safetensors")
    return run


def build_tiny_finetuned(work: Path, epochs: int = 12, max_length: int = 64) -> Path:
    """RUN (config + tokenizer) -> `finetune(from_scratch=True)` -> FT, with the real fine-tuning code."""
    from gristmill.model.config import ModelConfig
    from gristmill.train.finetune import FineTuneConfig, finetune
    from gristmill.train.tasks import load_task

    run = work / "run"
    vocab = tiny_tokenizer(run / "tokenizer")
    ModelConfig(vocab_size=vocab, hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128,
                max_position=128, dropout=0.1, attention_dropout=0.0).to_json(run / "config.json")
    data = load_task(TASK / "train.jsonl", TASK / "dev.jsonl", TASK / "test.jsonl", max_length=max_length)
    cfg = FineTuneConfig(lr=1e-3, batch_size=16, epochs=epochs, patience=100)
    finetune(run, data, cfg, out=work / "ft", from_scratch=True, seed=0)
    return work / "ft"


THREADS = 1
"""CPU threads for torch and onnxruntime in these tests: the CI machine has 2 shared cores, and two spinning
threads contending with other processes ran the fixture's training 10x slower than one."""


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> None:
    import torch

    torch.set_num_threads(THREADS)


@pytest.fixture(scope="session")
def tiny_ft(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_finetuned(tmp_path_factory.mktemp("tiny_ft"))


@pytest.fixture(scope="session")
def tiny_onnx(tiny_ft: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gristmill.serve.onnx import export_onnx

    out = tmp_path_factory.mktemp("tiny_onnx")
    export_onnx(tiny_ft, out, quantize="int8", eval_file=TASK / "test.jsonl", torch_int8=True, threads=THREADS)
    return out


@pytest.fixture(scope="session")
def tiny_mlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_mlm_run(tmp_path_factory.mktemp("tiny_mlm"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def task_test_split(n: int | None = None) -> tuple[list[str], list[str]]:
    """Texts and labels of the first ``n`` lines (all by default) of the bundled task's test split."""
    rows = [json.loads(line) for line in (TASK / "test.jsonl").read_text().splitlines() if line.strip()]
    rows = rows[:n] if n else rows
    return [r["text"] for r in rows], [r["label"] for r in rows]

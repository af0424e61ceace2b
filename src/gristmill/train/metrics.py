"""What a training run reports: ``RUN/metrics.jsonl``, TensorBoard events, the loss PNG (drawn by ``pictures``).

``metrics.jsonl`` has one JSON object per logging step. Training rows: ``kind="train"``, step, tokens,
loss, lr, grad_norm, tokens_per_s, elapsed_s. Evaluation rows: ``kind="eval"``, step, tokens, loss,
accuracy (masked tokens), perplexity, elapsed_s. A stopped run adds ``kind="stopped"`` with the reason.
TensorBoard logs go to ``RUN/tensorboard`` when the ``tensorboard`` package is installed (the
``tensorboard`` extra, part of ``dev``); without it the run says so once and records ``"tensorboard": false``
in ``train.json``. This module writes and plots; it does not compute anything the loop needs.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

from gristmill import folders
from gristmill.data.storage import atomic_write_text
from gristmill.folders import RunFolder
from gristmill.model.config import is_decoder_run
from gristmill.train.pictures import plot_pretraining

METRICS_FILE = folders.METRICS_LOG


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
    return rows


def truncate_metrics(run_dir: Path, after_step: int) -> None:
    """Drop rows past ``after_step``: a resumed run redoes those steps and logs them again."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return
    kept = [row for row in read_metrics(run_dir) if int(row.get("step", 0)) <= after_step]
    atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in kept))


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


TENSORBOARD_MISSING = ('tensorboard is not installed: metrics go to metrics.jsonl and loss.png only '
                       '(pip install "gristmill[tensorboard]")')


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf; write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLog:
    """Appends rows to metrics.jsonl and mirrors numbers to TensorBoard. Only rank 0 creates one."""

    def __init__(self, run_dir: Path, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.file = open(self.run_dir / METRICS_FILE, "a", encoding="utf-8")  # noqa: SIM115 (lives with the run)
        self.tb = None
        if tensorboard:  # the caller has checked tensorboard_available(): a failure here is a bug
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))

    def log(self, row: dict[str, Any]) -> None:
        clean = {k: _finite(v) for k, v in row.items()}
        self.file.write(json.dumps(clean) + "\n")
        self.file.flush()
        if self.tb is not None:
            kind, step = row.get("kind", "train"), int(row.get("step", 0))
            for key, value in row.items():
                if key not in ("kind", "step") and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.tb.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def plot_loss(run_dir: Path, out: Path | None = None) -> Path | None:
    """Draw loss, learning rate and masked accuracy against steps into RUN/loss.png (see ``pictures``)."""
    run = Path(run_dir)
    try:
        setup = folders.read_record(RunFolder(run).train_record)
    except (OSError, json.JSONDecodeError):
        setup = {}
    size = setup.get("model_size") if not setup.get("config_file") else Path(setup["config_file"]).stem
    budget = f" ({size or 'custom'} encoder, {setup['steps']:,} steps of {setup['batch_size']} sequences)" \
        if setup.get("steps") and setup.get("batch_size") else ""
    objective = "causal-LM" if is_decoder_run(run) else "MLM"
    title = f"{objective} pretraining: {run.resolve().name}{budget}"
    return plot_pretraining(read_metrics(run), out or run / "loss.png", title)

"""What a training run reports: ``RUN/metrics.jsonl``, TensorBoard events, the loss PNG, the progress bar.

``metrics.jsonl`` has one JSON object per logging step. Training rows: ``kind="train"``, step, tokens,
loss, lr, grad_norm, tokens_per_s, elapsed_s. Evaluation rows: ``kind="eval"``, step, tokens, loss,
accuracy (masked tokens), perplexity, elapsed_s. A stopped run adds ``kind="stopped"`` with the reason.
TensorBoard logs go to ``RUN/tensorboard`` when the ``tensorboard`` package is installed. This module
writes and plots; it does not compute anything the loop needs.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


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
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in kept), encoding="utf-8")
    os.replace(tmp, path)


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
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                self.tb = None
            else:
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
    """Draw training and validation loss against steps (and tokens on the top axis) into RUN/loss.png."""
    rows = read_metrics(run_dir)
    train = [r for r in rows if r.get("kind") == "train" and r.get("loss") is not None]
    evals = [r for r in rows if r.get("kind") == "eval" and r.get("loss") is not None]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = out or Path(run_dir) / "loss.png"
    from gristmill.model.config import is_decoder_run

    objective = "causal LM" if is_decoder_run(run_dir) else "MLM"
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    if train:
        ax.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1, alpha=0.8, label=f"train ({objective} loss)")
    if evals:
        ax.plot([r["step"] for r in evals], [r["loss"] for r in evals], "o-", ms=4, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("next-token cross-entropy" if objective == "causal LM" else "masked-LM cross-entropy")
    ax.grid(alpha=0.3)
    ax.legend()
    tokens_per_step = [r["tokens"] / r["step"] for r in train + evals if r.get("step") and r.get("tokens")]
    if tokens_per_step:
        ratio = tokens_per_step[-1]
        top = ax.secondary_xaxis("top", functions=(lambda s: s * ratio / 1e6, lambda t: t * 1e6 / ratio))
        top.set_xlabel("tokens (millions)")
    fig.tight_layout()
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, out)
    return out

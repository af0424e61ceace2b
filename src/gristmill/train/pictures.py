"""Training pictures: ``RUN/loss.png`` for pretraining, ``FT/curves.png`` and ``FT/confusion.png`` for fine-tuning.

Each function reads rows the loop already logged (``metrics.jsonl`` rows, the fine-tuning history,
the confusion matrix of ``metrics.json``) and writes one PNG atomically; none computes anything the
training needs, and a run without matplotlib's optional fonts still gets its numbers in JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gristmill.data.storage import atomic_write

if TYPE_CHECKING:
    from types import ModuleType

    from matplotlib.figure import Figure


def _pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Figure, out: Path) -> Path:
    plt = _pyplot()
    out = Path(out)
    fig.tight_layout()
    atomic_write(out, lambda f: fig.savefig(f, format="png"))  # a file object has no suffix to name the format
    plt.close(fig)
    return out


def plot_pretraining(rows: Sequence[dict[str, Any]], out: Path, title: str) -> Path | None:
    """Loss (train and validation), learning rate and masked-token accuracy against steps, in three panels.

    The step axis is logarithmic, so the first logged steps (where the loss falls fastest) are not
    squeezed against the left edge; the top axis gives tokens seen.
    """
    train = [r for r in rows if r.get("kind") == "train" and r.get("loss") is not None]
    evals = [r for r in rows if r.get("kind") == "eval" and r.get("loss") is not None]
    if not train and not evals:
        return None
    plt = _pyplot()
    fig, (ax_loss, ax_lr, ax_acc) = plt.subplots(3, 1, figsize=(7.5, 8), dpi=110, sharex=True,
                                                  gridspec_kw={"height_ratios": [2.2, 1, 1]})
    if train:
        ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1.2, marker=".", ms=3,
                     label="train (mean over the logging window)")
        first = train[0]
        ax_loss.annotate(f"first logged: {first['loss']:.2f} at step {first['step']}", (first["step"], first["loss"]),
                         textcoords="offset points", xytext=(8, -2), fontsize=8)
    if evals:
        ax_loss.plot([r["step"] for r in evals], [r["loss"] for r in evals], "o-", ms=4, label="validation")
    ax_loss.set_ylabel("masked-LM loss (nats)")
    ax_loss.legend(fontsize=8)
    lr_rows = [r for r in train if r.get("lr") is not None]
    if lr_rows:
        ax_lr.plot([r["step"] for r in lr_rows], [r["lr"] for r in lr_rows], color="tab:green")
    ax_lr.set_ylabel("learning rate")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    acc_rows = [r for r in evals if r.get("accuracy") is not None]
    if acc_rows:
        ax_acc.plot([r["step"] for r in acc_rows], [100 * r["accuracy"] for r in acc_rows], "o-", ms=4,
                    color="tab:orange")
    else:
        ax_acc.text(0.5, 0.5, "no validation split: no accuracy", transform=ax_acc.transAxes, ha="center", fontsize=9)
    ax_acc.set_ylabel("masked-token\naccuracy (%)")
    ax_acc.set_xlabel("optimizer step (log scale)")
    for ax in (ax_loss, ax_lr, ax_acc):
        ax.set_xscale("log")
        ax.grid(alpha=0.3, which="both")
    tokens_per_step = [r["tokens"] / r["step"] for r in train + evals if r.get("step") and r.get("tokens")]
    if tokens_per_step:
        ratio = tokens_per_step[-1]
        top = ax_loss.secondary_xaxis("top", functions=(lambda s: s * ratio / 1e6, lambda t: t * 1e6 / ratio))
        top.set_xlabel("tokens seen (millions)", fontsize=9)
    ax_loss.set_title(title, fontsize=11)
    return _save(fig, out)


def plot_finetune_curves(history: Sequence[dict[str, Any]], out: Path, title: str) -> Path | None:
    """Train and dev loss, and dev accuracy, per evaluation of a fine-tuning run."""
    if not history:
        return None
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    steps = [h["step"] for h in history]
    ax_loss.plot(steps, [h["train_loss"] for h in history], "o-", ms=4, label="train (mean since last evaluation)")
    dev = [h for h in history if h.get("dev_loss") is not None]
    if dev:
        ax_loss.plot([h["step"] for h in dev], [h["dev_loss"] for h in dev], "s-", ms=4, label="dev")
        ax_acc.plot([h["step"] for h in dev], [100 * h["dev_accuracy"] for h in dev], "o-", ms=4, color="tab:orange",
                    label="dev accuracy")
        if any(h.get("dev_macro_f1") is not None for h in dev):
            ax_acc.plot([h["step"] for h in dev], [100 * h["dev_macro_f1"] for h in dev], "^--", ms=4,
                        color="tab:purple", label="dev macro-F1")
        ax_acc.legend(fontsize=8)
    else:
        ax_acc.text(0.5, 0.5, "no dev set: no accuracy", transform=ax_acc.transAxes, ha="center")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("cross-entropy loss (nats)")
    ax_loss.set_title("loss", fontsize=10)
    ax_loss.legend(fontsize=8)
    ax_acc.set_xlabel("step")
    ax_acc.set_ylabel("dev score (%)")
    ax_acc.set_title("dev accuracy", fontsize=10)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=11)
    return _save(fig, out)


def plot_confusion(confusion: dict[str, Any], out: Path, title: str) -> Path | None:
    """The confusion matrix (rows: true label, columns: predicted), counts and row shares in each cell."""
    labels = [str(x) for x in confusion.get("labels", [])]
    matrix = confusion.get("matrix") or []
    if not labels or not matrix:
        return None
    import numpy as np

    plt = _pyplot()
    counts = np.array(matrix, dtype=float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.5, 0.7 * len(labels) + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1, size), dpi=110)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    if len(labels) <= 20:
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, f"{int(counts[i, j])}\n{100 * shares[i, j]:.0f}%", ha="center", va="center", fontsize=7,
                        color="white" if shares[i, j] > 0.6 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true label's examples")
    ax.set_title(title, fontsize=10)
    return _save(fig, out)

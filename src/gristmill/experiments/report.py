"""The ablation's outputs: ``results.jsonl``, ``summary.json``, ``summary.md`` and ``ablation.png``.

Written from the result rows alone (plus the spec and phase timings), so they can be rebuilt at
any point of a running or resumed ablation. Means are over seeds; intervals are bootstrap 95%
intervals (:mod:`.pairing`); differences are paired by seed against the baseline variant.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gristmill.data.storage import atomic_write_text
from gristmill.experiments.pairing import Difference, bootstrap_interval, paired_differences
from gristmill.experiments.spec import AblationSpec, budget_name


def _mean_sd(values: Sequence[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.4f} ± {sd:.4f} (n={len(values)})"


ROUGH_BELOW = 5
"""With fewer pairs than this the bootstrap interval is flagged as rough."""


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def differences(spec: AblationSpec, rows: Sequence[dict[str, Any]]) -> list[Difference]:
    pretrained = [r for r in rows if r["init"] == "pretrained"]
    # Held-out loss is one number per pretraining run: take it once per (variant, budget, seed).
    per_run = list({(r["variant"], r["tokens"], r["pretrain_seed"]): r for r in pretrained}.values())
    out = paired_differences(per_run, spec.baseline, "heldout_loss", ("tokens", "pretrain_seed"), ("tokens",))
    for metric in ("test_accuracy", "test_macro_f1"):
        out += paired_differences(pretrained, spec.baseline, metric,
                                  ("tokens", "pretrain_seed", "per_class", "task_seed"), ("tokens", "per_class"))
    return out


def _interval_words(d: Difference, scale: float, unit: str) -> str:
    if d.low is None or d.high is None:
        return f"{scale * d.mean:+.2f}{unit} (one pair: no interval)"
    verdict = "includes zero: no clear difference" if d.includes_zero else (
        "better than baseline" if (d.mean < 0) == (d.metric == "heldout_loss") else "worse than baseline")
    if d.pairs < ROUGH_BELOW:
        # Resampling 2-4 pairs can only return means of those pairs: the interval is their range, not 95%.
        verdict += f" (only {d.pairs} pairs: a rough interval)"
    return f"{scale * d.mean:+.2f}{unit} [{scale * d.low:+.2f}, {scale * d.high:+.2f}], {verdict}"


def markdown(spec: AblationSpec, rows: Sequence[dict[str, Any]], phases: dict[str, Any],
             context: dict[str, Any]) -> str:
    variants = [v.name for v in spec.variants]
    budgets = sorted({r["tokens"] for r in rows if r["init"] == "pretrained"})
    pretrained = [r for r in rows if r["init"] == "pretrained"]
    per_run = list({(r["variant"], r["tokens"], r["pretrain_seed"]): r for r in pretrained}.values())
    lines = [f"# Ablation: {spec.path}", ""]
    lines += ["Every variant is pretrained for the same number of tokens, with one tokenizer "
              f"(trained on {spec.tokenizer_train_on}), the `{spec.model_size}` model, the same schedule and seeds. "
              f"Held-out loss is the masked-LM loss on the same held-out text for every variant "
              f"({context.get('heldout_sequences', '?')} sequences of {spec.seq_len} tokens; a share "
              f"{spec.heldout_fraction:g} of the raw documents, by text hash, cleaned with `{spec.heldout_clean_with}`, "
              "excluded from every variant). Differences are against the baseline "
              f"`{spec.baseline}`, paired by seed, with bootstrap 95% intervals.", ""]
    lines += ["## Variants", "", "| variant | steps | documents kept | tokens | epochs at each budget |", "|---|---|---|---|---|"]
    for v in spec.variants:
        kept = context.get("corpus", {}).get(v.name, {}).get("kept")
        toks = context.get("manifests", {}).get(v.name, {}).get("tokens")
        epochs = ", ".join(f"{budget_name(r['tokens'])}: {r['epochs']:.3g}" for r in per_run
                           if r["variant"] == v.name and r["pretrain_seed"] == spec.pretrain_seeds[0])
        steps = ", ".join(n for n, _ in v.steps) or "(none)"
        lines.append(f"| {v.name} | {steps} | {_count(kept)} | {_count(toks)} | {epochs or '-'} |")
    lines += ["", "## Held-out masked-LM loss (lower is better)", "",
              "| variant | " + " | ".join(budget_name(b) for b in budgets) + " |", "|---" * (len(budgets) + 1) + "|"]
    for name in variants:
        cells = [_mean_sd([r["heldout_loss"] for r in per_run if r["variant"] == name and r["tokens"] == b])
                 for b in budgets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    sizes = list(dict.fromkeys(r["per_class"] for r in pretrained))
    for metric, title in (("test_accuracy", "Test accuracy"), ("test_macro_f1", "Test macro-F1")):
        lines += ["", f"## {title} (mean ± sd over pretraining x task seeds)", "",
                  "| variant | labels per class | " + " | ".join(budget_name(b) for b in budgets) + " |",
                  "|---|---" + "|---" * len(budgets) + "|"]
        for size in sizes:
            for name in variants:
                cells = [_mean_sd([r[metric] for r in pretrained if r["variant"] == name and r["tokens"] == b
                                   and r["per_class"] == size]) for b in budgets]
                lines.append(f"| {name} | {size} | " + " | ".join(cells) + " |")
            scratch = [r[metric] for r in rows if r["init"] == "scratch" and r["per_class"] == size]
            if scratch:
                lines.append(f"| (random encoder) | {size} | " + " | ".join([_mean_sd(scratch)] * len(budgets)) + " |")
    diffs = differences(spec, rows)
    lines += ["", f"## Differences against `{spec.baseline}` (paired by seed, bootstrap 95% interval)", "",
              "| variant | measure | budget | labels per class | pairs | difference [95% interval] |",
              "|---|---|---|---|---|---|"]
    for d in diffs:
        scale, unit = (1.0, "") if d.metric == "heldout_loss" else (100.0, " points")
        lines.append(f"| {d.variant} | {d.metric} | {budget_name(d.group['tokens'])} | {d.group.get('per_class', '')} | "
                     f"{d.pairs} | {_interval_words(d, scale, unit)} |")
    if not diffs:
        lines.append("| (no complete pairs yet) | | | | | |")
    lines += ["", "## Cost of each phase", "", "| phase | runs | wall-clock s | CPU s |", "|---|---|---|---|"]
    for name, p in phases.items():
        lines.append(f"| {name} | {p['count']} | {p['wall_s']:.1f} | {p['cpu_s']:.1f} |")
    return "\n".join(lines) + "\n"


def plot(spec: AblationSpec, rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Held-out loss and downstream accuracy (one panel per label count) against pretraining tokens."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pretrained = [r for r in rows if r["init"] == "pretrained"]
    per_run = list({(r["variant"], r["tokens"], r["pretrain_seed"]): r for r in pretrained}.values())
    sizes = list(dict.fromkeys(r["per_class"] for r in pretrained))[:3]
    fig, axes = plt.subplots(1, 1 + len(sizes), figsize=(4.6 * (1 + len(sizes)), 4.0), dpi=110, squeeze=False)
    panels = [("heldout_loss", per_run, None, "held-out masked-LM loss")] + \
             [("test_accuracy", pretrained, s, f"test accuracy, {s} labels per class") for s in sizes]
    for ax, (metric, source, size, title) in zip(axes[0], panels, strict=True):
        for i, v in enumerate(spec.variants):
            pts = sorted({r["tokens"] for r in source if r["variant"] == v.name})
            means, lows, highs = [], [], []
            for t in pts:
                values = [r[metric] for r in source if r["variant"] == v.name and r["tokens"] == t
                          and (size is None or r["per_class"] == size)]
                lo, hi = bootstrap_interval(values)
                m = statistics.fmean(values)
                means.append(m)
                lows.append(m if lo is None else lo)
                highs.append(m if hi is None else hi)
            if not pts:
                continue
            color = f"C{i}"
            ax.plot(pts, means, marker="o", color=color, label=v.name)
            ax.fill_between(pts, lows, highs, color=color, alpha=0.15)
        if size is not None:
            scratch = [r["test_accuracy"] for r in rows if r["init"] == "scratch" and r["per_class"] == size]
            if scratch:
                ax.axhline(statistics.fmean(scratch), color="grey", ls="--", lw=1, label="random encoder")
        ax.set_xscale("log")
        ax.set_xlabel("pretraining tokens")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"ablation ({spec.model_size} model; bands: bootstrap 95% interval over seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write(spec: AblationSpec, abl: Path, rows: Sequence[dict[str, Any]], phases: dict[str, Any],
          context: dict[str, Any]) -> None:
    atomic_write_text(abl / "results.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    summary = {"baseline": spec.baseline, "differences": [d.to_json() for d in differences(spec, rows)],
               "phases": phases, **context}
    atomic_write_text(abl / "summary.json", json.dumps(summary, indent=2, default=str))
    atomic_write_text(abl / "summary.md", markdown(spec, rows, phases, context))
    if any(r["init"] == "pretrained" for r in rows):
        plot(spec, rows, abl / "ablation.png")

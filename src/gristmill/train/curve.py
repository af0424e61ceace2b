"""Learning curves: what pretraining buys at each number of labels per class.

For each ``--per-class`` value and each seed, fine-tune once from the pretrained encoder and once
from a random one (same architecture, same seed, same sample, same budget), fit the TF-IDF + logistic
regression baseline (``train.baseline``) on the same sample, and record test accuracy and macro-F1.
Output folder ``CURVE/``::

    CURVE/setup.json    the model, data and budget the runs used (a resumed curve must match it)
    CURVE/runs.jsonl    one line per finished run; a killed curve resumes from here
    CURVE/curve.json    mean, standard deviation, min and max per (labels per class, init), and the
                        paired difference pretrained - scratch
    CURVE/curve.md      the same as a table
    CURVE/curve.png     test accuracy against labels per class: pretrained, scratch, TF-IDF + LR

Fine-tuned weights are not kept (a curve is many runs); this module only orchestrates
:func:`gristmill.train.finetune.finetune` and summarises.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gristmill.folders import RunFolder, write_record
from gristmill.train.baseline import NAME as BASELINE
from gristmill.train.baseline import tfidf_logreg
from gristmill.train.checkpoint import CheckpointError, run_weights_path
from gristmill.train.encoding import cut_summary, cut_warning, encode_examples
from gristmill.train.finetune import FineTuneConfig, Log, finetune
from gristmill.train.finetuned import (
    FineTuneError,
    check_tokenizer,
    load_tokenizer_dir,
    read_model_config,
    resolve_tokenizer_dir,
)
from gristmill.train.tasks import TaskData, sample_training

INITS = ("pretrained", "scratch", BASELINE)


def parse_inits(text: str) -> list[str]:
    """``"pretrained,tfidf-logreg"`` -> the inits to run, in the order given (each once)."""
    inits: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if part and part not in INITS:
            raise FineTuneError(f"--inits: {part!r} is not one of {', '.join(INITS)}")
        if part and part not in inits:
            inits.append(part)
    if not inits:
        raise FineTuneError(f"--inits: name at least one of {', '.join(INITS)}")
    return inits


def parse_sizes(text: str) -> list[int | None]:
    """``"8,32,128,all"`` -> ``[8, 32, 128, None]`` (None: the whole training file)."""
    sizes: list[int | None] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part.lower() == "all":
            sizes.append(None)
            continue
        try:
            value = int(part)
        except ValueError:
            raise FineTuneError(f"--per-class: {part!r} is not a number or 'all'") from None
        if value < 1:
            raise FineTuneError(f"--per-class: {value} must be at least 1")
        sizes.append(value)
    if not sizes:
        raise FineTuneError("--per-class: give at least one size, for example 8,32,128,all")
    return sizes


def size_name(size: int | None) -> str:
    return "all" if size is None else str(size)


@dataclass
class Point:
    per_class: str
    init: str
    runs: int
    accuracy_mean: float
    accuracy_std: float
    accuracy_min: float
    accuracy_max: float
    macro_f1_mean: float
    macro_f1_std: float
    train_examples: float


def _std(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def inits_of(runs: Sequence[dict[str, Any]]) -> list[str]:
    """The inits present in ``runs``: pretrained, scratch and the baseline first, others (e.g. adapted) after."""
    present = list(dict.fromkeys(r["init"] for r in runs))
    return [i for i in INITS if i in present] + [i for i in present if i not in INITS]


def _paired(better: Sequence[dict[str, Any]], worse: Sequence[dict[str, Any]], name: str) -> dict[str, Any] | None:
    other = {r["seed"]: r for r in worse}
    paired = [r["test_accuracy"] - other[r["seed"]]["test_accuracy"] for r in better if r["seed"] in other]
    if not paired:
        return None
    return {"per_class": name, "pairs": len(paired), "accuracy_points_mean": 100 * statistics.fmean(paired),
            "accuracy_points_std": 100 * _std(paired)}


def summarise(runs: Sequence[dict[str, Any]], sizes: Sequence[int | None]) -> dict[str, Any]:
    """Mean and spread per (size, init); paired pretrained - scratch and pretrained - baseline differences."""
    points: list[Point] = []
    differences: dict[str, list[dict[str, Any]]] = {"scratch": [], BASELINE: []}
    for size in sizes:
        name = size_name(size)
        by_init = {init: [r for r in runs if r["per_class"] == name and r["init"] == init] for init in inits_of(runs)}
        for init, rows in by_init.items():
            if not rows:
                continue
            acc = [r["test_accuracy"] for r in rows]
            f1 = [r["test_macro_f1"] for r in rows]
            points.append(Point(name, init, len(rows), statistics.fmean(acc), _std(acc), min(acc), max(acc),
                                statistics.fmean(f1), _std(f1), statistics.fmean(r["train_examples"] for r in rows)))
        for other, found in differences.items():
            d = _paired(by_init.get("pretrained", []), by_init.get(other, []), name)
            if d:
                found.append(d)
    return {"points": [asdict(p) for p in points], "pretrained_minus_scratch": differences["scratch"],
            "pretrained_minus_baseline": differences[BASELINE]}


def markdown_table(summary: dict[str, Any]) -> str:
    diffs = [{d["per_class"]: d for d in summary.get(key, [])}
             for key in ("pretrained_minus_scratch", "pretrained_minus_baseline")]
    lines = ["| labels per class | init | runs | train examples | test accuracy (mean ± std) | min-max "
             "| macro-F1 (mean ± std) | pretrained - scratch (points) | pretrained - TF-IDF (points) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for p in summary["points"]:
        gaps = []
        for diff in diffs:
            d = diff.get(p["per_class"])
            gaps.append(f"{d['accuracy_points_mean']:+.1f} ± {d['accuracy_points_std']:.1f}"
                        if d and p["init"] == "pretrained" else "")
        lines.append(
            f"| {p['per_class']} | {p['init']} | {p['runs']} | {p['train_examples']:.0f} | "
            f"{p['accuracy_mean']:.4f} ± {p['accuracy_std']:.4f} | {p['accuracy_min']:.4f}-{p['accuracy_max']:.4f} | "
            f"{p['macro_f1_mean']:.4f} ± {p['macro_f1_std']:.4f} | {gaps[0]} | {gaps[1]} |")
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], runs: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """Accuracy against labels per class (log scale), mean with a ±1 std band, single runs as dots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    ticks: dict[float, str] = {}
    colors = {"pretrained": "tab:blue", "scratch": "tab:orange", BASELINE: "tab:gray"}
    extra = iter(("tab:green", "tab:red", "tab:purple", "tab:brown"))
    for init in inits_of(runs):
        color = colors.get(init) or next(extra, "black")
        pts = [p for p in summary["points"] if p["init"] == init]
        if not pts:
            continue
        # "all" sits at the average number of examples per class the full file has.
        xs = [p["train_examples"] / _classes(runs) for p in pts]
        for x, p in zip(xs, pts, strict=True):
            ticks[x] = p["per_class"] if p["per_class"] != "all" else f"all\n({x:.0f})"
        mean = [p["accuracy_mean"] for p in pts]
        std = [p["accuracy_std"] for p in pts]
        ax.plot(xs, mean, marker="o", color=color, label="TF-IDF + logistic regression" if init == BASELINE else init,
                linestyle="--" if init == BASELINE else "-")
        ax.fill_between(xs, [m - s for m, s in zip(mean, std, strict=True)],
                        [m + s for m, s in zip(mean, std, strict=True)], color=color, alpha=0.2)
        for p, x in zip(pts, xs, strict=True):
            ys = [r["test_accuracy"] for r in runs if r["init"] == init and r["per_class"] == p["per_class"]]
            ax.scatter([x] * len(ys), ys, color=color, s=10, alpha=0.5)
    ax.set_xscale("log")
    ax.set_xticks(list(ticks), list(ticks.values()))
    ax.minorticks_off()
    ax.set_xlabel("labelled examples per class")
    ax.set_ylabel("test accuracy")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def baseline_row(data: TaskData, size: int | None, seed: int) -> dict[str, Any]:
    """TF-IDF + logistic regression on the sample ``finetune`` draws for (size, seed), scored on test."""
    sample = sample_training(data.train, size, seed).examples
    scores = tfidf_logreg(sample, data.test)
    return {"per_class": size_name(size), "seed": seed, "init": BASELINE, "classes": len(data.spec.labels),
            "train_examples": len(sample), "test_accuracy": scores["accuracy"], "test_macro_f1": scores["macro_f1"],
            "dev_accuracy": None, "steps": 0, "best_step": 0, "seconds": scores["seconds"]}


def _record(row: dict[str, Any], done: list[dict[str, Any]], runs_file: Path, log: Log | None) -> None:
    done.append(row)
    with runs_file.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    if log:
        log(f"    test accuracy {row['test_accuracy']:.4f}, macro-F1 {row['test_macro_f1']:.4f} "
            f"({row['steps']} steps, {row['seconds']:.0f}s)")


def _classes(runs: Sequence[dict[str, Any]]) -> int:
    return max((r.get("classes", 1) for r in runs), default=1)


def run_curve(
    run_dir: str | Path,
    data: TaskData,
    sizes: Sequence[int | None],
    seeds: Sequence[int],
    out: str | Path,
    cfg: FineTuneConfig | None = None,
    *,
    tokenizer_dir: str | Path | None = None,
    overwrite: bool = False,
    log: Log | None = None,
    inits: Sequence[str] = INITS,
) -> dict[str, Any]:
    """Fine-tune every (size, seed, init), resuming from ``CURVE/runs.jsonl``; returns the summary.

    ``inits`` picks among pretrained, scratch and the TF-IDF baseline (sequence tasks only).
    """
    cfg = cfg or FineTuneConfig()
    run = Path(run_dir)
    out_dir = Path(out)
    if not data.test:
        raise FineTuneError("a learning curve needs --test (it reports test accuracy)")
    config = read_model_config(run)  # first: a folder that is not a run is told so, whatever it lacks
    try:
        run_weights_path(run)
    except CheckpointError:
        raise FineTuneError(f"{run} has no pretrained weights: a curve compares pretrained with scratch") from None
    tokdir = resolve_tokenizer_dir(run, Path(tokenizer_dir) if tokenizer_dir else None)
    tokenizer = load_tokenizer_dir(tokdir)
    check_tokenizer(tokenizer, config, tokdir, RunFolder(run).tokenizer)

    setup = {"model": str(run.resolve()), "tokenizer": str(tokdir.resolve()), "data": data.paths,
             "task": data.spec.to_json(), "budget": asdict(cfg)}
    runs_file = out_dir / "runs.jsonl"
    done: list[dict[str, Any]] = []
    if out_dir.exists() and overwrite:
        for name in ("setup.json", "runs.jsonl", "curve.json", "curve.md", "curve.png"):
            (out_dir / name).unlink(missing_ok=True)
    elif (out_dir / "setup.json").is_file():
        previous = json.loads((out_dir / "setup.json").read_text(encoding="utf-8"))
        if previous != json.loads(json.dumps(setup)):
            raise FineTuneError(f"{out_dir} holds a curve with another model, data or budget; "
                                "choose another --out or pass --overwrite")
        if runs_file.is_file():
            done = [json.loads(line) for line in runs_file.read_text(encoding="utf-8").splitlines() if line.strip()]
            if log and done:
                log(f"resuming: {len(done)} runs already in {runs_file}")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_record(out_dir / "setup.json", setup)

    encoded = {split: encode_examples(tokenizer, getattr(data, split), data.spec) for split in ("dev", "test")}
    if log and (line := cut_warning(cut_summary(encoded["test"]), "test", data.spec.max_length)):
        log(line)
    finished = {(r["per_class"], r["seed"], r["init"]) for r in done}
    inits = [i for i in inits if i != BASELINE or data.spec.type == "sequence"]
    total = len(sizes) * len(seeds) * len(inits)
    position = sum((size_name(size), seed, init) in finished for size in sizes for seed in seeds for init in inits)
    for size in sizes:
        for seed in seeds:
            for init in inits:
                key = (size_name(size), seed, init)
                if key in finished:
                    continue
                position += 1
                if log:
                    log(f"[{position}/{total}] per-class {key[0]}, seed {seed}, {init}")
                if init == BASELINE:
                    row = baseline_row(data, size, seed)
                    _record(row, done, runs_file, log)
                    continue
                result = finetune(run, data, cfg, from_scratch=init == "scratch", per_class=size, seed=seed,
                                  tokenizer_dir=tokdir, tokenizer=tokenizer, encoded=encoded)
                m = result.metrics
                row = {"per_class": key[0], "seed": seed, "init": init, "classes": len(data.spec.labels),
                       "train_examples": m["train_examples"], "test_accuracy": m["test"]["accuracy"],
                       "test_macro_f1": m["test"]["macro_f1"],
                       "dev_accuracy": m["dev"]["accuracy"] if "dev" in m else None,
                       "steps": m["training"]["steps"], "best_step": m["training"]["best_step"],
                       "seconds": m["training"]["seconds"]}
                _record(row, done, runs_file, log)

    wanted = {size_name(s) for s in sizes}
    runs = [r for r in done if r["per_class"] in wanted and r["seed"] in set(seeds)]
    summary = summarise(runs, sizes)
    summary["setup"] = setup
    write_record(out_dir / "curve.json", summary)
    (out_dir / "curve.md").write_text(markdown_table(summary), encoding="utf-8")
    title = f"{run.name} ({config.name or 'model'}) on {Path(data.paths['train']).parent.name or 'task'}"
    plot(summary, runs, out_dir / "curve.png", title)
    return summary

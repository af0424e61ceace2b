"""Task-adaptive pretraining on three tasks: scratch, pretrained, pretrained + adapt, TF-IDF + LR.

One encoder is pretrained once on the cleaned shared corpus, decontaminated against the dev and test
files of every task measured here; each task then gets its own ``gristmill adapt`` run on the texts of
its training pool (labels unused). For each task, labels-per-class size and seed, the same sample is
fine-tuned from scratch, from the pretrained encoder and from the adapted one (``gristmill curve``'s
loop), and TF-IDF + logistic regression is fitted on it.

Stages are skipped when their output exists in ``--workdir``, so a killed run resumes:

1. clean ``shared/data/corpus/docs.jsonl.gz`` (``recipes/web-en.yaml`` + exact/MinHash dedup +
   decontamination against every task's dev and test);
2. WordPiece tokenizer, 128-token packing;
3. ``gristmill pretrain`` (``--model-size``, ``--steps``);
4. per task: ``gristmill adapt RUN --texts TASK/train.jsonl --steps --adapt-steps``;
5. per task: the curve (early stopping on a stratified dev subset; test scored whole), written to
   ``WORKDIR/results.json`` and ``WORKDIR/adapt.png``.

``--prepare-only`` stops after stage 3 (it is what runs in the background while code is written).
``--dev-as-test`` scores on the rest of dev instead of test: used while choosing the fine-tuning
recipe, so the test splits are looked at once, at the end.

Usage::

    python benchmarks/tasks/build_manpage_task.py --out /tmp/gm20/tasks/manpages
    python benchmarks/adapt.py --workdir /tmp/gm20/bench --task /tmp/gm20/tasks/manpages \\
        --task shared/data/tasks/fortunes --task shared/data/tasks/offensive --threads 1
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def _learning_curve():  # the sibling benchmark owns the cleaning recipe and the TF-IDF peer
    spec = importlib.util.spec_from_file_location("learning_curve", Path(__file__).with_name("learning_curve.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def stage(times: dict[str, dict[str, float]], name: str, done: Path, *command: str) -> None:
    """Run ``gristmill COMMAND`` unless ``done`` exists; record wall and CPU seconds."""
    if done.exists():
        print(f"{name}: {done} exists, skipped", flush=True)
        return
    print("$ gristmill " + " ".join(command), flush=True)
    t0, c0 = time.perf_counter(), child_cpu_seconds()
    subprocess.run([sys.executable, "-m", "gristmill", *command], cwd=ROOT, check=True)
    times[name] = {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(child_cpu_seconds() - c0, 1)}
    print(f"{name}: {times[name]}", flush=True)


def prepare(args: argparse.Namespace, work: Path, times: dict[str, dict[str, float]]) -> Path:
    lc = _learning_curve()
    stage(times, "clean", work / "clean" / "stats.json", "run", str(lc.recipe(work, args.corpus, *args.task)),
          "--overwrite", "--no-progress")
    stage(times, "tokenizer", work / "tokenizer" / "tokenizer.json", "tokenizer", "train", "--input",
          str(work / "clean" / "kept"), "--kind", "wordpiece", "--vocab-size", str(args.vocab_size),
          "--out", str(work / "tokenizer"), "--overwrite", "--no-progress")
    stage(times, "tokenize", work / "tokens" / "manifest.json", "tokenize", "--input", str(work / "clean" / "kept"),
          "--tokenizer", str(work / "tokenizer"), "--seq-len", "128", "--out", str(work / "tokens"),
          "--overwrite", "--no-progress")
    run = work / f"pretrain-{args.model_size}-{args.steps}"
    stage(times, "pretrain", run / "train-done", "pretrain", "--data", str(work / "tokens"), "--model-size",
          args.model_size, "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
          "--eval-every", str(max(args.steps // 10, 50)), "--log-every", "50", "--save-every", "250", "--keep", "1",
          "--threads", str(args.threads), "--resume", "--out", str(run), "--no-progress")
    (run / "train-done").touch()
    return run


def dev_splits(task: Path, work: Path, per_class: int) -> tuple[Path, Path]:
    """Dev cut in two, stratified and seeded: ``per_class`` per class for early stopping, the rest to score
    recipe choices on (so the test split is not looked at while choosing)."""
    from gristmill.train.tasks import load_sequence_examples, stratified_sample

    examples = load_sequence_examples(task / "dev.jsonl")
    stop = stratified_sample(examples, per_class, seed=12345).examples
    chosen = {e.line for e in stop}
    rest = [e for e in examples if e.line not in chosen]
    paths = (work / "dev" / f"{task.name}-stop.jsonl", work / "dev" / f"{task.name}-eval.jsonl")
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    for path, items in zip(paths, (stop, rest), strict=True):
        path.write_text("".join(json.dumps({"text": e.text, "label": e.label}, ensure_ascii=False) + "\n"
                                for e in items), encoding="utf-8")
    return paths


VARIANTS: dict[str, dict[str, Any]] = {
    # The fine-tuning budget before issue 20: at least 300 steps and 3 epochs, patience 5.
    "old default": {"min_steps": 300, "patience": 5},
    "longer": {"min_steps": 1000, "patience": 10},
    "longer + LLRD 0.8": {"min_steps": 1000, "patience": 10, "layer_decay": 0.8},
    "longer + mean pooling": {"min_steps": 1000, "patience": 10, "pooling": "mean"},
    "longer + re-init top layer": {"min_steps": 1000, "patience": 10, "reinit_layers": 1},
    "longer, lr 1e-3": {"min_steps": 1000, "patience": 10, "lr": 1e-3},
    "longer, lr 1e-4": {"min_steps": 1000, "patience": 10, "lr": 1e-4},
}


def recipe(args: argparse.Namespace, work: Path, run: Path) -> None:
    """Every variant x task x seed at ``--recipe-per-class``, scored on dev only; resumable (recipe.jsonl)."""
    from gristmill.train.finetune import FineTuneConfig, finetune
    from gristmill.train.tasks import load_task

    out = work / "recipe.jsonl"
    done = {(r["variant"], r["task"], r["seed"]) for r in map(json.loads, out.read_text().splitlines())} \
        if out.is_file() else set()
    names = [v for v in VARIANTS if not args.variants or v in args.variants.split(",")]
    for task in args.task:
        stop, rest = dev_splits(task, work, args.dev_per_class)
        data = load_task(task / "train.jsonl", stop, rest)  # "test" here is the rest of dev
        for seed in range(args.seeds):
            for name in names:
                if (name, task.name, seed) in done:
                    continue
                t0, c0 = time.perf_counter(), time.process_time()
                m = finetune(run, data, FineTuneConfig(**VARIANTS[name]), per_class=args.per_class, seed=seed).metrics
                row = {"variant": name, "task": task.name, "seed": seed, "dev_eval_accuracy": m["test"]["accuracy"],
                       "dev_eval_macro_f1": m["test"]["macro_f1"], "dev_stop_macro_f1": m["dev"]["macro_f1"],
                       "steps": m["training"]["steps"], "best_step": m["training"]["best_step"],
                       "wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(time.process_time() - c0, 1)}
                print(json.dumps(row), flush=True)
                with out.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
    print_recipe(out)


def print_recipe(path: Path) -> None:
    """Mean dev accuracy per variant and task; "LR search" picks, per task and seed, the learning rate
    (1e-4, default 3e-4, 1e-3; longer budget) with the best early-stopping dev macro-F1."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    table: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        table.setdefault(r["variant"], {}).setdefault(r["task"], []).append(r["dev_eval_accuracy"])
    lrs = ("longer", "longer, lr 1e-3", "longer, lr 1e-4")
    for task in tasks:
        for seed in sorted({r["seed"] for r in rows if r["task"] == task}):
            cands = [r for r in rows if r["task"] == task and r["seed"] == seed and r["variant"] in lrs]
            if len(cands) == len(lrs):
                best = max(cands, key=lambda r: r["dev_stop_macro_f1"])
                table.setdefault("LR search (dev)", {}).setdefault(task, []).append(best["dev_eval_accuracy"])
    print("| variant | " + " | ".join(tasks) + " | mean | CPU s per run |")
    print("|---|" + "---|" * (len(tasks) + 2))
    for variant, by_task in table.items():
        means = [statistics.fmean(by_task[t]) if t in by_task else float("nan") for t in tasks]
        cpu = [r["cpu_s"] for r in rows if r["variant"] == variant]
        cells = " | ".join(f"{100 * m:.1f} (n={len(by_task.get(t, []))})" for m, t in zip(means, tasks, strict=True))
        print(f"| {variant} | {cells} | {100 * statistics.fmean(means):.1f} | "
              f"{statistics.fmean(cpu) if cpu else 0:.0f} |")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/gm_adapt"))
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpus" / "docs.jsonl.gz")
    parser.add_argument("--task", type=Path, action="append", required=True, help="Task folder (repeat).")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--model-size", default="tiny")
    parser.add_argument("--steps", type=int, default=3000, help="Pretraining steps.")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3, help="Pretraining peak learning rate.")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--prepare-only", action="store_true")
    parser.add_argument("--part", choices=("curve", "recipe"), default="curve")
    parser.add_argument("--run", type=Path, help="Use this pretrained run instead of the one --steps names.")
    parser.add_argument("--variants", default="", help="Recipe variants to run (comma-separated names).")
    parser.add_argument("--per-class", type=int, default=32, help="Labels per class for the recipe part.")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--dev-per-class", type=int, default=20)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    import torch

    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    times: dict[str, dict[str, float]] = {}
    run = args.run or prepare(args, work, times)
    if args.prepare_only:
        return
    if args.part == "recipe":
        recipe(args, work, run)
        return


if __name__ == "__main__":
    main()

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
4. ``--part adapt``: per task, ``gristmill adapt RUN --texts TASK/train.jsonl --steps --adapt-steps``;
5. ``--part curve``: per task and seed (``--seed-list``; seeds may run in parallel processes), the
   curve runs, early stopping on a stratified dev subset (``--dev-per-class``), test scored whole;
6. ``--part report`` (default): the table, ``WORKDIR/adapt.png`` and ``WORKDIR/results.json``.

``--prepare-only`` stops after stage 3. ``--part recipe`` fine-tunes the recipe variants (``VARIANTS``)
at ``--per-class`` and scores them on the half of dev not used for early stopping: the recipe is chosen
on dev, and the test splits are looked at once, at the end.

Usage (the figures in benchmarks/results/adapt.md)::

    python benchmarks/tasks/build_manpage_task.py --out /tmp/gm20/tasks/manpages
    T="--task /tmp/gm20/tasks/manpages --task shared/data/tasks/fortunes --task shared/data/tasks/offensive"
    python benchmarks/adapt.py --workdir /tmp/gm20/bench $T --steps 1500 --prepare-only
    python benchmarks/adapt.py --workdir /tmp/gm20/bench $T --steps 1500 --part recipe --seeds 1
    python benchmarks/adapt.py --workdir /tmp/gm20/bench $T --steps 1500 --part adapt
    python benchmarks/adapt.py --workdir /tmp/gm20/bench $T --steps 1500 --part curve --seed-list 0   # 1, 2
    python benchmarks/adapt.py --workdir /tmp/gm20/bench $T --steps 1500

Sizes added to a measured workdir go to their own curve folders (``--curve-tag``), and the report reads them
all::

    python benchmarks/adapt.py ... --part curve --seed-list 0 --sizes 8,128 --curve-tag=-more
    python benchmarks/adapt.py ... --sizes 8,32,128
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


def stage(times: dict[str, dict[str, float]], name: str, done: Path, *command: str, processes: int = 1) -> None:
    """Run ``gristmill COMMAND`` unless ``done`` exists (under torchrun when ``processes`` > 1); record wall
    and CPU seconds."""
    if done.exists():
        print(f"{name}: {done} exists, skipped", flush=True)
        return
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)] \
        if processes > 1 else [sys.executable]
    print("$ gristmill " + " ".join(command), flush=True)
    t0, c0 = time.perf_counter(), child_cpu_seconds()
    subprocess.run([*launcher, "-m", "gristmill", *command], cwd=ROOT, check=True)
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
          "--threads", str(args.threads), "--resume", "--out", str(run), "--no-progress", *precision(args),
          processes=args.processes)
    (run / "train-done").touch()
    return run


def precision(args: argparse.Namespace) -> list[str]:
    return ["--bf16"] if args.bf16 else []


def dev_splits(task: Path, work: Path, per_class: int) -> tuple[Path, Path]:
    """Dev cut in two, stratified and seeded: ``per_class`` per class for early stopping, the rest to score
    recipe choices on (so the test split is not looked at while choosing)."""
    from gristmill.data.storage import atomic_write_text
    from gristmill.train.tasks import load_sequence_examples, stratified_sample

    examples = load_sequence_examples(task / "dev.jsonl")
    stop = stratified_sample(examples, per_class, seed=12345).examples
    chosen = {e.line for e in stop}
    rest = [e for e in examples if e.line not in chosen]
    paths = (work / "dev" / f"{task.name}-stop.jsonl", work / "dev" / f"{task.name}-eval.jsonl")
    for path, items in zip(paths, (stop, rest), strict=True):
        # Parallel processes write the same bytes to the same path, each through its own temporary file.
        atomic_write_text(path, "".join(json.dumps({"text": e.text, "label": e.label}, ensure_ascii=False) + "\n"
                                        for e in items))
    return paths


# The default budget (at least 300 steps and 3 epochs, patience 5; issue 20's measurements kept it) and a longer one.
BUDGETS: dict[str, dict[str, Any]] = {"old default": {}, "longer": {"min_steps": 1000, "patience": 10}}
OPTIONS: dict[str, dict[str, Any]] = {
    "LLRD 0.8": {"layer_decay": 0.8},
    "mean pooling": {"pooling": "mean"},
    "re-init top layer": {"reinit_layers": 1},
    "lr 1e-3": {"lr": 1e-3},
    "lr 1e-4": {"lr": 1e-4},
}
# Each option on the default budget ("LLRD 0.8") and on the longer one ("longer + LLRD 0.8").
VARIANTS: dict[str, dict[str, Any]] = {**BUDGETS, **OPTIONS,
                                       **{f"longer + {name}": {**BUDGETS["longer"], **option}
                                          for name, option in OPTIONS.items()}}


def recipe(args: argparse.Namespace, work: Path, run: Path) -> None:
    """Every variant x task x seed at ``--per-class``, scored on dev only; resumable (recipe.jsonl)."""
    from gristmill.train.finetune import FineTuneConfig, finetune
    from gristmill.train.tasks import load_task

    out = work / "recipe.jsonl"
    done = {(r["variant"], r["task"], r["seed"], r["per_class"]) for r in read_recipe(out)}
    names = [v for v in VARIANTS if not args.variants or v in args.variants.split(";")]
    for task in args.task:
        stop, rest = dev_splits(task, work, args.dev_per_class)
        data = load_task(task / "train.jsonl", stop, rest)  # "test" here is the rest of dev
        for seed in range(args.seeds):
            for name in names:
                if (name, task.name, seed, args.per_class) in done:
                    continue
                t0, c0 = time.perf_counter(), time.process_time()
                m = finetune(run, data, FineTuneConfig(**VARIANTS[name], bf16=args.bf16), per_class=args.per_class,
                             seed=seed).metrics
                row = {"variant": name, "task": task.name, "seed": seed, "per_class": args.per_class,
                       "dev_eval_accuracy": m["test"]["accuracy"],
                       "dev_eval_macro_f1": m["test"]["macro_f1"], "dev_stop_macro_f1": m["dev"]["macro_f1"],
                       "steps": m["training"]["steps"], "best_step": m["training"]["best_step"],
                       "wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(time.process_time() - c0, 1)}
                print(json.dumps(row), flush=True)
                with out.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
    print_recipe(out, args.per_class)


def read_recipe(path: Path) -> list[dict[str, Any]]:
    """The rows of recipe.jsonl; rows written before ``per_class`` was recorded were all at 32."""
    if not path.is_file():
        return []
    return [{"per_class": 32, **json.loads(line)} for line in path.read_text(encoding="utf-8").splitlines()]


def print_recipe(path: Path, per_class: int) -> None:
    """Mean dev accuracy per variant and task; an "LR search" picks, per task and seed, the learning rate
    (1e-4, default 3e-4, 1e-3; on the default or the longer budget) with the best early-stopping dev macro-F1."""
    rows = [r for r in read_recipe(path) if r["per_class"] == per_class]
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    table: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        table.setdefault(r["variant"], {}).setdefault(r["task"], []).append(r["dev_eval_accuracy"])
    searches = {"LR search (dev)": ("old default", "lr 1e-3", "lr 1e-4"),
                "longer, LR search (dev)": ("longer", "longer + lr 1e-3", "longer + lr 1e-4")}
    for search, lrs in searches.items():
        for task in tasks:
            for seed in sorted({r["seed"] for r in rows if r["task"] == task}):
                cands = [r for r in rows if r["task"] == task and r["seed"] == seed and r["variant"] in lrs]
                if len(cands) == len(lrs):
                    best = max(cands, key=lambda r: r["dev_stop_macro_f1"])
                    table.setdefault(search, {}).setdefault(task, []).append(best["dev_eval_accuracy"])
    print("| variant | " + " | ".join(tasks) + " | mean | CPU s per run |")
    print("|---|" + "---|" * (len(tasks) + 2))
    for variant, by_task in table.items():
        means = [statistics.fmean(by_task[t]) if t in by_task else float("nan") for t in tasks]
        cpu = [r["cpu_s"] for r in rows if r["variant"] == variant]
        cells = " | ".join(f"{100 * m:.1f} (n={len(by_task.get(t, []))})" for m, t in zip(means, tasks, strict=True))
        print(f"| {variant} | {cells} | {100 * statistics.fmean(means):.1f} | "
              f"{statistics.fmean(cpu) if cpu else 0:.0f} |")


def adapt_task(args: argparse.Namespace, work: Path, run: Path, task: Path,
               times: dict[str, dict[str, float]]) -> Path:
    """``gristmill adapt`` on the texts of the task's training pool (its labels are not read)."""
    out = work / f"adapt-{task.name}-{args.adapt_steps}"
    stage(times, f"adapt-{task.name}", out / "adapt-done", "adapt", str(run), "--texts", str(task / "train.jsonl"),
          "--steps", str(args.adapt_steps), "--batch-size", str(args.batch_size), "--eval-every",
          str(max(args.adapt_steps // 4, 25)), "--save-every", "100", "--threads", str(args.threads),
          *(["--resume"] if (out / "adapt.json").is_file() else []), "--out", str(out), "--no-progress",
          *precision(args))
    (out / "adapt-done").touch()
    return out


def curves(args: argparse.Namespace, work: Path, run: Path, times: dict[str, dict[str, float]]) -> None:
    """Per task and seed: scratch, pretrained and TF-IDF (one curve), adapted (a second curve), same samples.

    Each seed has its own curve folders, so seeds can run in parallel processes (``--seed-list``).
    """
    from gristmill.train.curve import parse_sizes, run_curve
    from gristmill.train.finetune import FineTuneConfig
    from gristmill.train.tasks import load_task

    sizes = parse_sizes(args.sizes)
    cfg = FineTuneConfig(bf16=args.bf16)
    for task in args.task:
        stop, _ = dev_splits(task, work, args.dev_per_class)
        data = load_task(task / "train.jsonl", stop, task / "test.jsonl")
        log = lambda m: print(m, flush=True)  # noqa: E731
        adapted = work / f"adapt-{task.name}-{args.adapt_steps}"
        for seed in seed_list(args):
            t0, c0 = time.perf_counter(), time.process_time()
            folder = work / f"curve-{task.name}-seed{seed}{args.curve_tag}"
            if args.only == "tfidf":
                run_curve(run, data, sizes, [seed], f"{folder}-tfidf", cfg, log=log, inits=("tfidf-logreg",))
                continue
            if args.only != "adapted":
                run_curve(run, data, sizes, [seed], folder, cfg, log=log)
            if args.only == "base":
                continue
            while not (adapted / "adapt-done").exists():  # --part adapt runs it, perhaps in another process
                time.sleep(20)
            run_curve(adapted, data, sizes, [seed], f"{folder}-adapted", cfg, log=log, inits=("pretrained",))
            times[f"curves-{task.name}-seed{seed}"] = {"wall_s": round(time.perf_counter() - t0, 1),
                                                       "cpu_s": round(time.process_time() - c0, 1)}


def seed_list(args: argparse.Namespace) -> list[int]:
    return [int(s) for s in args.seed_list.split(",")] if args.seed_list else list(range(args.seeds))


def collect(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Every finished run of every seed folder, the adapted ones renamed, summarised per task."""
    from gristmill.train.curve import parse_sizes, plot, summarise

    sizes = parse_sizes(args.sizes)
    results: dict[str, Any] = {}
    for task in args.task:
        rows: list[dict[str, Any]] = []
        for folder in sorted(work.glob(f"curve-{task.name}-seed*")):
            found = read_runs(folder) if (folder / "runs.jsonl").is_file() else []
            rows += [{**r, "init": "pretrained + adapt"} for r in found] if folder.name.endswith("-adapted") else found
        # Parallel processes may have run the same (size, seed, init) twice (e.g. the TF-IDF fit): keep the first.
        unique: dict[tuple[str, int, str], dict[str, Any]] = {}
        for r in rows:
            unique.setdefault((r["per_class"], r["seed"], r["init"]), r)
        rows = list(unique.values())
        if not rows:
            continue
        summary = summarise(rows, sizes)
        title = f"{task.name}: {args.model_size} + adapt ({args.adapt_steps} steps)"
        plot(summary, rows, work / f"curve-{task.name}.png", title)
        adapt_json = work / f"adapt-{task.name}-{args.adapt_steps}" / "adapt.json"
        results[task.name] = {"summary": summary, "runs": rows, "pretrain_tokens": args.steps * args.batch_size * 128,
                              "adapt": json.loads(adapt_json.read_text(encoding="utf-8")) if adapt_json.is_file() else None}
    return results


def read_runs(curve: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (curve / "runs.jsonl").read_text(encoding="utf-8").splitlines() if line]


def report(results: dict[str, Any], times: dict[str, dict[str, float]]) -> str:
    """The table of benchmarks/results/adapt.md: accuracy per task, size and init; adapt - scratch, adapt - TF-IDF."""
    lines = ["| task | labels per class | scratch | pretrained | pretrained + adapt | TF-IDF + LR "
             "| adapt - scratch (points) | adapt - TF-IDF (points) |", "|---|---|---|---|---|---|---|---|"]
    for task, res in results.items():
        by = {(p["per_class"], p["init"]): p for p in res["summary"]["points"]}
        for size in dict.fromkeys(p["per_class"] for p in res["summary"]["points"]):
            cells = []
            for init in ("scratch", "pretrained", "pretrained + adapt", "tfidf-logreg"):
                p = by.get((size, init))
                cells.append(f"{100 * p['accuracy_mean']:.1f} ± {100 * p['accuracy_std']:.1f}" if p else "")
            gaps = []
            for other in ("scratch", "tfidf-logreg"):
                mine = {r["seed"]: r["test_accuracy"] for r in res["runs"]
                        if r["per_class"] == size and r["init"] == "pretrained + adapt"}
                theirs = {r["seed"]: r["test_accuracy"] for r in res["runs"] if r["per_class"] == size and r["init"] == other}
                diff = [100 * (mine[s] - theirs[s]) for s in mine if s in theirs]
                gaps.append(f"{statistics.fmean(diff):+.1f} ± {statistics.stdev(diff) if len(diff) > 1 else 0:.1f}"
                            if diff else "")
            lines.append(f"| {task} | {size} | " + " | ".join(cells + gaps) + " |")
    lines += ["", "| stage | tokens | wall s | CPU s | CPU minutes |", "|---|---|---|---|---|"]
    tokens = {"pretrain": results and next(iter(results.values())).get("pretrain_tokens")}
    for task, res in results.items():
        if res.get("adapt"):
            tokens[f"adapt-{task}"] = res["adapt"]["tokens_seen"]
    for stage_name, t in times.items():
        if stage_name.startswith("curves-"):
            continue
        count = tokens.get(stage_name)
        lines.append(f"| {stage_name} | {f'{count:,}' if count else ''} | {t['wall_s']:,.0f} | {t['cpu_s']:,.0f} "
                     f"| {t['cpu_s'] / 60:.1f} |")
    return "\n".join(lines) + "\n"


def plot_all(results: dict[str, Any], path: Path) -> None:
    """One panel per task: test accuracy of the four inits against labels per class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"scratch": "tab:orange", "pretrained": "tab:blue", "pretrained + adapt": "tab:green",
              "tfidf-logreg": "tab:gray"}
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.8), dpi=120, squeeze=False)
    for ax, (task, res) in zip(axes[0], results.items(), strict=True):
        for init, color in colors.items():
            pts = [p for p in res["summary"]["points"] if p["init"] == init]
            xs = [int(p["per_class"]) for p in pts if p["per_class"] != "all"]
            means = [100 * p["accuracy_mean"] for p in pts if p["per_class"] != "all"]
            stds = [100 * p["accuracy_std"] for p in pts if p["per_class"] != "all"]
            if not xs:
                continue
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, color=color, label=init,
                        linestyle="--" if init == "tfidf-logreg" else "-")
        ax.set_xscale("log")
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("labels per class")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


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
    parser.add_argument("--processes", type=int, default=1, help="Pretraining processes (torchrun, DDP).")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for pretraining, adaptation and fine-tuning.")
    parser.add_argument("--prepare-only", action="store_true")
    parser.add_argument("--part", choices=("adapt", "curve", "report", "recipe"), default="report",
                        help="adapt: adapt runs; curve: fine-tunings and baseline; report: table and plot; "
                             "recipe: fine-tuning variants on dev only.")
    parser.add_argument("--only", choices=("base", "adapted", "tfidf", ""), default="",
                        help="--part curve: only the base curve (scratch, pretrained, TF-IDF), the adapted runs "
                             "or the TF-IDF baseline.")
    parser.add_argument("--seed-list", default="", help="Seeds for --part curve, e.g. 0 or 0,1,2 (default: --seeds).")
    parser.add_argument("--run", type=Path, help="Use this pretrained run instead of the one --steps names.")
    parser.add_argument("--variants", default="", help="Recipe variants to run (names separated by ';').")
    parser.add_argument("--per-class", type=int, default=32, help="Labels per class for the recipe part.")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--dev-per-class", type=int, default=20)
    parser.add_argument("--sizes", default="32", help="Labels per class for the curves, e.g. 8,32,128.")
    parser.add_argument("--curve-tag", default="", help="Suffix of this invocation's curve folders (e.g. -more when "
                        "sizes are added later); the report reads every curve folder of the task.")
    parser.add_argument("--adapt-steps", type=int, default=400)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    import torch

    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    times_file = work / "times.json"
    times: dict[str, dict[str, float]] = json.loads(times_file.read_text()) if times_file.is_file() else {}
    try:
        run = args.run or prepare(args, work, times)
    finally:
        times_file.write_text(json.dumps(times, indent=2) + "\n", encoding="utf-8")
    if args.prepare_only:
        return
    if args.part == "recipe":
        recipe(args, work, run)
        return
    if args.part == "adapt":
        for task in args.task:
            try:
                adapt_task(args, work, run, task, times)
            finally:
                times_file.write_text(json.dumps(times, indent=2) + "\n", encoding="utf-8")
        return
    if args.part == "curve":
        try:
            curves(args, work, run, times)
        finally:
            merged = json.loads(times_file.read_text()) if times_file.is_file() else {}
            times_file.write_text(json.dumps({**merged, **times}, indent=2) + "\n", encoding="utf-8")
        return
    results = collect(args, work)
    table = report(results, times)
    plot_all(results, work / "adapt.png")
    (work / "results.json").write_text(json.dumps({"results": results, "times": times}, indent=2, default=str) + "\n",
                                       encoding="utf-8")
    print("\n" + table)
    print(json.dumps(times, indent=2))
    print(f"results: {work / 'results.json'}   plot: {work / 'adapt.png'}")


if __name__ == "__main__":
    main()

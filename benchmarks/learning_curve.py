"""What pretraining buys on a few-label task: the learning curve on ``shared/data/tasks/fortunes``.

Pipeline, each stage skipped when its output is already in ``--workdir`` (so a killed run resumes):

1. clean ``shared/data/corpus/docs.jsonl.gz`` with ``recipes/web-en.yaml``'s steps plus exact and
   MinHash dedup and decontamination against the fortunes dev and test files (the corpus carries 200
   planted dev fortunes);
2. train a WordPiece tokenizer and pack 128-token sequences;
3. pretrain a ``mini`` encoder (4 x 256) with ``gristmill pretrain`` for ``--steps`` steps;
4. ``gristmill.train.curve.run_curve``: for each labels-per-class size and seed, fine-tune from the
   pretrained encoder and from scratch (same architecture, seed, sample and budget); the full training
   file ("all") gets ``--all-seeds`` seeds because one run costs as much as all the small ones;
5. the peer: TF-IDF + logistic regression (scikit-learn) on the same samples, the usual non-neural
   baseline for small labelled sets.

Early stopping uses a stratified subset of dev (``--dev-per-class`` per class) to keep evaluation
cheap; the test file is used whole. Prints the table and the pretrained - scratch difference at 32
labels per class, and writes ``WORKDIR/results.json`` and ``WORKDIR/curve/curve.png``.

Usage::

    python benchmarks/learning_curve.py --workdir /tmp/gm_curve --steps 3000 --threads 1

The machine is shared: budgets are small on purpose, and timings are noisy.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Scripts in benchmarks/ put that folder first on sys.path, where a sibling named like a standard
# module (tokenize.py) would shadow it; the standard library must win.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def gristmill(*args: str) -> None:
    command = [sys.executable, "-m", "gristmill", *args]
    print("$ gristmill " + " ".join(args), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def recipe(workdir: Path, corpus: Path, *tasks: Path) -> Path:
    """The project's English recipe (recipes/web-en.yaml) plus dedup and decontamination against the tasks' dev and test."""
    import yaml

    web_en = ROOT / "recipes" / "web-en.yaml"
    steps: list = yaml.safe_load(web_en.read_text())["steps"] if web_en.is_file() else [
        "gopher_repetition", "gopher_quality"]
    names = [next(iter(s)) if isinstance(s, dict) else s for s in steps]
    steps += [s for s in ("exact_dedup", "minhash_dedup") if s not in names]
    steps = [s for s in steps if (next(iter(s)) if isinstance(s, dict) else s) != "decontaminate"]
    steps.append({"decontaminate": {"paths": [str(t / f"{s}.jsonl") for t in tasks for s in ("dev", "test")]}})
    path = workdir / "clean.yaml"
    path.write_text(yaml.safe_dump({
        "input": {"paths": [str(corpus)], "format": "jsonl", "text_field": "text", "id_field": "id"},
        "steps": steps,
        "output": {"path": str(workdir / "clean"), "format": "parquet"},
    }, sort_keys=False), encoding="utf-8")
    return path


def dev_subset(fortunes: Path, out: Path, per_class: int) -> Path:
    from gristmill.train.tasks import load_sequence_examples, stratified_sample

    examples = load_sequence_examples(fortunes / "dev.jsonl")
    sample = stratified_sample(examples, per_class, seed=12345)
    out.write_text("".join(json.dumps({"text": e.text, "label": e.label}) + "\n" for e in sample.examples),
                   encoding="utf-8")
    return out


def tfidf_baseline(data: Any, sizes: list[int | None], seeds: list[int], all_seeds: list[int]) -> list[dict[str, Any]]:
    """TF-IDF (word 1-2 grams + char 2-5 grams) + logistic regression on the same samples as the curve."""
    from gristmill.train.curve import baseline_row

    return [baseline_row(data, size, seed) for size in sizes for seed in (all_seeds if size is None else seeds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/gm_learning_curve"))
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpus" / "docs.jsonl.gz")
    parser.add_argument("--task", type=Path, default=SHARED / "tasks" / "fortunes")
    parser.add_argument("--vocab-size", type=int, default=16000)
    parser.add_argument("--model-size", default="mini")
    parser.add_argument("--steps", type=int, default=3000, help="Pretraining steps.")
    parser.add_argument("--batch-size", type=int, default=32, help="Pretraining batch (sequences of 128 tokens).")
    parser.add_argument("--lr", type=float, default=1e-3, help="Pretraining peak learning rate.")
    parser.add_argument("--per-class", default="8,32,128")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--all-seeds", type=int, default=1, help="Seeds for the whole training file (0 = skip).")
    parser.add_argument("--dev-per-class", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from gristmill.train.curve import markdown_table, parse_sizes, run_curve, summarise
    from gristmill.train.finetune import FineTuneConfig
    from gristmill.train.tasks import load_task

    if not args.corpus.is_file() or not (args.task / "train.jsonl").is_file():
        sys.exit(f"needs {args.corpus} and {args.task}/{{train,dev,test}}.jsonl (the shared data)")
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    times: dict[str, float] = {}

    def stage(name: str, done: Path, *command: str) -> None:
        if done.exists():
            print(f"{name}: {done} exists, skipped", flush=True)
            return
        t0 = time.perf_counter()
        gristmill(*command)
        times[name] = round(time.perf_counter() - t0, 1)

    stage("clean", work / "clean" / "stats.json", "run", str(recipe(work, args.corpus, args.task)),
          "--overwrite", "--no-progress")
    stage("tokenizer", work / "tokenizer" / "tokenizer.json", "tokenizer", "train", "--input", str(work / "clean" / "kept"),
          "--kind", "wordpiece", "--vocab-size", str(args.vocab_size), "--out", str(work / "tokenizer"),
          "--overwrite", "--no-progress")
    stage("tokenize", work / "tokens" / "manifest.json", "tokenize", "--input", str(work / "clean" / "kept"),
          "--tokenizer", str(work / "tokenizer"), "--seq-len", "128", "--out", str(work / "tokens"),
          "--overwrite", "--no-progress")
    run = work / f"pretrain-{args.model_size}-{args.steps}"
    stage("pretrain", run / "train-done", "pretrain", "--data", str(work / "tokens"), "--model-size",
          args.model_size, "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
          "--eval-every", str(max(args.steps // 10, 50)), "--log-every", "50", "--save-every", "500", "--keep", "1",
          "--threads", str(args.threads), "--resume", "--out", str(run), "--no-progress")
    (run / "train-done").touch()

    dev = dev_subset(args.task, work / f"dev-{args.dev_per_class}pc.jsonl", args.dev_per_class)
    data = load_task(args.task / "train.jsonl", dev, args.task / "test.jsonl")
    sizes = parse_sizes(args.per_class)
    seeds = list(range(args.seeds))
    all_seeds = list(range(args.all_seeds))
    cfg = FineTuneConfig()
    curve_dir = work / f"curve-{run.name}"
    t0 = time.perf_counter()
    run_curve(run, data, sizes, seeds, curve_dir, cfg, log=lambda m: print(m, flush=True))
    if all_seeds:
        run_curve(run, data, [None], all_seeds, curve_dir, cfg, log=lambda m: print(m, flush=True))
    times["curve"] = round(time.perf_counter() - t0, 1)

    runs = [json.loads(line) for line in (curve_dir / "runs.jsonl").read_text().splitlines() if line.strip()]
    wanted = [*sizes, *([None] if all_seeds else [])]
    summary = summarise(runs, wanted)
    t0 = time.perf_counter()
    peer = tfidf_baseline(data, wanted, seeds, all_seeds)
    times["tfidf"] = round(time.perf_counter() - t0, 1)

    from gristmill.train.curve import plot

    plot(summary, runs, curve_dir / "curve.png", f"{args.model_size} ({args.steps} pretraining steps) on fortunes")
    (curve_dir / "curve.md").write_text(markdown_table(summary), encoding="utf-8")
    print("\n" + markdown_table(summary))
    print("| labels per class | TF-IDF + logistic regression: test accuracy (mean ± std) |\n|---|---|")
    peer_summary = {}
    for size in wanted:
        name = "all" if size is None else str(size)
        accs = [r["test_accuracy"] for r in peer if r["per_class"] == name]
        peer_summary[name] = {"mean": statistics.fmean(accs), "std": statistics.stdev(accs) if len(accs) > 1 else 0.0}
        print(f"| {name} | {peer_summary[name]['mean']:.4f} ± {peer_summary[name]['std']:.4f} |")
    gap32 = next((d for d in summary["pretrained_minus_scratch"] if d["per_class"] == "32"), None)
    if gap32:
        print(f"\npretrained - scratch at 32 labels per class: {gap32['accuracy_points_mean']:+.1f} accuracy points "
              f"(std {gap32['accuracy_points_std']:.1f} over {gap32['pairs']} seeds)")
    pretrain_metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    last_eval = next((m for m in reversed(pretrain_metrics) if m.get("kind") == "eval"), None)
    manifest = json.loads((work / "tokens" / "manifest.json").read_text())
    results = {"summary": summary, "tfidf_logreg": peer_summary, "tfidf_runs": peer, "seconds": times,
               "pretraining": {"model_size": args.model_size, "steps": args.steps, "batch_size": args.batch_size,
                               "seq_len": 128, "tokens_seen": args.steps * args.batch_size * 128, "lr": args.lr,
                               "last_eval": last_eval, "corpus_manifest": {k: v for k, v in manifest.items()
                                                                             if not isinstance(v, (list, dict))}},
               "curve": str(curve_dir)}
    (work / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nresults: {work / 'results.json'}   plot: {curve_dir / 'curve.png'}")


if __name__ == "__main__":
    main()

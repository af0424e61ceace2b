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
import resource  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

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
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    import torch

    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    times: dict[str, dict[str, float]] = {}
    prepare(args, work, times)
    if args.prepare_only:
        return


if __name__ == "__main__":
    main()

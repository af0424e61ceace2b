"""Chinese pretraining at GPU scale: several encoders pretrained at once on one GPU, then fine-tuned on the task.

Issue 21 asks whether a Chinese-pretrained encoder beats TF-IDF over character n-grams on the man-page section
task (`sample/zh/task`). On 2 CPU cores gristmill could afford `tiny` for 12 M tokens. This script spends a
GPU lease on bigger encoders and 3-9x the tokens, in three timed phases, so that it fits a short lease:

1. **calibrate**: every arm runs 120 steps at once; the last window's throughput, measured while all arms
   share the GPU, sets each arm's step count so that it finishes inside ``--budget`` seconds (at most
   ``--target-steps``). The learning-rate schedule then ends where the run ends.
2. **pretrain**: every arm at once (`gristmill pretrain`, bf16, masked LM).
3. **fine-tune**: `benchmarks/chinese.py --parts curve` for every finished arm (3 seeds x 8 / 16 / 32 labels
   per class, `--max-length 256`, each pooling of ``--poolings``), and from scratch once per model size; all at
   once, on the GPU.

The arms share one tokenizer per corpus (unigram 20,000 `--no-cjk --alphabet cjk`, the zh quickstart's):
TOKENS folders made beforehand with `gristmill tokenize`, passed as ``--tokens NAME=DIR``.

Usage (the two GPU calls of 2026-12-04, `benchmarks/results/chinese.md` section 9; `.gpu/` holds the TOKENS
folders)::

    python benchmarks/chinese_scale.py --round 1 --tokens old=.gpu/tokens-old --tokens new=.gpu/tokens-new \\
        --work W1 --budget 180 --ft-budget 140
    python benchmarks/chinese_scale.py --round 2 --poolings cls,mean --tokens old=.gpu/tokens-old \\
        --tokens new=.gpu/tokens-new --work W2 --budget 160 --ft-budget 130

Writes WORK/summary.json and WORK/summary.md (every arm's pretraining figures and test accuracy per size),
WORK/logs/ and WORK/bench/ARM/curve/runs.jsonl. Runs on the CPU too (``--device cpu``, for a dry run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# A lent GPU machine has torch but no gristmill installed: this script and its processes run it from the tree.
sys.path.insert(0, str(ROOT / "src"))

from gristmill.train.metrics import read_metrics  # noqa: E402  (after the path above)

CALIBRATION_STEPS = 120


@dataclass(frozen=True)
class Arm:
    name: str
    corpus: str
    size: str
    lr: float
    dropout: float
    seed: int = 0
    batch: int = 128


ROUNDS = {
    1: [
        Arm("tiny", "old", "tiny", 2e-3, 0.1),
        Arm("mini", "old", "mini", 1e-3, 0.1),
        Arm("mini-s1", "old", "mini", 1e-3, 0.1, seed=1),
        Arm("mini-nodrop", "old", "mini", 1e-3, 0.0),
        Arm("mini-lr5e-4", "old", "mini", 5e-4, 0.1),
        Arm("small", "old", "small", 5e-4, 0.1),
        Arm("mini-new", "new", "mini", 1e-3, 0.1),
    ],
    # Round 1's best arm (small) again with other pretraining seeds, a larger batch, a higher rate, and medium.
    2: [
        Arm("small-s1", "old", "small", 5e-4, 0.1, seed=1),
        Arm("small-s2", "old", "small", 5e-4, 0.1, seed=2),
        Arm("small-b256", "old", "small", 5e-4, 0.1, batch=256),
        Arm("small-lr1e-3", "old", "small", 1e-3, 0.1),
        Arm("medium", "old", "medium", 3e-4, 0.1),
        Arm("small-new", "new", "small", 5e-4, 0.1),
    ],
}
SCRATCH_FROM = {1: {"tiny": "tiny", "mini": "mini", "small": "small"}, 2: {"small": "small-s1", "medium": "medium"}}
"""Scratch needs only a run's config and tokenizer: one scratch curve per model size, from this arm."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def environment() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return env


def start(args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handle = log_path.open("wb")
    return subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, env=environment(), cwd=ROOT)


def wait_all(procs: dict[str, subprocess.Popen[bytes]], deadline_s: float) -> dict[str, int | None]:
    """Exit codes by name; a process still running at the deadline is killed (None)."""
    end = time.monotonic() + deadline_s
    codes: dict[str, int | None] = {}
    while len(codes) < len(procs):
        for name, proc in procs.items():
            if name not in codes and proc.poll() is not None:
                codes[name] = proc.returncode
                log(f"  {name}: exit {proc.returncode}")
        if time.monotonic() > end:
            for name, proc in procs.items():
                if name not in codes:
                    proc.kill()
                    proc.wait()
                    codes[name] = None
                    log(f"  {name}: killed at the deadline")
        time.sleep(0.5)
    return codes


def pretrain_args(arm: Arm, tokens: Path, out: Path, steps: int, device: str, calibrate: bool) -> list[str]:
    every = max(1, steps // 4)
    return [sys.executable, "-m", "gristmill", "pretrain", "--data", str(tokens), "--out", str(out),
            "--model-size", arm.size, "--steps", str(steps), "--batch-size", str(arm.batch), "--lr", str(arm.lr),
            "--dropout", str(arm.dropout), "--seed", str(arm.seed), "--bf16", "--device", device, "--threads", "2",
            "--log-every", "40" if calibrate else "100", "--eval-every", "0" if calibrate else str(every),
            "--eval-batches", "10", "--save-every", str(steps if calibrate else max(1, steps // 2)), "--keep", "1",
            "--no-progress", "--overwrite"]


def calibrate(arms: list[Arm], tokens: dict[str, Path], work: Path, device: str) -> dict[str, float]:
    """Steps per second of each arm while all arms run at once (the last logged window)."""
    procs = {a.name: start(pretrain_args(a, tokens[a.corpus], work / "cal" / a.name, CALIBRATION_STEPS, device, True),
                           work / "logs" / f"cal-{a.name}.log") for a in arms}
    wait_all(procs, 120)
    rates = {}
    for a in arms:
        rows = [r for r in read_metrics(work / "cal" / a.name) if r.get("kind") == "train"]
        if rows:
            rates[a.name] = rows[-1]["tokens_per_s"] / (rows[-1]["tokens"] / rows[-1]["step"])
    return rates


def curve_args(run: Path, bench: Path, inits: str, device: str, pooling: str) -> list[str]:
    return [sys.executable, str(ROOT / "benchmarks" / "chinese.py"), "--workdir", str(bench), "--parts", "curve",
            "--run", str(run), "--inits", inits, "--max-length", "256", "--bf16", "--threads", "1",
            "--device", device, "--pooling", pooling]


def bench_name(name: str, pooling: str) -> str:
    return name if pooling == "cls" else f"{name}-{pooling}"


def curve_rows(bench: Path) -> list[dict[str, Any]]:
    path = bench / "curve" / "runs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def summarise(work: Path, plan: dict[str, Any], arms_run: list[Arm], poolings: list[str]) -> dict[str, Any]:
    arms: dict[str, Any] = {}
    for arm in arms_run:
        if arm.name not in plan["steps"]:
            continue
        rows = read_metrics(work / "pre" / arm.name)
        train = [r for r in rows if r.get("kind") == "train"]
        evals = [r for r in rows if r.get("kind") == "eval"]
        entry: dict[str, Any] = {**asdict(arm), "steps_planned": plan["steps"][arm.name],
                                 "steps_done": train[-1]["step"] if train else 0,
                                 "tokens": train[-1]["tokens"] if train else 0,
                                 "train_loss_last": train[-1]["loss"] if train else None,
                                 "seconds": round(train[-1]["elapsed_s"], 1) if train else None,
                                 "eval": [{k: v for k, v in r.items() if k != "kind"} for r in evals]}
        for pooling in poolings:
            for init, bench in (("pretrained", work / "bench" / bench_name(arm.name, pooling)),
                                ("scratch", work / "bench" / bench_name(f"scratch-{arm.size}", pooling))):
                got: dict[str, Any] = {}
                for row in curve_rows(bench):
                    got.setdefault(row["per_class"], []).append(row)
                entry[bench_name(init, pooling)] = {
                    size: {"test": round(statistics.mean(r["test_accuracy"] for r in rs), 4),
                           "dev": round(statistics.mean(r.get("dev_accuracy", float("nan")) for r in rs), 4),
                           "seeds": len(rs), "per_seed": [r["test_accuracy"] for r in rs]}
                    for size, rs in got.items()}
        arms[arm.name] = entry
    return {"plan": plan, "arms": arms}


def markdown(summary: dict[str, Any], poolings: list[str]) -> str:
    sizes = ("8", "16", "all")
    lines = ["| arm | size | corpus | lr | dropout | seed | batch | steps | tokens (M) | val loss | masked acc | pooling | "
             "pretrained 8 / 16 / 32 | dev 8 / 16 / 32 | scratch 8 / 16 / 32 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, a in summary["arms"].items():
        last = a["eval"][-1] if a["eval"] else {}

        def cells(init: str, key: str, arm: dict[str, Any] = a) -> str:
            return " / ".join(f"{arm[init][s][key]:.3f}" if s in arm[init] else "-" for s in sizes)

        for pooling in poolings:
            lines.append(f"| {name} | {a['size']} | {a['corpus']} | {a['lr']:g} | {a['dropout']} | {a['seed']} | "
                         f"{a['batch']} | {a['steps_done']}/{a['steps_planned']} | {a['tokens'] / 1e6:.1f} | "
                         f"{last.get('loss', float('nan')):.3f} | {last.get('accuracy', float('nan')):.3f} | {pooling} | "
                         f"{cells(bench_name('pretrained', pooling), 'test')} | "
                         f"{cells(bench_name('pretrained', pooling), 'dev')} | "
                         f"{cells(bench_name('scratch', pooling), 'test')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", action="append", required=True, help="NAME=TOKENS_DIR, one per corpus.")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--budget", type=float, default=200, help="Seconds of pretraining (all arms at once).")
    parser.add_argument("--ft-budget", type=float, default=150, help="Seconds of fine-tuning (all curves at once).")
    parser.add_argument("--target-steps", type=int, default=6000, help="Most steps an arm may take.")
    parser.add_argument("--min-steps", type=int, default=300)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--round", type=int, choices=sorted(ROUNDS), default=1, help="Which set of arms.")
    parser.add_argument("--arms", help="Comma-separated arm names (default: all of the round).")
    parser.add_argument("--poolings", default="cls", help="Fine-tune with each: cls, mean or cls,mean.")
    args = parser.parse_args()
    poolings = args.poolings.split(",")
    tokens = dict(item.split("=", 1) for item in args.tokens)
    tokens_dirs = {k: Path(v).resolve() for k, v in tokens.items()}
    chosen = [a for a in ROUNDS[args.round] if (args.arms is None or a.name in args.arms.split(",")) and a.corpus in tokens_dirs]
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    log(f"calibrating {len(chosen)} arms, {CALIBRATION_STEPS} steps each, all at once")
    rates = calibrate(chosen, tokens_dirs, work, args.device)
    steps = {a.name: max(args.min_steps, min(args.target_steps, int(rates[a.name] * args.budget * 0.9) // 100 * 100))
             for a in chosen if a.name in rates}
    plan = {"round": args.round, "rates_steps_per_s": {k: round(v, 2) for k, v in rates.items()}, "steps": steps,
            "budget_s": args.budget, "device": args.device, "poolings": poolings}
    (work / "plan.json").write_text(json.dumps(plan, indent=1) + "\n")
    log(f"plan: {json.dumps(plan)}  ({time.monotonic() - t0:.0f} s)")

    procs = {a.name: start(pretrain_args(a, tokens_dirs[a.corpus], work / "pre" / a.name, steps[a.name], args.device,
                                         False), work / "logs" / f"pre-{a.name}.log")
             for a in chosen if a.name in steps}
    codes = wait_all(procs, args.budget * 1.3 + 30)
    log(f"pretraining done ({time.monotonic() - t0:.0f} s)")

    curves = {}
    for pooling in poolings:
        for a in chosen:
            if codes.get(a.name) == 0:
                name = bench_name(a.name, pooling)
                curves[name] = start(curve_args(work / "pre" / a.name, work / "bench" / name, "pretrained", args.device,
                                                pooling), work / "logs" / f"ft-{name}.log")
        for size, arm_name in SCRATCH_FROM[args.round].items():
            if codes.get(arm_name) == 0:
                name = bench_name(f"scratch-{size}", pooling)
                curves[name] = start(curve_args(work / "pre" / arm_name, work / "bench" / name, "scratch", args.device,
                                                pooling), work / "logs" / f"ft-{name}.log")
    wait_all(curves, args.ft_budget)
    log(f"fine-tuning done ({time.monotonic() - t0:.0f} s)")

    summary = summarise(work, plan, chosen, poolings)
    summary["seconds"] = round(time.monotonic() - t0, 1)
    (work / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    table = markdown(summary, poolings)
    (work / "summary.md").write_text(table)
    print(table, flush=True)


if __name__ == "__main__":
    main()

"""Scale-out benchmark: the corpus pipeline at 1 and 2 workers, local and on Ray; pretraining at 1 and 2 processes.

Corpus part: the same recipe (``recipes/web-en.yaml`` when it exists, with ``minhash_dedup`` appended if
the recipe has none; otherwise the registered quality filters + ``minhash_dedup``) over the same input, once per executor and worker count, each in a fresh
process. Reported: documents/s over the pipeline's own run time (``stats.json`` totals, which exclude
starting Ray; that is reported on its own), and the peak resident memory of every worker process
(``ru_maxrss`` read inside each task, so Ray workers and pool workers are measured the same way). The
kept and rejected ids of every configuration are compared with local/1 worker: they must be identical.

Pretraining part: a WordPiece tokenizer and packed shards from the kept output, then ``gristmill pretrain``
(``--model-size mini``, one CPU thread per process) as one process and under
``torchrun --standalone --nproc_per_node 2``; tokens/s from ``metrics.jsonl`` without the first window.

    python benchmarks/scale.py                       # everything, full shared corpus
    python benchmarks/scale.py --limit 10000 --steps 20
    python benchmarks/scale.py --skip-pretrain

Peers: the local executor is the peer of the Ray executor (ratio Ray/local at equal workers), and one
worker or process is the peer of two (speed-up). Ray's private instance gets a token of its own and a
temporary directory of its own, so nothing is left in ``~/.ray`` or ``/tmp/ray``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path("/work/shared/data/corpus/docs.jsonl.gz")
CONFIGS = [("local", 1), ("local", 2), ("ray", 1), ("ray", 2)]
FILTERS = ("gopher_quality", "gopher_repetition", "c4_quality", "fineweb_quality")


# ----------------------------------------------------------------------------------------- corpus: one config


class Measured:
    """Wraps a task function: returns its result with the worker's pid, peak RSS (KiB) and the CPU seconds
    the task used (all threads of the worker), which unlike wall time barely depends on other load."""

    def __init__(self, fn: Callable[[Any], Any]):
        self.fn = fn

    def __call__(self, item: Any) -> tuple[Any, int, int, float]:
        cpu = time.process_time()
        out = self.fn(item)
        return out, os.getpid(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.process_time() - cpu


class MeasuringExecutor:
    """An executor that records every worker's peak memory and CPU time while delegating to another executor."""

    def __init__(self, inner: Any):
        self.inner, self.name, self.workers = inner, inner.name, inner.workers
        self.peak_kib: dict[int, int] = {}
        self.task_cpu_s = 0.0

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        for out, pid, rss, cpu in self.inner.map(Measured(fn), items):
            self.peak_kib[pid] = max(rss, self.peak_kib.get(pid, 0))
            self.task_cpu_s += cpu
            yield out

    def close(self) -> None:
        self.inner.close()


def default_recipe_text(corpus: str, out: str) -> str:
    from gristmill.data.recipe import load_builtin_steps

    registry = load_builtin_steps()
    steps = [name for name in FILTERS if name in registry] + ["minhash_dedup"]
    body = "".join(f"  - {name}\n" for name in steps)
    return f"input: {{paths: ['{corpus}']}}\nsteps:\n{body}output: {{path: '{out}'}}\n"


def run_one(args: argparse.Namespace) -> None:
    from gristmill.data.executors import make_executor
    from gristmill.data.recipe import build_step, load_recipe, parse_recipe

    if args.recipe:
        pipeline = load_recipe(args.recipe, output_override=args.out, input_override=[str(args.corpus)])
        if not any(step.name == "minhash_dedup" for step in pipeline.steps):
            pipeline.steps.append(build_step("minhash_dedup", {}))  # the issue measures filters + MinHash
    else:
        pipeline = parse_recipe(default_recipe_text(args.corpus, args.out), "<scale benchmark>")
    pipeline.input.shard_size = args.shard_size
    driver_cpu0 = time.process_time()
    t0 = time.perf_counter()
    executor = MeasuringExecutor(make_executor(args.executor, args.workers))
    startup = time.perf_counter() - t0
    try:
        result = pipeline.run(executor=executor, progress=False)
    finally:
        executor.close()
    totals = result.stats["totals"]
    print(json.dumps({
        "executor": args.executor, "workers": args.workers, "docs_in": result.docs_in, "kept": result.kept,
        "rejected": result.rejected, "seconds": totals["seconds"], "startup_s": round(startup, 2),
        "docs_per_s": round(result.docs_in / totals["seconds"], 1),
        "task_cpu_s": round(executor.task_cpu_s, 1),
        "docs_per_task_cpu_s": round(result.docs_in / max(executor.task_cpu_s, 1e-9), 1),
        "driver_cpu_s": round(time.process_time() - driver_cpu0, 1),
        "worker_peak_mib": sorted(round(v / 1024) for v in executor.peak_kib.values()),
        "driver_peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "steps": [s["name"] for s in result.stats["steps"]],
    }))


# ----------------------------------------------------------------------------------------- corpus: all configs


def limited_copy(corpus: Path, limit: int, tmp: Path) -> Path:
    out = tmp / f"first-{limit}.jsonl.gz"
    with gzip.open(corpus, "rt", encoding="utf-8") as src, gzip.open(out, "wt", encoding="utf-8", compresslevel=1) as dst:
        for n, line in enumerate(src):
            if n >= limit:
                break
            dst.write(line)
    return out


def outcome(out: Path) -> tuple[list[str], list[tuple[str, str | None]]]:
    from gristmill.data.readers.output import read_documents

    kept = sorted(d.id for d in read_documents(out / "kept"))
    rejected = sorted((d.id, d.reason) for d in read_documents(out / "rejected"))
    return kept, rejected


def bench_corpus(args: argparse.Namespace, tmp: Path, env: dict[str, str]) -> tuple[list[dict[str, Any]], Path]:
    corpus = limited_copy(args.corpus, args.limit, tmp) if args.limit else args.corpus
    rows: list[dict[str, Any]] = []
    reference: tuple[Any, Any] | None = None
    for name, workers in CONFIGS:
        out = tmp / f"out-{name}-{workers}"
        cmd = [sys.executable, __file__, "_one", "--executor", name, "--workers", str(workers), "--corpus", str(corpus),
               "--out", str(out), "--shard-size", str(args.shard_size)]
        if args.recipe:
            cmd += ["--recipe", str(args.recipe)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
        if proc.returncode != 0:
            sys.exit(f"{name}/{workers} failed:\n{proc.stderr[-3000:]}")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        result = outcome(out)
        if reference is None:
            reference = result
        row["same_as_local_1"] = result == reference
        rows.append(row)
        print(f"  {name:5s} x{workers}: {row['docs_per_s']:8,.0f} docs/s  {row['seconds']:6.1f} s  "
              f"{row['docs_per_task_cpu_s']:6,.0f} docs per task CPU-s  workers peak {row['worker_peak_mib']} MiB  "
              f"same result: {row['same_as_local_1']}", flush=True)
    return rows, tmp / "out-local-1" / "kept"


# ----------------------------------------------------------------------------------------- pretraining


def tokens_per_s(run: Path) -> float:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in rows if r.get("kind") == "train"][1:]  # the first window holds start-up costs
    if not train:
        raise SystemExit(f"no train rows in {run / 'metrics.jsonl'}; raise --steps")
    return sorted(r["tokens_per_s"] for r in train)[len(train) // 2]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_pretrain(args: argparse.Namespace, kept: Path, tmp: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    gm = [sys.executable, "-m", "gristmill"]
    tokdir, tokens = tmp / "tokdir", tmp / "tokens"
    subprocess.run([*gm, "tokenizer", "train", "--input", str(kept), "--out", str(tokdir), "--vocab-size", "8000",
                    "--no-progress"], env=env, check=True, capture_output=True)
    subprocess.run([*gm, "tokenize", "--input", str(kept), "--tokenizer", str(tokdir), "--out", str(tokens),
                    "--seq-len", "128", "--workers", "2", "--no-progress"], env=env, check=True, capture_output=True)
    common = ["pretrain", "--data", str(tokens), "--model-size", args.model_size, "--steps", str(args.steps),
              "--batch-size", "32", "--eval-every", "0", "--log-every", "5", "--save-every", str(10 * args.steps),
              "--threads", "1", "--no-progress"]
    rows = []
    for nproc in (1, 2):
        run = tmp / f"run-{nproc}"
        if nproc == 1:
            cmd = [*gm, *common, "--out", str(run)]
        else:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
                   "-m", "gristmill", *common, "--out", str(run)]
        t0 = time.perf_counter()
        cpu0 = _children_cpu()
        proc = subprocess.run(cmd, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                              timeout=args.timeout)
        if proc.returncode != 0:
            sys.exit(f"pretrain x{nproc} failed:\n{proc.stderr[-3000:]}")
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        total_tokens = max(r.get("tokens", 0) for r in metrics)
        cpu = _children_cpu() - cpu0
        row = {"processes": nproc, "tokens_per_s": round(tokens_per_s(run)), "wall_s": round(time.perf_counter() - t0, 1),
               "cpu_s": round(cpu, 1), "tokens_per_cpu_s": round(total_tokens / max(cpu, 1e-9))}
        rows.append(row)
        print(f"  pretrain x{nproc}: {row['tokens_per_s']:8,} tokens/s  {row['tokens_per_cpu_s']:,} tokens per CPU-s "
              f"(wall {row['wall_s']} s, CPU {row['cpu_s']} s)", flush=True)
    return rows


# ----------------------------------------------------------------------------------------- main


def report(corpus_rows: list[dict[str, Any]], pretrain_rows: list[dict[str, Any]]) -> None:
    if corpus_rows:
        by = {(r["executor"], r["workers"]): r for r in corpus_rows}
        print("\n| executor | workers | docs/s (wall) | run s | task CPU s | docs per task CPU-s | driver CPU s "
              "| Ray start s | peak RSS per worker (MiB) | driver peak (MiB) | same result |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in corpus_rows:
            start = f"{r['startup_s']:.1f}" if r["executor"] == "ray" else "-"
            print(f"| {r['executor']} | {r['workers']} | {r['docs_per_s']:,.0f} | {r['seconds']:.1f} | {r['task_cpu_s']:.1f} | "
                  f"{r['docs_per_task_cpu_s']:,.0f} | {r['driver_cpu_s']:.1f} | {start} | "
                  f"{', '.join(map(str, r['worker_peak_mib']))} | {r['driver_peak_mib']} | {r['same_as_local_1']} |")
        for name in ("local", "ray"):
            print(f"speed-up 2 vs 1 worker, {name}: {by[(name, 2)]['docs_per_s'] / by[(name, 1)]['docs_per_s']:.2f}x")
        for w in (1, 2):
            print(f"ray / local throughput at {w} worker(s): {by[('ray', w)]['docs_per_s'] / by[('local', w)]['docs_per_s']:.2f}x")
        print(f"documents: {corpus_rows[0]['docs_in']:,} in, {corpus_rows[0]['kept']:,} kept; steps: {', '.join(corpus_rows[0]['steps'])}")
    if pretrain_rows:
        print("\n| processes | tokens/s (median window) | wall s | CPU s (all processes) | tokens per CPU-s |\n|---|---|---|---|---|")
        for r in pretrain_rows:
            print(f"| {r['processes']} | {r['tokens_per_s']:,} | {r['wall_s']} | {r['cpu_s']} | {r['tokens_per_cpu_s']:,} |")
        print(f"speed-up 2 vs 1 process: {pretrain_rows[1]['tokens_per_s'] / pretrain_rows[0]['tokens_per_s']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="all", choices=["all", "_one"])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--recipe", type=Path, default=None,
                        help="Recipe to run (default: recipes/web-en.yaml if it exists, else filters + minhash_dedup).")
    parser.add_argument("--limit", type=int, default=0, help="Use only the first N documents (0 = all).")
    parser.add_argument("--shard-size", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=30, help="Pretraining steps per measurement.")
    parser.add_argument("--model-size", default="mini")
    parser.add_argument("--skip-pretrain", action="store_true")
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--executor", default="local")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    if args.mode == "_one":
        run_one(args)
        return
    if args.recipe is None and (ROOT / "recipes" / "web-en.yaml").exists():
        args.recipe = ROOT / "recipes" / "web-en.yaml"
    if not args.corpus.exists():
        sys.exit(f"{args.corpus} not found: pass --corpus")
    tmp = Path(tempfile.mkdtemp(prefix="gm-scale-"))
    # A private Ray instance: its own token (nothing written to ~/.ray), its own temp dir, no usage stats.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_TMPDIR": str(tmp / "ray")}
    env.pop("RAY_ADDRESS", None)
    print(f"corpus: {args.corpus}{f' (first {args.limit:,})' if args.limit else ''}; recipe: {args.recipe or 'filters + minhash_dedup'}; "
          f"shard size {args.shard_size}; {os.cpu_count()} CPUs", flush=True)
    try:
        corpus_rows, kept = bench_corpus(args, tmp, env)
        pretrain_rows = [] if args.skip_pretrain else bench_pretrain(args, kept, tmp, env)
        report(corpus_rows, pretrain_rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

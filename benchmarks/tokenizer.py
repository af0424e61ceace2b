"""Benchmark: `gristmill tokenize` against the usual Hugging Face way, and 32k WordPiece training time.

On the same corpus in one run:

1. ``gristmill run`` with a trivial recipe (noop) turns the corpus into ``OUT/kept`` Parquet (not timed);
2. ``train_tokenizer`` trains a 32k WordPiece vocabulary on it (timed);
3. ``gristmill tokenize --workers 1`` and ``--workers 2`` (the CLI, in a subprocess, wall time including
   start-up) pack it into 128-token sequences;
4. the HF way, as in transformers' ``examples/pytorch/language-modeling/run_mlm.py``: ``load_dataset``
   (Parquet), ``.map(tokenizer(..., return_special_tokens_mask=True), batched=True)``, then
   ``.map(group_texts, batched=True)`` into 128-token blocks, with ``num_proc`` 1 and 2 (a subprocess
   too, timed from before ``load_dataset``), with the same tokenizer loaded by ``AutoTokenizer``.

Both sides' outputs stay on disk (TOKENS folders, the datasets cache) and are measured in bytes.
Nothing touches the network: ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` are set and the datasets cache
is a temporary folder.

    python benchmarks/tokenizer.py [--corpus /work/shared/data/corpus/docs.jsonl.gz] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_HUB_DISABLE_TELEMETRY": "1"}
DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpus" / "docs.jsonl.gz"


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _tree_hwm(root: int, hwm: dict[int, int]) -> None:
    """Record the peak RSS (VmHWM, kB) of ``root`` and its descendants that are alive now."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    todo = [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    hwm[pid] = max(hwm.get(pid, 0), int(line.split()[1]))
        except OSError:
            pass


def run_child(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """Run ``cmd``; return wall seconds, CPU seconds (user + system, its worker processes included),
    peak RSS in MiB of its largest process (sampled every 0.2 s) and stdout.

    The peak is sampled from /proc rather than taken from rusage, because a child's ru_maxrss starts
    at the RSS of the process that forked it (this benchmark, which holds the trained tokenizer).
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, text=True)
        hwm: dict[int, int] = {}
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            _tree_hwm(proc.pid, hwm)
            time.sleep(0.2)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.read()[-3000:]}")
        return seconds, usage.ru_utime + usage.ru_stime, max(hwm.values(), default=0) // 1024, out.read()


def hf_way(kept: Path, tokdir: Path, seq_len: int, num_proc: int, cache: Path) -> None:
    """The run_mlm.py recipe; prints one JSON line with its figures."""
    from itertools import chain

    from datasets import load_dataset
    from transformers import AutoTokenizer

    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(tokdir))
    raw = load_dataset("parquet", data_files=sorted(str(p) for p in kept.glob("*.parquet")), split="train",
                       cache_dir=str(cache))
    t_load = time.perf_counter()

    def tokenize_function(examples: dict) -> dict:
        return tokenizer(examples["text"], return_special_tokens_mask=True)

    tokenized = raw.map(tokenize_function, batched=True, num_proc=num_proc if num_proc > 1 else None,
                        remove_columns=raw.column_names, load_from_cache_file=False)
    t_tok = time.perf_counter()

    def group_texts(examples: dict) -> dict:
        concatenated = {k: list(chain(*examples[k])) for k in examples}
        total_length = len(concatenated[next(iter(examples))])
        total_length = (total_length // seq_len) * seq_len
        return {k: [t[i: i + seq_len] for i in range(0, total_length, seq_len)] for k, t in concatenated.items()}

    grouped = tokenized.map(group_texts, batched=True, num_proc=num_proc if num_proc > 1 else None,
                            load_from_cache_file=False)
    t_group = time.perf_counter()
    final_bytes = sum(os.path.getsize(f["filename"]) for f in grouped.cache_files)
    print(json.dumps({"sequences": len(grouped), "tokens": len(grouped) * seq_len, "seconds": t_group - t0,
                      "load_s": t_load - t0, "tokenize_s": t_tok - t_load, "group_s": t_group - t_tok,
                      "final_bytes": final_bytes, "columns": grouped.column_names}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--workdir", type=Path, default=None, help="Keep everything here (default: a temp dir).")
    ap.add_argument("--vocab-size", type=int, default=32000)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=3, help="Runs of each side; the fastest is reported.")
    ap.add_argument("--hf-child", nargs=4, metavar=("KEPT", "TOKDIR", "NUM_PROC", "CACHE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.update(OFFLINE)
    if args.hf_child:
        kept, tokdir, num_proc, cache = args.hf_child
        hf_way(Path(kept), Path(tokdir), args.seq_len, int(num_proc), Path(cache))
        return
    if not args.corpus.exists():
        raise SystemExit(f"{args.corpus} not found; pass --corpus")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="gristmill-bench-tokenize-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **OFFLINE, "HF_DATASETS_CACHE": str(work / "hf_cache"), "HF_HOME": str(work / "hf_home")}
    env.pop("TOKENIZERS_PARALLELISM", None)  # both sides run with the library default
    print(f"workdir {work}", file=sys.stderr)

    out = work / "OUT"
    if not (out / "stats.json").exists():
        recipe = work / "noop.yaml"
        recipe.write_text(f"input: {{paths: ['{args.corpus}']}}\nsteps:\n  - noop\noutput: {{path: '{out}'}}\n")
        subprocess.run([sys.executable, "-m", "gristmill", "run", str(recipe), "--workers", "2", "--no-progress",
                        "--overwrite"], env=env, check=True, stdout=subprocess.DEVNULL)
    kept = out / "kept"
    stats = json.loads((out / "stats.json").read_text())["totals"]

    from gristmill.tokenizer import load_tokenizer, train_tokenizer

    tokdir = work / f"wordpiece{args.vocab_size // 1000}k"
    t0 = time.perf_counter()
    train_tokenizer(kept, tokdir, vocab_size=args.vocab_size, show_progress=False, overwrite=True)
    train_s = time.perf_counter() - t0
    vocab = load_tokenizer(tokdir).get_vocab_size()

    # Each measurement is repeated, the runs of both sides interleaved, and the fastest run is kept:
    # the machine is shared, so the minimum is the figure least disturbed by other jobs.
    runs: dict[str, list[dict]] = {}
    for rep in range(args.repeat):
        for w in args.workers:
            tokens_dir = work / f"TOKENS-w{w}"
            seconds, cpu, peak, _ = run_child([sys.executable, "-m", "gristmill", "tokenize", "--input", str(kept),
                                          "--tokenizer", str(tokdir), "--out", str(tokens_dir), "--seq-len",
                                          str(args.seq_len), "--workers", str(w), "--overwrite", "--no-progress"], env)
            m = json.loads((tokens_dir / "manifest.json").read_text())
            runs.setdefault(f"g{w}", []).append({
                "who": f"gristmill tokenize --workers {w}", "workers": w, "seconds": seconds, "cpu_s": cpu,
                "tokens": sum(s["tokens"] for s in m["splits"].values()),
                "sequences": sum(s["sequences"] for s in m["splits"].values()), "bytes": du(tokens_dir),
                "peak_mib": peak})
            print(f"rep {rep}: gristmill w{w} {seconds:.1f} s, cpu {cpu:.1f} s", file=sys.stderr)
        for p in args.workers:
            cache = work / f"hf_cache_p{p}"
            shutil.rmtree(cache, ignore_errors=True)
            seconds, cpu, peak, stdout = run_child([sys.executable, __file__, "--seq-len", str(args.seq_len), "--hf-child",
                                               str(kept), str(tokdir), str(p), str(cache)],
                                              {**env, "HF_DATASETS_CACHE": str(cache)})
            res = json.loads(stdout.strip().splitlines()[-1])
            runs.setdefault(f"h{p}", []).append({
                "who": f"HF datasets map + group_texts, num_proc {p}", "workers": p, "seconds": seconds, "cpu_s": cpu,
                "inner_seconds": res["seconds"], "tokens": res["tokens"], "sequences": res["sequences"],
                "bytes": du(cache), "final_bytes": res["final_bytes"], "peak_mib": peak,
                "split_s": {k: round(res[k], 1) for k in ("load_s", "tokenize_s", "group_s")}})
            print(f"rep {rep}: HF num_proc {p} {seconds:.1f} s, cpu {cpu:.1f} s", file=sys.stderr)
    rows = []
    for key in [f"g{w}" for w in args.workers] + [f"h{p}" for p in args.workers]:
        best = min(runs[key], key=lambda r: r["seconds"])
        best["all_seconds"] = [round(r["seconds"], 1) for r in runs[key]]
        best["min_cpu_s"] = min(r["cpu_s"] for r in runs[key])
        rows.append(best)

    print(f"\ncorpus {args.corpus}: {stats['kept']:,} documents (OUT/kept of a noop `gristmill run`)")
    print(f"train WordPiece vocab {vocab:,}: {train_s:.1f} s")
    print(f"\n{'best of ' + str(args.repeat):48} {'seconds':>8} {'tokens':>12} {'tokens/s':>10} {'CPU s':>7} "
          f"{'tokens/CPU s':>12} {'disk MiB':>9} {'peak RSS MiB*':>14}  all runs (s)")
    for r in rows:
        r["tokens_per_s"] = r["tokens"] / r["seconds"]
        r["tokens_per_cpu_s"] = r["tokens"] / r["min_cpu_s"]
        print(f"{r['who']:48} {r['seconds']:8.1f} {r['tokens']:12,} {r['tokens_per_s']:10,.0f} {r['min_cpu_s']:7.1f} "
              f"{r['tokens_per_cpu_s']:12,.0f} {r['bytes'] / 2**20:9.1f} {r['peak_mib']:14,}  {r['all_seconds']}")
    print("CPU s: user + system seconds of the command and its worker processes (least of the runs)")
    print("* peak RSS (VmHWM, sampled every 0.2 s) of the largest single process: the command or one of its workers")
    for w in args.workers:
        g = next(r for r in rows if r["who"].startswith("gristmill") and r["workers"] == w)
        h = next(r for r in rows if r["who"].startswith("HF") and r["workers"] == w)
        print(f"\n{w} worker(s): gristmill is {g['tokens_per_s'] / h['tokens_per_s']:.2f}x the HF tokens/s "
              f"({h['seconds'] / g['seconds']:.2f}x less wall time; against HF's inner time without its imports, "
              f"{h['inner_seconds']:.1f} s {h['split_s']}, {h['inner_seconds'] / g['seconds']:.2f}x; per CPU second "
              f"{g['tokens_per_cpu_s'] / h['tokens_per_cpu_s']:.2f}x); disk {g['bytes'] / 2**20:.1f} MiB vs "
              f"{h['bytes'] / 2**20:.1f} MiB in the HF cache ({g['bytes'] / h['bytes']:.1%}; "
              f"final grouped dataset alone {h['final_bytes'] / 2**20:.1f} MiB)")
    (work / "results.json").write_text(json.dumps({"train_s": train_s, "vocab": vocab, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()

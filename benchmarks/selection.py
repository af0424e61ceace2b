"""Model-based data selection on the shared data: toxicity classifier, domain selection, perplexity score.

Parts (each one a subcommand; ``all`` runs them in order), every stage skipped when its output is
already in ``--workdir`` so a killed run resumes:

``domain``      select the same number of words from the shared corpus at random and with
                ``select_domain`` (target: the fortunes training texts, labels unused), train one
                WordPiece tokenizer on both selections, pretrain the same ``tiny`` encoder on each
                (``gristmill tokenize`` / ``pretrain``), then ``gristmill curve`` at 32 labels per class,
                3 seeds, on fortunes; reports the paired difference (selected - random) with a t interval.
``toxicity``    ``gristmill classify train`` on ``tasks/offensive`` train; precision/recall on its test;
                on the shared corpus, the share of ``offensive`` documents rejected by ``blocklist`` alone
                and by ``blocklist`` + ``classifier``, and the share of clean documents of 50+ words
                wrongly rejected.
``speed``       documents per CPU-second of the ``classifier`` step beside the rest of ``web-en``.
``perplexity``  the ``perplexity`` score's correlation with the corpus's defect labels, and its throughput.

Usage::

    nice -n 5 python benchmarks/selection.py domain --workdir /tmp/gm_sel --threads 1

The corpus pool for ``domain`` excludes the 200 documents labelled ``contamination`` (they hold
fortunes *dev* texts, which early stopping reads). The machine is shared: timings are noisy;
CPU seconds are reported beside wall seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Scripts in benchmarks/ put that folder first on sys.path, where a sibling named like a standard
# module (tokenize.py) would shadow it; the standard library must win.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data")
CORPUS = SHARED / "corpus"
FORTUNES = SHARED / "tasks" / "fortunes"
OFFENSIVE = SHARED / "tasks" / "offensive"

# Two-sided 95% Student t quantiles by degrees of freedom (3 seeds -> 2).
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571}


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (user + system)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def gristmill(*args: str, threads: int = 1) -> float:
    """Run one gristmill command; returns its CPU seconds."""
    import os

    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "RAYON_NUM_THREADS": str(threads),
           "PYTHONPATH": str(ROOT / "src")}
    print("$ gristmill " + " ".join(args), flush=True)
    before = cpu_seconds()
    subprocess.run([sys.executable, "-m", "gristmill", *args], cwd=ROOT, check=True, env=env)
    return cpu_seconds() - before


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def corpus_with_labels() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return list(zip(read_jsonl(CORPUS / "docs.jsonl.gz"), read_jsonl(CORPUS / "labels.jsonl.gz")))


def words(text: str) -> int:
    return len(text.split())


def t_interval(diffs: list[float]) -> tuple[float, float]:
    """Mean and 95% half-width (Student t) of paired differences."""
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return mean, math.nan
    return mean, T95.get(len(diffs) - 1, 1.96) * statistics.stdev(diffs) / math.sqrt(len(diffs))


# --------------------------------------------------------------------------------------------- domain


def domain(args: argparse.Namespace) -> dict[str, Any]:
    import yaml

    work = args.workdir / "domain"
    work.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    pool = work / "pool.jsonl"
    if not pool.is_file():
        rows = [{"id": d["id"], "text": d["text"]} for d, lab in corpus_with_labels()
                if "contamination" not in lab["defects"]]
        write_jsonl(pool, rows)
    selected_dir = work / "selected"
    if not (selected_dir / "stats.json").is_file():
        recipe = work / "select.yaml"
        recipe.write_text(yaml.safe_dump({
            "input": {"paths": [str(pool)], "format": "jsonl", "text_field": "text", "id_field": "id"},
            "steps": ["noop", {"select_domain": {"target": str(FORTUNES / "train.jsonl"), "fraction": args.fraction,
                                                 "normalize_to": args.normalize_to, "seed": 0}}],
            "output": {"path": str(selected_dir), "format": "jsonl"},
        }, sort_keys=False), encoding="utf-8")
        times["select_domain_cpu_s"] = gristmill("run", str(recipe), "--overwrite", "--no-progress")
    arms = {"selected": work / "arm-selected.jsonl", "random": work / "arm-random.jsonl"}
    if not arms["random"].is_file():
        from gristmill.data.io import read_documents

        chosen = [{"id": d.id, "text": d.text} for d in read_documents(selected_dir / "kept")]
        budget = sum(words(r["text"]) for r in chosen)
        everything = list(read_jsonl(pool))
        random.Random(0).shuffle(everything)
        picked, total = [], 0
        for row in everything:
            if total >= budget:
                break
            picked.append(row)
            total += words(row["text"])
        write_jsonl(arms["selected"], chosen)
        write_jsonl(arms["random"], picked)
    sizes = {name: {"docs": sum(1 for _ in read_jsonl(p)), "words": sum(words(r["text"]) for r in read_jsonl(p))}
             for name, p in arms.items()}
    print(json.dumps(sizes), flush=True)
    tok = work / "tokenizer"
    if not (tok / "tokenizer.json").is_file():
        times["tokenizer_cpu_s"] = gristmill("tokenizer", "train", "--input", str(arms["selected"]),
                                             "--input", str(arms["random"]), "--kind", "wordpiece", "--vocab-size",
                                             "8000", "--out", str(tok), "--overwrite", "--no-progress")
    dev = work / "dev-20pc.jsonl"
    if not dev.is_file():
        from gristmill.train.tasks import load_sequence_examples, stratified_sample

        sample = stratified_sample(load_sequence_examples(FORTUNES / "dev.jsonl"), 20, seed=12345)
        write_jsonl(dev, [{"text": e.text, "label": e.label} for e in sample.examples])
    results: dict[str, Any] = {"sizes": sizes, "steps": args.steps, "curves": {}}
    for name, arm in arms.items():
        tokens = work / f"tokens-{name}"
        if not (tokens / "manifest.json").is_file():
            times[f"tokenize_{name}_cpu_s"] = gristmill("tokenize", "--input", str(arm), "--tokenizer", str(tok),
                                                        "--seq-len", "128", "--out", str(tokens), "--overwrite",
                                                        "--no-progress")
        run = work / f"pretrain-{name}"
        if not (run / "train-done").is_file():
            t0 = time.perf_counter()
            times[f"pretrain_{name}_cpu_s"] = gristmill(
                "pretrain", "--data", str(tokens), "--model-size", "tiny", "--steps", str(args.steps),
                "--batch-size", "32", "--lr", "2e-3", "--eval-every", str(max(args.steps // 4, 10)), "--log-every",
                "100", "--save-every", "500", "--keep", "1", "--threads", str(args.threads), "--resume", "--out",
                str(run), "--no-progress", threads=args.threads)
            times[f"pretrain_{name}_wall_s"] = round(time.perf_counter() - t0, 1)
            (run / "train-done").touch()
        curve = work / f"curve-{name}"
        if not (curve / "curve.json").is_file():
            times[f"curve_{name}_cpu_s"] = gristmill(
                "curve", "--model", str(run), "--train", str(FORTUNES / "train.jsonl"), "--dev", str(dev), "--test",
                str(FORTUNES / "test.jsonl"), "--per-class", "32", "--seeds", str(args.seeds), "--out", str(curve),
                "--threads", str(args.threads), threads=args.threads)
        runs = [json.loads(x) for x in (curve / "runs.jsonl").read_text().splitlines() if x.strip()]
        results["curves"][name] = {r["seed"]: r["test_accuracy"] for r in runs if r["init"] == "pretrained"}
        results["curves"][f"{name}-scratch"] = {r["seed"]: r["test_accuracy"] for r in runs if r["init"] == "scratch"}
        results[f"val_{name}"] = last_validation(run)
    sel, rnd = results["curves"]["selected"], results["curves"]["random"]
    diffs = [100 * (sel[s] - rnd[s]) for s in sorted(sel) if s in rnd]
    mean, half = t_interval(diffs)
    results.update({"diff_points_per_seed": diffs, "diff_points_mean": mean, "diff_points_ci95": half,
                    "times": times})
    prev = work / "results.json"
    if prev.is_file():
        results["times"] = {**json.loads(prev.read_text()).get("times", {}), **times}
    prev.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps(results, indent=2, default=str))
    return results


def last_validation(run: Path) -> dict[str, Any] | None:
    """The last validation record of a pretraining run (metrics.jsonl)."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        return None
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    vals = [r for r in rows if any(k.startswith("val") for k in r)]
    return vals[-1] if vals else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=["domain", "toxicity", "speed", "perplexity", "all"])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/gm_selection"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fraction", type=float, default=0.2, help="select_domain: share of documents kept.")
    parser.add_argument("--normalize-to", type=int, default=256, help="select_domain: log weights per 256 n-grams.")
    parser.add_argument("--steps", type=int, default=3000, help="Pretraining steps per arm.")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    if not (CORPUS / "docs.jsonl.gz").is_file():
        sys.exit(f"needs the shared data in {SHARED}")
    args.workdir = args.workdir.resolve()
    parts = {"domain": domain}
    for name, fn in parts.items():
        if args.part in (name, "all"):
            fn(args)


if __name__ == "__main__":
    main()

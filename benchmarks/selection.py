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
``encoder-speed`` the same for the step with an encoder (tiny, mini; PyTorch and ONNX, fp32 and int8).
``perplexity``  the ``perplexity`` score's correlation with the corpus's defect labels, and its throughput.

Usage::

    nice -n 5 python benchmarks/selection.py domain --workdir /tmp/gm_sel --arm selected &   # the two arms
    nice -n 5 python benchmarks/selection.py domain --workdir /tmp/gm_sel --arm random &     # in parallel
    wait; python benchmarks/selection.py domain --workdir /tmp/gm_sel                       # the summary

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
        from gristmill.data.readers.output import read_documents

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
    if args.arm == "scratch":
        # The same encoder from random initialisation (arm-independent: one tokenizer for both arms).
        fts = {seed: work / f"ft-scratch-s{seed}" for seed in range(args.seeds)}
        times["finetune_scratch_cpu_s"] = finetune32(work / "pretrain-random", fts, dev, args.threads, scratch=True)
        return results
    for name, arm in arms.items():
        if args.arm and name != args.arm:
            continue
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
        fts = {seed: work / f"ft-{name}-s{seed}" for seed in range(args.seeds)}
        times[f"finetune_{name}_cpu_s"] = finetune32(run, fts, dev, args.threads)
        results["curves"][name] = {seed: json.loads((ft / "metrics.json").read_text())["test"]["accuracy"]
                                   for seed, ft in fts.items()}
        results[f"val_{name}"] = last_validation(run)
    if args.arm:
        return results
    scratch = [work / f"ft-scratch-s{seed}" / "metrics.json" for seed in range(args.seeds)]
    results["curves"]["scratch"] = {i: json.loads(p.read_text())["test"]["accuracy"]
                                    for i, p in enumerate(scratch) if p.is_file()}
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


# ------------------------------------------------------------------------------------------- toxicity


def half(doc_id: str) -> int:
    """0 or 1: a stable split of the corpus by id (tune on 0, report on 1)."""
    import xxhash

    return xxhash.xxh64_intdigest(doc_id.encode()) & 1


def toxicity(args: argparse.Namespace) -> dict[str, Any]:
    """Train on offensive/train (+ English negatives), P/R on its test, then blocklist vs + classifier on the corpus."""
    import numpy as np

    from gristmill.data.classify.linear import load_linear
    from gristmill.data.classify.scorers import score_documents
    from gristmill.data.document import Document
    from gristmill.data.steps.blocklist import Blocklist

    work = args.workdir / "toxicity"
    work.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"cpu_s": {}}
    # 1. C on the dev split (the only tuning), then the chosen model's test figures.
    dev_f1 = {}
    for c in (1.0, 4.0, 16.0):
        folder = work / f"qc-c{c:g}"
        if not (folder / "metrics.json").is_file():
            res["cpu_s"][f"train_c{c:g}"] = gristmill(
                "classify", "train", "--input", str(OFFENSIVE / "train.jsonl"), "--negative", str(FORTUNES / "train.jsonl"),
                "--negative-label", "clean", "--c", str(c), "--eval", str(OFFENSIVE / "dev.jsonl"), "--out", str(folder),
                "--overwrite")
        dev_f1[c] = json.loads((folder / "metrics.json").read_text())["eval"]["offensive"]["f1"]
    best = max(dev_f1, key=lambda c: (dev_f1[c], -c))
    model_dir = work / f"qc-c{best:g}"
    model = load_linear(model_dir)
    test = list(read_jsonl(OFFENSIVE / "test.jsonl"))
    from gristmill.data.classify.training import evaluate

    res["dev_offensive_f1_by_c"] = dev_f1
    res["model"] = str(model_dir)
    res["test"] = evaluate(model, [r["text"] for r in test], [r["label"] for r in test])
    # The same recipe trained without English negatives, for the record.
    plain = work / "qc-no-english"
    if not (plain / "metrics.json").is_file():
        gristmill("classify", "train", "--input", str(OFFENSIVE / "train.jsonl"), "--c", str(best), "--eval",
                  str(OFFENSIVE / "test.jsonl"), "--out", str(plain), "--overwrite")
    res["test_without_english_negatives"] = json.loads((plain / "metrics.json").read_text())["eval"]

    # 2. The corpus: offensive documents and clean documents of 50+ words.
    rows = [(d, lab) for d, lab in corpus_with_labels()
            if "offensive" in lab["defects"] or (not lab["defects"] and words(d["text"]) >= 50)]
    texts = [d["text"] for d, _ in rows]
    offensive = np.array(["offensive" in lab["defects"] for _, lab in rows])
    part = np.array([half(d["id"]) for d, _ in rows])
    block = Blocklist(languages=["en", "es", "it", "fr", "de", "pt"])  # as in recipes/web-en.yaml
    t0 = time.process_time()
    blocked = np.array([block.check(Document(d["id"], t, {"url": d.get("url")})) is not None
                        for t, (d, _) in zip(texts, rows)])
    res["cpu_s"]["blocklist"] = round(time.process_time() - t0, 2)
    label = model.labels.index("offensive")
    grid = {}
    for by, chunk in (("words", 32), ("words", 64), ("words", 128), ("paragraphs", 64)):
        t0 = time.process_time()
        scores = score_documents(model, texts, chunk, 64, "max", by)[:, label]
        res["cpu_s"][f"classifier_{by}{chunk}"] = round(time.process_time() - t0, 2)
        for threshold in (0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9):
            flagged = blocked | (scores >= threshold)
            grid[(by, chunk, threshold)] = {
                p: {"offensive_rejected": float(flagged[(part == p) & offensive].mean()),
                    "clean_rejected": float(flagged[(part == p) & ~offensive].mean())} for p in (0, 1)}
    # Choose on half 0: the most offensive documents caught with at most 2% of clean ones lost.
    ok = [k for k, v in grid.items() if v[0]["clean_rejected"] <= 0.02] or list(grid)
    chosen = max(ok, key=lambda k: (grid[k][0]["offensive_rejected"], -grid[k][0]["clean_rejected"]))
    res["grid"] = {f"{k[0]}{k[1]}@{k[2]}": v for k, v in grid.items()}
    res["chosen"] = {"chunk_by": chosen[0], "chunk_words": chosen[1], "threshold": chosen[2]}
    report = part == 1
    res["corpus_report_half"] = {
        "offensive_docs": int((report & offensive).sum()), "clean_50plus_docs": int((report & ~offensive).sum()),
        "blocklist_alone": {"offensive_rejected": float(blocked[report & offensive].mean()),
                            "clean_rejected": float(blocked[report & ~offensive].mean())},
        "blocklist_plus_classifier": grid[chosen][1],
    }
    res["corpus_all"] = {"offensive_docs": int(offensive.sum()), "clean_50plus_docs": int((~offensive).sum()),
                         "blocklist_alone": {"offensive_rejected": float(blocked[offensive].mean()),
                                             "clean_rejected": float(blocked[~offensive].mean())}}
    (work / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps({k: v for k, v in res.items() if k != "grid"}, indent=2))
    return res


# ----------------------------------------------------------------------------------------- perplexity


def auc(pos: Any, neg: Any) -> float:
    """P(a positive scores above a negative), ties counted half (the Mann-Whitney AUC)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    return float(roc_auc_score(y, np.r_[pos, neg]))


def perplexity(args: argparse.Namespace) -> dict[str, Any]:
    """Train the trigram model on the clean documents of half 0; score half 1; AUC per defect and speed."""
    import numpy as np

    from gristmill.data.classify.ngram_lm import load_ngram_lm

    work = args.workdir / "perplexity"
    work.mkdir(parents=True, exist_ok=True)
    rows = corpus_with_labels()
    trusted = work / "trusted.jsonl"
    if not trusted.is_file():
        write_jsonl(trusted, [{"text": d["text"]} for d, lab in rows if half(d["id"]) == 0 and not lab["defects"]])
    res: dict[str, Any] = {"cpu_s": {}}
    lm_dir = work / "lm"
    if not (lm_dir / "config.json").is_file():
        res["cpu_s"]["train"] = gristmill("classify", "lm", "--input", str(trusted), "--out", str(lm_dir),
                                          "--overwrite")
    model = load_ngram_lm(lm_dir)
    test = [(d, lab) for d, lab in rows if half(d["id"]) == 1]
    texts = [d["text"] for d, _ in test]
    t0 = time.process_time()
    ppl = np.concatenate([model.perplexity(texts[i:i + 512], 1000) for i in range(0, len(texts), 512)])
    cpu = time.process_time() - t0
    res["scored_docs"] = len(texts)
    res["docs_per_cpu_s"] = round(len(texts) / cpu, 1)
    res["words_per_cpu_s"] = round(sum(min(words(t), 1000) for t in texts) / cpu, 1)
    ok = ~np.isnan(ppl)
    logp = np.log(np.where(ok, ppl, 1.0))
    clean = np.array([not lab["defects"] for _, lab in test]) & ok
    res["median_perplexity"] = {"clean": float(np.median(ppl[clean]))}
    res["auc_vs_clean"] = {}
    defects = sorted({x for _, lab in test for x in lab["defects"]})
    for defect in defects:
        has = np.array([defect in lab["defects"] for _, lab in test]) & ok
        res["auc_vs_clean"][defect] = round(auc(logp[has], logp[clean]), 3)
        res["median_perplexity"][defect] = float(np.median(ppl[has]))
    any_defect = np.array([bool(lab["defects"]) for _, lab in test])
    ranks = np.argsort(np.argsort(logp[ok]))
    res["spearman_any_defect"] = round(float(np.corrcoef(ranks, any_defect[ok])[0, 1]), 3)
    res["auc_any_defect"] = round(auc(logp[ok & any_defect], logp[clean]), 3)
    (work / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    return res


# ---------------------------------------------------------------------------------------------- speed


def speed(args: argparse.Namespace) -> dict[str, Any]:
    """CPU seconds per step of web-en's per-document steps + blocklist + classifier + perplexity, one process."""
    from gristmill.data.document import Document
    from gristmill.data.pipeline import CorpusStep, StepStats
    from gristmill.data.recipe import build_step, load_recipe

    tox = json.loads((args.workdir / "toxicity" / "results.json").read_text())
    steps = [s for s in load_recipe(ROOT / "recipes" / "web-en.yaml").steps if not isinstance(s, CorpusStep)]
    steps.append(build_step("classifier", {"model": tox["model"], "reject_label": "offensive", "mode": "annotate",
                                           "chunk_words": tox["chosen"]["chunk_words"], "max_chunks": 64,
                                           "chunk_by": tox["chosen"]["chunk_by"],
                                           "threshold": tox["chosen"]["threshold"]}))
    steps.append(build_step("perplexity", {"model": str(args.workdir / "perplexity" / "lm")}))
    rows = [d for d, _ in corpus_with_labels()][: args.speed_docs]
    cpu = {s.name: 0.0 for s in steps}
    seen = {s.name: 0 for s in steps}
    for step in steps:
        step.setup(None, "part-00000")
    for lo in range(0, len(rows), 1000):
        # Every step sees every document (web-en would have rejected some): per-document cost.
        for step in steps:
            docs = [Document(d["id"], d["text"], {"url": d.get("url")}) for d in rows[lo:lo + 1000]]
            t0 = time.process_time()
            step.process(docs, StepStats())
            cpu[step.name] += time.process_time() - t0
            seen[step.name] += len(docs)
    res = {"docs": len(rows), "steps": {name: {"cpu_s": round(cpu[name], 2),
                                               "docs_per_cpu_s": round(seen[name] / max(cpu[name], 1e-9), 1)}
                                        for name in cpu}}
    web_en = sum(v for k, v in cpu.items() if k not in ("classifier", "perplexity"))
    res["web_en_per_document_steps"] = {"cpu_s": round(web_en, 2), "docs_per_cpu_s": round(len(rows) / web_en, 1)}
    (args.workdir / "speed.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    return res


def encoder_speed(args: argparse.Namespace) -> dict[str, Any]:
    """Documents per CPU-second of the ``classifier`` step with an encoder: PyTorch fp32 and dynamic int8,
    ONNX fp32 and int8, for ``tiny`` and ``mini``. Throughput does not depend on the weights' quality, so
    each encoder is pretrained only briefly (on the offensive texts) and fine-tuned one epoch on offensive."""
    from gristmill.data.document import Document
    from gristmill.data.pipeline import StepStats
    from gristmill.data.recipe import build_step

    work = args.workdir / "encoder-speed"
    work.mkdir(parents=True, exist_ok=True)
    tok, tokens = work / "tokenizer", work / "tokens"
    if not (tok / "tokenizer.json").is_file():
        gristmill("tokenizer", "train", "--input", str(OFFENSIVE / "train.jsonl"), "--kind", "wordpiece",
                  "--vocab-size", "8000", "--out", str(tok), "--overwrite", "--no-progress")
    if not (tokens / "manifest.json").is_file():
        gristmill("tokenize", "--input", str(OFFENSIVE / "train.jsonl"), "--tokenizer", str(tok), "--seq-len", "128",
                  "--out", str(tokens), "--overwrite", "--no-progress")
    rows = [d for d, _ in corpus_with_labels()][: args.speed_docs]
    words_per_doc = statistics.mean(words(d["text"]) for d in rows)
    res: dict[str, Any] = {"docs": len(rows), "mean_words": round(words_per_doc, 1), "models": {}}
    for size in ("tiny", "mini"):
        run, ft, onnx = work / f"run-{size}", work / f"ft-{size}", work / f"onnx-{size}"
        if not (run / "config.json").is_file():
            gristmill("pretrain", "--data", str(tokens), "--model-size", size, "--steps", "20", "--eval-every", "0",
                      "--out", str(run), "--overwrite", "--no-progress", "--threads", "1")
        if not (ft / "task.json").is_file():
            gristmill("finetune", "--model", str(run), "--train", str(OFFENSIVE / "train.jsonl"), "--dev",
                      str(OFFENSIVE / "dev.jsonl"), "--per-class", "64", "--epochs", "1", "--out", str(ft),
                      "--overwrite", "--threads", "1")
        if not (onnx / "model.int8.onnx").is_file():
            gristmill("export", str(ft), "--format", "onnx", "--quantize", "int8", "--out", str(onnx), "--overwrite",
                      "--threads", "1")
        for chunks in (1, 8):
            for backend, folder, quantize in (("torch fp32", ft, "none"), ("torch int8", ft, "int8"),
                                              ("onnx fp32", onnx, "none"), ("onnx int8", onnx, "int8")):
                step = build_step("classifier", {"model": str(folder), "mode": "annotate", "quantize": quantize,
                                                 "chunk_words": 100, "max_chunks": chunks, "threads": 1})
                step.setup(None, "part-00000")
                t0 = time.process_time()
                for lo in range(0, len(rows), 500):
                    docs = [Document(d["id"], d["text"], {}) for d in rows[lo:lo + 500]]
                    step.process(docs, StepStats())
                cpu = time.process_time() - t0
                key = f"{size}, {backend}, up to {chunks} chunk(s) of 100 words"
                res["models"][key] = {"cpu_s": round(cpu, 2), "docs_per_cpu_s": round(len(rows) / cpu, 1)}
                print(key, res["models"][key], flush=True)
    (work / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    return res


def finetune32(run: Path, outs: dict[int, Path], dev: Path, threads: int, scratch: bool = False) -> float:
    """``gristmill finetune`` on fortunes at 32 labels per class, one process per seed, in parallel
    (the learning curve's budget); returns their CPU seconds. Seeds already done are skipped."""
    import os

    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT / "src")}
    before = cpu_seconds()
    procs = []
    for seed, out in outs.items():
        if (out / "metrics.json").is_file():
            continue
        args = ["finetune", "--model", str(run), "--train", str(FORTUNES / "train.jsonl"), "--dev", str(dev),
                "--test", str(FORTUNES / "test.jsonl"), "--per-class", "32", "--seed", str(seed), "--out", str(out),
                "--threads", str(threads), "--overwrite", *(["--from-scratch"] if scratch else [])]
        print("$ gristmill " + " ".join(args), flush=True)
        log = open(out.with_suffix(".log"), "w")
        procs.append(subprocess.Popen([sys.executable, "-m", "gristmill", *args], cwd=ROOT, env=env, stdout=log,
                                      stderr=subprocess.STDOUT))
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit(f"{' '.join(proc.args)} failed")
    return cpu_seconds() - before


def last_validation(run: Path) -> dict[str, Any] | None:
    """The last validation record of a pretraining run (metrics.jsonl)."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        return None
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    vals = [r for r in rows if r.get("kind") == "eval"]
    return vals[-1] if vals else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=["domain", "toxicity", "speed", "encoder-speed", "perplexity", "all"])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/gm_selection"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fraction", type=float, default=0.2, help="select_domain: share of documents kept.")
    parser.add_argument("--normalize-to", type=int, default=256, help="select_domain: log weights per 256 n-grams.")
    parser.add_argument("--steps", type=int, default=1000, help="Pretraining steps per arm.")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--speed-docs", type=int, default=4000, help="speed: documents timed per step.")
    parser.add_argument("--arm", choices=["selected", "random", "scratch"], help="domain: pretrain and fine-tune one "
                        "arm only (run the arms as parallel processes, then once without --arm for the summary); "
                        "scratch: the same fine-tuning from random initialisation, for reference.")
    args = parser.parse_args()
    if not (CORPUS / "docs.jsonl.gz").is_file():
        sys.exit(f"needs the shared data in {SHARED}")
    args.workdir = args.workdir.resolve()
    parts = {"toxicity": toxicity, "perplexity": perplexity, "speed": speed, "encoder-speed": encoder_speed,
             "domain": domain}
    for name, fn in parts.items():
        if args.part in (name, "all"):
            fn(args)


if __name__ == "__main__":
    main()

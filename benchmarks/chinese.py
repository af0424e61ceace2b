"""Chinese end to end: web-zh catch rates, dedup/decontamination parameters, [UNK] rates, the few-label curve.

Parts (``--parts``, default all), on the Chinese sample built by ``sample/zh/build.py``:

1. ``filters``: ``gristmill run recipes/web-zh.yaml`` on ``sample/zh/corpus.jsonl.gz``, compared with
   ``corpus.labels.jsonl.gz``: per injected defect the share rejected or repaired, duplicate pairs
   resolved, planted task texts removed, and the clean documents wrongly rejected (by source, by rule);
2. ``dedup``: the parameters of the dedup steps measured on Chinese: MinHash over character n-grams
   (n x threshold: near-duplicate pairs found vs distinct clean documents merged) and decontamination
   (n-gram length: planted task texts found vs clean documents removed), on the whole sample;
3. ``unk``: [UNK] rate on Debian's Chinese package descriptions (``sample/zh/heldout.jsonl.gz``, never
   in the corpus) of the Chinese tokenizer (``--alphabet cjk``), of the same tokenizer without the
   alphabet, and of the English default (the English quickstart's WordPiece on ``sample/``);
4. ``curve``: on the man-page section task, for labels per class 8, 16 and all (32), seeds 0-2: the
   encoder pretrained on the cleaned Chinese corpus (``--run``, e.g. the ``pretrain`` folder of
   ``gristmill quickstart --lang zh``), the same encoder after ``gristmill adapt`` on the task's training
   texts (``--adapted``, e.g. the quickstart's ``adapt`` folder), the same encoder from scratch, and
   TF-IDF over character 1-3-grams on the same samples.

Usage::

    python benchmarks/chinese.py --workdir /tmp/gm_zh --run runs/quickstart-zh/pretrain \
        --adapted runs/quickstart-zh/adapt --threads 1

Writes ``WORKDIR/results.json`` and prints Markdown tables. The machine is shared: report CPU seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Scripts in benchmarks/ put that folder first on sys.path, where a sibling named like a standard
# module (tokenize.py) would shadow it; the standard library must win.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse  # noqa: E402
import collections  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ZH = ROOT / "sample" / "zh"
MOJIBAKE_RE = re.compile("[ÃÂ][\u0080-\u00bf]|â€|ä¸|é\u0081|锟|\ufffd")


def cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def records(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def gristmill(*args: str) -> None:
    print("$ gristmill " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "gristmill", *args], cwd=ROOT, check=True)


def read_out(out: Path) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """(kept id -> text, rejected id -> (reason, text)) of a finished run."""
    from gristmill.data.readers.output import read_documents

    kept = {d.id: d.text for d in read_documents(out / "kept")}
    rejected = {d.id: (d.reason or "", d.text) for d in read_documents(out / "rejected")}
    return kept, rejected


# ------------------------------------------------------------------------------------------ 1. filters


def bench_filters(work: Path, corpus: Path, labels_path: Path, recipe: Path) -> dict[str, Any]:
    docs, labels = records(corpus), records(labels_path)
    by_id = {d["id"]: d for d in docs}
    out = work / "web-zh"
    t0, c0 = time.perf_counter(), cpu_seconds()
    proc = subprocess.run([sys.executable, "-m", "gristmill", "run", str(recipe), "--input", str(corpus), "-o", str(out),
                           "--overwrite", "--no-progress", "--workers", "1"], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode not in (0, 3):
        raise SystemExit(proc.stderr[-3000:])
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    kept, rejected = read_out(out)
    assert len(kept) + len(rejected) == len(docs), "documents were lost"

    def removed(doc_id: str) -> bool:
        return doc_id in rejected

    def out_text(doc_id: str) -> str:
        return kept[doc_id] if doc_id in kept else rejected[doc_id][1]

    rows, result = [], {}
    defects: dict[str, list[dict]] = collections.defaultdict(list)
    for lab in labels:
        for name in lab["defects"]:
            defects[name].append(lab)
    for name in sorted(defects):
        items = defects[name]
        n = len(items)
        n_rej = sum(removed(lab["id"]) for lab in items)
        repaired: int | None = None
        if name == "mojibake":
            # Repaired: kept, no mojibake sequence left and at least 90% of the original's lines back.
            def fixed(lab: dict) -> bool:
                text = out_text(lab["id"])
                return lab["id"] in kept and not MOJIBAKE_RE.search(text)
            repaired = sum(fixed(lab) for lab in items)
        elif name == "pii":
            repaired = sum(lab["id"] in kept and all(p["value"] not in kept[lab["id"]] for p in lab["meta"]["pii"]["pii"])
                           for lab in items)
        elif name == "boilerplate":
            def stripped(lab: dict, site_lines: tuple[str, ...] = ("跳到主要内容", "返回顶部", "相关文章", "猜你喜欢",
                                                                   "扫码关注公众号", "上一篇 | 下一篇")) -> bool:
                if lab["id"] not in kept:
                    return False
                lines = {x.strip() for x in kept[lab["id"]].split("\n")}
                return not any(x in lines for x in site_lines) and "版权所有" not in kept[lab["id"]] \
                    and "当前位置" not in kept[lab["id"]]
            repaired = sum(stripped(lab) for lab in items)
        elif name in ("exact_duplicate", "near_duplicate"):
            # Resolved: the copy or its original was removed (dedup keeps the first in input order).
            repaired = sum(not removed(lab["id"]) and removed(lab["dup_of"]) for lab in items)
        handled = n_rej + (repaired or 0) if name != "mojibake" else (repaired or 0) + sum(
            removed(lab["id"]) and not MOJIBAKE_RE.search(out_text(lab["id"])) for lab in items)
        if name == "mojibake":
            handled = sum(removed(lab["id"]) or (lab["id"] in kept and not MOJIBAKE_RE.search(kept[lab["id"]]))
                          for lab in items)
        result[name] = {"documents": n, "rejected": n_rej, "repaired": repaired, "handled": handled}
        rows.append([name, n, f"{n_rej / n:.1%}", "" if repaired is None else f"{repaired / n:.1%}",
                     f"{handled / n:.1%}"])
    variants = collections.Counter()
    variant_rej = collections.Counter()
    for name in ("gibberish", "keyword_spam", "symbol_junk", "mojibake", "wrong_language"):
        for lab in defects.get(name, []):
            meta = lab["meta"].get(name, {})
            v = f"{name}/{meta.get('variant') or meta.get('codec') or meta.get('lang', '')}" + (
                f"-{meta['mode']}" if "mode" in meta else "")
            variants[v] += 1
            variant_rej[v] += removed(lab["id"])
    pii_total = pii_gone = 0
    for lab in defects.get("pii", []):
        for p in lab["meta"]["pii"]["pii"]:
            pii_total += 1
            pii_gone += lab["id"] not in kept or p["value"] not in kept[lab["id"]]
    clean = [lab for lab in labels if not lab["defects"]]
    by_source = collections.Counter(by_id[lab["id"]]["source"] for lab in clean)
    wrong = [lab for lab in clean if removed(lab["id"])]
    wrong_source = collections.Counter(by_id[lab["id"]]["source"] for lab in wrong)
    reasons = collections.Counter(rejected[lab["id"]][0].split("=")[0] for lab in wrong)
    prose = [lab for lab in clean if by_id[lab["id"]]["source"] != "fortune"]
    # Dedup removing a natural duplicate (or the original of a planted copy that came first) is not a
    # false rejection; the filters' own mistakes are what the thresholds trade off.
    corpus_steps = ("exact_dedup:", "minhash_dedup:", "decontaminate:")
    prose_wrong = [lab for lab in prose if removed(lab["id"]) and not rejected[lab["id"]][0].startswith(corpus_steps)]
    text = [f"`gristmill run {recipe.relative_to(ROOT)} --input {corpus.relative_to(ROOT)} --workers 1`: "
            f"{len(docs):,} documents, kept {len(kept):,}, rejected {len(rejected):,}; {seconds:.0f} s wall-clock, "
            f"{cpu:.0f} CPU s.\n",
            table(["defect", "documents", "rejected", "repaired / pair resolved", "rejected or repaired"], rows),
            table(["variant", "documents", "rejected"],
                  [[v, variants[v], f"{variant_rej[v] / variants[v]:.0%}"] for v in sorted(variants)]),
            f"Inserted PII strings gone from the kept text: **{pii_gone}/{pii_total} = {pii_gone / max(1, pii_total):.1%}**\n",
            f"Clean documents rejected: **{len(wrong)}/{len(clean)} = {len(wrong) / len(clean):.1%}** (dedup of natural "
            f"duplicates included); wrongly rejected by the filters, classical poems (`fortune`) aside: "
            f"**{len(prose_wrong)}/{len(prose)} = {len(prose_wrong) / max(1, len(prose)):.1%}**. By rule: "
            + ", ".join(f"{k}={v}" for k, v in reasons.most_common(10)) + "\n",
            table(["source", "clean documents", "wrongly rejected"],
                  [[s, by_source[s], f"{wrong_source[s] / by_source[s]:.1%}"] for s in sorted(by_source)])]
    return {"markdown": "\n".join(text), "defects": result, "pii_strings": [pii_gone, pii_total],
            "clean_wrongly_rejected": [len(wrong), len(clean)], "prose_wrongly_rejected": [len(prose_wrong), len(prose)],
            "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1)}


# -------------------------------------------------------------------------------------------- 2. dedup


def _write_input(docs: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"id": d["id"], "text": d["text"]}, ensure_ascii=False) + "\n")
    return path


def _run_steps(work: Path, name: str, steps: list[Any], corpus: Path) -> dict[str, tuple[str, str]]:
    import yaml

    recipe = work / f"{name}.yaml"
    recipe.write_text(yaml.safe_dump({"input": {"paths": [str(corpus)], "format": "jsonl"}, "steps": ["noop", *steps],
                                      "output": {"path": str(work / name), "format": "parquet"}}), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "gristmill", "run", str(recipe), "--overwrite", "--no-progress",
                    "--workers", "1"], cwd=ROOT, check=True, capture_output=True)
    return read_out(work / name)[1]


def bench_dedup(work: Path, corpus: Path, labels_path: Path) -> dict[str, Any]:
    docs, labels = records(corpus), records(labels_path)
    lab = {x["id"]: x for x in labels}
    # Only clean documents and their planted copies: a defect elsewhere would blur what dedup does.
    keep = [d for d in docs if not lab[d["id"]]["defects"] or lab[d["id"]]["defects"] in (
        ["exact_duplicate"], ["near_duplicate"], ["contamination"])]
    path = _write_input(keep, work / "dedup-input" / "docs.jsonl.gz")
    near = [x for x in labels if x["defects"] == ["near_duplicate"]]
    exact_text: dict[str, str] = {}
    clean_ids = [d["id"] for d in keep if not lab[d["id"]]["defects"]]
    text_of = {d["id"]: d["text"] for d in keep}
    # A clean document that is byte-identical to another (licence-like texts) is a natural duplicate.
    for d in keep:
        exact_text.setdefault(d["text"], d["id"])
    copies: dict[str, set[str]] = collections.defaultdict(set)
    for x in labels:
        if x["dup_of"]:
            copies[x["dup_of"]].add(x["id"])
    rows, measured = [], []
    for ngram in (3, 5, 8):
        for threshold in (0.5, 0.6, 0.7, 0.8):
            rej = _run_steps(work, f"mh-{ngram}-{threshold}", [{"minhash_dedup": {"ngram": ngram, "threshold": threshold}}],
                             path)
            found = sum(x["id"] in rej or x["dup_of"] in rej for x in near)
            # A clean document removed for one of its own planted copies (which came first) is a resolved
            # pair, and one removed for a byte-identical twin is a natural duplicate: neither counts.
            merged = sum(i in rej and exact_text[text_of[i]] == i and rej[i][0].split("=")[-1] not in copies.get(i, ())
                         for i in clean_ids)
            measured.append({"ngram": ngram, "threshold": threshold, "near_found": found, "near": len(near),
                             "clean_merged": merged, "clean": len(clean_ids)})
            rows.append([ngram, threshold, f"{found}/{len(near)} = {found / len(near):.0%}",
                         f"{merged}/{len(clean_ids)} = {merged / len(clean_ids):.1%}"])
    text = ["MinHash over character n-grams (each Han character is a token, `data/dedup/text.py`), 128 "
            "permutations, exact Jaccard verification, on the clean documents plus their planted copies:\n",
            table(["n-gram", "threshold", "near-duplicates found", "clean documents removed (not for their own copy)"],
                  rows)]
    contaminated = [x for x in labels if x["defects"] == ["contamination"]]
    task_paths = [str(ZH / "task" / "dev.jsonl"), str(ZH / "task" / "test.jsonl")]
    rows2, measured2 = [], []
    for n in (8, 13, 20, 30):
        rej = _run_steps(work, f"decon-{n}", [{"decontaminate": {"paths": task_paths, "ngram": n}}], path)
        found = sum(x["id"] in rej for x in contaminated)
        wrong = sum(i in rej for i in clean_ids)
        measured2.append({"ngram": n, "found": found, "planted": len(contaminated), "clean_removed": wrong})
        rows2.append([n, f"{found}/{len(contaminated)}", f"{wrong}/{len(clean_ids)} = {wrong / len(clean_ids):.2%}"])
    text += ["Decontamination against the task's dev and test files (n-grams of tokens: a Han character or a "
             "run of letters/digits):\n",
             table(["n-gram", "planted task texts removed", "clean documents removed"], rows2)]
    return {"markdown": "\n".join(text), "minhash": measured, "decontaminate": measured2}


# ---------------------------------------------------------------------------------------------- 3. unk


def bench_unk(work: Path, clean_kept: Path) -> dict[str, Any]:
    from gristmill.tokenizer import load_tokenizer, train_tokenizer
    from gristmill.tokenizer.train import unk_rate

    held = [r["text"] for r in records(ZH / "heldout.jsonl.gz")]
    variants = {
        "Chinese unigram 20,000, --no-cjk --alphabet cjk (words as pieces; the zh quickstart's since 2026-12-03)":
            dict(input=clean_kept, kind="unigram", cjk=False, vocab_size=20000, alphabet="cjk"),
        "Chinese WordPiece 12,000, --alphabet cjk (the zh quickstart's until 2026-12-03)":
            dict(input=clean_kept, vocab_size=12000, alphabet="cjk"),
        "Chinese WordPiece 12,000, no alphabet (limit_alphabet 1000, the default)":
            dict(input=clean_kept, vocab_size=12000),
        "English default: WordPiece 8,000 on sample/ (the English quickstart's)":
            dict(input=ROOT / "sample" / "corpus.jsonl.gz", vocab_size=8000),
    }
    rows, measured = [], {}
    for k, (name, kw) in enumerate(variants.items()):
        path = train_tokenizer(kw.pop("input"), work / f"tok-{k}", overwrite=True, show_progress=False, **kw)
        unk, total = unk_rate(load_tokenizer(path), held)
        measured[name] = [unk, total]
        rows.append([name, f"{unk:,}/{total:,}", f"**{unk / total:.2%}**"])
    text = [f"[UNK] tokens on {len(held):,} Debian package descriptions in Simplified Chinese "
            "(`Translation-zh_CN`, never in the corpus):\n", table(["tokenizer", "[UNK] / tokens", "rate"], rows)]
    return {"markdown": "\n".join(text), "unk": measured}


# -------------------------------------------------------------------------------------------- 4. curve


def bench_curve(work: Path, run: Path, seeds: list[int], sizes: list[int | None], inits: list[str],
                adapted: Path | None = None, bf16: bool = False, max_length: int = 128,
                pooling: str | None = None, device: str = "auto") -> dict[str, Any]:
    """Fine-tune (or fit TF-IDF) for every (size, seed, init) not yet in ``WORKDIR/curve/runs.jsonl``.

    ``scratch`` needs only the run's config and tokenizer, so it can run while pretraining is still going.
    ``adapted`` fine-tunes ``adapted`` (``gristmill adapt RUN --texts task/train.jsonl``) the same way.
    """
    from gristmill.train.baseline import tfidf_scores
    from gristmill.train.curve import size_name
    from gristmill.train.finetune import FineTuneConfig, finetune
    from gristmill.train.tasks import load_task

    task = ZH / "task"
    data = load_task(task / "train.jsonl", task / "dev.jsonl", task / "test.jsonl", max_length=max_length)
    runs_file = work / "curve" / "runs.jsonl"
    runs_file.parent.mkdir(parents=True, exist_ok=True)
    runs = [json.loads(line) for line in runs_file.read_text().splitlines() if line.strip()] if runs_file.is_file() else []
    # Several processes may fill one runs file (e.g. scratch while pretraining goes on): first row wins.
    unique = {(r["per_class"], r["seed"], r["init"]): r for r in reversed(runs)}
    runs = [r for r in runs if unique[(r["per_class"], r["seed"], r["init"])] is r]
    done = set(unique)
    for size in sizes:
        for seed in seeds:
            for init in inits:
                if (size_name(size), seed, init) in done:
                    continue
                print(f"per-class {size_name(size)}, seed {seed}, {init}", flush=True)
                if init == "tfidf":
                    row = {**tfidf_scores(data, size, seed, analyzer="char"), "per_class": size_name(size), "seed": seed, "init": init}
                else:
                    if init == "adapted" and adapted is None:
                        raise SystemExit("--adapted ADAPTED_RUN is needed for the adapted init")
                    cfg = FineTuneConfig(bf16=bf16, pooling=pooling, device=device)
                    m = finetune(adapted if init == "adapted" else run, data, cfg,
                                 from_scratch=init == "scratch", per_class=size, seed=seed).metrics
                    row = {"per_class": size_name(size), "seed": seed, "init": init, "train_examples": m["train_examples"],
                           "test_accuracy": m["test"]["accuracy"], "test_macro_f1": m["test"]["macro_f1"],
                           "dev_accuracy": m["dev"]["accuracy"],
                           "steps": m["training"]["steps"], "seconds": m["training"]["seconds"], "max_length": max_length,
                           "pooling": pooling or "model's own"}
                print(f"    test accuracy {row['test_accuracy']:.4f}", flush=True)
                runs.append(row)
                with runs_file.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")

    def accs(name: str, init: str) -> list[float]:
        return [r["test_accuracy"] for r in runs if r["per_class"] == name and r["init"] == init and r["seed"] in seeds]

    def fmt(v: list[float]) -> str:
        return f"{statistics.mean(v):.3f} ± {statistics.pstdev(v):.3f}" if v else "-"

    def gap(a: list[float], b: list[float]) -> str:
        return f"{100 * (statistics.mean(a) - statistics.mean(b)):+.1f}" if a and b else "-"

    rows = []
    for s in sizes:
        name = size_name(s)
        pre, ada, scr, tf = (accs(name, i) for i in ("pretrained", "adapted", "scratch", "tfidf"))
        n_train = next((r["train_examples"] for r in runs if r["per_class"] == name), "")
        rows.append([name, n_train, fmt(pre), fmt(ada), fmt(scr), gap(pre, scr), gap(ada, scr), fmt(tf), gap(pre, tf),
                     gap(ada, tf)])
    text = [table(["labels per class", "training examples", "pretrained (mean ± std over seeds)", "pretrained + adapted",
                   "scratch", "pretrained - scratch (points)", "adapted - scratch", "TF-IDF char 1-3-grams + LR",
                   "pretrained - TF-IDF", "adapted - TF-IDF"], rows)]
    return {"markdown": "\n".join(text), "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/gm_zh"))
    parser.add_argument("--parts", default="filters,dedup,unk,curve")
    parser.add_argument("--corpus", type=Path, default=ZH / "corpus.jsonl.gz")
    parser.add_argument("--labels", type=Path, default=ZH / "corpus.labels.jsonl.gz")
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "web-zh.yaml")
    parser.add_argument("--run", type=Path, help="Pretrained run folder for the curve (gristmill pretrain --out).")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--sizes", default="8,16,all")
    parser.add_argument("--adapted", type=Path, help="Adapted run (gristmill adapt --out) for the adapted init.")
    parser.add_argument("--inits", default="pretrained,adapted,scratch,tfidf")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast while fine-tuning (every init alike).")
    parser.add_argument("--max-length", type=int, default=128,
                        help="Tokens per task text when fine-tuning, [CLS] and [SEP] included (TF-IDF sees whole texts).")
    parser.add_argument("--pooling", choices=("cls", "mean"), help="What the classifier head sees (default: the model's own, cls).")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="Where fine-tuning runs (auto: the GPU when there is one).")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    results_path = work / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    parts = args.parts.split(",")
    for part in parts:
        t0, c0 = time.perf_counter(), cpu_seconds()
        if part == "filters":
            res = bench_filters(work, args.corpus, args.labels, args.recipe)
        elif part == "dedup":
            res = bench_dedup(work, args.corpus, args.labels)
        elif part == "unk":
            kept = work / "web-zh" / "kept"
            if not kept.is_dir():
                raise SystemExit("run the filters part first (the Chinese tokenizer trains on its kept documents)")
            res = bench_unk(work, kept)
        elif part == "curve":
            if args.run is None:
                raise SystemExit("--run RUN_DIR is needed for the curve")
            sizes = [None if s == "all" else int(s) for s in args.sizes.split(",")]
            res = bench_curve(work, args.run, [int(s) for s in args.seeds.split(",")], sizes, args.inits.split(","),
                              args.adapted, args.bf16, args.max_length, args.pooling, args.device)
        else:
            raise SystemExit(f"unknown part {part}")
        res["wall_seconds"], res["part_cpu_seconds"] = round(time.perf_counter() - t0, 1), round(cpu_seconds() - c0, 1)
        results[part] = res
        results_path.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"\n## {part} ({res['wall_seconds']} s wall-clock, {res['part_cpu_seconds']} CPU s)\n\n{res['markdown']}",
              flush=True)


if __name__ == "__main__":
    main()

"""Quality, language and safety filters: agreement with datatrove, speed, and precision/recall.

Runs, in one go and on the same inputs:

1. language identification accuracy on the shared HTML pages (fastText lid.176 as used by the
   ``language`` step, and py3langid for comparison);
2. per-rule agreement of ``gopher_quality``, ``gopher_repetition``, ``c4_quality`` and
   ``fineweb_quality`` with datatrove's namesakes on English documents of the shared corpus
   (datatrove's alphabetic-word rule off, see its issue #202; ours is reported separately);
3. speed of the Gopher repetition + quality + C4 chain, gristmill vs datatrove, same documents,
   same number of worker processes, and the agreement of the two kept sets;
4. the whole ``recipes/web-en.yaml`` recipe on the shared corpus through ``gristmill run``
   (timed), compared with ``labels.jsonl.gz``: per defect type the share of affected documents
   rejected or repaired, and the clean documents wrongly rejected.

Needs ``pip install datatrove orjson spacy`` for parts 2 and 3. Usage::

    python benchmarks/filters.py --workers 2 [--agreement-docs 6000] [--speed-docs 10000]
                                 [--skip lid,agreement,speed,recipe] [--markdown out.md]
"""

# ruff: noqa: E402  (sys.path must be fixed before the standard library imports below)
from __future__ import annotations

import argparse
import collections
import gzip
import json
import multiprocessing as mp
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
INF = float("inf")
OUT_LINES: list[str] = []


class TreeCPU:
    """CPU seconds used by this process and every process it starts while the block runs.

    Other jobs on a shared machine stretch wall-clock time but not CPU time, so CPU seconds give a
    fair speed ratio. Children reaped during the block are in getrusage(RUSAGE_CHILDREN), with
    their own reaped descendants; children still alive at the end (datatrove's forkserver and
    Manager, which reap its workers) are read from /proc: their own plus their reaped children's
    time. Linux only.
    """

    def __init__(self) -> None:
        self._tick = os.sysconf("SC_CLK_TCK")

    def _alive_children(self) -> dict[int, float]:
        me = os.getpid()
        out: dict[int, float] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == me and fields[0] != "Z":
                out[int(entry)] = sum(int(f) for f in fields[11:15]) / self._tick
        return out

    @staticmethod
    def _usage(who: int) -> float:
        usage = resource.getrusage(who)
        return usage.ru_utime + usage.ru_stime

    def __enter__(self) -> TreeCPU:
        self._own0 = self._usage(resource.RUSAGE_SELF)
        self._reaped0 = self._usage(resource.RUSAGE_CHILDREN)
        self._alive0 = self._alive_children()
        return self

    def __exit__(self, *exc: object) -> None:
        alive = self._alive_children()
        self.seconds = (self._usage(resource.RUSAGE_SELF) - self._own0
                        + self._usage(resource.RUSAGE_CHILDREN) - self._reaped0
                        + sum(t - self._alive0.get(pid, 0.0) for pid, t in alive.items()))


def say(line: str = "") -> None:
    print(line, flush=True)
    OUT_LINES.append(line)


def table(header: list[str], rows: list[list[object]]) -> None:
    say("| " + " | ".join(header) + " |")
    say("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        say("| " + " | ".join(str(c) for c in row) + " |")
    say()


def load_corpus(corpus: Path) -> tuple[list[dict], list[dict]]:
    with gzip.open(corpus / "docs.jsonl.gz", "rt", encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    with gzip.open(corpus / "labels.jsonl.gz", "rt", encoding="utf-8") as f:
        labels = [json.loads(line) for line in f]
    assert [d["id"] for d in docs] == [lab["id"] for lab in labels], "docs and labels are not aligned"
    return docs, labels


# ------------------------------------------------------------------------------- 1. language ID


def bench_lid(pages_path: Path) -> None:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    from gristmill.data.readers.html import html_extractor
    from gristmill.data.steps.language import identify

    extract = html_extractor("resiliparse")
    with gzip.open(pages_path, "rt", encoding="utf-8") as f:
        pages = [json.loads(line) for line in f]
    texts = [(extract(p["html"]), p["lang_hint"].split("-")[0]) for p in pages]
    langid = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    say(f"## Language identification: {len(texts)} HTML pages of {pages_path.name} (text by resiliparse)")
    say()
    rows = []
    per_lang_rows = collections.defaultdict(dict)
    for name, fn in (("fastText lid.176.ftz (language step)", identify), ("py3langid", langid.classify)):
        t0 = time.perf_counter()
        hits = collections.Counter()
        totals = collections.Counter()
        for text, lang in texts:
            pred, _ = fn(text)
            totals[lang] += 1
            hits[lang] += pred == lang
        seconds = time.perf_counter() - t0
        rows.append([name, f"{sum(hits.values()) / len(texts):.1%}", f"{seconds:.1f}"])
        for lang in sorted(totals):
            per_lang_rows[lang][name] = f"{hits[lang]}/{totals[lang]}"
    table(["model", "accuracy", "seconds"], rows)
    names = [r[0] for r in rows]
    table(["language", *names], [[lang, *(per_lang_rows[lang][n] for n in names)] for lang in sorted(per_lang_rows)])


# ------------------------------------------------------------------------------- 2. agreement

GQ_OFF = dict(min_doc_words=None, max_doc_words=None, min_avg_word_length=None, max_avg_word_length=None,
              max_symbol_word_ratio=None, max_bullet_lines_ratio=None, max_ellipsis_lines_ratio=None,
              max_non_alpha_words_ratio=None, min_stop_words=None)
GR_OFF = dict(dup_line_frac=None, dup_para_frac=None, dup_line_char_frac=None, dup_para_char_frac=None,
              top_n_grams=(), dup_n_grams=())
FW_OFF = dict(line_punct_thr=0, short_line_thr=INF, char_duplicates_ratio=INF, new_line_ratio=INF)


def _datatrove_checks() -> list[tuple[str, str, object]]:
    """(step, rule, datatrove filter with only that rule on) for every compared rule."""
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    gq = {"min_words": dict(min_doc_words=50), "max_words": dict(max_doc_words=100_000),
          "mean_word_length": dict(min_avg_word_length=3, max_avg_word_length=10),
          "symbol_word_ratio": dict(max_symbol_word_ratio=0.1), "bullet_lines": dict(max_bullet_lines_ratio=0.9),
          "ellipsis_lines": dict(max_ellipsis_lines_ratio=0.3), "stop_words": dict(min_stop_words=2)}
    gr = {"dup_para_frac": dict(dup_para_frac=0.3), "dup_para_char_frac": dict(dup_para_char_frac=0.2),
          "dup_line_frac": dict(dup_line_frac=0.3), "dup_line_char_frac": dict(dup_line_char_frac=0.2)}
    gr.update({f"top_{n}_gram": dict(top_n_grams=((n, f),)) for n, f in ((2, 0.2), (3, 0.18), (4, 0.16))})
    gr.update({f"dup_{n}_gram": dict(dup_n_grams=((n, f),))
               for n, f in ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))})
    c4 = {"lorem_ipsum": dict(filter_curly_bracket=False, min_num_sentences=-1),
          "curly_bracket": dict(filter_lorem_ipsum=False, min_num_sentences=-1),
          "too_few_sentences": dict(filter_lorem_ipsum=False, filter_curly_bracket=False)}
    fw = {"line_punct_ratio": dict(line_punct_thr=0.12), "short_line_ratio": dict(short_line_thr=0.67),
          "char_dup_ratio": dict(char_duplicates_ratio=0.01), "list_ratio": dict(new_line_ratio=0.3)}
    checks: list[tuple[str, str, object]] = []
    checks += [("gopher_quality", r, GopherQualityFilter(**{**GQ_OFF, **p})) for r, p in gq.items()]
    checks += [("gopher_repetition", r, GopherRepetitionFilter(**{**GR_OFF, **p})) for r, p in gr.items()]
    checks += [("c4_quality", r, C4QualityFilter(**p)) for r, p in c4.items()]
    checks += [("fineweb_quality", r, FineWebQualityFilter(**{**FW_OFF, **p})) for r, p in fw.items()]
    # Whole filters with datatrove's defaults (alphabetic-word rule off), and that rule alone.
    checks += [("gopher_quality", "(whole filter)", GopherQualityFilter(max_non_alpha_words_ratio=None)),
               ("gopher_repetition", "(whole filter)", GopherRepetitionFilter()),
               ("c4_quality", "(whole filter)", C4QualityFilter()),
               ("fineweb_quality", "(whole filter)", FineWebQualityFilter()),
               ("gopher_quality", "alpha_words (datatrove's rule)", GopherQualityFilter(**{**GQ_OFF, "max_non_alpha_words_ratio": 0.8}))]
    return checks


def _agreement_chunk(texts: list[str]) -> list[tuple[str, str, bool, bool]]:
    """For each text and compared rule: (step, rule, gristmill fires, datatrove fires)."""
    warnings.filterwarnings("ignore")
    from datatrove.data import Document as DTDocument

    from gristmill.data.steps.quality import C4Quality, FineWebQuality, GopherQuality, GopherRepetition

    ours = {"gopher_quality": GopherQuality(skip=["alpha_words"]), "gopher_repetition": GopherRepetition(),
            "fineweb_quality": FineWebQuality()}
    alpha_only = GopherQuality(skip=[r for r in ("min_words", "max_words", "mean_word_length", "symbol_word_ratio",
                                                 "bullet_lines", "ellipsis_lines", "stop_words")])
    c4_iso = {"lorem_ipsum": C4Quality(filter_curly_bracket=False, min_sentences=0),
              "curly_bracket": C4Quality(filter_lorem_ipsum=False, min_sentences=0),
              "too_few_sentences": C4Quality(filter_lorem_ipsum=False, filter_curly_bracket=False)}
    c4_full = C4Quality()
    checks = _datatrove_checks()
    out = []
    for text in texts:
        fired = {name: set(step.rules_fired(text)) for name, step in ours.items()}
        fired["c4_quality"] = {r for r, step in c4_iso.items() if r in step.rules_fired(text)}
        whole = {name: bool(f) for name, f in fired.items()}
        whole["c4_quality"] = bool(c4_full.rules_fired(text))
        for step, rule, dt_filter in checks:
            try:
                dt_fires = dt_filter.filter(DTDocument(text=text, id="x")) is not True
            except ZeroDivisionError:  # datatrove divides by the word count of an empty document
                dt_fires = True
            if rule == "(whole filter)":
                ours_fires = whole[step]
            elif rule.startswith("alpha_words"):
                ours_fires = bool(alpha_only.rules_fired(text))
            else:
                ours_fires = rule in fired[step]
            out.append((step, rule, ours_fires, dt_fires))
    return out


def bench_agreement(docs: list[dict], labels: list[dict], n_docs: int, workers: int) -> None:
    pool_texts = [d["text"] for d, lab in zip(docs, labels) if "wrong_language" not in lab["defects"]]
    random.Random(0).shuffle(pool_texts)
    texts = pool_texts[:n_docs] if n_docs else pool_texts
    chunks = [texts[i: i + 200] for i in range(0, len(texts), 200)]
    t0 = time.perf_counter()
    counts: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
    with mp.get_context("fork").Pool(workers) as pool:
        for result in pool.imap_unordered(_agreement_chunk, chunks):
            for step, rule, a, b in result:
                counts[(step, rule)][(a, b)] += 1
    say(f"## Agreement with datatrove {_version('datatrove')} on {len(texts):,} English documents of the shared corpus")
    say()
    say("Each rule is run alone on both sides (every other rule off), on the documents as they are; "
        "'whole filter' is each filter with datatrove's defaults, its alphabetic-word rule off on both sides. "
        f"({time.perf_counter() - t0:.0f} s on {workers} workers)")
    say()
    rows = []
    for (step, rule), c in counts.items():
        n = sum(c.values())
        rows.append([step, rule, f"{(c[(True, True)] + c[(False, False)]) / n:.2%}", c[(True, True)],
                     c[(True, False)], c[(False, True)]])
    table(["step", "rule", "agreement", "both reject", "only gristmill", "only datatrove"], rows)


def _version(package: str) -> str:
    from importlib.metadata import version

    try:
        return version(package)
    except Exception:
        return "?"


# ------------------------------------------------------------------------------------ 3. speed


def _write_shards(docs: list[dict], folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    per = (len(docs) + n - 1) // n
    for i in range(n):
        path = folder / f"part-{i:02d}.jsonl.gz"
        with gzip.open(path, "wt", encoding="utf-8") as f:
            for d in docs[i * per: (i + 1) * per]:
                f.write(json.dumps({"id": d["id"], "text": d["text"]}) + "\n")
        paths.append(path)
    return paths


def _run_datatrove(shards: Path, out: Path, workers: int) -> tuple[float, float]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import C4QualityFilter, GopherQualityFilter, GopherRepetitionFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    n_files = len(list(shards.glob("*.jsonl.gz")))
    executor = LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(shards), glob_pattern="*.jsonl.gz", text_key="text", id_key="id"),
            GopherRepetitionFilter(),
            GopherQualityFilter(max_non_alpha_words_ratio=None),
            C4QualityFilter(),
            JsonlWriter(str(out / "kept")),
        ],
        tasks=n_files, workers=workers, logging_dir=str(out / "logs"), skip_completed=False,
    )
    t0 = time.perf_counter()
    with TreeCPU() as cpu:
        executor.run()
    return time.perf_counter() - t0, cpu.seconds


def _datatrove_kept_ids(out: Path) -> set[str]:
    ids = set()
    for path in (out / "kept").glob("*.jsonl*"):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            ids.update(json.loads(line)["id"] for line in f)
    return ids


def _run_gristmill_chain(shards: Path, out: Path, workers: int, per_shard: int) -> tuple[float, float, set[str]]:
    from gristmill.data.inputs import InputSpec
    from gristmill.data.readers.output import read_documents
    from gristmill.data.run import OutputSpec, Pipeline
    from gristmill.data.steps.quality import C4Quality, GopherQuality, GopherRepetition

    pipeline = Pipeline(
        input=InputSpec(paths=[str(p) for p in sorted(shards.glob("*.jsonl.gz"))], shard_size=per_shard),
        steps=[GopherRepetition(), GopherQuality(skip=["alpha_words"]), C4Quality()],
        output=OutputSpec(path=str(out)),
    )
    t0 = time.perf_counter()
    with TreeCPU() as cpu:
        pipeline.run(workers=workers, overwrite=True, progress=False)
    seconds = time.perf_counter() - t0
    return seconds, cpu.seconds, {d.id for d in read_documents(out / "kept")}


def bench_speed(docs: list[dict], labels: list[dict], n_docs: int, workers: int, tmp: Path) -> None:
    english = [d for d, lab in zip(docs, labels) if "wrong_language" not in lab["defects"]]
    random.Random(1).shuffle(english)
    subset = english[:n_docs]
    shards = tmp / "speed-input"
    _write_shards(subset, shards, workers)
    per_shard = (len(subset) + workers - 1) // workers
    # datatrove first: it is the slow one, and page-cache effects then favour it, if anything.
    dt_seconds, dt_cpu = _run_datatrove(shards, tmp / "speed-datatrove", workers)
    gm_seconds, gm_cpu, gm_kept = _run_gristmill_chain(shards, tmp / "speed-gristmill", workers, per_shard)
    dt_kept = _datatrove_kept_ids(tmp / "speed-datatrove")
    ids = [d["id"] for d in subset]
    same = sum((i in gm_kept) == (i in dt_kept) for i in ids) / len(ids)
    say(f"## Speed: Gopher repetition + Gopher quality + C4 chain, {len(subset):,} English documents, {workers} workers")
    say()
    say("Both read the same gzipped JSONL shards (one per worker) and write the kept documents; "
        "datatrove's alphabetic-word rule is off and so is ours. Wall-clock seconds include process start-up; "
        "CPU seconds are summed over all processes, which other jobs on the machine do not inflate.")
    say()
    table(["engine", "wall s", "docs/s", "CPU s", "docs per CPU s", "kept"],
          [["datatrove " + _version("datatrove"), f"{dt_seconds:.1f}", f"{len(subset) / dt_seconds:,.0f}",
            f"{dt_cpu:.1f}", f"{len(subset) / dt_cpu:,.0f}", len(dt_kept)],
           ["gristmill", f"{gm_seconds:.1f}", f"{len(subset) / gm_seconds:,.0f}",
            f"{gm_cpu:.1f}", f"{len(subset) / gm_cpu:,.0f}", len(gm_kept)]])
    say(f"**speed ratio gristmill/datatrove: {dt_seconds / gm_seconds:.1f}x wall-clock, {dt_cpu / gm_cpu:.1f}x CPU**; "
        f"same keep/reject decision on {same:.2%} of documents")
    say()


# ------------------------------------------------------------------------------------ 4. recipe

MOJIBAKE_MARKERS_RE = re.compile("[ÃÂ][\u0080-\u00bf]|â€")


def _boilerplate_template_lines(docs: list[dict], labels: list[dict]) -> set[str]:
    """Lines of the fake sites' templates: in two or more boilerplate documents, never elsewhere."""
    elsewhere: set[str] = set()
    counts: collections.Counter = collections.Counter()
    for d, lab in zip(docs, labels):
        lines = {line.strip() for line in d["text"].split("\n") if line.strip()}
        if "boilerplate" in lab["defects"]:
            counts.update(lines)
        else:
            elsewhere.update(lines)
    return {line for line, n in counts.items() if n >= 2 and line not in elsewhere}


def _recipe_with_min_words(recipe: Path, min_words: int):  # type: ignore[no-untyped-def]
    from gristmill.data.recipe import load_recipe

    pipeline = load_recipe(recipe)
    for step in pipeline.steps:
        if step.name == "gopher_quality":
            step.min_words = min_words
    return pipeline


def bench_recipe(docs: list[dict], labels: list[dict], recipe: Path, corpus: Path, workers: int, tmp: Path) -> None:
    from gristmill.data.document import Document
    from gristmill.data.pipeline import StepStats, run_steps
    from gristmill.data.readers.output import read_documents
    from gristmill.data.steps import text as tx

    out = tmp / "recipe-run"
    cmd = [sys.executable, "-m", "gristmill", "run", str(recipe), "--input", str(corpus / "docs.jsonl.gz"),
           "-o", str(out), "--workers", str(workers), "--overwrite", "--no-progress"]
    t0 = time.perf_counter()
    with TreeCPU() as tree:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - t0, tree.seconds
    if proc.returncode not in (0, 3):
        raise SystemExit(f"gristmill run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    stats = json.loads((out / "stats.json").read_text())
    kept = {d.id: d for d in read_documents(out / "kept")}
    rejected = {d.id: d for d in read_documents(out / "rejected")}
    assert len(kept) + len(rejected) == len(docs), "documents were lost"
    say(f"## Recipe {recipe.relative_to(ROOT)} on the shared corpus ({len(docs):,} documents)")
    say()
    say(f"`{' '.join(['gristmill', *cmd[3:]])}`: **{seconds:.1f} s wall-clock on {workers} workers**, "
        f"{cpu:.1f} CPU seconds in all (kept {len(kept):,}, rejected {len(rejected):,}). "
        f"With {workers} idle cores the wall-clock time would be about {cpu / workers:.0f} s.")
    say()
    step_rows = []
    for step in stats.get("steps", []):
        top = ", ".join(f"{k}={v}" for k, v in sorted(step.get("rejected", {}).items(), key=lambda kv: -kv[1])[:4])
        step_rows.append([step.get("name", "?"), step.get("docs_in", ""), step.get("docs_out", ""), top,
                          f"{step.get('seconds', 0):.1f}"])
    if step_rows:
        table(["step", "in", "out", "top rejection reasons", "CPU s (all workers)"], step_rows)

    template = _boilerplate_template_lines(docs, labels)
    rows = []
    defects = collections.defaultdict(list)
    for d, lab in zip(docs, labels):
        for name in lab["defects"]:
            defects[name].append((d, lab))
    for name in sorted(defects):
        items = defects[name]
        n = len(items)
        n_rej = sum(d["id"] in rejected for d, _ in items)
        repaired: int | str = ""
        if name == "mojibake":
            out_text = {**{i: x.text for i, x in kept.items()}, **{i: x.text for i, x in rejected.items()}}
            repaired = sum(not MOJIBAKE_MARKERS_RE.search(out_text[d["id"]]) for d, _ in items)
        elif name == "pii":
            repaired = sum(d["id"] in kept and all(p["value"] not in kept[d["id"]].text for p in lab["meta"]["pii"]["pii"])
                           for d, lab in items)
        elif name == "boilerplate":
            def gone(d: dict) -> bool:
                lines = [x.strip() for x in d["text"].split("\n") if x.strip() in template]
                if d["id"] not in kept or not lines:
                    return False
                left = {x.strip() for x in kept[d["id"]].text.split("\n")}
                return sum(x not in left for x in lines) >= 0.9 * len(lines)
            repaired = sum(gone(d) for d, _ in items)
        handled = n_rej + (repaired if isinstance(repaired, int) and name != "mojibake" else 0)
        if name == "mojibake":
            handled = int(repaired)
        rows.append([name, n, f"{n_rej / n:.1%}", f"{repaired / n:.1%}" if repaired != "" else "",
                     f"{handled / n:.1%}"])
    say("Per defect type (a document with two defects counts for both). *Repaired*: mojibake - no mojibake "
        "sequence left in the output text; pii - document kept with every inserted PII string gone; boilerplate - "
        "document kept with at least 90% of its site-template lines removed. The dedup and decontamination defects "
        "are for the dedup steps, which are not in the recipe yet.")
    say()
    table(["defect", "documents", "rejected", "repaired", "rejected or repaired"], rows)

    pii_total = pii_gone = 0
    for d, lab in defects.get("pii", []):
        for p in lab["meta"]["pii"]["pii"]:
            pii_total += 1
            pii_gone += d["id"] not in kept or p["value"] not in kept[d["id"]].text
    say(f"Inserted PII strings gone from the kept text: **{pii_gone:,}/{pii_total:,} = {pii_gone / max(1, pii_total):.2%}**")
    say()
    clean = [(d, lab) for d, lab in zip(docs, labels) if not lab["defects"]]
    long_clean = [d for d, _ in clean if len(tx.words(d["text"])) >= 50]
    short_clean = [d for d, _ in clean if len(tx.words(d["text"])) < 50]
    fr_long = [d for d in long_clean if d["id"] in rejected]
    fr_short = [d for d in short_clean if d["id"] in rejected]
    reasons = collections.Counter(rejected[d["id"]].reason for d in fr_long)
    say(f"Clean documents of 50 words or more wrongly rejected: **{len(fr_long):,}/{len(long_clean):,} = "
        f"{len(fr_long) / len(long_clean):.2%}** (by rule: {', '.join(f'{k}={v}' for k, v in reasons.most_common(8))})")
    say()
    relaxed = _recipe_with_min_words(recipe, 20)
    short_docs = [Document(d["id"], d["text"], {"url": d.get("url")}) for d in short_clean]
    _, short_rejected = run_steps(short_docs, relaxed.steps, [StepStats() for _ in relaxed.steps])
    say(f"Clean documents under 50 words dropped: **{len(fr_short):,}/{len(short_clean):,} "
        f"({len(fr_short) / max(1, len(short_clean)):.1%})**. With `gopher_quality: {{min_words: 20}}` the recipe "
        f"drops {len(short_rejected):,} of them ({len(short_rejected) / max(1, len(short_clean)):.1%}).")
    say()
    by_source = collections.Counter(d["source"] for d in fr_long)
    total_source = collections.Counter(d["source"] for d in long_clean)
    table(["source", "clean >= 50 words", "wrongly rejected"],
          [[s, total_source[s], f"{by_source[s] / total_source[s]:.2%}"] for s in sorted(total_source)])


# ------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpus")
    parser.add_argument("--pages", type=Path, default=SHARED / "web" / "pages.jsonl.gz")
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "web-en.yaml")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--agreement-docs", type=int, default=6000, help="0: every English document")
    parser.add_argument("--speed-docs", type=int, default=10000)
    parser.add_argument("--skip", default="", help="comma list of parts to skip: lid,agreement,speed,recipe")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables to this file")
    parser.add_argument("--tmp", type=Path, default=None, help="work folder (default: a temporary one, removed)")
    args = parser.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if not args.corpus.exists():
        raise SystemExit(f"{args.corpus} not found: this benchmark needs the shared data")
    tmp = args.tmp or Path(tempfile.mkdtemp(prefix="gristmill-bench-filters-"))
    tmp.mkdir(parents=True, exist_ok=True)
    say(f"# Filters benchmark ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, workers={args.workers})")
    say()
    try:
        docs, labels = load_corpus(args.corpus)
        if "lid" not in skip:
            bench_lid(args.pages)
        if "agreement" not in skip:
            bench_agreement(docs, labels, args.agreement_docs, args.workers)
        if "speed" not in skip:
            bench_speed(docs, labels, args.speed_docs, args.workers, tmp)
        if "recipe" not in skip:
            bench_recipe(docs, labels, args.recipe.resolve(), args.corpus.resolve(), args.workers, tmp)
    finally:
        if args.tmp is None:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.markdown:
        args.markdown.write_text("\n".join(OUT_LINES) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

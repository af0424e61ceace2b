"""Gather what a run report shows from a finished run folder, reading only what it needs.

From ``OUT/stats.json``: the funnel (documents and bytes through every step), rejections by reason,
PII replacements by kind and time per step. From the Parquet (or JSONL) files, column by column:

* ``reason`` of every rejected row (a small column): examples per reason and duplicate-cluster sizes
  (``dup_of=<kept id>`` rows per kept id);
* ``text`` and ``detail`` only of the few rows chosen as examples;
* ``text`` of a bounded sample (whole files, visited in a fixed pseudo-random order, until
  ``max_docs`` rows per side) for the length and word-count histograms;
* ``lang`` of the same sample for the language mix.

So a 100 GB run costs one pass over its ``reason`` column plus a bounded sample, never a full load.
Sampling is deterministic: the same run folder always gives the same report. This module reads and
counts; it renders nothing and imports only ``gristmill.data``.
"""

from __future__ import annotations

import ast
import contextlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from gristmill.data import storage
from gristmill.data.readers.output import output_files
from gristmill.errors import GristmillError

if TYPE_CHECKING:
    from gristmill.data.pipeline import Step

EXAMPLES_PER_REASON = 3
CONTEXT_CHARS = 160
MAX_SAMPLE_DOCS = 50_000
CHAR_BINS = (0, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000)
WORD_BINS = (0, 10, 20, 35, 50, 100, 200, 500, 1_000, 2_000, 5_000)


class ReportError(GristmillError):
    """The folder is not a finished gristmill run (no stats.json)."""


@dataclass
class FunnelRow:
    step: str
    docs_in: int
    docs_out: int
    bytes_in: int
    bytes_out: int
    rejected: int
    seconds: float


@dataclass
class Example:
    id: str
    reason: str
    detail: str
    before: str
    trigger: str
    after: str
    """The document around what triggered the rule: ``before + trigger + after`` is a window of the text."""


@dataclass
class Histogram:
    bins: tuple[int, ...]
    counts: list[int]
    docs: int
    """Documents measured (the sample), of ``total`` in the folder."""
    total: int
    median: float


@dataclass
class RunData:
    out: str
    stats: dict[str, Any]
    funnel: list[FunnelRow]
    reasons: list[tuple[str, int]]
    examples: dict[str, list[Example]]
    chars: dict[str, Histogram]
    words: dict[str, Histogram]
    languages: dict[str, Counter]
    clusters: Counter
    """Duplicate clusters by size (kept copy included): size -> number of clusters."""
    pii: dict[str, int]
    recipe_steps: list[str] = field(default_factory=list)


def read_stats(out: str) -> dict[str, Any]:
    path = storage.join(out, "stats.json")
    if not storage.exists(path):
        raise ReportError(f"{out} has no stats.json: it is not a finished gristmill run (run `gristmill run` first)")
    return json.loads(storage.read_bytes(path))


def funnel(stats: dict[str, Any]) -> list[FunnelRow]:
    inp = stats["input"]
    rows = [FunnelRow("input", inp["docs_in"], inp["docs_out"], inp.get("bytes_in", 0), inp.get("bytes_out", 0),
                      sum(inp["rejected"].values()), 0.0)]
    for step in stats["steps"]:
        rows.append(FunnelRow(step["name"], step["docs_in"], step["docs_out"], step["bytes_in"], step["bytes_out"],
                              sum(step["rejected"].values()), float(step["seconds"])))
    # Bytes entering the first step are the input's bytes (the reader does not measure them).
    if len(rows) > 1:
        rows[0].bytes_in = rows[0].bytes_out = rows[1].bytes_in
    return rows


def reasons(stats: dict[str, Any]) -> list[tuple[str, int]]:
    counts: Counter = Counter(stats["input"]["rejected"])
    for step in stats["steps"]:
        counts.update(step["rejected"])
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def pii_counts(stats: dict[str, Any]) -> dict[str, int]:
    counts: Counter = Counter()
    for step in stats["steps"]:
        for key, value in step.get("counters", {}).items():
            if key.startswith("pii_"):
                counts[key[4:]] += int(value)
    return dict(counts.most_common())


def file_order(files: list[str]) -> list[str]:
    """A fixed pseudo-random order, so samples spread over the whole run rather than its first shards."""
    return sorted(files, key=lambda f: xxhash.xxh64_intdigest(storage.name(f).encode()))


def _columns(path: str) -> list[str]:
    if path.endswith(".parquet"):
        return list(storage.parquet_file(path).schema_arrow.names)
    with storage.open_file(path, "rb") as f:
        first = f.readline()
    return list(json.loads(first)) if first.strip() else []


def read_columns(path: str, columns: list[str]) -> pa.Table:
    """Only ``columns`` of one output file (those it has)."""
    present = [c for c in columns if c in _columns(path)]
    if path.endswith(".parquet"):
        return storage.parquet_file(path).read(columns=present)
    rows = []
    with storage.open_file(path, "rb") as f:
        for line in f:
            record = json.loads(line)
            rows.append({c: record.get(c) for c in present})
    return pa.Table.from_pylist(rows) if rows else pa.table({c: pa.array([], pa.string()) for c in present})


def _rule(reason_column: pa.ChunkedArray) -> pa.ChunkedArray:
    """``minhash_dedup:dup_of=doc-7`` -> ``minhash_dedup:dup_of`` (the key stats.json counts under)."""
    return pc.replace_substring_regex(reason_column, pattern="=.*$", replacement="")


# ------------------------------------------------------------------------------ triggers


class TriggerFinder:
    """Where in a rejected text its rule fired, found again with the step that rejected it.

    PII and blocklist steps are rebuilt from the parameters in stats.json and asked for their
    matches; a detail that quotes text (decontamination's shared n-gram) is searched for; other rules
    judge the whole document, so the window shows its opening.
    """

    def __init__(self, stats: dict[str, Any]) -> None:
        self.steps: dict[str, Step] = {}
        try:
            from gristmill.data.recipe import load_builtin_steps

            registry = load_builtin_steps()
        except ImportError:  # pragma: no cover - a partial install still gets a report
            registry = {}
        for step in stats.get("steps", []):
            cls = registry.get(step["name"])
            if cls is None or not (hasattr(cls, "find") or hasattr(cls, "score")):
                continue
            try:
                self.steps[step["name"]] = cls(**step.get("params", {}))
            except Exception:  # noqa: BLE001 - a step that cannot be rebuilt only loses its highlight
                continue

    def span(self, reason: str, detail: str, text: str) -> tuple[int, int] | None:
        step = self.steps.get(reason.split(":", 1)[0])
        if step is not None and hasattr(step, "find"):
            spans = step.find(text)
            if spans:
                return spans[0][1], spans[0][2]
        if step is not None and hasattr(step, "score"):
            _, terms = step.score(text)
            lower = text.lower()
            hits = [(lower.find(t), len(t)) for t in terms if lower.find(t) >= 0]
            if hits:
                start, length = min(hits)
                return start, start + length
        for quoted in re.findall(r"'([^']{3,})'|\"([^\"]{3,})\"", detail or ""):
            needle = quoted[0] or quoted[1]
            with contextlib.suppress(ValueError, SyntaxError):
                # Details quote with repr(): "\\n" in the detail is a newline in the text.
                needle = ast.literal_eval(f"'{needle}'")
            # Matching n-grams are compared as words, so the text may space them differently.
            pattern = r"\s+".join(re.escape(w) for w in needle.split())
            match = re.search(pattern, text, re.IGNORECASE) if pattern else None
            if match:
                return match.span()
        return None


def _window(text: str, span: tuple[int, int] | None) -> tuple[str, str, str]:
    if span is None:
        return text[: 2 * CONTEXT_CHARS] + ("…" if len(text) > 2 * CONTEXT_CHARS else ""), "", ""
    start, end = span
    lo = max(0, start - CONTEXT_CHARS)
    hi = min(len(text), end + CONTEXT_CHARS)
    return (("…" if lo else "") + text[lo:start], text[start:end], text[end:hi] + ("…" if hi < len(text) else ""))


def scan_rejected(out: str, stats: dict[str, Any], per_reason: int = EXAMPLES_PER_REASON
                  ) -> tuple[dict[str, list[Example]], Counter]:
    """Examples per reason (the first rows in a fixed file order) and duplicate-cluster sizes."""
    files = file_order(output_files(storage.join(out, "rejected")))
    wanted = {reason for reason, _ in reasons(stats)}
    picked: dict[str, list[tuple[str, int]]] = {r: [] for r in wanted}
    dup_of: Counter = Counter()
    for path in files:
        table = read_columns(path, ["reason"])
        if table.num_rows == 0 or "reason" not in table.column_names:
            continue
        full = table.column("reason")
        rules = _rule(full)
        dups = pc.filter(full, pc.match_substring(full, ":dup_of="))
        if len(dups):
            dup_of.update(dict(zip(*(v.to_pylist() for v in pc.value_counts(dups).flatten()))))
        needed = [r for r in wanted if len(picked[r]) < per_reason]
        if not needed:
            continue
        for reason in needed:
            rows = pc.indices_nonzero(pc.equal(rules, reason)).to_pylist()[: per_reason - len(picked[reason])]
            picked[reason].extend((path, int(i)) for i in rows)
    clusters: Counter = Counter(n + 1 for n in dup_of.values())
    return _load_examples(picked, stats), clusters


def _load_examples(picked: dict[str, list[tuple[str, int]]], stats: dict[str, Any]) -> dict[str, list[Example]]:
    finder = TriggerFinder(stats)
    by_file: dict[str, list[tuple[str, int]]] = {}
    for reason, rows in picked.items():
        for path, i in rows:
            by_file.setdefault(path, []).append((reason, i))
    found: dict[tuple[str, int], Example] = {}
    for path, rows in by_file.items():
        names = _columns(path)
        score_cols = [c for c in names if c.endswith("_scores")]
        table = read_columns(path, ["id", "text", "reason", "detail", *score_cols]).take([i for _, i in rows])
        for (reason, i), row in zip(rows, table.to_pylist(), strict=True):
            text = row.get("text") or ""
            detail = row.get("detail") or ""
            step = reason.split(":", 1)[0]
            scores = row.get(f"{step}_scores")
            if scores:
                # The measured values next to the rule: why this document failed it.
                values = json.loads(scores) if isinstance(scores, str) else scores
                detail = (detail + "; " if detail else "") + ", ".join(f"{k}={v}" for k, v in values.items()
                                                                      if v is not None)
            full_reason = row.get("reason") or reason
            before, trigger, after = _window(text, finder.span(full_reason, detail, text))
            found[(path, i)] = Example(str(row.get("id")), full_reason, detail, before, trigger, after)
    return {reason: [found[key] for key in rows] for reason, rows in picked.items()}


# ------------------------------------------------------------------------------ sampled measures


def _histogram(values: np.ndarray, bins: tuple[int, ...], total: int) -> Histogram:
    edges = np.array([*bins, np.iinfo(np.int64).max])
    counts = np.histogram(values, bins=edges)[0].tolist() if len(values) else [0] * len(bins)
    return Histogram(bins, [int(c) for c in counts], int(len(values)), total,
                     float(np.median(values)) if len(values) else 0.0)


def sample_side(folder: str, max_docs: int = MAX_SAMPLE_DOCS) -> tuple[np.ndarray, np.ndarray, Counter, int]:
    """Characters and words per document, and languages, of up to ``max_docs`` rows of ``folder``."""
    files = file_order(output_files(folder))
    total = sum(row_count(f) for f in files)
    chars: list[np.ndarray] = []
    words: list[np.ndarray] = []
    langs: Counter = Counter()
    seen = 0
    for path in files:
        if seen >= max_docs:
            break
        table = read_columns(path, ["text", "lang"]).slice(0, max_docs - seen)
        if table.num_rows == 0:
            continue
        text = pc.fill_null(table.column("text"), "")
        chars.append(pc.utf8_length(text).to_numpy(zero_copy_only=False))
        words.append(pc.count_substring_regex(text, pattern=r"\S+").to_numpy(zero_copy_only=False))
        if "lang" in table.column_names:
            langs.update(pc.fill_null(table.column("lang"), "(none)").to_pylist())
        seen += table.num_rows
    return _cat(chars), _cat(words), langs, total


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def row_count(path: str) -> int:
    if path.endswith(".parquet"):
        return storage.parquet_file(path).metadata.num_rows
    with storage.open_file(path, "rb") as f:
        return sum(1 for _ in f)


def collect(out: str, max_docs: int = MAX_SAMPLE_DOCS, per_reason: int = EXAMPLES_PER_REASON) -> RunData:
    """Everything the run report shows, from the run folder ``out`` (local or URL)."""
    out = str(out)
    stats = read_stats(out)
    examples, clusters = scan_rejected(out, stats, per_reason)
    kept_chars, kept_words, kept_langs, kept_total = sample_side(storage.join(out, "kept"), max_docs)
    rej_chars, rej_words, rej_langs, rej_total = sample_side(storage.join(out, "rejected"), max_docs)
    # "Before" is every document (kept and rejected as they left the run), "after" the kept ones.
    before_c = np.concatenate([kept_chars, rej_chars])
    before_w = np.concatenate([kept_words, rej_words])
    total = kept_total + rej_total
    return RunData(
        out=out, stats=stats, funnel=funnel(stats), reasons=reasons(stats), examples=examples,
        chars={"before": _histogram(before_c, CHAR_BINS, total), "after": _histogram(kept_chars, CHAR_BINS, kept_total)},
        words={"before": _histogram(before_w, WORD_BINS, total), "after": _histogram(kept_words, WORD_BINS, kept_total)},
        languages={"kept": kept_langs, "rejected": rej_langs},
        clusters=clusters, pii=pii_counts(stats),
        recipe_steps=[s["name"] for s in stats.get("steps", [])],
    )

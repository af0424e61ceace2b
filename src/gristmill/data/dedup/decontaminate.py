"""``decontaminate``: removes (or flags) documents that share an n-gram with an evaluation example.

``prepare`` reads the evaluation files (JSONL, ``.gz``/``.zst`` too, one example per line with a text
field), tokenises them like every dedup step (lower-cased words; CJK characters one by one) and
writes the sorted 64-bit hashes of all their ``ngram``-token n-grams to the work folder, with the file
and line each came from. An example shorter than ``ngram`` tokens but at least ``min_tokens`` long is
looked up whole (all of its tokens, consecutively); shorter examples are ignored and counted.

``process`` hashes every n-gram of each document and looks it up in those sorted tables (binary
search on memory maps, so a large evaluation set costs no per-worker copy). A match rejects the
document as ``decontaminate:<evaluation file>`` with the file, line and shared n-gram in ``detail``,
or with ``mode: flag`` keeps it and sets ``meta["contamination"] = "<file>:<line>"``. When an n-gram
occurs in several evaluation files, the first file in ``paths`` is named.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gristmill.data.dedup.shuffle import fresh_dir, load_array, save_array
from gristmill.data.dedup.text import batches_by_bytes, ngram_hashes, tokenize_batch, window_hashes
from gristmill.data.document import Document
from gristmill.data.pipeline import CorpusStep, StepStats, register
from gristmill.data.readers.jsonl import jsonl_lines
from gristmill.data.storage import open_binary

if TYPE_CHECKING:
    from gristmill.data.executors import Executor

MODES = ("remove", "flag")
_BATCH_BYTES = 1 << 18


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def read_examples(path: str, text_field: str) -> tuple[list[str], list[int], int]:
    """(texts, line numbers, lines without a usable text) of one evaluation file."""
    texts: list[str] = []
    lines: list[int] = []
    bad = 0
    with open_binary(path) as f:
        for line in jsonl_lines(f, path, errors="record"):
            text = line.record.get(text_field) if isinstance(line.record, dict) and not line.problem else None
            if not isinstance(text, str) or not text.strip():
                bad += 1
                continue
            texts.append(text)
            lines.append(line.number)
    return texts, lines, bad


@register("decontaminate")
@dataclass
class Decontaminate(CorpusStep):
    """Removes or flags documents sharing an n-gram (13 words) with any evaluation example."""

    paths: list[str] = field(default_factory=list)
    """Evaluation files: JSONL with one example per line."""
    text_field: str = "text"
    """Field of the evaluation records that holds the text."""
    ngram: int = 13
    """N-gram size in tokens (words; CJK characters)."""
    min_tokens: int = 3
    """Examples shorter than ``ngram`` are matched whole if they have at least this many tokens."""
    mode: str = "remove"
    """``remove`` rejects the document; ``flag`` keeps it and sets ``meta["contamination"]``."""

    def __post_init__(self) -> None:
        if not self.paths:
            raise ValueError("give the evaluation files in 'paths'")
        for path in self.paths:
            if not os.path.isfile(path):
                raise ValueError(f"evaluation file {path} does not exist")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if self.ngram < 1 or self.min_tokens < 1:
            raise ValueError("ngram and min_tokens must be at least 1")

    def prepare(self, shards: Sequence[Path], workdir: Path, executor: Executor) -> dict[str, Any]:
        out = fresh_dir(workdir / "ngrams")
        full_h, full_w = [], []
        short_prefix, short_h, short_len, short_w = [], [], [], []
        stats: dict[str, Any] = {"eval_examples": 0, "eval_examples_whole": 0, "eval_examples_ignored": 0,
                                 "eval_records_unusable": 0}
        prefix_n = min(self.min_tokens, self.ngram)
        for file_index, path in enumerate(self.paths):
            texts, lines, bad = read_examples(path, self.text_field)
            stats["eval_records_unusable"] += bad
            stats["eval_examples"] += len(texts)
            if not texts:
                continue
            tb = tokenize_batch(texts)
            counts = tb.counts
            where = (np.uint64(file_index) << np.uint64(32)) | np.asarray(lines, dtype=np.uint64)
            ng = ngram_hashes(tb, self.ngram, whole_if_shorter=False)
            full_h.append(ng.hashes)
            full_w.append(where[ng.doc])
            short = np.flatnonzero((counts >= prefix_n) & (counts < self.ngram))
            stats["eval_examples_whole"] += len(short)
            stats["eval_examples_ignored"] += int((counts < prefix_n).sum())
            if len(short):
                first = tb.offsets[short]
                short_prefix.append(window_hashes(tb, first, np.full(len(short), prefix_n)))
                short_h.append(window_hashes(tb, first, counts[short]))
                short_len.append(counts[short].astype(np.int64))
                short_w.append(where[short])
        cat = _concat
        h, w = cat(full_h, np.uint64), cat(full_w, np.uint64)
        order = np.lexsort((w, h))
        save_array(out / "full-hash.npy", h[order])
        save_array(out / "full-where.npy", w[order])
        p, sh, sl, sw = cat(short_prefix, np.uint64), cat(short_h, np.uint64), cat(short_len, np.int64), cat(short_w, np.uint64)
        order = np.lexsort((sw, p))
        for name, arr in (("prefix", p), ("hash", sh), ("len", sl), ("where", sw)):
            save_array(out / f"short-{name}.npy", arr[order])
        stats["eval_ngrams"] = len(np.unique(h)) + len(sh)
        return stats

    def setup(self, workdir: Path | None, shard_name: str) -> None:
        folder = workdir / "ngrams" if workdir is not None else None
        names = ("full-hash", "full-where", "short-prefix", "short-hash", "short-len", "short-where")
        if folder is None or not (folder / "full-hash.npy").exists():
            self._tables = {name: np.zeros(0, np.int64 if name == "short-len" else np.uint64) for name in names}
            return
        self._tables = {name: load_array(folder / f"{name}.npy") for name in names}

    def matches(self, texts: list[str]) -> list[tuple[int, int, int, str] | None]:
        """For each text: (file index, line, n-gram length, shared text) of its first match, or None."""
        found: list[tuple[int, int, int, str] | None] = [None] * len(texts)
        lengths = np.array([len(t.encode("utf-8", "surrogatepass")) for t in texts], dtype=np.int64)
        for lo, hi in batches_by_bytes(lengths, _BATCH_BYTES):
            for d, hit in enumerate(self._batch_matches(texts[lo:hi]), start=lo):
                found[d] = hit
        return found

    def _batch_matches(self, texts: list[str]) -> list[tuple[int, int, int, str] | None]:
        t = getattr(self, "_tables", None)
        if t is None:
            raise AssertionError("decontaminate: setup() was not called")
        tb = tokenize_batch(texts)
        # Candidate matches as (document, first token, n-gram length, where); the earliest per document wins.
        docs, firsts, lens, wheres = [], [], [], []
        table = t["full-hash"]
        if len(table):
            ng = ngram_hashes(tb, self.ngram, whole_if_shorter=False)
            idx = np.minimum(np.searchsorted(table, ng.hashes), len(table) - 1)
            hit = np.flatnonzero(table[idx] == ng.hashes)
            docs.append(ng.doc[hit])
            firsts.append(ng.first[hit])
            lens.append(np.full(len(hit), self.ngram, np.int64))
            wheres.append(np.asarray(t["full-where"][idx[hit]]))
        prefix = t["short-prefix"]
        if len(prefix):
            ng = ngram_hashes(tb, min(self.min_tokens, self.ngram), whole_if_shorter=False)
            lo = np.searchsorted(prefix, ng.hashes, side="left")
            hi = np.searchsorted(prefix, ng.hashes, side="right")
            cand = np.flatnonzero(hi > lo)
            if len(cand):
                # Every example whose first tokens match: check its whole text at that place.
                reps = (hi - lo)[cand]
                gram = np.repeat(cand, reps)
                ex = np.concatenate([np.arange(a, b) for a, b in zip(lo[cand].tolist(), hi[cand].tolist())])
                ex_len = np.asarray(t["short-len"][ex])
                ok = window_hashes(tb, ng.first[gram], ex_len) == np.asarray(t["short-hash"][ex])
                docs.append(ng.doc[gram[ok]])
                firsts.append(ng.first[gram[ok]])
                lens.append(ex_len[ok])
                wheres.append(np.asarray(t["short-where"][ex[ok]]))
        found: list[tuple[int, int, int, str] | None] = [None] * len(texts)
        if not docs:
            return found
        d, f, k, w = (np.concatenate(x) for x in (docs, firsts, lens, wheres))
        order = np.lexsort((w, f, d))
        d, f, k, w = d[order], f[order], k[order], w[order]
        first_of_doc = np.flatnonzero(np.concatenate(([True], d[1:] != d[:-1]))) if len(d) else []
        for i in np.asarray(first_of_doc).tolist():
            loc = int(w[i])
            found[int(d[i])] = (loc >> 32, loc & 0xFFFFFFFF, int(k[i]), tb.text(int(f[i]), int(f[i] + k[i] - 1)))
        return found

    def process(self, docs: list[Document], stats: StepStats) -> list[Document]:
        for doc, hit in zip(docs, self.matches([d.text for d in docs])):
            if hit is None:
                continue
            file_index, line, k, shared = hit
            path = self.paths[file_index]
            if self.mode == "flag":
                doc.meta["contamination"] = f"{path}:{line}"
                stats.count("flagged")
            else:
                doc.reject(self.name, path, f"{path}:{line}: shares the {k}-gram {shared!r}")
        return docs

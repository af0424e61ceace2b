"""Corpus bias report: how often documented demographic terms occur, and whether cleaning shifts that.

For every term group of :mod:`gristmill.report.terms`, count whole-word occurrences per document in
``OUT/kept`` and ``OUT/rejected`` (a bounded, deterministic sample of each, read column by column),
and report the rate per million words for kept, rejected and all documents (before cleaning), overall
and per value of a metadata column (``source`` by default), with 95% bootstrap intervals over
documents (Poisson bootstrap: each document gets a Poisson(1) weight per resample). Ratios such as
female/male terms and the kept - all shift get intervals from the same resamples.

What this measures: how much text *mentions* these groups through these words. It does not measure
how groups are portrayed (stereotypes, toxicity, sentiment), misses every mention not in the lists,
and counts non-demographic senses ("white space", "black box", "old version"). It is a measurement
to read next to the filters, not a filter. This module imports only ``gristmill.data`` and the
report's own collector.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow.compute as pc

from gristmill.data import storage
from gristmill.data.readers.output import output_files
from gristmill.report.collect import MAX_SAMPLE_DOCS, file_order, read_columns, read_stats
from gristmill.report.terms import GROUPS, RATIOS, pattern

SIDES = ("kept", "rejected")
MIN_DOCS_PER_VALUE = 50

MEASURES = ("Rates of documented demographic words per million words (whole-word, case-insensitive), overall "
            "and per source, in kept and rejected documents, with 95% bootstrap intervals over documents.")
LIMITS = ("It does not measure how groups are portrayed (stereotypes, sentiment, toxicity), misses mentions not in "
          "the word lists, and counts other senses of the same words ('white space', 'black box', 'old version', "
          "'her' as a possessive). A difference between kept and rejected shows what the filters removed, not why.")


def count_side(folder: str, by: str, max_docs: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(term counts per group x document, words per document, the ``by`` value per document)."""
    counts: list[np.ndarray] = []
    words: list[np.ndarray] = []
    values: list[str] = []
    patterns = [pattern(g) for g in GROUPS]
    seen = 0
    for path in file_order(output_files(folder)):
        if seen >= max_docs:
            break
        table = read_columns(path, ["text", by]).slice(0, max_docs - seen)
        if table.num_rows == 0:
            continue
        text = pc.fill_null(table.column("text"), "")
        words.append(pc.count_substring_regex(text, pattern=r"\S+").to_numpy(zero_copy_only=False))
        counts.append(np.stack([pc.count_substring_regex(text, pattern=p).to_numpy(zero_copy_only=False)
                                for p in patterns]))
        column = table.column(by) if by in table.column_names else None
        values += [str(v) for v in column.to_pylist()] if column is not None else ["(all)"] * table.num_rows
        seen += table.num_rows
    if not words:
        return np.zeros((len(GROUPS), 0)), np.zeros(0), []
    return np.concatenate(counts, axis=1).astype(np.float64), np.concatenate(words).astype(np.float64), values


def bootstrap_totals(counts: np.ndarray, words: np.ndarray, resamples: int, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Poisson-bootstrap totals: (resamples x groups term counts, resamples words)."""
    n = words.shape[0]
    group_totals = np.zeros((resamples, counts.shape[0]))
    word_totals = np.zeros(resamples)
    block = max(1, 2_000_000 // max(n, 1))
    for start in range(0, resamples, block):
        w = rng.poisson(1.0, size=(min(block, resamples - start), n)).astype(np.float64)
        group_totals[start:start + len(w)] = w @ counts.T
        word_totals[start:start + len(w)] = w @ words
    return group_totals, word_totals


def _interval(samples: np.ndarray) -> list[float | None]:
    finite = samples[np.isfinite(samples)]
    if not len(finite):
        return [None, None]  # JSON has no NaN: no resample defined the quantity
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return [round(float(lo), 3), round(float(hi), 3)]


def measure(counts: np.ndarray, words: np.ndarray, resamples: int, rng: np.random.Generator
            ) -> tuple[dict[str, Any], np.ndarray]:
    """Per group: count, rate per million words, interval; also the bootstrap rates (resamples x groups)."""
    total_words = float(words.sum())
    boot_groups, boot_words = bootstrap_totals(counts, words, resamples, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        boot_rates = 1e6 * boot_groups / boot_words[:, None]
    groups = {}
    for i, g in enumerate(GROUPS):
        total = float(counts[i].sum())
        groups[g.group] = {"count": int(total), "per_million": round(1e6 * total / total_words, 3) if total_words else None,
                           "ci95": _interval(boot_rates[:, i]),
                           "docs_with_term": int((counts[i] > 0).sum())}
    ratios = {}
    index = {g.group: i for i, g in enumerate(GROUPS)}
    for a, b in RATIOS:
        num, den = counts[index[a]].sum(), counts[index[b]].sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            boot = boot_groups[:, index[a]] / boot_groups[:, index[b]]
        ratios[f"{a}/{b}"] = {"value": round(float(num / den), 4) if den else None, "ci95": _interval(boot)}
    return {"documents": int(len(words)), "words": int(total_words), "groups": groups, "ratios": ratios}, boot_rates


def corpus_bias(out: str, by: str = "source", max_docs: int = MAX_SAMPLE_DOCS, resamples: int = 1000,
                seed: int = 0) -> dict[str, Any]:
    """Term rates in the run ``out``: overall and per ``by`` value, for kept, rejected and all documents."""
    read_stats(out)  # a finished run, or a one-line error
    rng = np.random.default_rng(seed)
    sides = {side: count_side(storage.join(out, side), by, max_docs) for side in SIDES}
    everything = (np.concatenate([sides[s][0] for s in SIDES], axis=1), np.concatenate([sides[s][1] for s in SIDES]),
                  sides["kept"][2] + sides["rejected"][2])
    sides_all = {**sides, "all": everything}
    overall: dict[str, Any] = {}
    boots: dict[str, np.ndarray] = {}
    for side, (counts, words, _) in sides_all.items():
        overall[side], boots[side] = measure(counts, words, resamples, rng)
    shift = {}
    for i, g in enumerate(GROUPS):
        kept, before = overall["kept"]["groups"][g.group]["per_million"], overall["all"]["groups"][g.group]["per_million"]
        shift[g.group] = {"kept_minus_all_per_million": None if kept is None or before is None else round(kept - before, 3),
                          "ci95": _interval(boots["kept"][:, i] - boots["all"][:, i])}
    per_value: dict[str, Any] = {}
    values = sorted({v for _, _, vals in sides_all.values() for v in vals})
    for value in values:
        entry = {}
        for side, (counts, words, vals) in sides_all.items():
            mask = np.array([v == value for v in vals], dtype=bool)
            if mask.sum() >= MIN_DOCS_PER_VALUE:
                entry[side], _ = measure(counts[:, mask], words[mask], resamples, rng)
        if entry:
            per_value[value] = entry
    return {
        "measures": MEASURES, "does_not_measure": LIMITS,
        "run": str(out), "by": by, "max_docs_per_side": max_docs, "resamples": resamples, "seed": seed,
        "term_groups": [{"axis": g.axis, "group": g.group, "words": list(g.words), "source": g.source} for g in GROUPS],
        "overall": overall, "kept_shift": shift, "per_value": per_value,
    }


def _fmt(entry: dict[str, Any]) -> str:
    if entry.get("per_million") is None:
        return "-"
    lo, hi = entry["ci95"]
    if lo is None:
        return f"{entry['per_million']:,.0f}"
    return f"{entry['per_million']:,.0f} [{lo:,.0f}, {hi:,.0f}]"


def _ratio(r: dict[str, Any]) -> str:
    if r["value"] is None:
        return "-"
    lo, hi = r["ci95"]
    return f"{r['value']:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None else "")


def markdown_summary(result: dict[str, Any], sides: Sequence[str] = ("kept", "rejected", "all")) -> str:
    """The report's tables as Markdown (what ``gristmill bias`` prints and benchmarks quote)."""
    o = result["overall"]
    lines = [f"# Bias report: {result['run']}", "", f"Measures: {result['measures']}", "",
             f"Does not measure: {result['does_not_measure']}", "",
             "## Term rates per million words [95% interval]", "",
             "| axis | group | " + " | ".join(f"{s} ({o[s]['documents']:,} docs)" for s in sides)
             + " | kept - all |", "|---|---|" + "---|" * (len(sides) + 1)]
    for g in result["term_groups"]:
        shift = result["kept_shift"][g["group"]]
        lo, hi = shift["ci95"]
        value = shift["kept_minus_all_per_million"]
        cell = "-" if value is None else f"{value:+,.0f}" + (f" [{lo:+,.0f}, {hi:+,.0f}]" if lo is not None else "")
        lines.append(f"| {g['axis']} | {g['group']} | " + " | ".join(_fmt(o[s]["groups"][g["group"]]) for s in sides)
                     + f" | {cell} |")
    lines += ["", "## Ratios [95% interval]", "", "| ratio | " + " | ".join(sides) + " |", "|---|" + "---|" * len(sides)]
    for name in o["kept"]["ratios"]:
        cells = []
        for s in sides:
            r = o[s]["ratios"][name]
            cells.append(_ratio(r))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if result["per_value"]:
        lines += ["", f"## Per {result['by']} (all documents; female/male ratio and gender-term rate)", "",
                  f"| {result['by']} | docs | female per M | male per M | female/male |", "|---|---|---|---|---|"]
        for value, entry in result["per_value"].items():
            e = entry.get("all")
            if not e:
                continue
            lines.append(f"| {value} | {e['documents']:,} | {_fmt(e['groups']['female'])} | {_fmt(e['groups']['male'])} "
                         f"| {_ratio(e['ratios']['female/male'])} |")
    probe = result.get("model_probe")
    if probe:
        lines += ["", "## Model probe (CrowS-Pairs-style, templated pairs)", "",
                  f"Model: {probe['model']}. {probe['measures']}", "", f"Does not measure: {probe['does_not_measure']}",
                  "", "| axis | pairs | prefers stereotyped [95% interval] |", "|---|---|---|"]
        for axis, r in [*probe["by_axis"].items(), ("all", probe["overall"])]:
            lines.append(f"| {axis} | {r['pairs']} | {100 * r['stereotype_rate']:.1f}% "
                         f"[{100 * r['ci95'][0]:.1f}, {100 * r['ci95'][1]:.1f}] |")
    return "\n".join(lines) + "\n"

"""Render :class:`~gristmill.report.collect.RunData` as Markdown, for terminals and pull requests.

The same sections as the HTML page, as tables; histograms become text bars. Document text goes in
fenced code blocks (with fences longer than any run of backticks inside), so it cannot turn into
Markdown or HTML where the page is rendered.
"""

from __future__ import annotations

import re

from gristmill.report.collect import Histogram, RunData


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _hist(title: str, hists: dict[str, Histogram]) -> list[str]:
    names = list(hists)
    first = hists[names[0]]
    shares = {k: [c / (sum(h.counts) or 1) for c in h.counts] for k, h in hists.items()}
    rows = []
    for i, lo in enumerate(first.bins):
        label = f">= {lo:,}" if i == len(first.bins) - 1 else f"{lo:,}-{first.bins[i + 1] - 1:,}"
        rows.append([label, *(f"{100 * shares[k][i]:5.1f}% {'#' * round(40 * shares[k][i])}" for k in names)])
    note = "; ".join(f"{k}: median {h.median:,.0f}, measured {h.docs:,} of {h.total:,}" for k, h in hists.items())
    return [f"### {title}", "", *_table(["bin", *names], rows), note, ""]


def render_markdown(data: RunData, report_seconds: float | None = None) -> str:
    t = data.stats["totals"]
    lines = [f"# gristmill run report: `{data.out}`", "",
             f"{t['docs_in']:,} documents in, {t['kept']:,} kept, {t['rejected']:,} rejected, {t['seconds']:,.1f} s.", "",
             "## Funnel", ""]
    lines += _table(["step", "docs in", "docs out", "rejected", "MB in", "MB out", "seconds"],
                    [[f.step, f"{f.docs_in:,}", f"{f.docs_out:,}", f"{f.rejected:,}", f"{f.bytes_in / 1e6:,.2f}",
                      f"{f.bytes_out / 1e6:,.2f}", f"{f.seconds:.1f}"] for f in data.funnel])
    lines += ["## Rejections by reason", ""]
    lines += _table(["reason", "documents"], [[r, f"{n:,}"] for r, n in data.reasons]) if data.reasons else \
        ["No document was rejected.", ""]
    lines += ["## Examples", ""]
    for reason, _ in data.reasons:
        lines += [f"### {_cell(reason)}", ""]
        for ex in data.examples.get(reason, []):
            text = f"{ex.before}[[{ex.trigger}]]{ex.after}" if ex.trigger else ex.before + ex.after
            fence = _fence(text)
            lines += [f"- `{_cell(ex.id)}` {_cell(ex.detail)}", "", fence, text, fence, ""]
    lines += ["## Lengths before and after", ""]
    lines += _hist("characters", data.chars) + _hist("words", data.words)
    lines += ["## Language mix", ""]
    kept, rejected = data.languages["kept"], data.languages["rejected"]
    langs = sorted(set(kept) | set(rejected), key=lambda k: -(kept[k] + rejected[k]))
    lines += _table(["language", "kept", "rejected"], [[k, kept[k], rejected[k]] for k in langs[:25]]) if langs else \
        ["No language step.", ""]
    lines += ["## Duplicate clusters", ""]
    lines += _table(["cluster size", "clusters"], [[s, data.clusters[s]] for s in sorted(data.clusters)[:20]]) \
        if data.clusters else ["No duplicates removed.", ""]
    lines += ["## PII replacements", ""]
    lines += _table(["kind", "matches"], [[k, f"{v:,}"] for k, v in data.pii.items()]) if data.pii else ["None.", ""]
    lines += ["## Time per step", ""]
    lines += _table(["step", "seconds"], [[f.step, f"{f.seconds:.1f}"] for f in data.funnel[1:]])
    if report_seconds is not None:
        lines += [f"This report took {report_seconds:.1f} s.", ""]
    return "\n".join(lines)

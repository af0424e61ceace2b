"""Render :class:`~gristmill.report.collect.RunData` as one self-contained HTML page.

Inline CSS, inline SVG charts, no script and nothing fetched: the file opens offline and from a
mail attachment. Documents are untrusted HTML, so every string that comes from the run (texts,
ids, reasons, details, languages, paths) goes through :func:`html.escape`; nothing is marked safe.
"""

from __future__ import annotations

from html import escape

from gristmill.report import svg
from gristmill.report.collect import Histogram, RunData

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1000px;color:#222;
padding:0 16px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f6f6f6}
.ex{border-left:3px solid #bbb;padding:4px 10px;margin:8px 0;background:#fafafa}
.ex pre{white-space:pre-wrap;word-break:break-word;margin:4px 0;font:12px/1.4 ui-monospace,Menlo,Consolas,monospace}
mark{background:#ffd54f}.muted{color:#777;font-size:12px}
svg .t{font:bold 13px sans-serif}svg .l{font:12px sans-serif}svg .v{font:11px sans-serif;fill:#444}
svg .g{stroke:#ddd}
nav{margin:8px 0 0;font-size:13px}a{color:#2a5db0}
"""

TOP_REASONS = 25
SECTIONS = (("funnel", "funnel"), ("reasons", "rejections"), ("examples", "examples"), ("lengths", "lengths"),
            ("languages", "languages"), ("duplicates", "duplicates"), ("pii", "PII"), ("time", "time"),
            ("provenance", "provenance"))


def _num(n: float) -> str:
    return f"{n:,.0f}"


def _mb(n: float) -> str:
    return f"{n / 1e6:,.2f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _funnel(data: RunData) -> str:
    rows = [[f.step, _num(f.docs_in), _num(f.docs_out), _num(f.rejected), _mb(f.bytes_in), _mb(f.bytes_out),
             f"{f.seconds:.1f}"] for f in data.funnel]
    chart_docs = svg.bars([(f.step, f.docs_out) for f in data.funnel], "documents left after each step")
    chart_bytes = svg.bars([(f.step, f.bytes_out / 1e6) for f in data.funnel], "text left after each step",
                           unit=" MB", color=svg.COLORS[2])
    table = _table(["step", "docs in", "docs out", "rejected", "MB in", "MB out", "seconds"], rows)
    return f'<section id="funnel"><h2>Funnel</h2>{chart_docs}{chart_bytes}{table}</section>'


def _reasons(data: RunData) -> str:
    if not data.reasons:
        return '<section id="reasons"><h2>Rejections by reason</h2><p>No document was rejected.</p></section>'
    total = sum(n for _, n in data.reasons) or 1
    shown = data.reasons[:TOP_REASONS]
    title = "rejected documents by reason (step:rule)" + (
        f", the {TOP_REASONS} largest of {len(data.reasons)}" if len(data.reasons) > TOP_REASONS else "")
    chart = svg.bars(shown, title, color=svg.COLORS[1], label_w=300)
    table = _table(["reason", "documents", "share of rejected"],
                   [[r, _num(n), f"{100 * n / total:.1f}%"] for r, n in data.reasons])
    return f'<section id="reasons"><h2>Rejections by reason</h2>{chart}{table}</section>'


def _examples(data: RunData) -> str:
    parts = ['<section id="examples"><h2>Examples of rejected documents</h2>',
             '<p class="muted">The first rejected rows for each reason, with files visited in a fixed '
             'pseudo-random order (the same report every time). The highlighted text is what the rule '
             'matched, where the rule points at a place; otherwise the window is the opening of the document.</p>']
    for reason, _ in data.reasons:
        examples = data.examples.get(reason, [])
        parts.append(f"<h3>{escape(reason)}</h3>")
        if not examples:
            parts.append('<p class="muted">no example found in the rejected files</p>')
        for ex in examples:
            detail = f" — {escape(ex.detail)}" if ex.detail else ""
            mark = f"<mark>{escape(ex.trigger)}</mark>" if ex.trigger else ""
            parts.append(f'<div class="ex"><div class="muted">{escape(ex.id)} · {escape(ex.reason)}{detail}</div>'
                         f"<pre>{escape(ex.before)}{mark}{escape(ex.after)}</pre></div>")
    parts.append("</section>")
    return "".join(parts)


def _hist_note(h: dict[str, Histogram]) -> str:
    return " · ".join(f"{escape(k)}: median {v.median:,.0f}, measured {_num(v.docs)} of {_num(v.total)} documents"
                      for k, v in h.items())


def _histograms(data: RunData) -> str:
    series_c = {"before (all documents)": data.chars["before"].counts, "after (kept)": data.chars["after"].counts}
    series_w = {"before (all documents)": data.words["before"].counts, "after (kept)": data.words["after"].counts}
    return ('<section id="lengths"><h2>Lengths before and after</h2>'
            '<p class="muted">"Before" is every document as it left the run (a rejected one as it was when '
            'rejected), "after" the kept documents.</p>'
            + svg.histogram(data.chars["before"].bins, series_c, "document length", "characters (bin start)")
            + f'<p class="muted">{_hist_note(data.chars)}</p>'
            + svg.histogram(data.words["before"].bins, series_w, "words per document", "words (bin start)")
            + f'<p class="muted">{_hist_note(data.words)}</p></section>')


def _languages(data: RunData) -> str:
    kept, rejected = data.languages["kept"], data.languages["rejected"]
    if not kept and not rejected:
        return ('<section id="languages"><h2>Language mix</h2><p>No language was identified (the recipe has '
                'no <code>language</code> step).</p></section>')
    langs = sorted(set(kept) | set(rejected), key=lambda k: -(kept[k] + rejected[k]))
    rows = [[lang, _num(kept[lang]), _num(rejected[lang])] for lang in langs[:25]]
    chart = svg.bars([(lang, kept[lang] + rejected[lang]) for lang in langs[:15]],
                     "documents by identified language (sample, kept + rejected)", color=svg.COLORS[3])
    return (f'<section id="languages"><h2>Language mix</h2>{chart}'
            f'{_table(["language", "kept", "rejected"], rows)}</section>')


def _duplicates(data: RunData) -> str:
    if not data.clusters:
        return ('<section id="duplicates"><h2>Duplicate clusters</h2><p>No document was removed as a '
                'duplicate.</p></section>')
    sizes = sorted(data.clusters)
    shown = sizes[:12] if len(sizes) <= 13 else sizes[:12]
    rows = [(f"{s} documents", data.clusters[s]) for s in shown]
    rest = sum(data.clusters[s] for s in sizes[len(shown):])
    if rest:
        rows.append((f"more than {shown[-1]}", rest))
    n_clusters = sum(data.clusters.values())
    removed = sum((s - 1) * c for s, c in data.clusters.items())
    chart = svg.bars(rows, "duplicate clusters by size (kept copy included)", color=svg.COLORS[0])
    return (f'<section id="duplicates"><h2>Duplicate clusters</h2>{chart}<p>{_num(n_clusters)} clusters, '
            f'{_num(removed)} copies removed, largest {max(sizes):,} documents.</p></section>')


def _pii(data: RunData) -> str:
    if not data.pii:
        return '<section id="pii"><h2>PII replacements</h2><p>None.</p></section>'
    chart = svg.bars(list(data.pii.items()), "PII matches replaced (or rejected) by kind", color=svg.COLORS[2])
    return f'<section id="pii"><h2>PII replacements</h2>{chart}</section>'


def _time(data: RunData, report_seconds: float | None) -> str:
    steps = [(f.step, f.seconds) for f in data.funnel[1:]]
    total = float(data.stats["totals"].get("seconds", 0.0))
    chart = svg.bars(steps, "seconds per step (summed over workers)", unit=" s", color=svg.COLORS[1])
    extra = f", this report {report_seconds:.1f} s" if report_seconds is not None else ""
    in_steps = sum(seconds for _, seconds in steps)
    return (f'<section id="time"><h2>Time per step</h2>{chart}<p>Run wall time {total:,.1f} s'
            f"{escape(extra)}. The steps' own time is {in_steps:,.1f} s summed over workers; the rest is reading, "
            "writing and the corpus steps' preparation (deduplication and decontamination index the whole corpus "
            "before their per-shard pass, which is what the bars show).</p></section>")


def _provenance(data: RunData) -> str:
    prov = data.stats.get("provenance")
    if not prov:
        return ""
    rows = [[k, " ".join(v) if isinstance(v, list) else str(v)] for k, v in prov.items()]
    return f'<section id="provenance"><h2>What produced this run</h2>{_table(["", ""], rows)}</section>'


def render_html(data: RunData, report_seconds: float | None = None) -> str:
    t = data.stats["totals"]
    kept_share = 100 * t["kept"] / t["docs_in"] if t["docs_in"] else 0.0
    summary = (f"<p><b>{_num(t['docs_in'])}</b> documents in, <b>{_num(t['kept'])}</b> kept "
               f"({kept_share:.1f}%), <b>{_num(t['rejected'])}</b> rejected, in {t['seconds']:,.1f} s.</p>")
    inputs = ", ".join(str(p) for p in data.stats["input"].get("paths", []))
    body = "".join([
        f"<h1>gristmill run report</h1><p class=\"muted\">{escape(data.out)} · input {escape(inputs)}</p>", summary,
        "<nav>" + " · ".join(f'<a href="#{anchor}">{name}</a>' for anchor, name in SECTIONS) + "</nav>",
        _funnel(data), _reasons(data), _examples(data), _histograms(data), _languages(data), _duplicates(data),
        _pii(data), _time(data, report_seconds), _provenance(data),
    ])
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "img-src data:\">"
            f"<title>gristmill report: {escape(data.out)}</title><style>{CSS}</style></head><body>{body}</body></html>\n")

"""Small inline SVG charts for the run report: horizontal bars and paired histograms.

Hand-written SVG keeps the report one self-contained file that needs no script, no CDN and no
plotting library at report time. Every label passes through :func:`html.escape`, because labels
can come from documents (reasons, languages). This module draws; it does not read runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

BAR_H = 18
GAP = 6
COLORS = ("#4c78a8", "#f58518", "#54a24b", "#e45756")


def _fmt(value: float) -> str:
    if value >= 1e9:
        return f"{value / 1e9:.2f} G"
    if value >= 1e6:
        return f"{value / 1e6:.2f} M"
    if value >= 1e4:
        return f"{value / 1e3:.1f} k"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def bars(rows: Sequence[tuple[str, float]], title: str, unit: str = "", width: int = 720, label_w: int = 240,
         color: str = COLORS[0]) -> str:
    """One horizontal bar per (label, value), the value written at the end of its bar."""
    top = 26
    height = top + len(rows) * (BAR_H + GAP) + 8
    vmax = max((v for _, v in rows), default=0) or 1
    plot_w = width - label_w - 110
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>',
             f'<text x="0" y="16" class="t">{escape(title)}</text>']
    for i, (label, value) in enumerate(rows):
        y = top + i * (BAR_H + GAP)
        w = max(1.0, plot_w * value / vmax) if value else 0
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end" class="l">{escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{BAR_H}" fill="{color}"/>')
        parts.append(f'<text x="{label_w + w + 5:.1f}" y="{y + 13}" class="v">{escape(_fmt(value))}{escape(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(bins: Sequence[int], series: dict[str, Sequence[float]], title: str, xlabel: str,
              width: int = 720, height: int = 260) -> str:
    """Side-by-side columns per bin for each named series (shares of documents, so sizes compare)."""
    left, right, top, bottom = 48, 12, 40, 52
    plot_w, plot_h = width - left - right, height - top - bottom
    shares = {name: [c / (sum(counts) or 1) for c in counts] for name, counts in series.items()}
    vmax = max((v for s in shares.values() for v in s), default=0) or 1
    n = len(bins)
    group_w = plot_w / n
    col_w = (group_w - 6) / max(1, len(series))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>',
             f'<text x="0" y="16" class="t">{escape(title)}</text>']
    for k, name in enumerate(series):
        parts.append(f'<rect x="{left + 150 * k}" y="24" width="10" height="10" fill="{COLORS[k % len(COLORS)]}"/>'
                     f'<text x="{left + 150 * k + 14}" y="33" class="l">{escape(name)}</text>')
    for frac in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="g"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" class="v">{100 * vmax * frac:.0f}%</text>')
    for i, lo in enumerate(bins):
        x0 = left + i * group_w + 3
        for k, values in enumerate(shares.values()):
            h = plot_h * values[i] / vmax
            parts.append(f'<rect x="{x0 + k * col_w:.1f}" y="{top + plot_h - h:.1f}" width="{col_w:.1f}" '
                         f'height="{h:.1f}" fill="{COLORS[k % len(COLORS)]}"/>')
        label = f"≥{_fmt(lo).replace(' ', '')}" if i == n - 1 else _fmt(lo).replace(" ", "")
        parts.append(f'<text x="{x0 + group_w / 2 - 3:.1f}" y="{top + plot_h + 14}" text-anchor="middle" '
                     f'class="v">{escape(label)}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle" class="l">'
                 f'{escape(xlabel)}</text>')
    parts.append(f'<text x="12" y="{top + plot_h / 2}" transform="rotate(-90 12 {top + plot_h / 2})" '
                 f'text-anchor="middle" class="l">share of documents</text></svg>')
    return "".join(parts)

"""``OUT/report.html`` (and ``OUT/report.md``) and ``OUT/README.md``: what ``gristmill run`` writes last."""

from __future__ import annotations

import time

from gristmill.data import storage
from gristmill.data.storage import atomic_write_text
from gristmill.report.cards import write_dataset_card
from gristmill.report.collect import collect
from gristmill.report.html_page import render_html
from gristmill.report.markdown import render_markdown

FORMATS = ("html", "md")


def write_report(out: str, fmt: str = "html", path: str | None = None) -> tuple[str, float]:
    """Write the report of the finished run ``out``; returns (where, seconds it took)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}: use html or md")
    t0 = time.perf_counter()
    data = collect(out)
    seconds = time.perf_counter() - t0
    text = render_html(data, seconds) if fmt == "html" else render_markdown(data, seconds)
    target = path or storage.join(str(out), f"report.{fmt}")
    atomic_write_text(target, text)
    return target, time.perf_counter() - t0


def finish_run(out: str) -> tuple[str, str, float]:
    """The run's report.html and dataset card; returns (report, card, report seconds)."""
    report, seconds = write_report(out, "html")
    return report, write_dataset_card(out), seconds

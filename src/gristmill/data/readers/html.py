"""HTML to text: the extractors (resiliparse, trafilatura) that turn a page into its main text, and the check
that keeps pages too costly to extract away from them.

The WARC reader and JSONL/Parquet records with an ``html_field`` use both; this module reads no file.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from gristmill.data.inputs import InputFormatError

HtmlExtractor = Callable[[str], str]
"""A function from a page's HTML to its main text."""

MAX_HTML_DEPTH = 512
"""Deepest element nesting a page may have; browsers stop nesting near here too."""
MAX_HTML_WORK = 5_000_000
"""Sum over all elements of their depth: extraction time grows with it (1.2 MB of 50k nested tags took 81 s),
this bound keeps one page under about half a second."""
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9:-]*)[^<>]*?(/?)>")
_SCRIPT = re.compile(r"(?is)<(script|style)\b.*?</\1\s*>")
_VOID = frozenset(["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"])
_CLOSES_SIBLING = frozenset(["p", "li", "dt", "dd", "tr", "td", "th", "option", "thead", "tbody", "tfoot"])
_NOT_NESTING = np.array(sorted(int.from_bytes(n.encode().ljust(8, b"\0"), "little") for n in _VOID | _CLOSES_SIBLING),
                        dtype=np.uint64)
"""Tag names as 8-byte little-endian codes (lowercase, zero-padded), for a vectorised lookup."""


def _nesting_estimate(html: str) -> tuple[int, int]:
    """(depth, work) from counting tags with numpy: elements that never nest (void ones, and the <p>, <li>,
    <td>... that close their open sibling) are skipped, everything else counts as nesting, and stray closing
    tags cannot push the depth below zero. Close to the truth for ordinary pages, an overestimate for sloppy
    ones: only pages above the limits get the exact scan."""
    data = np.frombuffer(html.encode("utf-8", "surrogatepass") + b"\0" * 10, dtype=np.uint8)
    lt = np.flatnonzero(data[:-10] == 60)
    closing = data[lt + 1] == 47
    start = lt + 1 + closing
    first = data[start] | 0x20
    is_tag = (first >= 97) & (first <= 122)
    window = data[start[:, None] + np.arange(8)] | 0x20
    alnum = ((window >= 97) & (window <= 122)) | ((window >= 48) & (window <= 57))
    names = np.ascontiguousarray(window * np.cumprod(alnum, axis=1, dtype=np.uint8)).view("<u8").ravel()
    nests = is_tag & ~np.isin(names, _NOT_NESTING)
    steps = np.where(nests, np.where(closing, -1, 1), 0).astype(np.int64)
    if not len(steps):
        return 0, 0
    level = np.cumsum(steps)
    depth = level - np.minimum(np.minimum.accumulate(level), 0)
    opened = nests & ~closing
    return int(depth.max()), int(depth[opened].sum())


def _nesting_exact(html: str) -> str | None:
    """The limits checked on an open-element stack (scripts and styles removed first)."""
    stack: list[str] = []
    open_count: dict[str, int] = {}
    work = 0
    for closing, tag, self_closing in _TAG.findall(_SCRIPT.sub("", html)):
        tag = tag.lower()
        if closing:
            if open_count.get(tag):
                while True:  # close it and everything opened inside it (each element pops once: linear)
                    top = stack.pop()
                    open_count[top] -= 1
                    if top == tag:
                        break
            continue
        if self_closing or tag in _VOID:
            continue
        if tag in _CLOSES_SIBLING and open_count.get(tag):
            while True:  # an open <p>, <li>, <td>... ends where the next one starts (cells: where the row ends)
                top = stack.pop()
                open_count[top] -= 1
                if top == tag:
                    break
        stack.append(tag)
        open_count[tag] = open_count.get(tag, 0) + 1
        work += len(stack)
        if len(stack) > MAX_HTML_DEPTH:
            return f"HTML elements nested more than {MAX_HTML_DEPTH} deep"
        if work > MAX_HTML_WORK:
            return f"HTML too deeply nested for its size (nesting work above {MAX_HTML_WORK:,})"
    return None


def html_problem(html: str) -> str | None:
    """Why ``html`` is too costly to extract (nesting too deep, or too much nested work), else None.

    Extraction time grows with the nesting (1.2 MB of 50k nested tags took 81 s), so such pages are
    rejected before extraction. A numpy estimate screens every page; the exact stack scan runs only on
    the few it flags. Pages with few tags skip both.
    """
    if html.count("<") <= MAX_HTML_DEPTH:
        return None
    depth, work = _nesting_estimate(html)
    if depth <= MAX_HTML_DEPTH and work <= MAX_HTML_WORK:
        return None
    return _nesting_exact(html)


def html_extractor(name: str) -> HtmlExtractor:
    """Return a function html -> main text, by extractor name (``resiliparse`` or ``trafilatura``)."""
    if name == "resiliparse":
        from resiliparse.extract.html2text import extract_plain_text

        def extract(html: str) -> str:
            return extract_plain_text(html, main_content=True, alt_texts=False, links=False, list_bullets=True)

        return extract
    if name == "trafilatura":
        import trafilatura

        def extract(html: str) -> str:
            return trafilatura.extract(html, include_comments=False, include_tables=True) or ""

        return extract
    raise InputFormatError(f"unknown HTML extractor {name!r}: use resiliparse or trafilatura")

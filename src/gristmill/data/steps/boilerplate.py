"""Line-level boilerplate removal in the style of C4: navigation, cookie notices, sharing widgets, footers.

The ``boilerplate_lines`` step removes lines, not documents (it rejects only a document that has
nothing left). A line goes when

* it contains a boilerplate phrase (``resources/boilerplate_en.txt``: cookie and policy notices,
  "all rights reserved", "skip to content", "enable javascript", sharing and comment widgets, ...)
  and is not a long prose line; phrases that also occur in prose ("read more") only remove short
  lines;
* it belongs to a run of very short lines without terminal punctuation (a navigation menu:
  "News", "Podcasts", "About", ...);
* it is a row of short items separated by ``|``, ``·``, ``•``, ``/`` or ``»`` (a menu bar);
* it is a short unpunctuated line in the block under a "Related Posts"-style heading.

What C4 also does and this step does not: it drops every line without terminal punctuation. On
wrapped text (package descriptions, man pages) that removes most of the prose, so this step keeps
such lines unless they look like navigation; ``c4_quality`` applies the strict rule for those who
want it. Cross-document repeated lines (a site's template) are the job of ``line_dedup``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from gristmill.data.document import Document
from gristmill.data.pipeline import Step, StepStats, register
from gristmill.data.steps import text as tx

LINK_BLOCK_HEADINGS = frozenset({
    "related posts", "related articles", "recent posts", "recent articles", "popular posts", "popular articles",
    "trending now", "trending", "you may also like", "you might also like", "more stories", "read next",
    "latest posts", "top posts", "recent comments", "more from this site", "see also on this site",
})
_SEPARATED_RE = re.compile(r"\s+[|·•/»›]\s+|\s+\|\s*|\s*\|\s+")
_SPACED_RE = re.compile(r"\s{2,}")
_BLANK_RUN_RE = re.compile(r"\n{3,}")
_MENU_ITEM_RE = re.compile(r"[^\W\d_]+(?:[ &'’-]+[^\W\d_]+)*")


def read_phrase_file(path: str | Path) -> list[str]:
    """Phrases of a boilerplate phrase file: one per line, ``#`` comments, a leading ``!`` marks a
    phrase that removes short lines only, a leading ``=`` a whole line."""
    text = Path(path).read_text(encoding="utf-8")
    return [line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#")]


@lru_cache(maxsize=1)
def default_phrases() -> tuple[str, ...]:
    ref = resources.files("gristmill.data.steps") / "resources" / "boilerplate_en.txt"
    with resources.as_file(ref) as path:
        return tuple(read_phrase_file(path))


@register("boilerplate_lines")
@dataclass
class BoilerplateLines(Step):
    """Removes boilerplate lines (phrases, navigation runs, menu bars, related-post blocks) and
    counts them; rejects a document only when no line is left."""

    use_default_phrases: bool = True
    phrases: list[str] = field(default_factory=list)
    phrase_files: list[str] = field(default_factory=list)
    max_line_words: int = 60
    max_short_words: int = 10
    nav_max_words: int = 3
    nav_min_run: int = 3
    menu_bars: bool = True
    link_blocks: bool = True

    def __post_init__(self) -> None:
        entries = list(default_phrases()) if self.use_default_phrases else []
        entries += [p.strip().lower() for p in self.phrases if p.strip()]
        for path in self.phrase_files:
            try:
                entries += read_phrase_file(path)
            except OSError as exc:
                raise ValueError(f"cannot read phrase file {path}: {exc.strerror}") from None
        long_ok = sorted({p for p in entries if not p.startswith(("!", "="))})
        short_only = sorted({p[1:].strip() for p in entries if p.startswith("!")})
        self._whole = frozenset(p[1:].strip() for p in entries if p.startswith("="))
        self._any_re = re.compile("|".join(map(re.escape, long_ok))) if long_ok else None
        self._short_re = re.compile("|".join(map(re.escape, short_only))) if short_only else None

    def _phrase(self, lower: str, n_words: int) -> bool:
        if lower in self._whole:
            return True
        if n_words <= self.max_line_words and self._any_re is not None and self._any_re.search(lower):
            return True
        return n_words <= self.max_short_words and self._short_re is not None and self._short_re.search(lower) is not None

    def _nav_candidate(self, line: str, stripped: str, n_words: int) -> bool:
        """A menu item: a very short, unindented line of letters only (no digits, code punctuation
        or terminal punctuation)."""
        return (0 < n_words <= self.nav_max_words and line[:1] not in (" ", "\t")
                and _MENU_ITEM_RE.fullmatch(stripped) is not None)

    def _menu_bar(self, line: str, stripped: str) -> bool:
        """A row of at least three capitalised items of one to three words, separated by ``|``,
        ``·``, ``•``, ``/``, ``»`` or (four or more items) by runs of spaces; not a table row."""
        if stripped.endswith(tx.TERMINAL_PUNCTUATION) or stripped.startswith("|") or line[:1] in (" ", "\t"):
            return False
        items = [i for i in _SEPARATED_RE.split(stripped) if i]
        if len(items) < 3:
            items = [i for i in _SPACED_RE.split(stripped) if i]
            if len(items) < 4:
                return False
        # Chinese and Japanese menu items have no capitals: short runs of CJK characters count instead.
        return all(len(i.split()) <= 3 and (i[:1].isupper() or (len(i) <= 6 and tx.has_cjk(i))) for i in items)

    @staticmethod
    def _prose(stripped: str, n_words: int) -> bool:
        return n_words >= 6 or (stripped.endswith(tx.TERMINAL_PUNCTUATION) and not stripped.endswith(("...", "…")))

    def clean(self, text: str, counts: dict[str, int]) -> str:
        lines = text.split("\n")
        info = [(line.strip(), len(line.split())) for line in lines]
        drop: list[str | None] = [None] * len(lines)
        in_link_block = False
        for i, (stripped, n_words) in enumerate(info):
            if not stripped:
                in_link_block = False
                continue
            lower = stripped.lower()
            if self.link_blocks and lower.rstrip(":") in LINK_BLOCK_HEADINGS:
                drop[i], in_link_block = "lines_removed_link_block", True
                continue
            if in_link_block and n_words <= 15 and not stripped.endswith(tx.TERMINAL_PUNCTUATION):
                drop[i] = "lines_removed_link_block"
                continue
            in_link_block = False
            if self._phrase(lower, n_words):
                drop[i] = "lines_removed_phrase"
            elif self.menu_bars and n_words >= 3 and self._menu_bar(lines[i], stripped):
                drop[i] = "lines_removed_menu"
        # Navigation menus sit above the first and below the last line of prose; inside the text,
        # runs of short lines are lists, tables and code, so they stay.
        prose = [i for i, (stripped, n) in enumerate(info) if drop[i] is None and stripped and self._prose(stripped, n)]
        first, last = (prose[0], prose[-1]) if prose else (len(lines), -1)
        run: list[int] = []
        for i in [*range(0, first), -1, *range(last + 1, len(lines)), -1]:
            if i >= 0 and info[i][0] and (drop[i] is not None or self._nav_candidate(lines[i], *info[i])):
                run.append(i)
                continue
            if len(run) >= self.nav_min_run:
                for j in run:
                    drop[j] = drop[j] or "lines_removed_nav"
            run.clear()
        if not any(drop):
            return text
        for reason in drop:
            if reason:
                counts[reason] = counts.get(reason, 0) + 1
        kept = "\n".join(line for line, d in zip(lines, drop) if d is None)
        return _BLANK_RUN_RE.sub("\n\n", kept).strip("\n")

    def process(self, docs: list[Document], stats: StepStats) -> list[Document]:
        for doc in docs:
            counts: dict[str, int] = {}
            new = self.clean(doc.text, counts)
            if new is doc.text:
                continue
            removed = sum(counts.values())
            stats.count("lines_removed", removed)
            for key, value in counts.items():
                stats.count(key, value)
            doc.text = new
            if not new.strip():
                doc.reject(self.name, "empty", f"all {removed} lines were boilerplate")
        return docs

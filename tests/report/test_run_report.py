"""The run report: written by every `gristmill run`, rebuilt by `gristmill report`, safe with hostile text."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from gristmill.cli import app
from gristmill.report.collect import collect
from tests.report.conftest import HOSTILE, run, write_corpus, write_recipe

TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "b", "code", "section", "svg",
        "text", "rect", "line", "table", "tr", "th", "td", "div", "pre", "mark", "nav", "a"}


def test_every_run_writes_a_report_with_funnel_reasons_examples(small_run: Path) -> None:
    html = (small_run / "report.html").read_text(encoding="utf-8")
    stats = json.loads((small_run / "stats.json").read_text())
    assert 'id="funnel"' in html and "length:min_chars" in html and "exact_dedup:dup_of" in html
    # Counts come from stats.json: the funnel shows every step with its documents in and out.
    for step in stats["steps"]:
        assert f"<td>{step['name']}</td><td>{step['docs_in']:,}</td><td>{step['docs_out']:,}</td>" in html
    data = collect(str(small_run))
    assert data.clusters == {3: 1}  # GOOD[0] three times: one cluster of three
    assert data.pii == {"email": 4}
    assert [e.id for e in data.examples["length:min_chars"]] == ["d006", "d007", "d008"]
    assert data.chars["after"].docs == stats["totals"]["kept"]
    assert data.chars["before"].docs == stats["totals"]["docs_in"]
    # Self-contained: only these elements, so nothing is fetched and nothing runs; links stay in the page.
    assert set(re.findall(r"<([a-zA-Z][\w-]*)", html)) <= TAGS
    assert all(href.startswith("#") for href in re.findall(r'href="([^"]*)"', html))


def test_hostile_text_stays_text(small_run: Path) -> None:
    html = (small_run / "report.html").read_text(encoding="utf-8")
    lowered = html.lower()
    assert "<script" not in lowered and "<img" not in lowered
    assert set(re.findall(r"<([a-zA-Z][\w-]*)", html)) <= TAGS
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;/pre&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    md = CliRunner().invoke(app, ["report", str(small_run), "--format", "md", "-o", "-"])
    assert md.exit_code == 0, md.output
    assert "## Funnel" in md.output and "<script>alert(1)</script>" in md.output
    # In Markdown, document text appears only inside fenced code blocks, where it renders as text.
    fence = None
    for line in md.output.splitlines():
        if line.startswith("```"):
            fence = None if fence == line else fence or line
        elif "<script" in line or "<img" in line:
            assert fence is not None, line


def test_report_verb_rebuilds_both_formats(small_run: Path, tmp_path: Path) -> None:
    target = tmp_path / "r.md"
    result = CliRunner().invoke(app, ["report", str(small_run), "--format", "md", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert "| exact_dedup:dup_of | 2 |" in target.read_text()
    bad = CliRunner().invoke(app, ["report", str(tmp_path / "nothing")])
    assert bad.exit_code == 2 and "no stats.json" in bad.output and "Traceback" not in bad.output


def test_empty_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(write_recipe(tmp_path / "r.yaml", write_corpus(tmp_path / "c.jsonl", []), out))
    html = (out / "report.html").read_text()
    assert 'id="funnel"' in html and "No document was rejected." in html
    data = collect(str(out))
    assert data.chars["before"].docs == 0 and not data.examples and not data.clusters
    card = (out / "README.md").read_text()
    assert "configs:" not in card and "0 input documents" in card


def test_everything_rejected(tmp_path: Path) -> None:
    out = tmp_path / "out"
    texts = [HOSTILE, "short", "also short"]
    run(write_recipe(tmp_path / "r.yaml", write_corpus(tmp_path / "c.jsonl", texts), out, min_chars=10_000))
    data = collect(str(out))
    assert data.reasons == [("length:min_chars", 3)]
    assert len(data.examples["length:min_chars"]) == 3 and data.chars["after"].docs == 0
    html = (out / "report.html").read_text()
    assert "&lt;script&gt;" in html and "<script" not in html.lower()


def test_provenance_is_recorded(small_run: Path) -> None:
    prov = json.loads((small_run / "stats.json").read_text())["provenance"]
    assert prov["gristmill"] and prov["threads"] >= 1 and prov["device"] == "cpu"
    assert {"torch", "transformers", "git_commit", "command", "python"} <= set(prov)

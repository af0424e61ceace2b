"""Command-line verbs of gristmill.report: ``report`` (rebuild a run's report) and ``bias``.

Each verb parses its options and calls one function; errors a user can cause are one message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer
from rich.console import Console

from gristmill.data import storage
from gristmill.options import COUNT, SEED, SEED_HELP, ranged

console = Console(stderr=True, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add this package's verbs to the main app. Import heavy modules inside each command."""

    @app.command()
    def report(
        corpus: str = typer.Argument(..., help="A finished corpus run folder (OUT of `gristmill run`), local or a URL."),
        format: Literal["html", "md"] = typer.Option("html", "--format", help="html (CORPUS/report.html) or md (CORPUS/report.md)."),
        out: str | None = typer.Option(None, "--out", "-o", help="Write here instead ('-' prints it)."),
        output: str | None = typer.Option(None, "--output", hidden=True, help="Old spelling of --out."),
    ) -> None:
        """Rebuild a run's report: funnel, rejections with examples, lengths, languages, duplicates, PII, time."""
        import sys

        from gristmill.report.collect import collect
        from gristmill.report.html_page import render_html
        from gristmill.report.markdown import render_markdown
        from gristmill.report.run_report import write_report

        output = out or output
        if output == "-":
            data = collect(corpus)
            sys.stdout.write(render_html(data) if format == "html" else render_markdown(data))
            return
        path, seconds = write_report(corpus, format, output)
        console.print(f"wrote {path} in {seconds:.1f}s", markup=False)

    @app.command()
    def bias(
        corpus: str = typer.Argument(..., help="A finished corpus run folder (OUT of `gristmill run`)."),
        model: Path | None = typer.Option(None, "--model", help="Also probe this pretrained RUN folder (fill-mask)."),
        by: str = typer.Option("source", "--by", help="Metadata column to break the counts down by."),
        max_docs: int = typer.Option(50_000, "--max-docs", callback=ranged(COUNT), help="Documents read per side (kept, rejected)."),
        resamples: int = typer.Option(1000, "--resamples", callback=ranged(COUNT), help="Bootstrap resamples for the intervals."),
        seed: int = typer.Option(0, "--seed", callback=ranged(SEED), help=SEED_HELP + " Seeds the bootstrap."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Write the JSON here (default CORPUS/bias.json)."),
        output: Path | None = typer.Option(None, "--output", hidden=True, help="Old spelling of --out."),
    ) -> None:
        """Measure (not filter) demographic term rates in a corpus, kept vs rejected, and a model's stereotype preference."""
        import json
        import sys

        from gristmill.report.bias import corpus_bias, markdown_summary
        from gristmill.report.probe import probe_model

        output = out or output
        result = corpus_bias(corpus, by=by, max_docs=max_docs, resamples=resamples, seed=seed)
        if model is not None:
            result["model_probe"] = probe_model(model, resamples=resamples, seed=seed)
        target = str(output) if output else storage.join(corpus, "bias.json")
        storage.atomic_write(target, lambda f: f.write(json.dumps(result, indent=2).encode("utf-8")))
        # Plain text, not through rich: a console would wrap the Markdown tables.
        sys.stdout.write(markdown_summary(result))
        console.print(f"wrote {target}", markup=False)

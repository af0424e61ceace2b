"""Command-line verb of gristmill.experiments: ``ablate`` (registered on the main app by gristmill.cli)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from gristmill.options import COUNT, PROGRESS_HELP, THREADS_HELP, ranged

console = Console(stderr=True, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add this package's verbs to the main app. Heavy modules are imported inside the command."""

    @app.command()
    def ablate(
        spec: Path = typer.Argument(..., help="Ablation spec YAML: corpus, variants, pretrain budgets, task (docs/ablate.md)."),
        out: Path = typer.Option(..., "--out", "-o", help="ABL folder: every intermediate run, results.jsonl, summary.md, ablation.png."),
        resume: bool = typer.Option(False, "--resume", help="Continue a killed ablation; finished cells are not redone."),
        threads: int | None = typer.Option(None, "--threads", callback=ranged(COUNT), help=THREADS_HELP),
        progress: bool = typer.Option(True, "--progress/--no-progress", help=PROGRESS_HELP),
    ) -> None:
        """Pretrain and fine-tune once per data variant at equal token budgets; compare them paired by seed."""
        from gristmill.experiments.ablate import ablate as run_ablate
        from gristmill.experiments.spec import load_spec

        parsed = load_spec(spec)
        run_ablate(parsed, out, resume=resume, progress=progress, console=console, threads=threads)
        console.print(f"results: {out / 'results.jsonl'}\nsummary: {out / 'summary.md'}\nplot:    {out / 'ablation.png'}", markup=False)

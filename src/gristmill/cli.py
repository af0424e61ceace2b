"""The ``gristmill`` command line: one thin command per verb, each calling one function of a package.

Data verbs live here; the other packages add theirs through a ``register(app)`` function in their
``commands`` module, so heavy imports (torch, onnxruntime) happen only when their verbs run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="gristmill: corpus refinery, tokenizer, MLM pretraining, few-label fine-tuning, fast inference.")
console = Console(stderr=True, soft_wrap=True)


class UserError(Exception):
    """An error the user can fix; printed as a message, never as a traceback."""


def fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


@app.command()
def run(
    recipe: Path = typer.Argument(..., help="Recipe YAML: input, steps, output."),
    workers: int = typer.Option(1, "--workers", "-w", help="Worker processes (or Ray tasks in flight)."),
    resume: bool = typer.Option(False, "--resume", help="Continue a killed run in the same output folder."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete an existing output folder first."),
    output: str | None = typer.Option(None, "--output", "-o", help="Override the recipe's output path (a folder or a URL "
                                      "such as s3://bucket/clean)."),
    input: list[str] | None = typer.Option(None, "--input", "-i", help="Override the recipe's input paths (paths, globs, URLs)."),
    work_dir: str | None = typer.Option(None, "--work-dir", help="Local folder for the resume state (default OUT/_work, or "
                                        "~/.cache/gristmill/work/... when OUT is a URL)."),
    executor: str = typer.Option("local", "--executor", help="local or ray."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address (with --executor ray)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Run a corpus recipe: every input document ends in OUT/kept or OUT/rejected (with step:reason)."""
    from gristmill.data import storage
    from gristmill.data.recipe import RecipeError, load_recipe
    from gristmill.data.run import RunError, run_pipeline, summary_table

    try:
        pipeline = load_recipe(recipe, output_override=output, input_override=input)
        if work_dir:
            pipeline.output.work_dir = work_dir
        result = run_pipeline(pipeline, workers=workers, resume=resume, overwrite=overwrite,
                              executor_name=executor, address=address, progress=progress)
    except (RecipeError, RunError, UserError, ValueError, RuntimeError) as exc:
        raise fail(str(exc)) from None
    Console().print(summary_table(result))
    console.print(f"kept:     {storage.join(result.out, 'kept')}  ({result.kept:,} documents)")
    console.print(f"rejected: {storage.join(result.out, 'rejected')}  ({result.rejected:,} documents)")
    console.print(f"stats:    {storage.join(result.out, 'stats.json')}")
    if result.quarantined:
        console.print(f"[yellow]{result.quarantined:,} input records or files were malformed and quarantined "
                      f"(reasons input:*; see {storage.join(result.out, 'rejected')}); exit status {result.exit_code}[/]")
    raise typer.Exit(result.exit_code)


@app.command()
def steps() -> None:
    """List the steps a recipe can name, with their parameters and defaults."""
    import dataclasses

    from rich.table import Table

    from gristmill.data.pipeline import load_builtin_steps

    table = Table(title="recipe steps")
    table.add_column("step")
    table.add_column("parameters (defaults)")
    table.add_column("what it does")
    for name, cls in sorted(load_builtin_steps().items()):
        params = ", ".join(f"{f.name}={f.default!r}" if f.default is not dataclasses.MISSING else f.name
                           for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")) if dataclasses.is_dataclass(cls) else ""
        table.add_row(name, params, (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "")
    Console().print(table)


def _register_package_commands() -> None:
    from gristmill.serve import commands as serve_commands
    from gristmill.tokenizer import commands as tokenizer_commands
    from gristmill.train import commands as train_commands
    from gristmill.train import finetune_commands

    for module in (tokenizer_commands, train_commands, finetune_commands, serve_commands):
        module.register(app)


_register_package_commands()


def main() -> None:
    try:
        app()
    except UserError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        sys.exit(2)
    except OSError as exc:
        # Where the machine, not gristmill, said no (disk full, permissions, a file where a folder should
        # be): one line naming the path. Other OS errors keep their traceback.
        from gristmill.errors import describe_os_error

        message = describe_os_error(exc)
        if message is None:
            raise
        console.print(f"[bold red]error:[/] {message}")
        sys.exit(2)

"""The ``gristmill`` command line: one thin command per verb, each calling one function of a package.

Data verbs live here; the other packages add theirs through a ``register(app)`` function in their
``commands`` module, so heavy imports (torch, onnxruntime, pyarrow) happen only when their verbs run.

Import rule: gristmill modules import each other at the top of the file; an import sits inside a
function only when it would load a heavy package (torch, transformers, onnx/onnxruntime, ray, sklearn,
matplotlib, fastapi/uvicorn, pyarrow, tokenizers) on a path that does not need it, such as
``import gristmill.cli`` (``gristmill --help`` imports every verb's module) or the corpus steps, or when it
loads plugins (``data.recipe.load_builtin_steps``); tests/test_layers.py checks the layering and that
``import gristmill.cli`` stays light.

Error rule: a verb neither catches nor prints the errors of the code it calls. A user error is a
``GristmillError`` raised where it is detected (a third-party error that means "your input is wrong" is
converted there); the app's group, :class:`UserErrorsAsOneLine`, prints it as one line. A flag the verb
itself checks fails with :func:`gristmill.console.fail`. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from gristmill import __version__, quickstart
from gristmill.console import console, fail
from gristmill.data import storage
from gristmill.data.classify import commands as classify_commands
from gristmill.errors import GristmillError, describe_os_error, exit_code
from gristmill.experiments import commands as experiments_commands
from gristmill.options import COUNT, JSON_HELP, PROGRESS_HELP, ranged
from gristmill.report import commands as report_commands
from gristmill.serve import commands as serve_commands
from gristmill.serve import decoder_commands
from gristmill.tokenizer import commands as tokenizer_commands
from gristmill.train import adapt_commands, finetune_commands
from gristmill.train import commands as train_commands
from gristmill.verbosity import print_json, set_level


def user_error_exit(exc: BaseException) -> typer.Exit | None:
    """Print a user error as one line (``error: ...``, escaped) and return its exit; None for a bug.

    A :class:`GristmillError` exits with :func:`gristmill.errors.exit_code` (2, or 3 for damaged input); an OS
    error where the machine said no (disk full, no permission) exits 2. Anything else is a bug: the caller
    re-raises it and it keeps its traceback (exit 1).
    """
    if isinstance(exc, GristmillError):
        return fail(str(exc), exit_code(exc))
    if isinstance(exc, OSError) and (message := describe_os_error(exc)) is not None:
        return fail(message)
    return None


class UserErrorsAsOneLine(TyperGroup):
    """The app's group: the one place a verb's user error is caught, so commands need no try/except of
    their own, and it holds under typer's CliRunner as well as through :func:`main`."""

    def invoke(self, ctx: typer.Context) -> object:
        try:
            return super().invoke(ctx)
        except (GristmillError, OSError) as exc:
            if (exit := user_error_exit(exc)) is None:
                raise
            raise exit from None


app = typer.Typer(cls=UserErrorsAsOneLine, add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="gristmill: corpus refinery, tokenizer, MLM pretraining, few-label fine-tuning, fast inference.")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"gristmill {__version__}")
        raise typer.Exit()


@app.callback()
def _main_options(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print gristmill's version and exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Errors only: no progress bars, no info lines."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Say more: tracebacks of errors, debug logging."),
) -> None:
    """gristmill: corpus refinery, tokenizer, MLM pretraining, few-label fine-tuning, fast inference."""
    set_level(quiet=quiet, verbose=verbose)


@app.command()
def run(
    recipe: Path = typer.Argument(..., help="Recipe YAML: input, steps, output."),
    workers: int = typer.Option(1, "--workers", "-w", callback=ranged(COUNT),
                                help="Worker processes (or Ray tasks in flight)."),
    resume: bool = typer.Option(False, "--resume", help="Continue a killed run in the same output folder."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete an existing output folder first."),
    out: str | None = typer.Option(None, "--out", "-o", help="Override the recipe's output path (a folder or a URL "
                                   "such as s3://bucket/clean)."),
    output: str | None = typer.Option(None, "--output", hidden=True, help="Old spelling of --out."),
    input: list[str] | None = typer.Option(None, "--input", "-i", help="Override the recipe's input paths (paths, globs, URLs)."),
    work_dir: str | None = typer.Option(None, "--work-dir", help="Local folder for the resume state (default OUT/_work, or "
                                        "~/.cache/gristmill/work/... when OUT is a URL)."),
    executor: Literal["local", "ray"] = typer.Option("local", "--executor", help="Run shards in local processes or on Ray."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address (with --executor ray)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help=PROGRESS_HELP),
    allow_incomplete: bool = typer.Option(False, "--allow-incomplete", help="Read inputs from an unfinished gristmill "
                                          "output (a killed run) as they are."),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Run a corpus recipe: every input document ends in OUT/kept or OUT/rejected (with step:reason)."""
    from gristmill.data.recipe import load_recipe
    from gristmill.data.run import RunError, run_pipeline, summary_table
    from gristmill.report.run_report import finish_run
    from gristmill.serve.scorers import register_builtin_scorers

    register_builtin_scorers()  # the classifier step's encoder back-ends, also where package metadata is stale
    try:
        pipeline = load_recipe(recipe, output_override=out or output, input_override=input)
        if work_dir:
            pipeline.output.work_dir = work_dir
        result = run_pipeline(pipeline, workers=workers, resume=resume, overwrite=overwrite,
                              executor_name=executor, address=address, progress=progress,
                              allow_incomplete=allow_incomplete)
    except OSError as exc:  # a write of the run's output failed: the advice names --resume
        if (message := describe_os_error(exc, resumable=True)) is None:
            raise
        raise RunError(message) from None
    if not json_out:
        Console().print(summary_table(result))
    report, card, report_seconds = finish_run(result.out)
    if json_out:
        print_json({"out": str(result.out), "docs_in": result.docs_in, "kept": result.kept,
                    "rejected": result.rejected, "quarantined": result.quarantined, "exit_code": result.exit_code,
                    "kept_path": storage.join(result.out, "kept"), "rejected_path": storage.join(result.out, "rejected"),
                    "stats_path": storage.join(result.out, "stats.json"), "report": str(report), "card": str(card),
                    "seconds": result.stats["totals"]["seconds"]})

    def out(name: str) -> str:  # a user's path, printed literally (a [red] in it is no markup)
        return escape(str(storage.join(result.out, name)))

    console.print(f"kept:     {out('kept')}  ({result.kept:,} documents)")
    console.print(f"rejected: {out('rejected')}  ({result.rejected:,} documents)")
    console.print(f"stats:    {out('stats.json')}")
    console.print(f"report:   {escape(str(report))}  (built in {report_seconds:.1f}s; dataset card: {escape(str(card))})")
    if result.quarantined:
        console.print(f"[yellow]{result.quarantined:,} input records or files were malformed and quarantined "
                      f"(reasons input:*; see {out('rejected')}); exit status {result.exit_code}[/]")
    raise typer.Exit(result.exit_code)


@app.command()
def rescore(
    run_out: Path = typer.Argument(..., metavar="RUN_OUT", help="A finished corpus run whose filters had `annotate: true`."),
    set_: list[str] = typer.Option(..., "--set", help="STEP.PARAM=VALUE, e.g. gopher_quality.min_words=30 (repeatable)."),
    dest: Path = typer.Option(..., "--out", "-o", help="The re-decided run to write."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output run."),
) -> None:
    """Change a filter's thresholds from the stored values: the result of a fresh run, without rerunning it."""
    from gristmill.data.rescore import parse_settings
    from gristmill.data.rescore import rescore as rescore_run

    stats = rescore_run(run_out, parse_settings(set_), dest, overwrite=overwrite)
    t = stats["totals"]
    console.print(f"{t['changed_decisions']:,} decisions changed; kept {t['kept']:,}, rejected {t['rejected']:,} "
                  f"in {t['seconds']:.1f} s -> {escape(str(dest))}")


@app.command()
def steps(
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List the steps a recipe can name, with their parameters and defaults."""
    import dataclasses

    from rich.table import Table

    from gristmill.data.recipe import load_builtin_steps

    if json_out:
        print_json({"steps": {name: {
            "parameters": {f.name: (None if f.default is dataclasses.MISSING else f.default)
                           for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")}
            if dataclasses.is_dataclass(cls) else {},
            "description": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""}
            for name, cls in sorted(load_builtin_steps().items())}})
        return
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
    for module in (tokenizer_commands, train_commands, adapt_commands, finetune_commands, quickstart, serve_commands,
                   decoder_commands, classify_commands, experiments_commands, report_commands):
        module.register(app)


_register_package_commands()


def main() -> None:
    try:
        app()
    except (GristmillError, OSError) as exc:  # raised outside a verb (while parsing the app's own options)
        if (exit := user_error_exit(exc)) is None:
            raise
        sys.exit(exit.exit_code)

"""The terminal every command writes to: one rich console on stderr, and the one-line user error.

It sits below every package so that a package's ``commands`` module can print and fail without
importing ``gristmill.cli`` (which imports all of them).
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

from gristmill.verbosity import error_output

console = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` as one line; the caller raises the returned exit.

    A verb calls it for a bad flag; an error raised further down derives from
    :class:`gristmill.errors.GristmillError` and reaches this function through the app's group in
    :mod:`gristmill.cli`, the one place that catches it.
    """
    with error_output(console):
        console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


def info(message: str) -> None:
    """An info line on stderr, printed literally: a path with brackets in it is not read as markup."""
    console.print(message, markup=False, highlight=False, soft_wrap=True)

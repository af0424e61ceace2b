"""The progress bar every long command shows: label, bar, done/total, a live rate, elapsed time and ETA."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from gristmill import verbosity


def progress_bar(enabled: bool = True, console: Console | None = None) -> Progress:
    """A rich ``Progress`` on stderr; tasks name themselves and set a ``rate`` field (``add_task(..., rate="")``).

    ``gristmill -q`` turns every bar off, whatever ``enabled`` says.
    """
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console or Console(stderr=True),
                    disable=not enabled or verbosity.quiet(), transient=False)

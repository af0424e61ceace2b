"""How much the command line says: ``gristmill -q VERB`` hides progress bars and info lines, ``-v`` says more.

The app callback sets the level once, before a verb runs; the places that make output read it here:
:func:`gristmill.progress.progress_bar` (no bar when quiet), the stderr consoles of the command modules
(``quiet``), and every error printer (:func:`error_output`: errors always show; under ``-v`` with the
traceback of the exception being handled, and gristmill's loggers at DEBUG). Results written to stdout
(tables, ``--json``: :func:`print_json`) are not info lines and show at every level. This module imports no gristmill module.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

_QUIET = False
_VERBOSE = False


def set_level(quiet: bool = False, verbose: bool = False) -> None:
    """Apply ``-q``/``-v`` to every stderr console a gristmill module holds as ``console`` and to logging."""
    global _QUIET, _VERBOSE
    _QUIET, _VERBOSE = quiet and not verbose, verbose
    for name, module in list(sys.modules.items()):
        holder = getattr(module, "console", None) if name.startswith("gristmill") else None
        if isinstance(holder, Console) and holder.stderr:
            holder.quiet = _QUIET
    if _VERBOSE:
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger("gristmill").setLevel(logging.DEBUG)


def quiet() -> bool:
    return _QUIET


def verbose() -> bool:
    return _VERBOSE


def info_console() -> Console:
    """A stderr console for info lines: silent under ``-q``."""
    return Console(stderr=True, soft_wrap=True, quiet=_QUIET)


@contextmanager
def error_output(console: Console) -> Iterator[None]:
    """Print an error through ``console`` even under ``-q``; under ``-v`` the traceback comes first."""
    was_quiet, console.quiet = console.quiet, False
    try:
        if _VERBOSE and sys.exc_info()[1] is not None:
            console.print_exception()
        yield
    finally:
        console.quiet = was_quiet


def print_json(record: dict[str, Any]) -> None:
    """The ``--json`` result of a verb: one JSON object on one line of stdout, where nothing else is written."""
    sys.stdout.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()

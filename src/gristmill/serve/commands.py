"""Command-line verbs of gristmill.serve (registered on the main app by gristmill.cli)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this package's verbs to the main app. Import heavy modules inside each command."""

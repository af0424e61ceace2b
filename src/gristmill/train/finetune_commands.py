"""Command-line verbs for fine-tuning, learning curves and the quickstart (registered by gristmill.cli)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's verbs to the main app. Import heavy modules inside each command."""

"""The root of the errors a user can fix, and the check for optional extras.

Every package's user-facing error derives from ``GristmillError``; the command line prints it as one line and
exits 2. Anything else is a bug and keeps its traceback. This module imports nothing from gristmill, so every
layer may use it.
"""

from __future__ import annotations

import importlib


class GristmillError(Exception):
    """A problem the user can fix (a bad flag, a missing file, a missing extra): one line, exit 2."""


class MissingExtraError(GristmillError):
    """An optional feature whose packages are not installed."""


def install_hint(extra: str) -> str:
    return f'pip install "gristmill[{extra}]"'


def require_extra(extra: str, feature: str, *modules: str) -> None:
    """Fail with the install line for ``extra`` unless every module in ``modules`` imports.

    Called before any work starts, so a missing package never surfaces as a traceback half way through.
    """
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            missing = exc.name or name
            raise MissingExtraError(f"{feature} needs the '{extra}' extra ({missing} is not installed): "
                                    f"{install_hint(extra)}") from None


"""The root of the errors a user can fix, the exit status they get, and the check for optional extras.

Every package's user-facing error derives from ``GristmillError`` (``TokenizerError`` and ``CheckpointError``
too, which also stay ``ValueError`` for their callers); the command line catches it in one place (the ``gristmill``
app's group, :mod:`gristmill.cli`), prints it as one line and exits 2. A class whose
cause is the *content* of a file (a truncated weights file, a zeroed shard, a task file that is not UTF-8) also
derives from :class:`BadDataError` and exits 3 (:func:`exit_code`). Anything else is a bug and keeps its
traceback. This module imports nothing from gristmill, so every layer may use it; it also words the file-system
errors (disk full, permissions) that ``gristmill.cli.main`` prints as one line.
"""

from __future__ import annotations

import errno
import importlib


class GristmillError(Exception):
    """A problem the user can fix (a bad flag, a missing file, a missing extra): one line, exit 2.

    A subclass whose cause is not a flag but the run itself (training that diverged) sets ``exit_status``.
    """

    exit_status: int = 2


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


USER_ERROR = 2
"""Exit status of a wrong command: a flag out of range, a missing folder, an existing output."""

BAD_DATA = 3
"""Exit status of input whose content is damaged or malformed (as for malformed corpus records)."""


class BadDataError(Exception):
    """Mixin for errors caused by a file's content; the message names the file (and line or offset)."""


def exit_code(exc: BaseException) -> int:
    """3 for damaged input (:class:`BadDataError`), else the error's ``exit_status`` (2 for a user error)."""
    return BAD_DATA if isinstance(exc, BadDataError) else getattr(exc, "exit_status", USER_ERROR)


FILE_SYSTEM_ERRORS = {
    errno.ENOSPC: "the disk is full: free some space or write elsewhere",
    errno.EDQUOT: "the disk quota is used up: free some space or write elsewhere",
    errno.EACCES: "permission denied",
    errno.EPERM: "not permitted",
    errno.EROFS: "the file system is read-only",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder",
    errno.EEXIST: "it already exists",
    errno.ENAMETOOLONG: "the name is too long",
    errno.EMFILE: "too many open files (ulimit -n)",
}
"""OS errors where the machine, not gristmill, said no: reported as one line naming the path (exit 2)."""


def describe_os_error(exc: OSError, path: object = None, resumable: bool = False) -> str | None:
    """One line for an OS error in :data:`FILE_SYSTEM_ERRORS` (naming ``path`` or the error's own), else None.

    ``resumable``: the verb can pick up where it stopped, so the line says how. The one wording of these
    errors for every verb (``gristmill.cli.main`` catches the rest).
    """
    if exc.errno not in FILE_SYSTEM_ERRORS:
        return None
    where = " -> ".join(str(f) for f in (path or exc.filename, exc.filename2) if f) or "writing output"
    again = "; then run again (add --resume where the verb has it)" if resumable else ""
    return f"{where}: {FILE_SYSTEM_ERRORS[exc.errno]} ({exc.strerror}){again}"

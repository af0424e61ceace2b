"""Which exit status an error the user can fix gets: 2 for a wrong request, 3 for damaged or malformed data.

Every package keeps its own error classes (``TokenizerError``, ``CheckpointError``, ``TaskError``, ...);
a class whose cause is the *content* of a file (a truncated weights file, a zeroed shard, a task file
that is not UTF-8) also derives from :class:`BadDataError`, and the command line exits with
:func:`exit_code` of it. This module imports nothing, so every layer may use it.
"""

from __future__ import annotations

USER_ERROR = 2
"""Exit status of a wrong command: a flag out of range, a missing folder, an existing output."""

BAD_DATA = 3
"""Exit status of input whose content is damaged or malformed (as for malformed corpus records)."""


class BadDataError(Exception):
    """Mixin for errors caused by a file's content; the message names the file (and line or offset)."""


def exit_code(exc: BaseException) -> int:
    return BAD_DATA if isinstance(exc, BadDataError) else USER_ERROR

"""User-facing errors.

Every problem caused by the user's input (a config key, a data row, a missing
file) is raised as :class:`StanceError` with a one-line message that names the
file and the key or row.  The CLI prints that line and exits non-zero, without a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys


class StanceError(Exception):
    """An error in the user's input, reported as one line."""

    def __init__(self, message: str) -> None:
        # Multi-line messages defeat the "one line, no traceback" contract.
        super().__init__(" ".join(str(message).split()))


def short(value: object, limit: int = 80, quote: bool = True) -> str:
    """``repr(value)`` (``str`` with ``quote=False``) cut to ``limit`` characters, for a message.

    A rejected value can be megabytes long (a pasted blob, a huge list), and the one-line
    error that names it must stay one readable line.
    """
    text = repr(value) if quote else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def reason(err: Exception, limit: int = 120) -> str:
    """The first line of a library's exception message, cut short enough to sit inside one error line."""
    lines = str(err).strip().splitlines()
    return short(lines[0], limit, quote=False) if lines else type(err).__name__


def warn(msg: str) -> None:
    """A one-line warning on stderr: the run goes on."""
    print(f"warning: {msg}", file=sys.stderr)

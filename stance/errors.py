"""User-facing errors.

Every problem caused by the user's input (a config key, a data row, a missing
file) is raised as :class:`StanceError` with a one-line message that names the
file and the key or row.  The CLI prints that line and exits non-zero, without a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class StanceError(Exception):
    """An error in the user's input, reported as one line."""

    def __init__(self, message: str) -> None:
        # Multi-line messages defeat the "one line, no traceback" contract.
        super().__init__(" ".join(str(message).split()))

"""The corpus tools: mine candidates, batch and merge annotation rounds, build the splits.

Run through the thin entry points in scripts/ (``python scripts/build_corpus.py ...``);
data/README.md says which command made which file.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from stance.errors import StanceError


def run(main: Callable[[], object]) -> int:
    """Call a tool's ``main``; bad input (StanceError) is one line on stderr and exit code 2, as in `stance`."""
    try:
        main()
    except StanceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0

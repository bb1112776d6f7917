"""Draw a later annotation round with the current model: corpus/active_round.py (--help)."""

from corpus import run
from corpus.active_round import main

if __name__ == "__main__":
    raise SystemExit(run(main))

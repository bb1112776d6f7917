"""Mine round 1's candidate sentences from the raw sources: corpus/mine_candidates.py (--help)."""

from corpus import run
from corpus.mine_candidates import main

if __name__ == "__main__":
    raise SystemExit(run(main))

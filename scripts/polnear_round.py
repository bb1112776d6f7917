"""Draw annotation round 6 from PolNeAR train articles: corpus/polnear_round.py (--help)."""

from corpus import run
from corpus.polnear_round import main

if __name__ == "__main__":
    raise SystemExit(run(main))

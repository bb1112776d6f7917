"""Sample and finalize the PolNeAR test set: corpus/polnear_test.py (--help for the steps)."""

from corpus import run
from corpus.polnear_test import main

if __name__ == "__main__":
    raise SystemExit(run(main))

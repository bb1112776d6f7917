"""Batch, merge, split and extend annotation rounds: corpus/build_corpus.py (--help for the steps)."""

from corpus import run
from corpus.build_corpus import main

if __name__ == "__main__":
    raise SystemExit(run(main))

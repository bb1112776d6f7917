"""Holder/target span annotation: batches, merge, apply: corpus/spans.py (--help for the steps)."""

from corpus import run
from corpus.spans import main

if __name__ == "__main__":
    raise SystemExit(run(main))

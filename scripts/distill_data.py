"""Teacher data for distillation (pool, teacher probabilities): corpus/distill_data.py (--help)."""

from corpus import run
from corpus.distill_data import main

if __name__ == "__main__":
    raise SystemExit(run(main))

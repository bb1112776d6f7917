"""Leave one source out (docs/results.md, *Leave one source out*): train the default recipe without each
major source and score that source's test sentences, beside the shipped recipe trained with it.

    python scripts/loso.py --included models/stance-minilm [MORE_SEEDS ...]

Each group trains once (about 5-10 minutes on 2 cores with bf16) and is cached in
docs/results/loso/, so an interrupted run continues; the table is re-rendered into
docs/results.md by scripts/compare.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.loso import GROUPS, run_all
from stance.errors import StanceError

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "base.yaml")
    ap.add_argument("--groups", nargs="+", choices=sorted(GROUPS), default=list(GROUPS))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--included", nargs="+", type=Path, required=True, metavar="MODEL",
                    help="models the config trains on every source (one per seed): the 'with it' side")
    ap.add_argument("--extra-test", nargs="*", default=["data/test_polnear.jsonl"],
                    help="test files beside the config's test whose rows also count for their source")
    ap.add_argument("--work-dir", type=Path, default=ROOT / "models" / "loso")
    ap.add_argument("--runs-dir", type=Path, default=ROOT / "docs" / "results" / "loso")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    try:
        run_all(args.config, args.groups, args.seed, args.included, args.extra_test, args.work_dir,
                args.runs_dir, args.quiet)
    except StanceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

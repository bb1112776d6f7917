"""Build the labeled stance corpus from mined candidates and annotation passes.

Three steps, each reproducible:

  batches  split data/candidates.jsonl into annotation batches.  A random
           subset (--double per batch) is also copied, blind and shuffled,
           into the *next* batch, so those sentences get two independent
           labels from two different annotators.
  merge    read the annotators' label files, report agreement (Cohen's kappa,
           confusion between passes), apply adjudications for disagreements,
           and write data/annotation/gold.jsonl.
  split    split gold labels by document group into train/dev/test.

    python scripts/build_corpus.py batches
    python scripts/build_corpus.py merge
    python scripts/build_corpus.py split
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


LABELS = ["accuse", "deny", "support", "none"]
ANN = ROOT / "data" / "annotation"


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def cmd_batches(args: argparse.Namespace) -> None:
    cands = read_jsonl(ROOT / "data" / "candidates.jsonl")
    rng = random.Random(args.seed)
    rng.shuffle(cands)
    n = args.n_batches
    own = [cands[i::n] for i in range(n)]
    double = [rng.sample(b, args.double) for b in own]
    for i in range(n):
        items = own[i] + double[(i - 1) % n]  # batch i re-labels a sample of batch i-1
        rng.shuffle(items)
        write_jsonl(ANN / "batches" / f"batch_{i:02d}.jsonl",
                    [{"id": r["id"], "source": r["source"], "text": r["text"]} for r in items])
        print(f"batch_{i:02d}: {len(items)} items ({len(own[i])} own + {args.double} second-pass)")
    assignment = {r["id"]: i for i in range(n) for r in own[i]}
    (ANN / "assignment.json").write_text(json.dumps(assignment, sort_keys=True, indent=0) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("batches")
    b.add_argument("--n-batches", type=int, default=8)
    b.add_argument("--double", type=int, default=60)
    b.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    {"batches": cmd_batches}[args.cmd](args)


if __name__ == "__main__":
    main()

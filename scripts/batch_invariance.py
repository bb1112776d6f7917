"""Does a sentence score the same whatever it is batched with?  One model, each backend.

Scores the held-out sentences in length-sorted batches of 64 (what `stance predict` does),
of 16, and one at a time, and reports, against the batches of 64, the largest change of a
probability and how many argmax labels change; then each backend's label agreement with
ONNX fp32 and its throughput in batches of 64.  Run it on a model exported before and after
a change to the int8 export to see what the change did (docs/speed.md).

    python scripts/batch_invariance.py --model models/stance-minilm
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from stance.data import iter_rows
from stance.modeling import StanceClassifier

ROOT = Path(__file__).resolve().parents[1]


def score(clf: StanceClassifier, texts: list[str], batch_size: int) -> tuple[np.ndarray, float]:
    """Probabilities (argmax-comparable, temperature included) and sentences per second."""
    t0 = time.perf_counter()
    probs = clf.predict_proba(texts, batch_size=batch_size)
    return probs, len(texts) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "stance-minilm")
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "test.jsonl")
    ap.add_argument("--backends", default="onnx,onnx-int8,onnx-cascade")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    texts = [r["text"] for _, r in iter_rows(args.data)]
    reference = StanceClassifier.load(args.model, backend="onnx").predict_proba(texts)
    print(f"{len(texts)} sentences of {args.data}; model {args.model}")
    print(f"{'backend':<14}{'batch':>6}{'max prob change':>17}{'labels changed':>16}{'agree fp32':>12}{'sent/s':>8}")
    results = {}
    for backend in args.backends.split(","):
        clf = StanceClassifier.load(args.model, backend=backend)
        base, rate = score(clf, texts, 64)
        agree = float((base.argmax(1) == reference.argmax(1)).mean())
        results[backend] = {"agreement_with_fp32": agree, "sentences_per_second": round(rate, 1)}
        print(f"{backend:<14}{64:>6}{'-':>17}{'-':>16}{agree:>12.2%}{rate:>8.0f}")
        for size in (16, 1):
            probs, _ = score(clf, texts, size)
            change = float(np.abs(probs - base).max())
            flips = int((probs.argmax(1) != base.argmax(1)).sum())
            results[backend][f"batch_{size}"] = {"max_prob_change": change, "labels_changed": flips}
            print(f"{'':<14}{size:>6}{change:>17.4f}{flips:>16}")
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "n": len(texts), "results": results}, indent=2))


if __name__ == "__main__":
    main()

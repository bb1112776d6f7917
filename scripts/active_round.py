"""Second annotation round: pick the unlabeled sentences the current model finds hardest.

The cue-word strata of round 1 (scripts/mine_candidates.py) used up every
sentence with a stance cue word, and the learning curve was still rising, so
round 2 is chosen by the model instead (uncertainty / disagreement sampling):

  pool      every article sentence and headline of the raw sources that round 1
            did not draw, that is 6-80 words long, and whose story group
            (scripts/build_corpus.py:story_groups) lies in train or in no split,
            so dev and test stay untouched and no story crosses splits
  strata    active_accuse / active_deny / active_support: a seeded random draw
            of the sentences the model labels as that stance (its false
            positives there are exactly the hard negatives it lacks);
            active_uncertain: the `none` predictions with the lowest score

The model's prediction and score are kept in the candidates file for analysis;
annotators see only id, source and text, as in round 1.  The rows go to
train only (data/train_round2.jsonl, via build_corpus.py --round round2 extend).

    python scripts/active_round.py --model models/stance-minilm
    python scripts/build_corpus.py --round round2 batches --n-batches 8 --double 30
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
import build_corpus  # noqa: E402
import mine_candidates  # noqa: E402

# How many sentences each stratum contributes.  Support is the scarcest label
# (481 of 7,192 in round 1), so every support prediction is taken.
QUOTAS = {"active_support": 700, "active_deny": 450, "active_accuse": 650, "active_uncertain": 600}


def free_pool(raw: Path) -> list[dict]:
    """Unlabeled sentences whose story group is in train or unassigned."""
    groups = build_corpus.story_groups(raw)
    split_of: dict[str, str] = {}
    for split in ("train", "dev", "test"):
        for r in build_corpus.read_jsonl(ROOT / "data" / f"{split}.jsonl"):
            split_of[groups.get(r["doc_id"], r["doc_id"])] = split
    drawn = {mine_candidates.norm(r["text"]) for r in build_corpus.read_jsonl(ROOT / "data" / "candidates.jsonl")}
    rows = (mine_candidates.article_sentences(raw) + mine_candidates.emergent_rows(raw)
            + mine_candidates.cameo_rows(raw))
    pool: dict[str, dict] = {}
    for r in rows:
        key = mine_candidates.norm(r["text"])
        if key in drawn or key in pool or not mine_candidates.ok_len(r["text"]):
            continue
        if split_of.get(groups.get(r["doc_id"], r["doc_id"]), "train") != "train":
            continue
        pool[key] = r
    return sorted(pool.values(), key=lambda r: (r["doc_id"], r["sent_idx"], r["text"]))


def select(pool: list[dict], probs, labels: list[str], seed: int) -> list[dict]:
    rng = random.Random(seed)
    pred = probs.argmax(1)
    none = labels.index("none")
    chosen: list[dict] = []
    for lab in ("support", "deny", "accuse"):
        idx = [i for i in range(len(pool)) if labels[pred[i]] == lab]
        rng.shuffle(idx)
        chosen += [{**pool[i], "stratum": f"active_{lab}", "model_pred": lab,
                    "model_score": round(float(probs[i].max()), 4)} for i in idx[:QUOTAS[f"active_{lab}"]]]
    idx = sorted((i for i in range(len(pool)) if pred[i] == none), key=lambda i: probs[i, none])
    chosen += [{**pool[i], "stratum": "active_uncertain", "model_pred": "none",
                "model_score": round(float(probs[i, none]), 4)} for i in idx[:QUOTAS["active_uncertain"]]]
    return chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "stance-minilm",
                    help="model trained on round-1 train only")
    ap.add_argument("--raw", type=Path, default=ROOT.parent / "shared" / "data" / "raw")
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "annotation" / "round2" / "candidates.jsonl")
    ap.add_argument("--seed", type=int, default=17)
    args = ap.parse_args()

    from stance.modeling import StanceClassifier

    pool = free_pool(args.raw)
    clf = StanceClassifier.load(args.model, backend="onnx")
    probs = clf.predict_proba([r["text"] for r in pool], batch_size=128, progress="scoring pool")
    print(f"pool: {len(pool)} sentences; model predicts {dict(Counter(clf.labels[i] for i in probs.argmax(1)))}")
    rows = select(pool, probs, clf.labels, args.seed)
    out = [{"id": mine_candidates.sid(r["source"], r["text"]), **r, "cues": mine_candidates.cue_kinds(r["text"])}
           for r in rows]
    out.sort(key=lambda r: r["id"])
    build_corpus.write_jsonl(args.out, out)
    print(f"{len(out)} candidates -> {args.out}")
    for k, v in sorted(Counter(r["stratum"] for r in out).items()):
        print(f"  {k:18s} {v}")


if __name__ == "__main__":
    main()

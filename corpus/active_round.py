"""Later annotation rounds: pick the unlabeled sentences the current model finds hardest.

The cue-word strata of round 1 (corpus/mine_candidates.py) used up every
sentence with a stance cue word, and the learning curve was still rising, so
round 2 is chosen by the model instead (uncertainty / disagreement sampling):

  pool      every article sentence and headline of the raw sources that round 1
            did not draw, that is 6-80 words long, and whose story group
            (corpus/build_corpus.py:story_groups) lies in train or in no split,
            so dev and test stay untouched and no story crosses splits
  strata    active_accuse / active_deny / active_support: a seeded random draw
            of the sentences the model labels as that stance (its false
            positives there are exactly the hard negatives it lacks);
            active_uncertain: the `none` predictions with the lowest score

The model's prediction and score are kept in the candidates file for analysis;
annotators see only id, source and text, as in round 1.  The rows go to
train only (data/train/<round>.jsonl, via build_corpus.py --round <round> extend).
Every sentence an earlier round drew is left out of the pool, so rounds never overlap.

Round 2 (model: round-1 train only):
    python scripts/active_round.py --model models/stance-minilm-round1 --round round2
    python scripts/build_corpus.py --round round2 batches --n-batches 8 --double 30

Round 3 (model: round 1 + round 2, seed 42) aims at accuse precision, the weakest
number in docs/results.md, so most of its draw is the model's accuse calls:
    python scripts/active_round.py --model models/stance-minilm --round round3 \
        --quota active_accuse=900 --quota active_deny=250 --quota active_support=250 \
        --quota active_uncertain=400
    python scripts/build_corpus.py --round round3 batches --n-batches 6 --double 30

Round 4 (model: rounds 1-3, seed 42) aims at accuse recall, which round 3 traded
for precision (dev recall 0.57-0.60), so most of its draw is the `none` calls the
model is least sure of (where missed accusations hide).  Only 84 sentences of the
17,755 left are predicted support, and all of them are taken:
    python scripts/active_round.py --model models/stance-minilm-r3 --round round4 \
        --quota active_accuse=500 --quota active_deny=200 --quota active_support=350 \
        --quota active_uncertain=1000
    python scripts/build_corpus.py --round round4 batches --n-batches 7 --double 26

Round 5 (model: rounds 1-4, seed 42, trained in bf16 with the default recipe) aims at
accuse again, the weakest label (dev recall 0.58).  Every accuse call left is taken
(474), with the 900 least-sure `none` calls; only 33 support calls are left:
    stance export models/probe-bf16-r4 --onnx
    python scripts/active_round.py --model models/probe-bf16-r4 --round round5 \
        --quota active_accuse=600 --quota active_deny=200 --quota active_support=350 \
        --quota active_uncertain=900
    python scripts/build_corpus.py --round round5 batches --n-batches 6 --double 27
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from pathlib import Path

from corpus import build_corpus, mine_candidates
from corpus.jsonl import read_jsonl, write_jsonl

ROOT = Path(__file__).resolve().parents[1]

# How many sentences each stratum contributes.  Support is the scarcest label
# (481 of 7,192 in round 1), so every support prediction is taken.
QUOTAS = {"active_support": 700, "active_deny": 450, "active_accuse": 650, "active_uncertain": 600}


def _round_no(name: str) -> int:
    digits = "".join(c for c in name if c.isdigit())
    return int(digits) if digits else 0


def drawn_before(current: str, data_dir: Path = ROOT / "data") -> set[str]:
    """Normalised text of every sentence an *earlier* round drew (roundN, N < current).

    Only earlier rounds, so re-running an old round's selection reproduces it
    byte for byte even after later rounds exist.
    """
    files = sorted(p for p in (data_dir / "annotation").glob("round*/candidates.jsonl")
                   if _round_no(p.parent.name) < _round_no(current))
    return {mine_candidates.norm(r["text"]) for f in files for r in read_jsonl(f)}


def free_pool(raw: Path, current: str, data_dir: Path = ROOT / "data") -> list[dict]:
    """Unlabeled sentences whose story group is in train or unassigned."""
    groups = build_corpus.story_groups(raw)
    held_out = build_corpus.held_out_groups(data_dir, groups)
    drawn = drawn_before(current, data_dir)
    rows = (mine_candidates.article_sentences(raw) + mine_candidates.emergent_rows(raw)
            + mine_candidates.cameo_rows(raw))
    pool: dict[str, dict] = {}
    for r in rows:
        key = mine_candidates.norm(r["text"])
        if key in drawn or key in pool or not mine_candidates.ok_len(r["text"]):
            continue
        if groups.get(r["doc_id"], r["doc_id"]) in held_out:
            continue
        pool[key] = r
    return sorted(pool.values(), key=lambda r: (r["doc_id"], r["sent_idx"], r["text"]))


def select(pool: list[dict], probs, labels: list[str], seed: int,
           quotas: dict[str, int] = QUOTAS) -> list[dict]:
    rng = random.Random(seed)
    pred = probs.argmax(1)
    none = labels.index("none")
    chosen: list[dict] = []
    for lab in ("support", "deny", "accuse"):
        idx = [i for i in range(len(pool)) if labels[pred[i]] == lab]
        rng.shuffle(idx)
        chosen += [{**pool[i], "stratum": f"active_{lab}", "model_pred": lab,
                    "model_score": round(float(probs[i].max()), 4)} for i in idx[:quotas[f"active_{lab}"]]]
    idx = sorted((i for i in range(len(pool)) if pred[i] == none), key=lambda i: probs[i, none])
    chosen += [{**pool[i], "stratum": "active_uncertain", "model_pred": "none",
                "model_score": round(float(probs[i, none]), 4)} for i in idx[:quotas["active_uncertain"]]]
    return chosen


def main() -> None:
    ap = round_arguments(__doc__, "round2", QUOTAS)
    ap.add_argument("--raw", type=Path, default=ROOT.parent / "shared" / "data" / "raw")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data",
                    help="the corpus folder: dev and test, and every earlier annotation/<round>/")
    args = ap.parse_args()
    quotas = parse_quotas(ap, args.quota, QUOTAS)
    out_path = args.data_dir / "annotation" / args.round / "candidates.jsonl"

    from stance.modeling import StanceClassifier

    pool = free_pool(args.raw, args.round, args.data_dir)
    clf = StanceClassifier.load(args.model, backend="onnx")
    probs = clf.predict_proba([r["text"] for r in pool], batch_size=128, progress="scoring pool")
    print(f"pool: {len(pool)} sentences; model predicts {dict(Counter(clf.labels[i] for i in probs.argmax(1)))}")
    rows = select(pool, probs, clf.labels, args.seed, quotas)
    out = [{"id": mine_candidates.sid(r["source"], r["text"]), **r, "cues": mine_candidates.cue_kinds(r["text"])}
           for r in rows]
    out.sort(key=lambda r: r["id"])
    write_candidates(out_path, out)


def round_arguments(doc: str | None, default_round: str, quotas: dict[str, int]) -> argparse.ArgumentParser:
    """The options every model-chosen round shares: the current model, the round's name, strata sizes."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "stance-minilm",
                    help="the current model (trained on every earlier round)")
    ap.add_argument("--round", default=default_round, help="name of the new round: data/annotation/<round>/")
    ap.add_argument("--quota", action="append", default=[], metavar="STRATUM=N",
                    help=f"override a stratum's size (defaults: {quotas})")
    return ap


def parse_quotas(ap: argparse.ArgumentParser, given: list[str], defaults: dict[str, int]) -> dict[str, int]:
    """The strata sizes: ``defaults`` with each ``--quota STRATUM=N`` applied (a bad one is a usage error)."""
    quotas = dict(defaults)
    for q in given:
        key, _, n = q.partition("=")
        if key not in defaults or not n.isdigit():
            ap.error(f"--quota {q!r}: expected one of {sorted(defaults)}=N")
        quotas[key] = int(n)
    return quotas


def write_candidates(out_path: Path, rows: list[dict]) -> None:
    """Write a round's candidates and print how many each stratum got."""
    write_jsonl(out_path, rows)
    print(f"{len(rows)} candidates -> {out_path}")
    for k, v in sorted(Counter(r["stratum"] for r in rows).items()):
        print(f"  {k:18s} {v}")


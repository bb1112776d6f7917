"""Build the labeled stance corpus from mined candidates and annotation passes.

Every round keeps its candidates, batches, labels and gold rows in
data/annotation/<round>/ (--round, default round1) and its training rows in
data/train/<round>.jsonl.  Each step is reproducible:

  batches  split the round's candidates.jsonl into annotation batches.  A random
           subset (--double per batch) is also copied, blind and shuffled,
           into the *next* batch, so those sentences get two independent
           labels from two different annotators.
  merge    read the annotators' label files, report agreement (Cohen's kappa,
           confusion between passes), apply adjudications for disagreements,
           and write the round's gold.jsonl.
  split    (round 1) split gold labels by story into data/train/round1.jsonl,
           data/dev.jsonl and data/test.jsonl.
  review   (later rounds) batch the gold rows of one label for a re-read under
           one guideline rule; merge applies the reviewers' labels.
  extend   (later rounds) write a round's gold labels to data/train/<round>.jsonl,
           after checking that none of its story groups is in dev or test.

    python scripts/build_corpus.py batches
    python scripts/build_corpus.py merge
    python scripts/build_corpus.py split

Later rounds (scripts/active_round.py) only ever add training rows:

    python scripts/build_corpus.py --round round2 batches --n-batches 8 --double 30
    python scripts/build_corpus.py --round round2 merge
    python scripts/build_corpus.py --round round2 extend
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path

from corpus.cues import keyword_rule
from corpus.jsonl import read_jsonl, write_jsonl
from corpus.spans import label_pass_agreement, label_pass_spans
from stance.errors import StanceError

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["accuse", "deny", "support", "none"]
FIELDS = ["id", "text", "label", "source", "doc_id", "confidence"]  # the columns of the shipped splits


def cmd_supplement(args: argparse.Namespace) -> None:
    """One more batch with the candidates no earlier batch holds (single pass)."""
    cands = read_jsonl(args.candidates)
    assignment = json.loads((args.ann / "assignment.json").read_text())
    new = [r for r in cands if r["id"] not in assignment]
    random.Random(args.seed).shuffle(new)
    i = max(assignment.values()) + 1
    write_jsonl(args.ann / "batches" / f"batch_{i:02d}.jsonl",
                [{"id": r["id"], "source": r["source"], "text": r["text"]} for r in new])
    assignment.update({r["id"]: i for r in new})
    (args.ann / "assignment.json").write_text(json.dumps(assignment, sort_keys=True, indent=0) + "\n")
    print(f"batch_{i:02d}: {len(new)} items")


def cmd_batches(args: argparse.Namespace) -> None:
    cands = read_jsonl(args.candidates)
    rng = random.Random(args.seed)
    rng.shuffle(cands)
    n = args.n_batches
    own = [cands[i::n] for i in range(n)]
    double = [rng.sample(b, args.double) for b in own]
    for i in range(n):
        items = own[i] + double[(i - 1) % n]  # batch i re-labels a sample of batch i-1
        rng.shuffle(items)
        write_jsonl(args.ann / "batches" / f"batch_{i:02d}.jsonl",
                    [{"id": r["id"], "source": r["source"], "text": r["text"]} for r in items])
        print(f"batch_{i:02d}: {len(items)} items ({len(own[i])} own + {args.double} second-pass)")
    assignment = {r["id"]: i for i in range(n) for r in own[i]}
    (args.ann / "assignment.json").write_text(json.dumps(assignment, sort_keys=True, indent=0) + "\n")


def load_passes(ann: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """First-pass labels (the owning batch's annotator) and second-pass labels."""
    assignment = json.loads((ann / "assignment.json").read_text())
    first: dict[str, dict] = {}
    second: dict[str, dict] = {}
    for path in sorted((ann / "labels").glob("batch_*.jsonl")):
        b = int(path.stem.split("_")[1])
        for r in read_jsonl(path):
            if r.get("label") not in LABELS + ["skip"] or r.get("confidence") not in ("high", "low"):
                raise StanceError(f"{path}: {r.get('id')}: label {r.get('label')!r}, confidence "
                                  f"{r.get('confidence')!r} (labels: {', '.join(LABELS)}, skip; confidence: high, low)")
            (first if assignment[r["id"]] == b else second)[r["id"]] = {**r, "annotator": f"A{b}"}
    missing = set(assignment) - set(first)
    if missing:
        raise SystemExit(f"{len(missing)} candidates have no first-pass label, e.g. {sorted(missing)[:3]}")
    return first, second


def cohen_kappa(a: list[str], b: list[str]) -> float:
    from sklearn.metrics import cohen_kappa_score

    return float(cohen_kappa_score(a, b))


def pass_agreement(first: dict[str, dict], second: dict[str, dict]) -> dict:
    """Agreement between the two passes on the double-labeled items (second holds only those)."""
    ids = sorted(second)
    a = [first[i]["label"] for i in ids]
    b = [second[i]["label"] for i in ids]
    labs = LABELS + ["skip"]
    conf = {x: Counter() for x in labs}
    for x, y in zip(a, b):
        conf[x][y] += 1
    stance_ids = [i for i in ids if "skip" not in (first[i]["label"], second[i]["label"])]
    return {
        "n_double": len(ids),
        "raw_agreement": sum(x == y for x, y in zip(a, b)) / len(ids),
        "cohen_kappa": cohen_kappa(a, b),
        "confusion_first_vs_second": {x: {y: conf[x][y] for y in labs} for x in labs},
        "cohen_kappa_excluding_skip": cohen_kappa([first[i]["label"] for i in stance_ids],
                                                  [second[i]["label"] for i in stance_ids]),
    }


def cmd_merge(args: argparse.Namespace) -> None:
    ann = args.ann
    cands = {r["id"]: r for r in read_jsonl(args.candidates)}
    first, second = load_passes(ann)
    adjud_path = ann / "adjudication.jsonl"
    adjud = {r["id"]: r for r in read_jsonl(adjud_path)} if adjud_path.exists() else {}

    report = pass_agreement(first, second)
    spans = label_pass_agreement(first, second, {i: c["text"] for i, c in cands.items()})
    if spans:  # the labelers of this round also marked holder and target
        report["spans"] = spans
    ids = sorted(second)
    disagreements = [i for i in ids if first[i]["label"] != second[i]["label"]]
    write_jsonl(ann / "disagreements.jsonl", [
        {"id": i, "text": cands[i]["text"], "source": cands[i]["source"],
         "first": first[i]["label"], "second": second[i]["label"]} for i in disagreements])
    unresolved = [i for i in disagreements if i not in adjud]
    report["disagreements"] = len(disagreements)
    report["adjudicated"] = len(disagreements) - len(unresolved)

    gold = []
    for i, c in cands.items():
        f = first[i]
        label, confidence, how = f["label"], f["confidence"], "single"
        if i in second:
            s = second[i]
            if s["label"] == f["label"]:
                how = "double-agreed"
                confidence = "high" if "high" in (f["confidence"], s["confidence"]) else "low"
            elif i in adjud:
                label, confidence, how = adjud[i]["label"], adjud[i]["confidence"], "adjudicated"
            else:
                label, confidence, how = f["label"], "low", "unadjudicated"
        if label == "skip":
            continue
        decided_by = adjud[i] if how == "adjudicated" else f
        gold.append({"id": i, "text": c["text"], "label": label, "source": c["source"], "doc_id": c["doc_id"],
                     "confidence": confidence, "stratum": c["stratum"], "agreement": how,
                     "orig_label": c["orig_label"],
                     **{k: c[k] for k in ("model_pred", "model_score") if k in c},
                     **label_pass_spans(label, decided_by, c["text"], f"{ann}: {i}")})
    # A one-rule review pass (cmd_review) overrides the labels it re-read.
    reviewed = {r["id"]: r for f in sorted((ann / "review" / "labels").glob("*.jsonl")) for r in read_jsonl(f)}
    changed = Counter()
    for g in gold:
        r = reviewed.get(g["id"])
        if r and r["label"] != g["label"]:
            changed[f"{g['label']}->{r['label']}"] += 1
            g.update(label=r["label"], confidence=r["confidence"], agreement=f"reviewed ({g['agreement']})")
            for role in ("holder", "target"):  # marked for the old label: the row goes unmarked
                g.pop(role, None)
    if reviewed:
        report["review"] = {"reread": len(reviewed), "changed": dict(changed)}
    gold = [g for g in gold if g["label"] != "skip"]
    gold.sort(key=lambda r: r["id"])
    write_jsonl(ann / "gold.jsonl", gold)

    kw = [keyword_rule(r["text"]) == r["label"] for r in gold]
    report["keyword_rule_agreement"] = sum(kw) / len(kw)
    rnd = [r for r in gold if r["stratum"] == "random"]
    if rnd:  # later rounds have no random stratum
        report["keyword_rule_agreement_random_stratum"] = (
            sum(keyword_rule(r["text"]) == r["label"] for r in rnd) / len(rnd))
    report["gold_counts"] = dict(Counter(r["label"] for r in gold))
    report["skipped"] = len(cands) - len(gold)
    report["low_confidence"] = sum(r["confidence"] == "low" for r in gold)
    report["label_by_stratum"] = {s: dict(Counter(r["label"] for r in gold if r["stratum"] == s))
                                  for s in sorted({r["stratum"] for r in gold})}
    report["label_by_source"] = {s: dict(Counter(r["label"] for r in gold if r["source"] == s))
                                 for s in sorted({r["source"] for r in gold})}
    (ann / "agreement.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if not isinstance(v, dict)}, indent=2))
    print("gold counts:", report["gold_counts"])
    if unresolved:
        print(f"{len(unresolved)} disagreements not yet adjudicated -> {ann / 'disagreements.jsonl'}")


def cmd_review(args: argparse.Namespace) -> None:
    """Batches of the gold rows with one label, for a re-read under one guideline rule.

    Reviewers see id, source and text (never a model's guess) and write
    ``review/labels/<batch>.jsonl``; ``merge`` then applies their labels.
    """
    rows = [r for r in read_jsonl(args.ann / "gold.jsonl") if r["label"] == args.label]
    random.Random(args.seed).shuffle(rows)
    n = args.n_batches
    for b in range(n):
        part = sorted(rows[b::n], key=lambda r: r["id"])
        write_jsonl(args.ann / "review" / "batches" / f"{args.label}_{b:02d}.jsonl",
                    [{k: r[k] for k in ("id", "source", "text")} for r in part])
        print(f"review batch {args.label}_{b:02d}: {len(part)} rows")


def story_groups(raw: Path) -> dict[str, str]:
    """Map doc_id -> story group, so no story lands in two splits.

    FNC-1 bodies that share a related headline are one story, and FNC-1 is
    built from Emergent, so an Emergent claim whose headlines appear in FNC-1
    joins those bodies' group too (union-find over these links).
    """
    import csv

    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    headline_doc: dict[str, str] = {}
    with open(raw / "fnc-1" / "train_stances.csv", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            if r["Stance"] == "unrelated":
                continue
            h = " ".join(r["Headline"].lower().split())
            doc = f"fnc1-body-{r['Body ID']}"
            if h in headline_doc:
                union(doc, headline_doc[h])
            else:
                headline_doc[h] = doc
                find(doc)
    with open(raw / "emergent" / "url-versions-2015-06-14-clean.csv", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            doc = f"emergent-claim-{r['claimId']}"
            find(doc)
            for text in (r["articleHeadline"], r["claimHeadline"]):
                h = " ".join(text.lower().split())
                if h in headline_doc:
                    union(doc, headline_doc[h])
    return {d: find(d) for d in parent}


def train_file(data_dir: Path, name: str) -> Path:
    """Where a round's training rows live: data/train/<round>.jsonl."""
    return data_dir / "train" / f"{name}.jsonl"


def held_out_groups(data_dir: Path, groups: dict[str, str]) -> set[str]:
    """The story groups of dev and test, which no training row may come from."""
    return {groups.get(r["doc_id"], r["doc_id"]) for split in ("dev", "test")
            for r in read_jsonl(data_dir / f"{split}.jsonl")}


def cmd_split(args: argparse.Namespace) -> None:
    gold = read_jsonl(args.ann / "gold.jsonl")
    groups = story_groups(args.raw)
    by_group: dict[str, list[dict]] = {}
    for r in gold:
        by_group.setdefault(groups.get(r["doc_id"], r["doc_id"]), []).append(r)
    fractions = {"train": 0.7, "dev": 0.1, "test": 0.2}
    totals = Counter(r["label"] for r in gold)
    target = {s: {lab: f * totals[lab] for lab in LABELS} for s, f in fractions.items()}
    current = {s: Counter() for s in fractions}
    rng = random.Random(args.seed)
    keys = sorted(by_group)
    rng.shuffle(keys)
    # Big groups first, so the small ones can even out the label balance.
    keys.sort(key=lambda k: -len(by_group[k]))
    assign: dict[str, str] = {}
    for k in keys:
        comp = Counter(r["label"] for r in by_group[k])
        # The split that most needs this group's labels, relative to its target.
        best = max(fractions, key=lambda s: sum(n * (target[s][lab] - current[s][lab]) / target[s][lab]
                                                for lab, n in comp.items()))
        assign[k] = best
        current[best].update(comp)
    for split in fractions:
        rows = sorted((r for k in keys if assign[k] == split for r in by_group[k]), key=lambda r: r["id"])
        out = train_file(args.data_dir, args.round) if split == "train" else args.data_dir / f"{split}.jsonl"
        write_jsonl(out, [{f: r[f] for f in FIELDS} for r in rows])
        print(f"{split:5s} {len(rows):5d} " + " ".join(f"{lab}={current[split][lab]}" for lab in LABELS)
              + f"  groups={sum(v == split for v in assign.values())}")
    big = max(by_group.values(), key=len)
    print(f"largest story group: {len(big)} rows ({big[0]['doc_id']})")


def cmd_extend(args: argparse.Namespace) -> None:
    """A later round's gold rows, train only: refuse any whose story is in dev or test."""
    groups = story_groups(args.raw)
    held_out = held_out_groups(args.data_dir, groups)
    out = train_file(args.data_dir, args.round)
    # Other rounds' rows count as labeled too; this round's own file is about to be rewritten.
    others = [p for p in sorted((args.data_dir / "train").glob("*.jsonl")) if p != out]
    others += [args.data_dir / "dev.jsonl", args.data_dir / "test.jsonl"]
    labeled = {r["id"] for p in others for r in read_jsonl(p)}
    gold = read_jsonl(args.ann / "gold.jsonl")
    leaks = [r["id"] for r in gold if groups.get(r["doc_id"], r["doc_id"]) in held_out]
    dupes = [r["id"] for r in gold if r["id"] in labeled]
    if leaks or dupes:
        raise SystemExit(f"{len(leaks)} rows from dev/test stories (e.g. {leaks[:3]}), "
                         f"{len(dupes)} already labeled (e.g. {dupes[:3]})")
    # Holder and target travel with the rows whose labelers marked them (round 6 on).
    write_jsonl(out, [{f: r[f] for f in FIELDS + ["holder", "target"] if f in r}
                      for r in sorted(gold, key=lambda r: r["id"])])
    print(f"{len(gold)} rows -> {out}: " + " ".join(f"{lab}={sum(r['label'] == lab for r in gold)}"
                                                 for lab in LABELS))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--round", default="round1", help="the annotation round (data/annotation/<round>/)")
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data",
                    help="the corpus folder: annotation/<round>/, train/<round>.jsonl, dev and test")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("batches")
    b.add_argument("--n-batches", type=int, default=8)
    b.add_argument("--double", type=int, default=60)
    b.add_argument("--seed", type=int, default=7)
    s = sub.add_parser("supplement")
    s.add_argument("--seed", type=int, default=8)
    sub.add_parser("merge")
    rv = sub.add_parser("review")
    rv.add_argument("--label", required=True, choices=LABELS)
    rv.add_argument("--n-batches", type=int, default=2)
    rv.add_argument("--seed", type=int, default=13)
    sp = sub.add_parser("split")
    sp.add_argument("--raw", type=Path, default=ROOT.parent / "shared" / "data" / "raw")
    sp.add_argument("--seed", type=int, default=11)
    ex = sub.add_parser("extend")
    ex.add_argument("--raw", type=Path, default=ROOT.parent / "shared" / "data" / "raw")
    args = ap.parse_args()
    args.ann = args.data_dir / "annotation" / args.round
    args.candidates = args.ann / "candidates.jsonl"
    {"batches": cmd_batches, "supplement": cmd_supplement, "merge": cmd_merge, "split": cmd_split,
     "extend": cmd_extend, "review": cmd_review}[args.cmd](args)


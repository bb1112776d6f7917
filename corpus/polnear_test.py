"""The PolNeAR test set: random sentences of 2016 US campaign news, a second test domain.

  sample    split every article of PolNeAR's `dev` compartment (84 articles of 8 Sep - 7 Oct 2016,
            ../shared/data/raw/polnear/, see its SOURCE.md) into sentences with the splitter
            `stance predict` uses, and draw --n of them uniformly at random (not by cue words,
            so the label mix is the real one) into data/annotation/polnear_test/candidates.jsonl,
            with article, publisher and character offsets for provenance.
  finalize  write the merged gold labels to data/test_polnear.jsonl (same columns as
            data/test.jsonl, plus publisher).  Like data/test.jsonl it is never used for a choice.

Annotation runs through the same tool as every round:

    python scripts/polnear_test.py sample
    python scripts/build_corpus.py --round polnear_test batches --n-batches 6 --double 50
    (annotators write data/annotation/polnear_test/labels/batch_NN.jsonl)
    python scripts/build_corpus.py --round polnear_test merge
    python scripts/polnear_test.py finalize
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import random
from pathlib import Path

from corpus.build_corpus import FIELDS, LABELS
from corpus.jsonl import read_jsonl, write_jsonl
from stance.sentences import split_sentences

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT.parent / "shared" / "data" / "raw" / "polnear"


def publishers(raw: Path) -> dict[str, str]:
    with open(raw / "metadata.tsv", encoding="utf-8", newline="") as fh:
        return {r["filename"]: r["publisher"] for r in csv.DictReader(fh, delimiter="\t")}


def all_sentences(raw: Path, compartment: str) -> list[dict]:
    pubs = publishers(raw)
    rows = []
    for path in sorted((raw / compartment / "text").glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        for s in split_sentences(text):
            key = hashlib.sha1(f"{path.stem}:{s.start}".encode()).hexdigest()[:10]
            rows.append({"id": f"polnear-{key}", "text": s.text, "source": "polnear", "doc_id": path.stem,
                         "publisher": pubs.get(path.stem, "unknown"), "start": s.start, "end": s.end,
                         "stratum": "random", "orig_label": None})
    return rows


def cmd_sample(args: argparse.Namespace) -> None:
    rows = all_sentences(args.raw, "dev")
    sample = random.Random(args.seed).sample(rows, args.n)
    sample.sort(key=lambda r: (r["doc_id"], r["start"]))
    write_jsonl(args.ann / "candidates.jsonl", sample)
    print(f"{len(sample)} of {len(rows)} sentences from {len({r['doc_id'] for r in rows})} articles "
          f"-> {args.ann / 'candidates.jsonl'}")


def cmd_finalize(args: argparse.Namespace) -> None:
    cands = {r["id"]: r for r in read_jsonl(args.ann / "candidates.jsonl")}
    gold = read_jsonl(args.ann / "gold.jsonl")
    rows = [{**{f: g[f] for f in FIELDS}, "publisher": cands[g["id"]]["publisher"]} for g in gold]
    write_jsonl(args.out, sorted(rows, key=lambda r: r["id"]))
    counts = {lab: sum(r["label"] == lab for r in rows) for lab in LABELS}
    print(f"{len(rows)} rows -> {args.out}: {counts}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", type=Path, default=RAW, help="the PolNeAR copy (read only)")
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample")
    s.add_argument("--n", type=int, default=900)
    s.add_argument("--seed", type=int, default=2016)
    sub.add_parser("finalize")
    args = ap.parse_args()
    args.ann = args.data_dir / "annotation" / "polnear_test"
    args.out = args.data_dir / "test_polnear.jsonl"
    {"sample": cmd_sample, "finalize": cmd_finalize}[args.cmd](args)


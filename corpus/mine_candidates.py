"""Mine candidate sentences for the stance corpus from ../shared/data/raw.

Reproducible (fixed seed, sorted inputs) and provenance-keeping: every
candidate carries its source, the document it came from, and the sampling
stratum that selected it.  Sentences are split with the project's own
splitter (stance.sentences), the one `stance predict` uses, so training
sentences look like inference sentences.

Strata, chosen so every label is well represented while `none` still reflects
real articles:
  cue_deny / cue_accuse / cue_support  sentences containing a stance cue word
                                       (see corpus.cues.CUES); many are
                                       hard negatives ("rejected the proposal")
  pool_*        source-label pools (CAMEO verbal conflict / cooperation,
                Emergent "against" headlines, RumourEval deny tweets)
  random        plain random article sentences
  hardneg       coded event sentences (PLOVER, CAMEO annotation rounds,
                CAMEO material conflict/cooperation): realistic negatives

Original dataset labels are kept in `orig_label` for the data card but are
never shown to annotators and never used as labels.

    python scripts/mine_candidates.py --raw ../shared/data/raw --out data/annotation/round1/candidates.jsonl
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
from pathlib import Path

from corpus.cues import cue_kinds
from corpus.jsonl import write_jsonl
from stance.sentences import split_sentences

csv.field_size_limit(10**9)

MIN_WORDS, MAX_WORDS = 6, 80
QUOTAS = {  # candidates drawn per stratum (upper bounds)
    "cue_deny": 1500,
    "cue_accuse": 1150,
    "cue_support": 1150,
    "pool_emergent_against": 400,
    "pool_cameo_conflict": 250,
    "pool_cameo_cooperation": 200,
    "pool_rumoureval_deny": 200,
    "random": 1900,
    "random_headline": 150,
    "hardneg": 650,
    # Added after the first annotation round showed support to be the scarcest
    # label: every remaining support-cue sentence.  Drawn last, so the strata
    # above are unchanged by it.
    "cue_support_extra": 10_000,
}


def norm(text: str) -> str:
    return " ".join(text.lower().split())


def sid(source: str, text: str) -> str:
    return f"{source}-{hashlib.sha1(norm(text).encode()).hexdigest()[:10]}"


def ok_len(text: str) -> bool:
    return MIN_WORDS <= len(text.split()) <= MAX_WORDS


def article_sentences(raw: Path) -> list[dict]:
    """Sentences of the two full-article corpora (BBC politics, FNC-1 bodies)."""
    rows = []
    for f in sorted((raw / "articles-bbc" / "politics").glob("*.txt")):
        text = f.read_text(encoding="latin-1")
        for i, s in enumerate(split_sentences(text)):
            rows.append({"text": s.text, "source": "bbc", "doc_id": f"bbc-politics-{f.stem}",
                         "sent_idx": i, "orig_label": None})
    with open(raw / "fnc-1" / "train_bodies.csv", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            for i, s in enumerate(split_sentences(r["articleBody"])):
                rows.append({"text": s.text, "source": "fnc1", "doc_id": f"fnc1-body-{r['Body ID']}",
                             "sent_idx": i, "orig_label": None})
    return rows


def emergent_rows(raw: Path) -> list[dict]:
    rows = []
    with open(raw / "emergent" / "url-versions-2015-06-14-clean.csv", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            # All headlines about one claim are near-paraphrases: the claim is the document.
            rows.append({"text": r["articleHeadline"].strip(), "source": "emergent",
                         "doc_id": f"emergent-claim-{r['claimId']}", "sent_idx": 0,
                         "orig_label": r["articleHeadlineStance"]})
    return rows


def cameo_rows(raw: Path) -> list[dict]:
    rows = []
    for split in ("train", "test"):
        path = raw / "conflibert-cameo-pentaclass" / f"{split}.tsv"
        with open(path, encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                line = line.rstrip("\r\n")
                if not line:
                    continue
                text, label = line.rsplit("\t", 1)
                rows.append({"text": text.strip(), "source": "conflibert",
                             "doc_id": f"conflibert-{split}-{i}", "sent_idx": 0,
                             "orig_label": f"pentaclass-{label}"})
    return rows


def plover_rows(raw: Path) -> list[dict]:
    data = json.loads((raw / "plover-gsr" / "PLOVER_GSR_CAMEO.txt").read_text(encoding="utf-8"))
    return [{"text": r["text"].strip(), "source": "plover", "doc_id": f"plover-{r['id']}",
             "sent_idx": 0, "orig_label": r["event"]}
            for r in data if r.get("event") != "DOCUMENT" and r.get("text")]


def cameo_annot_rows(raw: Path) -> list[dict]:
    rows = []
    for rnd in (7, 10):
        with open(raw / "cameo-conflibert-annot" / f"training_round_{rnd}_summary.csv", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                text = (r.get("sentences") or "").strip()
                if text:
                    rows.append({"text": text, "source": "cameo_annot",
                                 "doc_id": f"cameo_annot-r{rnd}-{r.get('ids') or r.get('No')}",
                                 "sent_idx": 0, "orig_label": None})
    return rows


def rumoureval_rows(raw: Path) -> list[dict]:
    rows = []
    with open(raw / "rumoureval2017" / "rumoureval2017_subtaskA_traindev.tsv", encoding="utf-8") as fh:
        for r in csv.DictReader(fh, delimiter="\t"):
            rows.append({"text": r["text"].strip(), "source": "rumoureval",
                         "doc_id": f"rumoureval-thread-{r['thread_id']}", "sent_idx": 0,
                         "orig_label": r["label"]})
    return rows


def mine(raw: Path, seed: int) -> list[dict]:
    rng = random.Random(seed)
    taken: dict[str, dict] = {}

    def take(rows: list[dict], stratum: str, quota: int) -> None:
        fresh = [r for r in rows if ok_len(r["text"]) and norm(r["text"]) not in taken]
        # Dedupe within the pool too (FNC bodies repeat paragraphs across stories).
        uniq: dict[str, dict] = {}
        for r in fresh:
            uniq.setdefault(norm(r["text"]), r)
        pool = sorted(uniq.values(), key=lambda r: (r["doc_id"], r["sent_idx"], r["text"]))
        rng.shuffle(pool)
        for r in pool[:quota]:
            taken[norm(r["text"])] = {**r, "stratum": stratum}

    arts = article_sentences(raw)
    emer, cameo = emergent_rows(raw), cameo_rows(raw)
    rumour = rumoureval_rows(raw)

    take([r for r in emer if r["orig_label"] == "against"], "pool_emergent_against",
         QUOTAS["pool_emergent_against"])
    for kind in ("deny", "accuse", "support"):
        take([r for r in arts + emer + cameo if kind in cue_kinds(r["text"])], f"cue_{kind}",
             QUOTAS[f"cue_{kind}"])
    take([r for r in cameo if r["orig_label"] == "pentaclass-3"], "pool_cameo_conflict",
         QUOTAS["pool_cameo_conflict"])
    take([r for r in cameo if r["orig_label"] == "pentaclass-1"], "pool_cameo_cooperation",
         QUOTAS["pool_cameo_cooperation"])
    # Tweets without an @-reply prefix read closest to news prose.
    take([r for r in rumour if r["orig_label"] == "deny" and not r["text"].startswith("@")],
         "pool_rumoureval_deny", QUOTAS["pool_rumoureval_deny"])
    take(arts, "random", QUOTAS["random"])
    take([r for r in emer if r["orig_label"] != "against"], "random_headline", QUOTAS["random_headline"])
    hard = plover_rows(raw) + cameo_annot_rows(raw)
    take(hard, "hardneg", len(hard))
    take([r for r in cameo if r["orig_label"] in ("pentaclass-0", "pentaclass-2", "pentaclass-4")],
         "hardneg", QUOTAS["hardneg"] - len(hard))

    take([r for r in arts + emer + cameo if "support" in cue_kinds(r["text"])], "cue_support_extra",
         QUOTAS["cue_support_extra"])

    out = []
    for r in taken.values():
        out.append({"id": sid(r["source"], r["text"]), **r, "cues": cue_kinds(r["text"])})
    out.sort(key=lambda r: r["id"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", type=Path, default=Path("../shared/data/raw"))
    ap.add_argument("--out", type=Path, default=Path("data/annotation/round1/candidates.jsonl"))
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    rows = mine(args.raw, args.seed)
    write_jsonl(args.out, rows)
    from collections import Counter

    print(f"{len(rows)} candidates -> {args.out}")
    for k, v in sorted(Counter(r["stratum"] for r in rows).items()):
        print(f"  {k:26s} {v}")
    for k, v in sorted(Counter(r["source"] for r in rows).items()):
        print(f"  source {k:19s} {v}")


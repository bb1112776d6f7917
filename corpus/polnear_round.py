"""Annotation round 6: candidates from PolNeAR `train` articles, 2015-16 US campaign news.

Rounds 2-5 drew from the first corpus's sources, which hold almost no support left
(round 5's support calls were nearly all wrong, data/README.md).  Campaign news is full of endorsements,
attacks and denials, so round 6 draws from the 840 articles of PolNeAR's `train`
compartment (Nov 2015 - 7 Sep 2016; ../shared/data/raw/polnear/SOURCE.md).  The test
set data/test_polnear.jsonl is PolNeAR's `dev` compartment (8 Sep - 7 Oct 2016), a
separate set of articles: no dev article is read for the pool, no pool sentence may
equal a dev sentence, and both are checked again on the drawn rows (StanceError if not).

  pool      every sentence of the train articles, split with stance.sentences.split_sentences
            (the splitter `stance predict` uses, as for the test set), 6-80 words, not an
            exact duplicate (normalised text) of a sentence of any earlier round's candidates,
            of a labeled file (dev, test, test_*.jsonl, train/*), of any PolNeAR dev sentence,
            or of a sentence kept earlier in the pool (syndicated copies: first article wins)
  strata    drawn in this order, each from what the earlier ones left:
            random            a uniform draw from the whole pool, first, so nothing else
                              bends it: the real label mix of campaign news, an honest
                              estimate of the model's precision and recall there, and the
                              only stratum whose label counts can be read as prevalence
            active_support / active_deny / active_accuse / active_uncertain
                              the current model's stance calls (seeded draw per label) and
                              its least-sure `none` calls (corpus/active_round.select, as in
                              rounds 2-5): its false calls are the hard negatives it lacks,
                              its unsure `none`s hide the stances it misses; support calls
                              get the largest share, support being the rarest class
            cue_support / cue_deny / cue_accuse
                              a seeded draw of the sentences left that hold a stance cue word
                              (corpus/cues.cue_kinds), filed under their rarest class's cue
                              (support, then deny, then accuse); support cues oversampled.
                              Drawn after the model strata, they are mostly cue sentences
                              the model calls `none` with confidence: its blind spots for the
                              words a stance often rides on, and the non-stance senses ("his
                              supporters", "backed up traffic") a model must learn to pass over

Every row keeps its provenance (article file, publisher, character offsets: the
article's text[start:end] is the sentence) and, for analysis only, the model's call
(model_pred: the argmax, as in rounds 2-5, without the model's min_score threshold, so
its borderline calls count as calls) and model_score (that label's calibrated probability);
annotators see only id, source and text (build_corpus.py batches writes nothing else).

Round 6 (model: the default recipe on rounds 1-5, seed 42, with the holder/target span
head, of which only the stance head is used here; data/README.md "Round 6"):
    python scripts/polnear_round.py --model models/stance-spans --round round6
    python scripts/build_corpus.py --round round6 batches --n-batches 6 --double 55
"""

from __future__ import annotations

import csv
import random
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from corpus import active_round, mine_candidates
from corpus.cues import cue_kinds
from corpus.jsonl import read_jsonl
from corpus.polnear_test import RAW, all_sentences
from stance.errors import StanceError

if TYPE_CHECKING:
    import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# Sentences per stratum (upper bounds).  About 3,200 in all, so that at least 3,000 labeled rows remain
# after annotators skip the non-sentences (datelines, credits; see the PolNeAR test set in data/README.md).
# The model strata favour support (the class to grow) and accuse (the weakest label, data/README.md).
QUOTAS = {
    "random": 1050,
    "active_support": 500, "active_deny": 150, "active_accuse": 250, "active_uncertain": 400,
    "cue_support": 450, "cue_deny": 200, "cue_accuse": 200,
}
# Rarest class first: a sentence with cues of several kinds joins the stratum that needs it most.
CUE_ORDER = ("support", "deny", "accuse")


def labeled_texts(data_dir: Path, current: str) -> set[str]:
    """Normalised text of every sentence an earlier round drew or a labeled file holds."""
    seen = active_round.drawn_before(current, data_dir)  # round1..N-1 and polnear_test candidates
    files = [data_dir / "dev.jsonl", data_dir / "test.jsonl"]  # required: a wrong --data-dir fails here
    files += sorted(data_dir.glob("test_*.jsonl")) + sorted((data_dir / "train").glob("*.jsonl"))
    return seen | {mine_candidates.norm(r["text"]) for f in files for r in read_jsonl(f)}


def held_out_articles(raw: Path, data_dir: Path) -> set[str]:
    """PolNeAR articles of the test set's compartment: dev/text files, metadata rows, test rows."""
    held = {p.stem for p in (raw / "dev" / "text").glob("*.txt")}
    held |= {stem for stem, comp in compartments(raw).items() if comp != "train"}
    test = data_dir / "test_polnear.jsonl"
    if test.exists():
        held |= {r["doc_id"] for r in read_jsonl(test)}
    return held


def compartments(raw: Path) -> dict[str, str]:
    with open(raw / "metadata.tsv", encoding="utf-8", newline="") as fh:
        return {r["filename"]: r.get("compartment") or "train" for r in csv.DictReader(fh, delimiter="\t")}


def check_train_only(rows: list[dict], held: set[str], dev_texts: set[str], where: Path) -> None:
    """The test set's articles and sentences never enter a training round (raises, never skips)."""
    shared = sorted({r["doc_id"] for r in rows} & held)
    if shared:
        raise StanceError(f"{where}: article {shared[0]} is in PolNeAR train and in the test set's compartment "
                          f"(dev), {len(shared)} such; the compartments must not share articles")
    leak = next((r for r in rows if mine_candidates.norm(r["text"]) in dev_texts), None)
    if leak:
        raise StanceError(f"{where}: {leak['doc_id']} offset {leak['start']}: a PolNeAR dev sentence in the round")


class Pool(NamedTuple):
    rows: list[dict]  # the eligible train sentences, in article order
    held: set[str]  # the test set's articles
    dev_texts: set[str]  # normalised text of every PolNeAR dev sentence
    left_out: Counter  # sentences read, and how many were left out for each reason


def pool(raw: Path, data_dir: Path, current: str) -> Pool:
    """The train sentences a round may draw, after the compartment check and the exclusions."""
    held = held_out_articles(raw, data_dir)
    rows = all_sentences(raw, "train")
    check_train_only(rows, held, set(), raw / "train" / "text")  # every article read, kept or not
    dev_texts = {mine_candidates.norm(r["text"]) for r in all_sentences(raw, "dev")}
    seen = labeled_texts(data_dir, current)
    kept: dict[str, dict] = {}
    why: Counter = Counter(sentences=len(rows))
    for r in rows:
        key = mine_candidates.norm(r["text"])
        reason = ("length" if not mine_candidates.ok_len(r["text"]) else "dev sentence" if key in dev_texts
                  else "labeled before" if key in seen else "repeated in train" if key in kept else None)
        if reason:
            why[reason] += 1
            continue
        kept[key] = {"id": mine_candidates.sid("polnear", r["text"]), "source": "polnear", "text": r["text"],
                     "doc_id": r["doc_id"], "article": f"train/text/{r['doc_id']}.txt",
                     "publisher": r["publisher"], "start": r["start"], "end": r["end"], "orig_label": None,
                     "cues": cue_kinds(r["text"])}
    return Pool(list(kept.values()), held, dev_texts, why)


def draw(rows: list[dict], probs: np.ndarray, labels: list[str], seed: int, quotas: dict[str, int]) -> list[dict]:
    """Random, then model-chosen, then cue strata, each from what the earlier ones left."""
    rng = random.Random(seed)
    calls = [{**r, "model_pred": labels[int(p.argmax())], "model_score": round(float(p.max()), 4)}
             for r, p in zip(rows, probs)]
    picked = set(rng.sample(range(len(rows)), min(quotas["random"], len(rows))))
    out = [{**calls[i], "stratum": "random"} for i in sorted(picked)]
    rest = [i for i in range(len(rows)) if i not in picked]
    model = active_round.select([calls[i] for i in rest], probs[rest], labels, seed,
                                {k: v for k, v in quotas.items() if k.startswith("active_")})
    out += model
    taken = {r["id"] for r in out}
    for kind in CUE_ORDER:
        left = [r for r in calls if r["id"] not in taken and kind in r["cues"]]
        rng.shuffle(left)
        out += [{**r, "stratum": f"cue_{kind}"} for r in left[:quotas[f"cue_{kind}"]]]
        taken |= {r["id"] for r in out}
    return out


def main() -> None:
    ap = active_round.round_arguments(__doc__, "round6", QUOTAS)
    ap.add_argument("--raw", type=Path, default=RAW, help="the PolNeAR copy (read only)")
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data",
                    help="the corpus folder: dev, test, test_polnear and every earlier annotation/<round>/")
    args = ap.parse_args()
    quotas = active_round.parse_quotas(ap, args.quota, QUOTAS)
    out_path = args.data_dir / "annotation" / args.round / "candidates.jsonl"

    from stance.modeling import StanceClassifier

    found = pool(args.raw, args.data_dir, args.round)
    rows, why = found.rows, found.left_out
    print(f"{why['sentences']} train sentences; left out: "
          + ", ".join(f"{k} {v}" for k, v in why.items() if k != "sentences")
          + f"; pool: {len(rows)} sentences of {len({r['doc_id'] for r in rows})} articles")
    clf = StanceClassifier.load(args.model, backend="auto")
    probs = clf.predict_proba([r["text"] for r in rows], batch_size=args.batch_size, progress="scoring pool")
    print(f"model {args.model} ({clf.backend.name}) predicts "
          f"{dict(Counter(clf.labels[i] for i in probs.argmax(1)))} on the pool")
    out = sorted(draw(rows, probs, clf.labels, args.seed, quotas), key=lambda r: r["id"])
    check_train_only(out, found.held, found.dev_texts, out_path)
    active_round.write_candidates(out_path, out)

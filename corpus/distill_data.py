"""Teacher data for distillation (``train.distill``, stance/distill.py): an unlabeled pool, then the
teacher's probabilities for the training rows and the pool, shipped so users train the student
without running the teacher.

    python scripts/distill_data.py pool                    # data/distill/pool.jsonl
    python scripts/distill_data.py label --name minilm-ensemble MODEL [MODEL ...]

``pool`` draws sentences no round labeled, from stories in no dev/test split: half from
PolNeAR ``train`` articles (2016 campaign news, the domain round 6 began to cover), half from
the other article sources (BBC, FNC-1, Emergent, CAMEO/ConfliBERT), each half at random.
``label`` averages the probabilities of one or more models (a seed ensemble, or one larger
model) over the config's training rows and the pool, writes ``data/distill/<name>.jsonl``
and, beside it, ``<name>.json`` with the teacher's own macro-F1 on dev and the test sets.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from corpus import active_round, mine_candidates, polnear_round
from corpus.jsonl import read_jsonl, write_jsonl
from stance.errors import StanceError
from stance.io import write_json

ROOT = Path(__file__).resolve().parents[1]
# A round name after every labeled one, so that nothing a round drew enters the pool.
AFTER_ROUNDS = "round99"


def draw_pool(raw: Path, data_dir: Path, size: int, seed: int) -> list[dict]:
    """``size`` unlabeled sentences, half PolNeAR train, half the other article sources, each at random;
    ``size`` 0: every free sentence of both (36,702 after round 6)."""
    # The story groups of dev and test are out already; a sentence repeated in another story is too.
    held = {r["text"] for f in [data_dir / "dev.jsonl", data_dir / "test.jsonl", *data_dir.glob("test_*.jsonl")]
            for r in read_jsonl(f)}
    others = [r for r in active_round.free_pool(raw, AFTER_ROUNDS, data_dir) if r["text"] not in held]
    polnear = [r for r in polnear_round.pool(raw / "polnear", data_dir, AFTER_ROUNDS).rows if r["text"] not in held]
    rng = random.Random(seed)
    half = size // 2
    if len(polnear) < size - half or len(others) < half:
        raise StanceError(f"{raw}: only {len(polnear)} PolNeAR and {len(others)} other free sentences; "
                          f"a pool of {size} needs {size - half} and {half}")
    picked = polnear + others if size <= 0 else rng.sample(polnear, size - half) + rng.sample(others, half)
    rows = [{"id": mine_candidates.sid(r["source"], r["text"]), "text": r["text"], "source": r["source"],
             "doc_id": r["doc_id"]} for r in picked]
    return sorted(rows, key=lambda r: r["id"])


def _texts_and_rows(cfg: Any, pool_file: Path) -> tuple[list[str], list[dict]]:
    train_files = [cfg.data.train] if isinstance(cfg.data.train, str) else cfg.data.train
    rows = [{**r, "split": "train"} for f in train_files for r in read_jsonl(Path(f))]
    rows += [{**r, "split": "pool"} for r in read_jsonl(pool_file)]
    seen: dict[str, dict] = {}
    for r in rows:
        seen.setdefault(r["text"], r)  # a sentence both labeled and in the pool is one teacher row
    return list(seen), list(seen.values())


def load_teachers(models: list[Path]) -> tuple[list[Any], list[str]]:
    """The teacher models, loaded once, and their common label order."""
    from stance.modeling import StanceClassifier

    clfs = [StanceClassifier.load(path) for path in models]
    for path, clf in zip(models, clfs):
        if clf.labels != clfs[0].labels:
            raise StanceError(f"{path}: labels {clf.labels} differ from the first teacher's {clfs[0].labels}")
    return clfs, clfs[0].labels


def ensemble_probs(clfs: list[Any], texts: list[str], batch_size: int = 128) -> np.ndarray:
    """Mean probability of the models (each as it ships: its calibrated softmax) over the texts."""
    total = None
    for i, clf in enumerate(clfs, start=1):
        probs = clf.predict_proba(texts, batch_size=batch_size, progress=f"teacher {i}/{len(clfs)}")
        total = probs if total is None else total + probs
    return total / len(clfs)


def teacher_card(clfs: list[Any], labels: list[str], cfg: Any) -> dict:
    """The teacher's macro-F1 and per-class F1 (argmax of the mean) on dev, test and the extra test sets."""
    from stance.data import read_labeled
    from stance.metrics import compute_metrics

    card = {}
    for name, path in [("dev", cfg.data.dev), ("test", cfg.data.test),
                       *((Path(p).stem, p) for p in cfg.data.extra_test)]:
        data = read_labeled(path, labels)
        probs = ensemble_probs(clfs, data.texts)
        m = compute_metrics(data.labels, [labels[i] for i in probs.argmax(1)], labels)
        card[name] = {"n": m["n"], "macro_f1": m["macro_f1"], "accuracy": m["accuracy"],
                      "per_class": {lab: m["per_class"][lab]["f1"] for lab in labels}}
    return card


def _describe(model_dir: Path) -> dict:
    """Which model taught: its backbone, seed and training files (from its saved config), not its path."""
    import yaml

    saved = yaml.safe_load((Path(model_dir) / "stance_config.yaml").read_text(encoding="utf-8"))
    return {"backbone": saved["model"]["name_or_path"], "seed": saved["train"]["seed"],
            "train": saved["data"]["train"]}


def cmd_pool(args: argparse.Namespace) -> None:
    rows = draw_pool(args.raw, args.data_dir, args.size, args.seed)
    write_jsonl(args.out, rows)
    print(f"{args.out}: {len(rows)} sentences; {dict(Counter(r['source'] for r in rows))}")


def _reused_or_scored(clfs: list[Any], labels: list[str], texts: list[str], reuse: Path | None) -> np.ndarray:
    """The teachers' probabilities for ``texts``; those ``reuse`` (an earlier output of the same
    teachers) already holds are taken from it, so a larger pool costs only its new sentences."""
    known = {r["text"]: r["probs"] for r in read_jsonl(reuse)} if reuse else {}
    todo = [i for i, t in enumerate(texts) if t not in known]
    probs = np.zeros((len(texts), len(labels)), dtype=np.float64)
    if todo:
        probs[todo] = ensemble_probs(clfs, [texts[i] for i in todo])
    for i, t in enumerate(texts):
        if t in known:
            probs[i] = [known[t][lab] for lab in labels]
    print(f"{len(texts) - len(todo)} rows reused from {reuse}, {len(todo)} scored" if reuse else f"{len(todo)} scored")
    return probs


def cmd_label(args: argparse.Namespace) -> None:
    from stance.config import load_config

    cfg = load_config(args.config)
    texts, rows = _texts_and_rows(cfg, args.pool)
    clfs, labels = load_teachers(args.models)
    t0 = time.perf_counter()
    probs = _reused_or_scored(clfs, labels, texts, args.reuse)
    out = [{"text": r["text"], "probs": {lab: round(float(p), 5) for lab, p in zip(labels, pr)},
            "split": r["split"], "source": r.get("source"), "doc_id": r.get("doc_id")}
           for r, pr in zip(rows, probs)]
    seconds = time.perf_counter() - t0
    write_jsonl(args.out_dir / f"{args.name}.jsonl", out)
    reused = {"reused_from": str(args.reuse)} if args.reuse else {}  # its rows were scored when it was written
    card = {"teacher": args.name, "models": [_describe(m) for m in args.models], "rows": len(out), **reused,
            "rows_by_split": dict(Counter(r["split"] for r in out)), "label_seconds": round(seconds, 1),
            **teacher_card(clfs, labels, cfg)}
    write_json(args.out_dir / f"{args.name}.json", card)
    print(f"{args.out_dir / args.name}.jsonl: {len(out)} rows in {seconds:.0f}s; teacher macro-F1 "
          + ", ".join(f"{k} {card[k]['macro_f1']:.3f}" for k in card if isinstance(card[k], dict) and "n" in card[k]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pool", help="draw the unlabeled pool")
    p.add_argument("--raw", type=Path, default=ROOT.parent / "shared" / "data" / "raw")
    p.add_argument("--data-dir", type=Path, default=ROOT / "data")
    p.add_argument("--size", type=int, default=20000, help="sentences, half PolNeAR; 0 = every free sentence")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--out", type=Path, default=ROOT / "data" / "distill" / "pool.jsonl")
    p.set_defaults(func=cmd_pool)
    p = sub.add_parser("label", help="teacher probabilities for the training rows and the pool")
    p.add_argument("models", nargs="+", type=Path, help="model directories; more than one = their mean")
    p.add_argument("--name", required=True, help="file stem under --out-dir, e.g. minilm-ensemble")
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "base.yaml")
    p.add_argument("--pool", type=Path, default=ROOT / "data" / "distill" / "pool.jsonl")
    p.add_argument("--out-dir", type=Path, default=ROOT / "data" / "distill")
    p.add_argument("--reuse", type=Path, help="an earlier output of the same teachers: its rows are not scored again")
    p.set_defaults(func=cmd_label)
    args = ap.parse_args()
    args.func(args)

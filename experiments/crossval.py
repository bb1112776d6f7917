"""Cross-validation by story over round-1 train: a decision set seven times dev's size.

Dev is small: resampling it moves macro-F1 by more than the gaps between recipes, so it
cannot tell them apart (docs/results.md, *How much dev can tell*).
Round-1 train was drawn by the same cue-word strata as dev and test,
so it is held out in ``k`` folds instead: for fold *i* every training file of a setting
is trained on without the stories of fold *i*, and fold *i*'s round-1 sentences are
predicted.  Pooling the out-of-fold predictions scores each setting on all of round-1 train.

Folds are drawn by **story** (``scripts/build_corpus.py:story_groups``), not by row:
sentences of one article, and articles of one FNC-1/Emergent story, share wording and
labels, so a fold whose stories also trained the model would flatter whichever setting
has more rows from those stories.  The later rounds' rows come from train stories too,
and are dropped from a fold's training files with them.

Dev still picks each fold's best epoch and threshold, as in ``stance train``; test is
not touched.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from experiments.settings import CrossvalPlan, Setting
from experiments.sweep import run_config, run_file, run_one
from stance.errors import StanceError
from stance.io import write_json, write_text
from stance.metrics import bootstrap_macro_f1


def story_folds(doc_ids: Sequence[str], group_of: Mapping[str, str], k: int, seed: int) -> dict[str, int]:
    """Assign every story group of ``doc_ids`` to one of ``k`` folds, balancing rows; group -> fold.

    Largest groups first, each to the fold with the fewest rows so far (ties broken by a
    seeded shuffle), so folds differ in size by at most one story.
    """
    if k < 2:
        raise StanceError(f"cross-validation needs k >= 2 folds, got {k}")
    sizes = Counter(group_of.get(d, d) for d in doc_ids)
    if len(sizes) < k:
        raise StanceError(f"cross-validation: {len(sizes)} stories cannot fill {k} folds")
    groups = sorted(sizes)
    random.Random(seed).shuffle(groups)
    groups.sort(key=lambda g: -sizes[g])  # stable: the shuffle breaks ties between equal sizes
    load = [0] * k
    fold_of: dict[str, int] = {}
    for g in groups:
        f = min(range(k), key=lambda i: (load[i], i))
        fold_of[g] = f
        load[f] += sizes[g]
    return fold_of


def _read_rows(path: str | Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if line.strip():
                row = json.loads(line)
                if "doc_id" not in row:
                    raise StanceError(f"{path}: line {n}: no doc_id, so its story cannot be held out")
                rows.append(row)
    return rows


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def fold_settings(config: str | Path, setting: Setting, heldout_file: str | Path, group_of: Mapping[str, str],
                  k: int, seed: int, work_dir: str | Path) -> list[tuple[Setting, Path]]:
    """The ``k`` fold variants of ``setting`` and their held-out files.

    Fold *i* trains on the setting's training files minus fold *i*'s stories and is
    tested on fold *i*'s rows of ``heldout_file``.

    ``heldout_file`` (round-1 train) must be one of the setting's training files: its rows
    are the ones predicted.  Fold files are written under ``work_dir``.
    """
    cfg = run_config(config, setting, seed, Path("unused"))
    files = cfg.data.train if isinstance(cfg.data.train, list) else [cfg.data.train]
    if str(heldout_file) not in files:
        raise StanceError(f"cross-validation: {setting.name} does not train on {heldout_file}")
    heldout = _read_rows(heldout_file)
    fold_of = story_folds([r["doc_id"] for r in heldout], group_of, k, seed)
    story = lambda r: group_of.get(r["doc_id"], r["doc_id"])  # noqa: E731
    train_rows = [_read_rows(f) for f in files]
    out: list[tuple[Setting, Path]] = []
    for i in range(k):
        d = Path(work_dir) / f"{setting.name}-k{k}-s{seed}" / f"fold{i}"
        test_path = d / "heldout.jsonl"
        _write_rows(test_path, [r for r in heldout if fold_of[story(r)] == i])
        train_paths = []
        for j, (f, rows) in enumerate(zip(files, train_rows)):
            train_paths.append(d / f"train{j}_{Path(f).name}")
            # Stories outside round-1 train are in no fold, so they always train.
            _write_rows(train_paths[-1], [r for r in rows if fold_of.get(story(r)) != i])
        out.append((Setting(f"{setting.name}@fold{i}of{k}", f"{setting.what} (fold {i} of {k})",
                            (*setting.overrides, f"data.train=[{', '.join(map(str, train_paths))}]",
                             f"data.test={test_path}"), seeds=(seed,)), test_path))
    return out


def run_crossval(config: str | Path, settings: Sequence[Setting], heldout_file: str | Path,
                 group_of: Mapping[str, str], runs_dir: str | Path, work_dir: str | Path, k: int = 3,
                 seed: int = 42, quiet: bool = True, log: Callable[[str], None] = print,
                 train_missing: bool = True) -> dict[str, Any] | None:
    """Train every setting's ``k`` folds (cached per fold in ``runs_dir``) and pool their predictions.

    Returns per setting the pooled out-of-fold macro-F1 and per-class F1, plus the
    paired bootstrap of each setting against the first (same resampled sentences).
    With ``train_missing`` False, a fold not cached yet gives None instead of training.
    """
    from stance.metrics import compute_metrics

    runs_dir, work_dir = Path(runs_dir), Path(work_dir)
    pooled: dict[str, dict[str, Any]] = {}
    for s in settings:
        golds: list[str] = []
        probs: list[np.ndarray] = []
        labels: list[str] = []
        for fs, test_path in fold_settings(config, s, heldout_file, group_of, k, seed, work_dir / "crossval"):
            if not train_missing and not run_file(runs_dir, fs, seed).is_file():
                log(f"cross-validation: {fs.name} not run yet")
                return None
            rec = run_one(config, fs, seed, runs_dir, work_dir, quiet)
            log(f"{fs.name}: held-out macro-F1 {rec['test']['macro_f1']:.3f}, train {rec['train_seconds']:.0f}s")
            labels = rec["test"]["labels"]
            golds += [r["label"] for r in _read_rows(test_path)]
            probs.append(np.asarray(rec["test_probs"]))
        p = np.concatenate(probs)
        preds = [labels[i] for i in p.argmax(1)]
        m = compute_metrics(golds, preds, labels)
        pooled[s.name] = {"macro_f1": m["macro_f1"], "per_class_f1": {lab: m["per_class"][lab]["f1"] for lab in labels},
                          "n": len(golds), "gold": golds, "pred": preds}
    base = settings[0].name
    for name, r in pooled.items():
        if name != base:
            r.update(paired_diff(pooled[base]["gold"], pooled[base]["pred"], r["pred"], labels))
    return {"k": k, "seed": seed, "heldout": str(heldout_file), "baseline": base,
            "settings": {n: {k_: v for k_, v in r.items() if k_ not in ("gold", "pred")} for n, r in pooled.items()}}


def paired_diff(gold: Sequence[str], pred_a: Sequence[str], pred_b: Sequence[str], labels: list[str],
                draws: int = 500, seed: int = 0) -> dict[str, float]:
    """Macro-F1 of b minus a over bootstrap resamples of the same sentences: mean and sd."""
    index = {lab: i for i, lab in enumerate(labels)}
    g, a, b = (np.array([index[x] for x in xs]) for xs in (gold, pred_a, pred_b))
    _, diff = bootstrap_macro_f1(g, [a], [b], n_labels=len(labels), draws=draws, seed=seed)
    return {"diff": float(np.mean(diff)), "diff_sd": float(np.std(diff))}


def story_groups(cache: Path, documents: str, raw_groups: Callable[[], Mapping[str, str]]) -> dict[str, str]:
    """The story group of every document of the training files matching ``documents`` (a glob).

    Read from ``cache``; the first time, computed from ``raw_groups()`` (the union-find
    over the raw sources that the splits were made with) and written there.
    """
    if cache.is_file():
        return json.loads(cache.read_text(encoding="utf-8"))
    groups = raw_groups()
    docs = {json.loads(line)["doc_id"] for f in sorted(Path().glob(documents))
            for line in f.open(encoding="utf-8") if line.strip()}
    group_of = {d: groups.get(d, d) for d in sorted(docs)}
    write_json(cache, group_of)
    return group_of


def run_plan(config: str | Path, plan: CrossvalPlan, settings: Sequence[Setting], group_of: Mapping[str, str],
             cv_dir: Path, work_dir: Path, train_missing: bool, quiet: bool = True) -> dict[str, Any] | None:
    """Run (or read back) the cross-validation ``plan`` names; None while any fold is missing.

    The result, with ``stands_for``, is written to ``cv_dir / "summary.json"``.
    """
    by_name = {s.name: s for s in settings}
    chosen = [by_name[n] for n in (plan.baseline, *plan.others)]
    # Relative paths, so the cached records name the fold files the same on every machine.
    work_dir = Path(os.path.relpath(work_dir.resolve()))
    result = run_crossval(config, chosen, plan.heldout, group_of, cv_dir / "runs", work_dir,
                          k=plan.k, seed=plan.seed, quiet=quiet, train_missing=train_missing)
    if result is not None:
        result["stands_for"] = plan.stands_for
        write_json(cv_dir / "summary.json", result)
    return result

"""Leave one source out: the default recipe on an outlet it never saw, beside the same recipe with it.

For each source group, the run trains on every training row *not* from that group,
chooses its epoch and threshold on the dev rows not from that group (a user with a new
outlet has no dev set for it), and is scored on the group's test sentences.  Beside it,
the shipped recipe (which trained on the group) is scored on the same sentences.  The
gap is what an outlet the model has never seen costs, the honest figure for "new
articles".

Records are cached as ``<runs_dir>/<group>-s<seed>.json`` (predicted label ids, so the
report can bootstrap them); ``scripts/loso.py`` runs them and ``loso_section`` renders the
table of ``docs/results.md``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from corpus.jsonl import read_jsonl, write_jsonl
from stance.config import Config, load_config
from stance.data import read_labeled
from stance.errors import StanceError
from stance.io import write_json
from stance.metrics import bootstrap_macro_f1, compute_metrics

# The major sources and the `source` values each one covers (CAMEO/PLOVER event sentences are one kind).
GROUPS: dict[str, tuple[str, ...]] = {
    "bbc": ("bbc",),
    "fnc1": ("fnc1",),
    "emergent": ("emergent",),
    "cameo": ("conflibert", "cameo_annot", "plover"),
    "polnear": ("polnear",),
}


def split_files(cfg: Config, group: str, extra_test: Sequence[str], work: Path) -> dict[str, str]:
    """Train and dev without the group, test of only the group (from test and the extra test files)."""
    sources = GROUPS[group]
    train_files = [cfg.data.train] if isinstance(cfg.data.train, str) else cfg.data.train
    rows = {
        "train": [r for f in train_files for r in read_jsonl(Path(f)) if r.get("source") not in sources],
        "dev": [r for r in read_jsonl(Path(cfg.data.dev)) if r.get("source") not in sources],
        "test": [r for f in [cfg.data.test, *extra_test] for r in read_jsonl(Path(f)) if r.get("source") in sources],
    }
    if not rows["test"]:
        raise StanceError(f"leave-one-source-out: no test sentence comes from {group} ({', '.join(sources)})")
    for split, split_rows in rows.items():
        write_jsonl(work / f"{split}.jsonl", split_rows)
    return {split: str(work / f"{split}.jsonl") for split in rows}


def _predict_ids(model_dir: Path, texts: list[str], labels: list[str]) -> list[int]:
    """Label ids as the model ships (its dev-chosen threshold)."""
    from stance.modeling import StanceClassifier

    clf = StanceClassifier.load(model_dir)
    return [labels.index(p) for p in clf.decide(clf.predict_proba(texts, batch_size=128))]


def _check_default(model_dir: Path, base: Config) -> int:
    """The seed of a model the config trains (any seed); refuses any other model."""
    import yaml

    from experiments.sweep import comparable_config

    saved = yaml.safe_load((Path(model_dir) / "stance_config.yaml").read_text(encoding="utf-8"))
    seed = int(saved["train"]["seed"])
    want = base.to_dict()
    want["train"]["seed"] = seed
    if comparable_config(saved) != comparable_config(want):
        raise StanceError(f"{model_dir}: not a model the config trains on every source (its saved config differs)")
    return seed


def run_group(config: str | Path, group: str, seed: int, included: Sequence[Path], extra_test: Sequence[str],
              work_dir: Path, runs_dir: Path, quiet: bool = True) -> dict[str, Any]:
    """Train without the group (or reuse the cached record) and score both sides on its test sentences."""
    cache = runs_dir / f"{group}-s{seed}.json"
    if cache.is_file():
        return json.loads(cache.read_text(encoding="utf-8"))
    from stance.train import train

    base = load_config(config)
    work = work_dir / f"{group}-s{seed}"
    files = split_files(base, group, extra_test, work)
    out = work / "model"
    cfg = load_config(config, [f"data.train={files['train']}", f"data.dev={files['dev']}",
                               f"data.test={files['test']}", "data.extra_test=[]", "model.export_onnx=false",
                               f"train.seed={seed}", f"output_dir={out}"])
    metrics = train(cfg, quiet=quiet)
    test = read_labeled(files["test"], base.labels)
    record = {"group": group, "sources": list(GROUPS[group]), "seed": seed,
              "gold": [base.labels.index(lab) for lab in test.labels],
              "train_rows": metrics["train_rows"], "train_seconds": metrics["train_seconds"],
              "without": _predict_ids(out, test.texts, base.labels),
              "included": {f"seed-{_check_default(p, base)}": _predict_ids(p, test.texts, base.labels)
                           for p in included}}
    runs_dir.mkdir(parents=True, exist_ok=True)
    write_json(cache, record)
    shutil.rmtree(work, ignore_errors=True)
    return record


def _interval(values: list[float]) -> str:
    lo, hi = np.percentile(values, [2.5, 97.5])
    return f"[{lo:.3f}, {hi:.3f}]"


def loso_row(record: dict[str, Any], labels: list[str]) -> str:
    """One table row: macro-F1 with and without the source, each with a 95% bootstrap interval, and the gap."""
    gold = np.array(record["gold"])
    with_ids = [np.array(p) for p in record["included"].values()]
    without_ids = [np.array(record["without"])]
    f_with, diff = bootstrap_macro_f1(gold, with_ids, without_ids, n_labels=len(labels), seed=0)
    f_without = [a + d for a, d in zip(f_with, diff)]

    def metrics(ids: np.ndarray) -> dict[str, Any]:
        return compute_metrics([labels[g] for g in gold], [labels[p] for p in ids], labels)

    m_without = metrics(without_ids[0])
    f1_with = float(np.mean([metrics(ids)["macro_f1"] for ids in with_ids]))
    f1_without = m_without["macro_f1"]
    per_class = " / ".join(f"{m_without['per_class'][lab]['f1']:.2f}" for lab in labels)
    return (f"| {record['group']} ({', '.join(record['sources'])}) | {len(gold)} | {record['train_rows']:,} | "
            f"{f1_with:.3f} {_interval(f_with)} | {f1_without:.3f} {_interval(f_without)} | "
            f"{f1_without - f1_with:+.3f} {_interval(diff)} | {per_class} |")


def loso_section(records: Sequence[dict[str, Any]], labels: list[str],
                 command: str = "python scripts/loso.py", notes: str = "") -> list[str]:
    """The table of ``docs/results.md`` (empty when no group has run)."""
    if not records:
        return []
    seeds = sorted({r["seed"] for r in records})
    n_with = sorted({len(r["included"]) for r in records})
    return [
        "## Leave one source out",
        "",
        "Each row trains the default recipe without one source's training rows (and chooses its epoch and "
        "threshold on the dev rows of the other sources), then scores that source's test sentences "
        "(`data/test.jsonl`, and `data/test_polnear.jsonl` for polnear). *With* is the default recipe trained "
        "on every source, scored on the same sentences. Macro-F1 as shipped (dev-chosen threshold), 95% "
        f"bootstrap intervals over the sentences (500 draws); *without* is seed {', '.join(map(str, seeds))}, "
        f"*with* the mean of {'/'.join(map(str, n_with))} seeds. Per-class F1 ({' / '.join(labels)}) are of "
        f"the run without. `{command}`.",
        "",
        "| source left out | test sentences | train rows without it | macro-F1 with it | macro-F1 without it "
        "| without - with | per-class F1 without |",
        "|---|---|---|---|---|---|---|",
        *(loso_row(r, labels) for r in records),
        "",
        *([notes.strip(), ""] if notes.strip() else []),
    ]


def run_all(config: str | Path, groups: Sequence[str], seed: int, included: Sequence[Path],
            extra_test: Sequence[str], work_dir: Path, runs_dir: Path, quiet: bool,
            log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    records = []
    for i, group in enumerate(groups, start=1):
        rec = run_group(config, group, seed, included, extra_test, work_dir, runs_dir, quiet)
        log(f"[{i}/{len(groups)}] {group}: {len(rec['gold'])} test sentences, trained on {rec['train_rows']:,} "
            f"rows in {rec['train_seconds']:.0f}s")
        records.append(rec)
    return records

"""Sections of docs/results.md read from what `stance train` measured in each run: the extra test sets
(the second test domain) and holder/target spans.  Runs recorded before these existed lack them and
are left out; only settings with at least one such run get a row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from experiments.sections import fmt
from experiments.summaries import interval_as_shipped

ROLES = ("holder", "target")


def _ms(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def _interval_cell(runs: Sequence[dict[str, Any]], test_name: str, gold: Sequence[str] | None,
                   labels: list[str]) -> str:
    """The 95% bootstrap interval as shipped, when every run kept its probabilities on the set."""
    probs = [r.get("extra_test_probs", {}).get(test_name) for r in runs]
    if gold is None or any(p is None for p in probs):
        return "–"
    lo, hi = interval_as_shipped(probs, [r.get("min_score") or 0.0 for r in runs], gold, labels)
    return f"{lo:.3f}–{hi:.3f}"


def extra_test_section(names: Sequence[str], by_name: dict[str, list[dict[str, Any]]], labels: list[str],
                       test_name: str = "test_polnear", gold: dict[str, Sequence[str]] | None = None) -> list[str]:
    """Macro-F1 and per-class F1 on an extra test set, as shipped (dev-chosen threshold), per setting;
    with the gold labels of the extra test sets by name, a bootstrap interval for the runs that
    recorded probabilities."""
    rows = []
    for name in names:
        runs = [r for r in by_name.get(name, []) if test_name in r.get("extra_test", {})]
        if not runs:
            continue
        got = [r["extra_test"][test_name] for r in runs]
        per_class = " | ".join(f"{np.mean([g['per_class'][lab]['f1'] for g in got]):.3f}" for lab in labels)
        rows.append(f"| {name} | {len(got)} | {fmt(_ms([g['macro_f1'] for g in got]), len(got))} | "
                    f"{_interval_cell(runs, test_name, (gold or {}).get(test_name), labels)} | {per_class} |")
    if not rows:
        return []
    return [
        f"## Second test domain: `data/{test_name}.jsonl`",
        "",
        "2016 US campaign news of seven outlets (data card: *A second test domain*), never used for a choice. "
        "Macro-F1 as `stance train` ships each run (its dev-chosen threshold), mean ± standard deviation over "
        "the seeds; per-class F1 are means. *95% interval*: the mean over the seeds when the sentences are "
        "resampled (bootstrap, 1,000 draws), for runs recorded with their probabilities on this set (– for "
        "older runs).",
        "",
        f"| setting | seeds | macro-F1 | 95% interval | {' | '.join(labels)} |",
        "|---|---|---|---|" + "---|" * len(labels),
        *rows,
        "",
    ]


def spans_section(names: Sequence[str], by_name: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Holder and target agreement with gold (SQuAD token-F1 and exact match) on dev and test, per setting."""
    rows = []
    for name in names:
        runs = [r for r in by_name.get(name, []) if "spans" in r]
        for split in ("dev", "test"):
            got = [r["spans"][split] for r in runs if split in r["spans"]]
            if not got:
                continue
            cells = [fmt(_ms([g[role][key] for g in got]), len(got)) for role in ROLES
                     for key in ("f1_given_label", "exact_given_label", "f1_end_to_end")]
            rows.append(f"| {name} | {split} | {len(got)} | {got[0]['n']} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return [
        "## Holder and target",
        "",
        "Over the gold accuse/deny/support sentences of each split (`stance evaluate` computes the same): "
        "token-F1 and exact match SQuAD-style (lower-cased, punctuation and articles stripped), *given label* "
        "over the sentences whose label the model got right, *end to end* over all of them (a wrong label or a "
        "missed span scores 0). Mean ± standard deviation over the seeds.",
        "",
        "| setting | split | seeds | stance sentences | holder F1 | holder exact | holder F1 end to end "
        "| target F1 | target exact | target F1 end to end |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def _per_class_cells(per_class: dict[str, float], labels: list[str]) -> list[str]:
    return [f"{per_class[lab]:.2f}" for lab in labels]


def _student_cells(runs: Sequence[dict[str, Any]], split: str, labels: list[str]) -> list[str]:
    """Macro-F1 (mean ± sd over the runs that measured ``split``) and mean per-class F1."""
    got = [r[split] if split in ("dev", "test") else r.get("extra_test", {}).get(split) for r in runs]
    got = [g for g in got if g]
    if not got:
        return ["–"] * (1 + len(labels))
    per_class = {lab: float(np.mean([g["per_class"][lab]["f1"] for g in got])) for lab in labels}
    return [fmt(_ms([g["macro_f1"] for g in got]), len(got)), *_per_class_cells(per_class, labels)]


def teacher_section(student_names: Sequence[str], by_name: dict[str, list[dict[str, Any]]],
                    teachers: Sequence[dict[str, Any]], labels: list[str], notes: str = "",
                    default: str = "spans+round6") -> list[str]:
    """Teachers (seed ensemble, larger model: their cards from scripts/distill_data.py) beside the default
    recipe and the students: dev, test and PolNeAR-test macro-F1 with per-class F1."""
    splits = ("dev", "test", "test_polnear")
    rows = []
    for name in student_names:
        runs = by_name.get(name, [])
        if not runs:
            continue
        cells = [c for split in splits for c in _student_cells(runs, split, labels)]
        role = "the default recipe without a teacher" if name == default else "student"
        rows.append(f"| {name} ({role}, {len(runs)} seed{'s' * (len(runs) > 1)}) | " + " | ".join(cells) + " |")
    for card in teachers:
        cells = [c for split in splits for c in
                 ([f"{card[split]['macro_f1']:.3f}", *_per_class_cells(card[split]["per_class"], labels)]
                  if split in card else ["–"] * (1 + len(labels)))]
        rows.append(f"| {card['teacher']} (teacher, {len(card['models'])} model{'s' * (len(card['models']) > 1)}) | "
                    + " | ".join(cells) + " |")
    if not rows:
        return []
    head = " | ".join(f"{split} macro-F1 | " + " | ".join(labels) for split in splits)
    return [
        "## Teacher and distillation",
        "",
        "The teachers label the training rows and a 20,000-sentence unlabeled pool (`data/distill/`, written by "
        "`python scripts/distill_data.py`); the students train on both with `train.distill` "
        "(`stance/distill.py`). Students: mean (± standard deviation) over seeds, dev and test by argmax as in "
        "the table of settings, PolNeAR as shipped (dev-chosen threshold). Teachers: argmax of the mean "
        "probability of their models. Per-class F1 follow each macro-F1.",
        "",
        f"| model | {head} |",
        "|---|" + "---|" * (len(splits) * (1 + len(labels))),
        *rows,
        "",
        *([notes.strip(), ""] if notes.strip() else []),
    ]

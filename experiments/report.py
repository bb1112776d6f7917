"""The results report: a pure function of the cached runs and the baselines, written as Markdown and PNGs.

Every number in the report comes from a run, none is typed in.  ``render_report`` runs
named steps: summarize the settings, pick the winner (``experiments.winner``), measure
the winner as shipped, draw the plots, then write one section after another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from experiments.plots import plot_curve
from experiments.sections import (
    calibration_section,
    confusion_section,
    crossval_section,
    curve_section,
    dev_resolution,
    errors_section,
    fmt,
    headline,
    models_section,
)
from experiments.sections_more import extra_test_section, spans_section
from experiments.settings import Setting, is_curve_point
from experiments.summaries import (
    Summary,
    ensemble,
    interval_as_shipped,
    paired_bootstrap,
    summarize,
    threshold_to_none,
    uncalibrated_ece,
)
from experiments.winner import Choice, pick_winner
from stance.data import LabeledData
from stance.io import write_text
from stance.metrics import expected_calibration_error, plot_confusion

# One line of the table of all models: name, seeds, dev and test macro-F1, per-class test F1, test accuracy,
# train seconds (None for the keyword rule), sentences per second.
Row = tuple[str, str, str, str, dict[str, float], float, float | None, float]


@dataclass(frozen=True)
class Shipped:
    """The winner as ``stance train`` ships it: its runs with the dev-chosen ``none`` threshold."""

    records: list[dict[str, Any]]      # the winner's runs, plain argmax
    thresholded: list[dict[str, Any]]  # the same runs, scored with their thresholds
    thresholds: list[float]
    summary: Summary                   # of the thresholded runs
    ref: dict[str, Any]                # the reference run (seed 42 where run), thresholded
    ref_threshold: float


def _by_setting(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_name: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_name.setdefault(r["setting"], []).append(r)
    return by_name


def shipped_runs(winner: Summary, records: list[dict[str, Any]], dev: LabeledData, test: LabeledData,
                 labels: list[str]) -> Shipped:
    """The winner's runs with the threshold `stance train` chooses on dev, and the reference run among them."""
    thresholded, thresholds = threshold_to_none(records, dev, test, labels)
    summary = summarize(Setting(f"{winner.name} + threshold", ""), thresholded, labels)
    # The default-config run (seed 42 of the winner) is what `stance train configs/base.yaml` produces;
    # its confusion matrix and errors are those of the model as shipped, threshold included.
    ref_i = next((i for i, r in enumerate(records) if r["seed"] == 42), 0)
    return Shipped(records, thresholded, thresholds, summary, thresholded[ref_i], thresholds[ref_i])


def baseline_rows(baselines: dict[str, Any], labels: list[str]) -> list[Row]:
    rows = []
    for name in ("keyword rule", "tfidf+logreg"):
        b = baselines[name]
        pc = {lab: b["test"]["per_class"][lab]["f1"] for lab in labels}
        if name == "tfidf+logreg":
            name = "TF-IDF + LR (" + ", ".join(f"{k} {v}" for k, v in b["settings"].items()) + ", chosen on dev)"
        rows.append((name, "1 (deterministic)",
                     f"{b['dev']['macro_f1']:.3f}", f"{b['test']['macro_f1']:.3f}", pc, b["test"]["accuracy"],
                     b.get("train_seconds"), b["sentences_per_second"]))
    return rows


def recipe_rows(summaries: Sequence[Summary], winner: Summary) -> list[Row]:
    rows = []
    for s in summaries:
        label = f"MiniLM-L6 {s.name}" + (" **(winner)**" if s.name == winner.name else "")
        rows.append((f"{label}: {s.what}", str(s.n), fmt(s.dev_f1, s.n), fmt(s.test_f1, s.n), s.per_class,
                     s.test_acc, s.train_seconds, s.sentences_per_second))
    return rows


def shipped_rows(winner: Summary, shipped: Shipped, dev: LabeledData, test: LabeledData,
                 labels: list[str]) -> list[Row]:
    """The winner with its threshold, and the mean of its seeds where it ran several."""
    thr, runs = shipped.summary, shipped.records
    rows: list[Row] = [
        (f"MiniLM-L6 {winner.name} as `stance train` ships it: + score threshold → none (chosen on dev, "
         f"per seed: {', '.join(f'{t:.2f}' for t in shipped.thresholds)}; `train.fit_min_score`)",
         str(thr.n), fmt(thr.dev_f1, thr.n), fmt(thr.test_f1, thr.n), thr.per_class, thr.test_acc,
         winner.train_seconds, winner.sentences_per_second)]
    if len(runs) > 1:
        ens = ensemble(runs, test, dev, labels)
        rows.append((f"MiniLM-L6 {winner.name}, mean of its {len(runs)} seeds (ensemble; "
                     f"{len(runs)}x inference cost)", "1", f"{ens['dev']['macro_f1']:.3f}",
                     f"{ens['test']['macro_f1']:.3f}", {lab: ens["test"]["per_class"][lab]["f1"] for lab in labels},
                     ens["test"]["accuracy"], winner.train_seconds * len(runs),
                     winner.sentences_per_second / len(runs)))
    return rows


def learning_curve(settings: Sequence[Setting], by_name: dict[str, list[dict[str, Any]]],
                   fallback: list[dict[str, Any]]) -> tuple[dict[float, float], dict[float, int]]:
    """Test macro-F1 of the curve settings by share of the default setting's rows, and their seed counts."""
    # Curve points at their share of the default setting's (round-1) training rows.
    base = by_name.get("default", fallback)
    base_rows = next((r for r in base if r["seed"] == 42), base[0])["train_rows"]
    # A point run over several seeds is their mean: one seed alone can sit 0.02-0.04 off.
    curve, curve_seeds = {}, {}
    for s in settings:
        runs = by_name.get(s.name, [])
        if s.curve and runs:
            x = round(runs[0]["train_rows"] / base_rows, 2)
            curve[x] = float(np.mean([r["test"]["macro_f1"] for r in runs]))
            curve_seeds[x] = len(runs)
    return curve, curve_seeds


def calibration(ref: dict[str, Any], test: LabeledData, labels: list[str]) -> tuple[float, float]:
    """Expected calibration error of the reference run on test, before and after its temperature."""
    index = {lab: i for i, lab in enumerate(labels)}
    gold = np.array([index[g] for g in test.labels])
    probs = np.asarray(ref["test_probs"])
    return uncalibrated_ece(probs, ref["temperature"], gold), expected_calibration_error(probs, gold)


def render_report(
    settings: Sequence[Setting],
    records: Sequence[dict[str, Any]],
    baselines: dict[str, Any],
    dev: LabeledData,
    test: LabeledData,
    labels: list[str],
    out: str | Path,
    *,
    budget_s: int,
    notes: dict[str, str] | None = None,
    commentary: str = "",
    command: str = "python scripts/compare.py",
    machine: str = "",
    shipped: str | None = None,
    crossval: dict[str, Any] | None = None,
    appendix: Sequence[str] = (),
    extra_gold: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Write the Markdown report and its PNGs; return the headline facts (winner, its numbers).

    ``budget_s``: the training time a winner may take.  ``shipped``: the setting that
    ``configs/base.yaml`` as shipped trains (None: none of them); the report says whether it
    is the winner.  ``appendix``: more sections (Markdown lines), placed before the error analysis.
    ``extra_gold``: gold labels of the extra test sets by name, for their bootstrap intervals.
    ``crossval``: ``experiments.crossval.run_crossval``'s result plus
    ``stands_for``; how it can overrule dev is ``experiments.winner.pick_winner``'s rule.
    """
    out = Path(out)
    asset_dir = out.with_suffix("")
    asset_dir.mkdir(parents=True, exist_ok=True)
    by_name = _by_setting(records)
    summaries = [summarize(s, by_name[s.name], labels) for s in settings
                 if not is_curve_point(s) and by_name.get(s.name)]
    choice = pick_winner(summaries, budget_s, crossval)
    winner, runner = choice.winner, choice.runner_up
    as_shipped = shipped_runs(winner, by_name[winner.name], dev, test, labels)
    # How much dev can tell: the winner against the next best setting on dev (and the best past the
    # budget), on resampled sentences.
    def against(other: Summary | None) -> dict[str, Any]:
        return {split: paired_bootstrap(as_shipped.records, by_name[other.name], split, data, labels)
                for split, data in (("dev", dev), ("test", test))} if other else {}

    slow = choice.over_budget
    boot, boot_slow = against(runner), against(slow)
    rows = [*baseline_rows(baselines, labels), *recipe_rows(summaries, winner),
            *shipped_rows(winner, as_shipped, dev, test, labels)]
    ref = as_shipped.ref
    plot_confusion(ref["test"], asset_dir / "confusion_test.png",
                   title=f"{winner.name}, seed {ref['seed']}: test macro-F1 {ref['test']['macro_f1']:.3f}")
    curve, curve_seeds = learning_curve(settings, by_name, as_shipped.records)
    tf_curve = {float(k): v for k, v in baselines["tfidf_curve"].items()}
    plot_curve({"MiniLM-L6 default recipe (mean of the seeds run)": curve, "TF-IDF + LR": tf_curve},
               asset_dir / "learning_curve.png")
    ece_before, ece_after = calibration(ref, test, labels)
    tfidf_f1 = baselines["tfidf+logreg"]["test"]["macro_f1"]
    lines = [
        *headline(choice, as_shipped.summary, crossval, budget_s, tfidf_f1, shipped, command, asset_dir.name, machine,
                  interval_as_shipped([r["test_probs"] for r in as_shipped.records], as_shipped.thresholds,
                                      test.labels, labels)),
        *models_section(rows, labels),
        *dev_resolution(boot, runner, len(dev), (slow, boot_slow, budget_s)),
        *(crossval_section(crossval, choice.dev_winner.name, len(dev), labels) if choice.cv_best else []),
        *confusion_section(winner.name, ref, as_shipped.ref_threshold, labels, asset_dir.name),
        *curve_section(curve, curve_seeds, tf_curve, asset_dir.name),
        *calibration_section(ref["temperature"], ece_before, ece_after),
        *extra_test_section([s.name for s in settings], by_name, labels, gold=extra_gold),
        *spans_section([s.name for s in settings], by_name),
        *appendix,
        *errors_section(winner.name, ref, as_shipped.ref_threshold, test, labels, notes or {}),
    ]
    if commentary:
        lines += ["## Reading the results", "", commentary.strip(), ""]
    write_text(out, "\n".join(lines))
    return _facts(choice, as_shipped, shipped, boot, tfidf_f1, ref, labels, ece_before, ece_after)


def _facts(choice: Choice, as_shipped: Shipped, shipped: str | None, boot: dict[str, Any], tfidf_f1: float,
           ref: dict[str, Any], labels: list[str], ece_before: float, ece_after: float) -> dict[str, Any]:
    winner = choice.winner
    return {"winner": winner.name, "dev_winner": choice.dev_winner.name, "shipped": shipped,
            "test_f1": winner.test_f1, "dev_f1": winner.dev_f1,
            "shipped_test_f1": as_shipped.summary.test_f1, "thresholds": as_shipped.thresholds,
            "runner_up": choice.runner_up.name if choice.runner_up else None, "bootstrap": boot,
            "train_seconds": winner.train_seconds, "tfidf_test_f1": tfidf_f1,
            "weakest": min(labels, key=lambda lab: ref["test"]["per_class"][lab]["f1"]),
            "ece_before": ece_before, "ece_after": ece_after}

"""What the report says about a setting's runs: means over seeds, thresholds, ensembles, bootstraps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from experiments.settings import Setting
from stance.calibration import fit_min_score
from stance.data import LabeledData
from stance.metrics import bootstrap_interval, bootstrap_macro_f1, compute_metrics, expected_calibration_error
from stance.modeling import decide_labels


@dataclass
class Summary:
    """Mean and spread of one setting over its seeds."""

    name: str
    what: str
    n: int
    dev_f1: tuple[float, float]
    test_f1: tuple[float, float]
    test_acc: float
    per_class: dict[str, float]
    train_seconds: float
    sentences_per_second: float
    extra: dict[str, Any] = field(default_factory=dict)


def _mean_sd(xs: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(xs, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def summarize(setting: Setting, records: Sequence[dict[str, Any]], labels: list[str]) -> Summary:
    """One setting's runs as means over seeds; its speeds are those of its least disturbed run."""
    return Summary(
        setting.name, setting.what, len(records),
        _mean_sd([r["dev"]["macro_f1"] for r in records]),
        _mean_sd([r["test"]["macro_f1"] for r in records]),
        float(np.mean([r["test"]["accuracy"] for r in records])),
        {lab: float(np.mean([r["test"]["per_class"][lab]["f1"] for r in records])) for lab in labels},
        # The fastest seed: runs that shared the 2 cores with other work trained up to 4x slower.
        float(np.min([r["train_seconds"] for r in records])),
        float(np.max([r["sentences_per_second"] for r in records])),  # likewise, the least disturbed run
    )


def threshold_to_none(records: Sequence[dict[str, Any]], dev: LabeledData, test: LabeledData,
                      labels: list[str]) -> tuple[list[dict[str, Any]], list[float]]:
    """Per run: the min score (chosen on dev) under which a stance becomes ``none``; test metrics with it.

    This is what a model trained with ``train.fit_min_score`` does in ``stance
    predict`` and ``stance evaluate``: the run's own saved threshold where it
    has one, otherwise the same choice (``fit_min_score``) made from its dev
    probabilities.
    """
    out, chosen = [], []
    for r in records:
        dp, tp = np.asarray(r["dev_probs"]), np.asarray(r["test_probs"])
        t = r.get("min_score")
        if t is None:
            t = fit_min_score(dp, dev.labels, labels)["min_score"]
        chosen.append(float(t))
        out.append({**r, "dev": compute_metrics(dev.labels, decide_labels(dp, labels, t), labels),
                    "test": compute_metrics(test.labels, decide_labels(tp, labels, t), labels)})
    return out, chosen


def ensemble(records: Sequence[dict[str, Any]], test: LabeledData, dev: LabeledData,
             labels: list[str]) -> dict[str, Any]:
    """Mean probabilities of several seeds: what an ensemble would buy, at N times the inference cost."""
    out: dict[str, Any] = {}
    for split, data in (("dev", dev), ("test", test)):
        p = np.mean([np.asarray(r[f"{split}_probs"]) for r in records], axis=0)
        out[split] = compute_metrics(data.labels, [labels[i] for i in p.argmax(1)], labels, p)
    return out


def paired_bootstrap(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]], split: str, data: LabeledData,
                     labels: list[str], draws: int = 500, seed: int = 0) -> dict[str, float]:
    """How far resampling the split's sentences moves macro-F1 (mean over each setting's seeds).

    Returns ``sd_a`` (spread of setting a's macro-F1) and the paired difference b - a
    (``diff``, ``diff_sd``): both settings are scored on the same resampled sentences,
    so what is left is the evidence the split holds for one over the other.
    """
    index = {lab: i for i, lab in enumerate(labels)}
    gold = np.array([index[g] for g in data.labels])
    preds = [[np.asarray(r[f"{split}_probs"]).argmax(1) for r in runs] for runs in (a, b)]
    fa, diff = bootstrap_macro_f1(gold, *preds, n_labels=len(labels), draws=draws, seed=seed)
    return {"sd_a": float(np.std(fa)), "diff": float(np.mean(diff)), "diff_sd": float(np.std(diff))}


def interval_as_shipped(probs: Sequence[Any], thresholds: Sequence[float], gold: Sequence[str],
                       labels: list[str]) -> tuple[float, float]:
    """95% bootstrap interval of the mean macro-F1 over runs, each deciding with its own `none`
    threshold as `stance predict` does; ``probs``: one (sentences x labels) array per run."""
    index = {lab: i for i, lab in enumerate(labels)}
    preds = [np.array([index[x] for x in decide_labels(np.asarray(p), labels, t)]) for p, t in zip(probs, thresholds)]
    return bootstrap_interval(np.array([index[g] for g in gold]), preds, len(labels))


def uncalibrated_ece(probs: np.ndarray, temperature: float, gold_ids: np.ndarray) -> float:
    """ECE at temperature 1, recovered from calibrated probabilities (log p * T = logits + const)."""
    z = np.log(np.clip(probs, 1e-12, 1.0)) * temperature
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return expected_calibration_error(p, gold_ids)

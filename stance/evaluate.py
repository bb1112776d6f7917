"""Held-out evaluation: metrics, confusion matrix plot, error listing.

Macro-F1 is the headline metric: `none` dominates real articles, so accuracy
rewards a model that never finds a stance.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from stance.data import LabeledData, read_labeled
from stance.errors import StanceError
from stance.io import atomic_dir, atomic_open, check_output_dir, output_lock, write_json
from stance.modeling import decide_labels


def expected_calibration_error(probs: np.ndarray, gold_ids: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the top-label confidence, equal-width bins (Guo et al., 2017)."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == gold_ids
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def compute_metrics(
    golds: Sequence[str], preds: Sequence[str], labels: Sequence[str], probs: np.ndarray | None = None
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class P/R/F1/support and the confusion matrix (rows = gold)."""
    labels = list(labels)
    p, r, f, s = precision_recall_fscore_support(golds, preds, labels=labels, zero_division=0)
    metrics: dict[str, Any] = {
        "n": len(golds),
        "accuracy": float(accuracy_score(golds, preds)),
        "macro_f1": float(np.mean(f)),
        "per_class": {
            lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, lab in enumerate(labels)
        },
        "labels": labels,
        "confusion_matrix": confusion_matrix(golds, preds, labels=labels).tolist(),
    }
    if probs is not None:
        index = {lab: i for i, lab in enumerate(labels)}
        metrics["ece"] = expected_calibration_error(probs, np.array([index[g] for g in golds]))
    return metrics


def format_table(metrics: dict[str, Any]) -> str:
    lines = [f"{'label':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for lab, m in metrics["per_class"].items():
        lines.append(f"{lab:<12}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['f1']:>10.3f}{m['support']:>10d}")
    lines.append(f"{'macro-F1':<12}{'':>20}{metrics['macro_f1']:>10.3f}{metrics['n']:>10d}")
    lines.append(f"{'accuracy':<12}{'':>20}{metrics['accuracy']:>10.3f}")
    return "\n".join(lines)


def plot_confusion(metrics: dict[str, Any], path: str | Path, title: str = "") -> None:
    """Row-normalised confusion matrix with raw counts in each cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = metrics["labels"]
    cm = np.array(metrics["confusion_matrix"], dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.3 * len(labels) + 2, 1.1 * len(labels) + 1.5))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{int(cm[i, j])}\n{norm[i, j]:.0%}", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=9)
    ax.set_title(title or f"macro-F1 {metrics['macro_f1']:.3f}")
    fig.tight_layout()
    with atomic_open(path, "wb", encoding=None) as fh:
        fig.savefig(fh, format="png", dpi=120)
    plt.close(fig)


def evaluate_data(
    clf: Any, data: LabeledData, batch_size: int = 64, quiet: bool = False
) -> tuple[dict[str, Any], list[dict]]:
    """Metrics for one labeled set, plus the misclassified rows (most confident first)."""
    missing = sorted(set(data.labels) - set(clf.labels))
    if missing:
        raise StanceError(f"{data.path}: labels {missing} are not labels of this model ({', '.join(clf.labels)})")
    probs = clf.predict_proba(data.texts, batch_size=batch_size,
                              progress=None if quiet else f"Evaluating {Path(data.path).name}")
    preds = clf.decide(probs)
    metrics = compute_metrics(data.labels, preds, clf.labels, probs)
    errors = [
        {"text": t, "gold": g, "predicted": p, "score": float(pr.max()),
         "scores": {lab: round(float(x), 4) for lab, x in zip(clf.labels, pr)}}
        for t, g, p, pr in zip(data.texts, data.labels, preds, probs)
        if g != p
    ]
    errors.sort(key=lambda e: -e["score"])
    return metrics, errors


def write_report(out: Path, metrics: dict[str, Any], errors: list[dict], title: str = "") -> None:
    import json

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    plot_confusion(metrics, out / "confusion_matrix.png", title=title)
    with atomic_open(out / "errors.jsonl") as fh:
        for e in errors:
            fh.write(json.dumps(e, ensure_ascii=False) + "\n")


def evaluate(
    model_dir: str | Path,
    data_paths: Sequence[str | Path],
    out_dir: str | Path,
    text_column: str = "text",
    label_column: str = "label",
    batch_size: int = 64,
    backend: str = "torch",
    quiet: bool = False,
    overwrite: bool = False,
) -> dict[str, dict[str, Any]]:
    """Evaluate a saved model on one or more labeled files and write reports.

    One file: reports sit directly in ``out_dir``.  Several: one sub-folder per
    file stem, plus ``summary.json`` with the headline numbers side by side.
    The folder appears whole; an earlier report there is replaced only with
    ``overwrite``, and anything else never.
    """
    from stance.modeling import StanceClassifier

    out_dir = Path(out_dir)
    check_output_dir(out_dir, ("report",), overwrite, "--out")
    clf = StanceClassifier.load(model_dir, backend=backend)
    # Read and validate every file before writing anything.
    datasets = [read_labeled(p, clf.labels, text_column, label_column) for p in data_paths]
    stems = [Path(p).stem for p in data_paths]
    if len(set(stems)) != len(stems):
        stems = [f"{i}-{s}" for i, s in enumerate(stems)]
    reports: dict[str, tuple[dict[str, Any], list[dict]]] = {}
    for stem, data in zip(stems, datasets):
        metrics, errors = evaluate_data(clf, data, batch_size, quiet)
        metrics["data"] = data.path
        reports[stem] = metrics, errors
    results = {stem: m for stem, (m, _) in reports.items()}
    with output_lock(out_dir), atomic_dir(out_dir) as tmp:
        for stem, (metrics, errors) in reports.items():
            target = tmp if len(datasets) == 1 else tmp / stem
            write_report(target, metrics, errors, title=f"{stem}: macro-F1 {metrics['macro_f1']:.3f}")
        if len(datasets) > 1:
            write_json(tmp / "summary.json", {
                stem: {"data": m["data"], "n": m["n"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
                       **{f"f1_{lab}": m["per_class"][lab]["f1"] for lab in m["labels"]}}
                for stem, m in results.items()
            })
    return results


def format_summary(results: dict[str, dict[str, Any]]) -> str:
    labels = next(iter(results.values()))["labels"]
    head = f"{'set':<20}{'n':>7}{'acc':>8}{'macro-F1':>10}" + "".join(f"{lab[:9]:>10}" for lab in labels)
    rows = [head]
    for stem, m in results.items():
        rows.append(f"{stem[:19]:<20}{m['n']:>7d}{m['accuracy']:>8.3f}{m['macro_f1']:>10.3f}"
                    + "".join(f"{m['per_class'][lab]['f1']:>10.3f}" for lab in labels))
    return "\n".join(rows)


def fit_temperature(probs: np.ndarray, gold_ids: np.ndarray) -> float:
    """Softmax temperature minimising dev log-loss (Guo et al., 2017).

    Takes probabilities computed at temperature 1: their logs equal the logits
    up to a per-row constant, which the softmax ignores.  Labels (argmax) do not
    change; only how far `score` can be trusted as a probability.
    """
    from scipy.optimize import minimize_scalar

    z = np.log(np.clip(probs, 1e-12, 1.0))
    rows = np.arange(len(gold_ids))

    def nll(log_t: float) -> float:
        s = z / np.exp(log_t)
        s = s - s.max(axis=1, keepdims=True)
        return float(-(s[rows, gold_ids] - np.log(np.exp(s).sum(axis=1))).mean())

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))


def calibrate(clf: Any, dev: LabeledData, batch_size: int = 64) -> dict[str, float]:
    """Fit ``clf.temperature`` on labeled dev data; returns ECE and log-loss before and after."""
    index = {lab: i for i, lab in enumerate(clf.labels)}
    gold = np.array([index[g] for g in dev.labels])
    clf.temperature = 1.0
    probs = clf.predict_proba(dev.texts, batch_size=batch_size)
    t = fit_temperature(probs, gold)
    clf.temperature = t
    after = clf.scores(np.log(np.clip(probs, 1e-12, 1.0)))

    def logloss(p: np.ndarray) -> float:
        return float(-np.log(np.clip(p[np.arange(len(gold)), gold], 1e-12, 1.0)).mean())

    return {"temperature": round(t, 4), "dev_ece_before": expected_calibration_error(probs, gold),
            "dev_ece_after": expected_calibration_error(after, gold),
            "dev_logloss_before": logloss(probs), "dev_logloss_after": logloss(after)}


# Candidate thresholds for ``fit_min_score``; 0 (plain argmax) comes first so it wins ties.
# With four labels the top score is never below 0.25, so 0.30 is the first that can change a label.
MIN_SCORE_GRID: tuple[float, ...] = (0.0, *np.round(np.arange(0.30, 0.96, 0.05), 2).tolist())


def fit_min_score(probs: np.ndarray, gold: Sequence[str], labels: Sequence[str],
                  fallback: str = "none") -> dict[str, float]:
    """The score under which a stance prediction becomes ``fallback``, chosen to maximise macro-F1.

    Fit on dev (calibrated probabilities).  Class weighting makes the model
    call minority stances generously; the rare labels then pay in precision,
    which a threshold buys back where the model is unsure.  0 means argmax
    is best and nothing changes.
    """
    labels = list(labels)
    if fallback not in labels:
        return {"min_score": 0.0, "macro_f1_before": float("nan"), "macro_f1_after": float("nan")}
    scores = [compute_metrics(list(gold), decide_labels(probs, labels, t, fallback), labels)["macro_f1"]
              for t in MIN_SCORE_GRID]
    i = int(np.argmax(scores))
    return {"min_score": float(MIN_SCORE_GRID[i]), "macro_f1_before": scores[0], "macro_f1_after": scores[i]}


def choose_min_score(clf: Any, dev: LabeledData, batch_size: int = 64) -> dict[str, float]:
    """Fit ``clf.min_score`` on labeled dev data (after calibration, so it is a probability)."""
    probs = clf.predict_proba(dev.texts, batch_size=batch_size)
    result = fit_min_score(probs, dev.labels, clf.labels)
    clf.min_score = result["min_score"]
    return result


def calibrate_model_dir(model_dir: str | Path, data: str | Path | None = None) -> dict[str, float]:
    """Fit and store the temperature of a saved model (``stance_temperature`` in config.json).

    A model with a dev-chosen ``none`` threshold (``stance_min_score``) gets it chosen again.

    ``data`` defaults to the dev split named in the model's ``stance_config.yaml``.
    """
    import json

    from stance.data import read_model_split
    from stance.modeling import StanceClassifier, check_model_dir

    model_dir = check_model_dir(model_dir)
    clf = StanceClassifier.load(model_dir)
    dev = read_model_split(model_dir, clf.labels, data, "dev")
    if dev is None:
        raise StanceError(f"{model_dir}: no dev split found from stance_config.yaml; pass --data FILE")
    result = calibrate(clf, dev)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    config["stance_temperature"] = result["temperature"]
    if "stance_min_score" in config:
        # The threshold is a probability under the old temperature: choose it again under the new one.
        result["min_score"] = choose_min_score(clf, dev)["min_score"]
        config["stance_min_score"] = result["min_score"]
    write_json(model_dir / "config.json", config)
    return {**result, "data": dev.path}

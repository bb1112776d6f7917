"""Metrics: macro-F1 and per-class scores, span match and token-F1, calibration error, bootstrap intervals, plots.

Macro-F1 is the headline metric: `none` dominates real articles, so accuracy
rewards a model that never finds a stance.  One module, so `stance evaluate`,
`stance train` and the experiment reports compute every number the same way.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from stance.io import atomic_open

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_span(text: str | None) -> str:
    """SQuAD's answer normalisation: lower-case, no punctuation, no articles, single spaces."""
    if not text:
        return ""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def span_exact(pred: str | None, gold: str | None) -> float:
    """1.0 when both normalise to the same words; two nulls agree, a null against a span does not."""
    return float(normalize_span(pred) == normalize_span(gold))


def span_token_f1(pred: str | None, gold: str | None) -> float:
    """SQuAD token-F1 between two spans; null (or a span of only articles/punctuation) is the empty span."""
    p, g = normalize_span(pred).split(), normalize_span(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if not common:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def span_metrics(golds: Sequence[str], preds: Sequence[str], gold_spans: Sequence[dict | None],
                 pred_spans: Sequence[dict], no_stance: str = "none") -> dict[str, Any] | None:
    """Exact match and token-F1 of holder and target over the gold stance sentences that carry span
    annotation: given the right label (over those the model labels right), and end to end (over all
    of them; a wrong label scores 0, as does a missed span).  None when no such sentence exists.

    ``gold_spans[i]``: None (not annotated) or {"holder", "target"}; ``pred_spans[i]``: {"holder", "target"}.
    """
    rows = [i for i, g in enumerate(golds) if g != no_stance and gold_spans[i] is not None]
    if not rows:
        return None
    right = [i for i in rows if preds[i] == golds[i]]
    out: dict[str, Any] = {"n": len(rows), "n_label_correct": len(right)}
    for role in ("holder", "target"):
        pairs = [((pred_spans[i][role] or {}).get("text"), (gold_spans[i][role] or {}).get("text")) for i in right]
        exact = sum(span_exact(p, g) for p, g in pairs)
        f1 = sum(span_token_f1(p, g) for p, g in pairs)
        out[role] = {"exact_given_label": exact / len(right) if right else None,
                     "f1_given_label": f1 / len(right) if right else None,
                     "exact_end_to_end": exact / len(rows), "f1_end_to_end": f1 / len(rows)}
    return out


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


def _mean_macro_f1(gold: np.ndarray, preds: Sequence[np.ndarray], idx: np.ndarray, n_labels: int) -> float:
    from sklearn.metrics import f1_score

    return float(np.mean([f1_score(gold[idx], p[idx], labels=range(n_labels), average="macro", zero_division=0)
                          for p in preds]))


def bootstrap_macro_f1(gold: np.ndarray, preds_a: Sequence[np.ndarray], preds_b: Sequence[np.ndarray],
                       n_labels: int, draws: int = 500, seed: int = 0) -> tuple[list[float], list[float]]:
    """Macro-F1 of a, and of b minus a, on the same bootstrap resamples of the sentences.

    ``preds_a``/``preds_b``: one label-id array per model (seed); each side's score is
    the mean over its models.
    """
    rng = np.random.default_rng(seed)
    fa, diff = [], []
    for _ in range(draws):
        i = rng.integers(0, len(gold), len(gold))
        ma, mb = (_mean_macro_f1(gold, ps, i, n_labels) for ps in (preds_a, preds_b))
        fa.append(ma)
        diff.append(mb - ma)
    return fa, diff


def bootstrap_interval(gold: np.ndarray, preds: Sequence[np.ndarray], n_labels: int, draws: int = 1000,
                       seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean macro-F1 over ``preds`` (one label-id array per model, e.g.
    per seed) when the sentences are resampled: how far another sample of the same kind of news
    could move the score, which seeds alone do not show."""
    rng = np.random.default_rng(seed)
    scores = [_mean_macro_f1(gold, preds, rng.integers(0, len(gold), len(gold)), n_labels) for _ in range(draws)]
    lo, hi = np.quantile(scores, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def format_table(metrics: dict[str, Any]) -> str:
    lines = [f"{'label':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for lab, m in metrics["per_class"].items():
        lines.append(f"{lab:<12}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['f1']:>10.3f}{m['support']:>10d}")
    lines.append(f"{'macro-F1':<12}{'':>20}{metrics['macro_f1']:>10.3f}{metrics['n']:>10d}")
    lines.append(f"{'accuracy':<12}{'':>20}{metrics['accuracy']:>10.3f}")
    spans = metrics.get("spans")
    if spans:
        lines += ["", f"spans: {spans['n']} gold stance sentences with spans, {spans['n_label_correct']} labeled right",
                  f"{'role':<12}{'exact|label':>12}{'F1|label':>10}{'exact e2e':>11}{'F1 e2e':>9}"]
        for role in ("holder", "target"):
            m = spans[role]
            given = [f"{m[k]:.3f}" if m[k] is not None else "-" for k in ("exact_given_label", "f1_given_label")]
            lines.append(f"{role:<12}{given[0]:>12}{given[1]:>10}{m['exact_end_to_end']:>11.3f}{m['f1_end_to_end']:>9.3f}")
    return "\n".join(lines)


def format_summary(results: dict[str, dict[str, Any]]) -> str:
    labels = next(iter(results.values()))["labels"]
    head = f"{'set':<20}{'n':>7}{'acc':>8}{'macro-F1':>10}" + "".join(f"{lab[:9]:>10}" for lab in labels)
    rows = [head]
    for stem, m in results.items():
        rows.append(f"{stem[:19]:<20}{m['n']:>7d}{m['accuracy']:>8.3f}{m['macro_f1']:>10.3f}"
                    + "".join(f"{m['per_class'][lab]['f1']:>10.3f}" for lab in labels))
    return "\n".join(rows)


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

"""Held-out evaluation, `stance evaluate`: per-file reports written whole (metrics in ``stance.metrics``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stance.data import LabeledData, read_labeled
from stance.errors import StanceError
from stance.io import atomic_dir, atomic_open, check_output_dir, output_lock, write_json
from stance.metrics import compute_metrics, plot_confusion, span_metrics


def evaluate_data(
    clf: Any, data: LabeledData, batch_size: int = 64, quiet: bool = False
) -> tuple[dict[str, Any], list[dict]]:
    """Metrics for one labeled set, plus the misclassified rows (most confident first).

    Data with holder/target spans, on a model with a span head, also gets ``spans``
    (``metrics.span_metrics``)."""
    missing = sorted(set(data.labels) - set(clf.labels))
    if missing:
        raise StanceError(f"{data.path}: labels {missing} are not labels of this model ({', '.join(clf.labels)})")
    progress = None if quiet else f"Evaluating {Path(data.path).name}"
    roles = None
    if data.has_spans and getattr(clf, "has_spans", False):
        probs, preds, roles = clf.predict_roles(data.texts, batch_size=batch_size, progress=progress)
    else:
        probs = clf.predict_proba(data.texts, batch_size=batch_size, progress=progress)
        preds = clf.decide(probs)
    metrics = compute_metrics(data.labels, preds, clf.labels, probs)
    if roles is not None and data.spans is not None:
        spans = span_metrics(data.labels, preds, data.spans, roles)
        if spans:
            metrics["spans"] = spans
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

"""`stance render`: read prediction rows (and optionally the articles and model), write the HTML report.

Rows are checked as they are read, one line naming the file, line and key for a bad one, since
a hand-edited or truncated file must not produce a report that silently misplaces highlights.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stance.errors import StanceError, short
from stance.render import Doc, group_rows, render_report

_REQUIRED = {"doc_id": (str, int), "sent_idx": int, "start": int, "end": int, "text": str, "label": str,
             "score": (int, float)}


def _span(where: str, row: dict[str, Any], role: str) -> None:
    """A holder or target: null, or {text, start, end} with article offsets inside the row's sentence."""
    span = row.get(role)
    if span is None:
        return
    if not (isinstance(span, dict) and isinstance(span.get("text"), str)
            and all(isinstance(span.get(k), int) and not isinstance(span.get(k), bool) for k in ("start", "end"))):
        raise StanceError(f"{where}: {role}: expected null or {{\"text\": str, \"start\": int, \"end\": int}}, "
                          f"got {short(span)}")
    a, b = span["start"] - row["start"], span["end"] - row["start"]
    if not (0 <= a <= b <= len(row["text"]) and row["text"][a:b] == span["text"]):
        raise StanceError(f"{where}: {role}: offsets {span['start']}-{span['end']} do not hold "
                          f"{short(span['text'])} inside the sentence")


def check_row(where: str, row: Any) -> dict[str, Any]:
    """A prediction row as `stance predict` writes it (plus holder/target), or a one-line error."""
    if not isinstance(row, dict):
        raise StanceError(f"{where}: expected a JSON object (a row of stance predict), got {type(row).__name__}")
    for key, kind in _REQUIRED.items():
        if key not in row:
            raise StanceError(f"{where}: missing key '{key}' (is this the output of stance predict?)")
        if not isinstance(row[key], kind) or isinstance(row[key], bool):
            raise StanceError(f"{where}: {key}: unexpected value {short(row[key])}")
    if not 0 <= row["start"] <= row["end"]:
        raise StanceError(f"{where}: start/end: {row['start']}-{row['end']} is not a span")
    if "scores" in row and not (isinstance(row["scores"], dict)
                                and all(isinstance(v, (int, float)) for v in row["scores"].values())):
        raise StanceError(f"{where}: scores: expected an object of label: number, got {short(row['scores'])}")
    for role in ("holder", "target"):
        _span(where, row, role)
    return row


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise StanceError(f"{path}: predictions file not found")
    rows = []
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except (json.JSONDecodeError, RecursionError):
                    raise StanceError(f"{path}:{lineno}: not a JSON line (render reads the JSONL that "
                                      "stance predict writes)") from None
                rows.append(check_row(f"{path}:{lineno}", row))
    except UnicodeDecodeError as e:
        raise StanceError(f"{path}: not UTF-8 text (byte {e.start})") from None
    return rows


def _model_header(model: Path | None) -> tuple[str | None, float | None, list[str] | None]:
    if model is None:
        return None, None, None
    from stance.modeldir import read_model_config
    from stance.modeling import check_model_dir

    config = read_model_config(check_model_dir(model))
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    return model.name, float(config.get("stance_min_score", 0.0)), labels


def _texts(articles: Sequence[str]) -> dict[str, str]:
    if not articles:
        return {}
    from stance.articles import expand_inputs, iter_articles

    return {a.doc_id: a.text for a in iter_articles(expand_inputs(articles))}


def render_file(predictions: Path, out: Path, articles: Sequence[str] = (), model: Path | None = None,
                title: str = "stance report") -> tuple[int, int]:
    """Write the report of ``predictions`` to ``out`` (atomically); return (articles, sentences).

    ``articles`` are the inputs `stance predict` read: with them each article is shown whole, its
    sentences in place; without, its sentences are shown in order.
    """
    from stance.io import output_lock, write_text

    rows = read_rows(predictions)
    name, threshold, labels = _model_header(model)
    texts = _texts(articles)
    docs = [Doc(d.doc_id, d.rows, texts.get(d.doc_id)) for d in group_rows(rows)]
    page = render_report(docs, model=name, threshold=threshold, labels=labels, title=title)
    with output_lock(out):
        write_text(out, page)
    return len(docs), len(rows)

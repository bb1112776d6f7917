"""Reading labeled sentence files (JSONL or CSV) with row-level errors.

Rows need a text column and a label column (names configurable); any other
columns are ignored.  A bad row stops the run with ``FILE:ROW: reason`` rather
than being silently dropped: a typo in a label would otherwise quietly shrink
a class.

Rows may carry holder and target spans (data/GUIDELINES.md): in JSONL,
``holder`` and ``target``, each null or ``{"text", "start", "end"}`` with
sentence offsets; in CSV, the flat columns ``holder, holder_start, holder_end,
target, ...`` (empty cells = null; a row with all six empty = not annotated).
A row without them is not annotated, which is not the same as annotated null.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stance.errors import StanceError, short

ROLES = ("holder", "target")
# The label whose sentences have no stance, so no holder or target (data/GUIDELINES.md).
NO_STANCE = "none"


@dataclass
class LabeledData:
    """Texts and their labels as read from one file (or several, concatenated).

    ``spans``: per row None (not annotated) or ``{"holder": span, "target": span}``, each
    span None or ``{"text", "start", "end"}`` (sentence offsets); None for the whole list
    when no row is annotated.
    """

    path: str
    texts: list[str]
    labels: list[str]
    spans: list[dict | None] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def counts(self) -> dict[str, int]:
        return dict(Counter(self.labels))

    @property
    def has_spans(self) -> bool:
        return self.spans is not None and any(s is not None for s in self.spans)

    def select(self, rows: Sequence[int]) -> LabeledData:
        """The given rows, in that order (spans kept aligned)."""
        spans = None if self.spans is None else [self.spans[i] for i in rows]
        return LabeledData(self.path, [self.texts[i] for i in rows], [self.labels[i] for i in rows], spans)


def iter_rows(path: Path):
    """Yield (row_number, dict) pairs; row numbers are 1-based lines of the file."""
    suffix = path.suffix.lower()
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            if suffix in (".jsonl", ".json", ".ndjson"):
                for lineno, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise StanceError(f"{path}:{lineno}: broken JSON ({e.msg})") from None
                    if not isinstance(row, dict):
                        raise StanceError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
                    yield lineno, row
            elif suffix in (".csv", ".tsv"):
                reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
                for row in reader:
                    # line_num is the physical line just read, correct for multi-line quoted cells.
                    yield reader.line_num, row
            else:
                raise StanceError(f"{path}: unsupported data format '{suffix}' (use .jsonl or .csv)")
    except FileNotFoundError:
        raise StanceError(f"{path}: data file not found") from None
    except UnicodeDecodeError:
        raise StanceError(f"{path}: not a UTF-8 text file") from None


def read_labeled(
    path: str | Path | Sequence[str | Path],
    labels: list[str],
    text_column: str = "text",
    label_column: str = "label",
) -> LabeledData:
    """Read a labeled file, checking every row against the configured label set.

    A list of files is read file by file (errors name the file and row) and
    concatenated in order, e.g. the shipped corpus plus a user's own rows.
    """
    if not isinstance(path, (str, Path)):
        if not path:
            raise StanceError("no data files given (empty list)")
        parts = [read_labeled(p, labels, text_column, label_column) for p in path]
        spans = None
        if any(d.spans is not None for d in parts):
            spans = [s for d in parts for s in (d.spans if d.spans is not None else [None] * len(d))]
        return LabeledData(" + ".join(d.path for d in parts), [t for d in parts for t in d.texts],
                           [g for d in parts for g in d.labels], spans)
    path = Path(path)
    known = set(labels)
    texts: list[str] = []
    golds: list[str] = []
    spans: list[dict | None] = []
    for lineno, row in iter_rows(path):
        if text_column not in row:
            raise StanceError(f"{path}:{lineno}: missing column '{text_column}'")
        if label_column not in row:
            raise StanceError(f"{path}:{lineno}: missing column '{label_column}'")
        text, label = row[text_column], row[label_column]
        if not isinstance(text, str) or not text.strip():
            raise StanceError(f"{path}:{lineno}: empty or non-text '{text_column}'")
        if not isinstance(label, str) or label not in known:  # a JSON list/dict label is unhashable
            raise StanceError(
                f"{path}:{lineno}: unknown label {short(label)} (config labels: {', '.join(labels)})"
            )
        texts.append(text)
        golds.append(label)
        spans.append(_row_spans(row, text, label, f"{path}:{lineno}"))
    if not texts:
        raise StanceError(f"{path}: no rows")
    return LabeledData(str(path), texts, golds, spans if any(s is not None for s in spans) else None)


def _csv_span(row: dict, role: str, where: str) -> dict | None:
    """A span from CSV's flat cells (all three empty = null); numbers are checked in ``_check_span``."""
    cells = [row.get(role) or "", row.get(f"{role}_start") or "", row.get(f"{role}_end") or ""]
    if not any(cells):
        return None
    if not all(cells):
        raise StanceError(f"{where}: {role}: give text, start and end, or leave all three empty")
    try:
        start, end = int(cells[1]), int(cells[2])
    except ValueError:
        raise StanceError(f"{where}: {role}: start and end must be integers, got "
                          f"{short(cells[1])}, {short(cells[2])}") from None
    return {"text": cells[0], "start": start, "end": end}


def _check_span(value: object, text: str, role: str, where: str) -> dict | None:
    """A span as stored, checked against its sentence; returned as a fresh {"text", "start", "end"}."""
    if value is None:
        return None
    if not isinstance(value, dict) or not all(k in value for k in ("text", "start", "end")):
        raise StanceError(f"{where}: {role}: expected null or an object with text, start, end; got {short(value)}")
    span, start, end = value["text"], value["start"], value["end"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
        raise StanceError(f"{where}: {role}: start and end must be integers, got {short(start)}, {short(end)}")
    if not isinstance(span, str) or not span:
        raise StanceError(f"{where}: {role}: text must be a non-empty string, got {short(span)}")
    if not 0 <= start < end <= len(text):
        raise StanceError(f"{where}: {role}: offsets {start}:{end} are outside the sentence ({len(text)} characters)")
    if text[start:end] != span:
        raise StanceError(f"{where}: {role}: {short(span)} is not the text at {start}:{end} "
                          f"(which is {short(text[start:end])})")
    return {"text": span, "start": start, "end": end}


def _row_spans(row: dict, text: str, label: str, where: str) -> dict | None:
    """The row's holder and target (None when the row is not annotated), checked."""
    if "holder_start" in row or "target_start" in row:  # CSV
        raw = {role: _csv_span(row, role, where) for role in ROLES}
        if raw["holder"] is None and raw["target"] is None:
            return None
    else:
        present = [role for role in ROLES if role in row]
        if not present:
            return None
        if len(present) == 1:
            other = ROLES[1 - ROLES.index(present[0])]
            raise StanceError(f"{where}: has {present[0]!r} but no {other!r} (give both, each null or a span)")
        raw = {role: row[role] for role in ROLES}
    spans = {role: _check_span(raw[role], text, role, where) for role in ROLES}
    h, t = spans["holder"], spans["target"]
    if label == NO_STANCE and (h or t):
        raise StanceError(f"{where}: a {NO_STANCE!r} row has no holder or target (data/GUIDELINES.md); "
                          "set both to null or drop them")
    if h and t and h["start"] < t["end"] and t["start"] < h["end"]:
        raise StanceError(f"{where}: holder {h['start']}:{h['end']} and target {t['start']}:{t['end']} overlap")
    return spans


def _saved_data_section(model_dir: str | Path) -> dict:
    """The ``data`` section of the model's saved ``stance_config.yaml`` ({} when there is none)."""
    import yaml

    cfg_path = Path(model_dir) / "stance_config.yaml"
    cfg = (yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}) if cfg_path.is_file() else {}
    return cfg.get("data") or {}


def read_model_split(
    model_dir: str | Path, labels: list[str], data: str | Path | None, split: str
) -> LabeledData | None:
    """``data`` if given, else the ``split`` ("dev"/"test") named in the model's saved config.

    Column names come from the saved config too.  None when there is no such file.
    """
    columns = _saved_data_section(model_dir)
    if data is None:
        data = columns.get(split)
        if not data or not Path(data).is_file():
            return None
    return read_labeled(data, labels, columns.get("text_column", "text"), columns.get("label_column", "label"))


def read_model_extra_tests(model_dir: str | Path, labels: list[str]) -> list[LabeledData]:
    """The ``data.extra_test`` sets named in the model's saved config that exist here (other domains)."""
    columns = _saved_data_section(model_dir)
    return [read_labeled(p, labels, columns.get("text_column", "text"), columns.get("label_column", "label"))
            for p in columns.get("extra_test") or [] if Path(p).is_file()]

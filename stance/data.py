"""Reading labeled sentence files (JSONL or CSV) with row-level errors.

Rows need a text column and a label column (names configurable); any other
columns are ignored.  A bad row stops the run with ``FILE:ROW: reason`` rather
than being silently dropped: a typo in a label would otherwise quietly shrink
a class.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stance.errors import StanceError, short


@dataclass
class LabeledData:
    """Texts and their labels as read from one file (or several, concatenated)."""

    path: str
    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def counts(self) -> dict[str, int]:
        return dict(Counter(self.labels))


def _rows(path: Path):
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
        return LabeledData(" + ".join(d.path for d in parts), [t for d in parts for t in d.texts],
                           [g for d in parts for g in d.labels])
    path = Path(path)
    known = set(labels)
    texts: list[str] = []
    golds: list[str] = []
    for lineno, row in _rows(path):
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
    if not texts:
        raise StanceError(f"{path}: no rows")
    return LabeledData(str(path), texts, golds)


def read_model_split(
    model_dir: str | Path, labels: list[str], data: str | Path | None, split: str
) -> LabeledData | None:
    """``data`` if given, else the ``split`` ("dev"/"test") named in the model's saved config.

    Column names come from the saved config too.  None when there is no such file.
    """
    import yaml

    cfg_path = Path(model_dir) / "stance_config.yaml"
    cfg = (yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}) if cfg_path.is_file() else {}
    columns = cfg.get("data") or {}
    if data is None:
        data = columns.get(split)
        if not data or not Path(data).is_file():
            return None
    return read_labeled(data, labels, columns.get("text_column", "text"), columns.get("label_column", "label"))

"""The one JSONL reader and writer of the corpus tools."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from stance.errors import StanceError
from stance.io import write_text


def read_jsonl(path: Path) -> list[dict]:
    """Every row of a JSONL file (blank lines skipped); a broken line names the file and line."""
    try:
        # Only "\n" ends a row: str.splitlines would also cut at U+2028, which the rows may hold raw.
        lines = Path(path).read_text(encoding="utf-8").split("\n")
    except FileNotFoundError:
        raise StanceError(f"{path}: no such file") from None
    rows = []
    for n, line in enumerate(lines, start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise StanceError(f"{path}:{n}: not a JSON row ({e.msg})") from None
    return rows


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    """One JSON object per line, UTF-8 kept as is (the shipped files' bytes); all or nothing."""
    # Atomic: a tool that dies half-way leaves the previous file, not a truncated one.
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

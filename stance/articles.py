"""Reading articles from files, folders, JSONL and stdin.

Inputs are checked up front (a missing file stops the run before anything is
written); then articles are yielded one at a time so memory stays flat however
many come in.  Undecodable or binary files are skipped with a warning rather
than aborting a run over a large folder.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from stance.errors import StanceError

TEXT_SUFFIXES = {".txt", ".text", ".md"}
HTML_SUFFIXES = {".html", ".htm"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
KNOWN_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | JSONL_SUFFIXES


@dataclass(frozen=True)
class Article:
    doc_id: str
    text: str


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Resolve folders to their article files; fail on a missing path."""
    out: list[str] = []
    for item in inputs:
        if item == "-":
            out.append(item)
            continue
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in KNOWN_SUFFIXES)
            if not files:
                _warn(f"{path}: folder holds no .txt, .html or .jsonl files")
            out.extend(str(p) for p in files)
        elif path.is_file():
            out.append(str(path))
        else:
            raise StanceError(f"{path}: article file not found")
    return out


def _decode(raw: bytes, path: str) -> str | None:
    if b"\x00" in raw[:8192]:
        _warn(f"{path}: binary file skipped")
        return None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        _warn(f"{path}: not UTF-8 text (byte {e.start}), skipped")
        return None


def html_to_text(html: str) -> str:
    """Main text of a web page, boilerplate (menus, footers, comments) dropped."""
    import trafilatura

    return trafilatura.extract(html, include_comments=False, include_tables=False, favor_precision=True) or ""


def _jsonl_articles(path: str, text_key: str, id_key: str) -> Iterator[Article]:
    # Line by line: a JSONL input may hold millions of articles.
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError:
                raise StanceError(f"{path}:{lineno}: not UTF-8 text") from None
            yield _jsonl_row(line, path, lineno, text_key, id_key)


def _jsonl_row(line: str, path: str, lineno: int, text_key: str, id_key: str) -> Article:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise StanceError(f"{path}:{lineno}: broken JSON ({e.msg})") from None
    if not isinstance(row, dict) or not isinstance(row.get(text_key), str):
        raise StanceError(f"{path}:{lineno}: expected an object with a '{text_key}' string")
    doc_id = row.get(id_key)
    return Article(str(doc_id) if doc_id is not None else f"{path}:{lineno}", row[text_key])


def iter_articles(
    inputs: Sequence[str],
    text_key: str = "text",
    id_key: str = "id",
    on_skip: Callable[[str], None] | None = None,
) -> Iterator[Article]:
    """Yield articles from files as returned by :func:`expand_inputs`, in order."""
    for item in inputs:
        suffix = Path(item).suffix.lower()
        if suffix in JSONL_SUFFIXES:
            yield from _jsonl_articles(item, text_key, id_key)
            continue
        raw = sys.stdin.buffer.read() if item == "-" else Path(item).read_bytes()
        text = _decode(raw, item)
        if text is None:
            if on_skip:
                on_skip(item)
            continue
        if suffix in HTML_SUFFIXES:
            yield Article(item, html_to_text(text))
        else:
            yield Article(item, text)

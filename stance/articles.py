"""Reading articles from files, folders, JSONL and stdin.

Inputs are checked up front (a missing file stops the run before anything is
written); then articles are yielded one at a time so memory stays flat however
many come in.  Undecodable or binary files, JSONL lines and articles over the size
cap are skipped with a warning rather than aborting a run over a large folder, and
no input is read past its cap: a stray multi-gigabyte file or line costs nothing.
"""

from __future__ import annotations

import json
import math
import os
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from stance.errors import StanceError, warn

TEXT_SUFFIXES = {".txt", ".text", ".md"}
HTML_SUFFIXES = {".html", ".htm"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
KNOWN_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | JSONL_SUFFIXES

DEFAULT_MAX_ARTICLE_BYTES = 5_000_000
HTML_PAGE_FACTOR = 4

# on_skip(path, JSONL line number or None for the whole input, reason)
OnSkip = Callable[[str, int | None, str], None]


@dataclass(frozen=True)
class Article:
    doc_id: str
    text: str


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Resolve folders to their article files; fail on a missing path."""
    out: list[str] = []
    for item in inputs:
        if item == "-":
            # Python leaves sys.stdin None when the shell closed it (`stance predict M - <&-`).
            if sys.stdin is None:
                raise StanceError("-: standard input is closed; pass files, or give stdin some text")
            out.append(item)
            continue
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in KNOWN_SUFFIXES)
            if not files:
                warn(f"{path}: folder holds no .txt, .html or .jsonl files")
            out.extend(str(p) for p in files)
        elif path.exists():
            # Not only regular files: `<(cmd)` is a pipe at /dev/fd/N, read like stdin.
            out.append(str(path))
        else:
            raise StanceError(f"{path}: article file not found")
    return out


def _skip(on_skip: OnSkip | None, path: str, line: int | None, reason: str, message: str) -> None:
    warn(f"{path}{'' if line is None else f':{line}'}: {message}")
    if on_skip:
        on_skip(path, line, reason)


def _decode(raw: bytes, path: str, line: int | None, on_skip: OnSkip | None) -> str | None:
    # A NUL anywhere, not only in the first block: text never holds one, and it would reach the output.
    if b"\x00" in raw:
        _skip(on_skip, path, line, "binary", f"binary {'file' if line is None else 'line'} skipped (NUL byte)")
        return None
    try:
        return raw.decode("utf-8-sig" if line in (None, 1) else "utf-8")
    except UnicodeDecodeError as e:
        _skip(on_skip, path, line, "not UTF-8",
              f"not UTF-8 text (byte {e.start}), {'file' if line is None else 'line'} skipped")
        return None


def _mb(n: int) -> str:
    return f"{n / 1_000_000:g} MB"


def max_article_bytes_from_mb(mb: float) -> int:
    """``--max-article-mb`` in bytes; anything but a positive number is a user error."""
    if not math.isfinite(mb) or mb <= 0:
        raise StanceError(f"--max-article-mb: must be a number above 0, got {mb}")
    return max(1, int(mb * 1_000_000))


def _read_capped(item: str, cap: int) -> bytes | None:
    """The bytes of a file, pipe or stdin, or None past ``cap``: never more than cap+1 bytes are read."""
    if item == "-":
        return _none_if_over(sys.stdin.buffer.read(cap + 1), cap)
    with open(item, "rb") as fh:
        st = os.fstat(fh.fileno())
        if stat.S_ISREG(st.st_mode) and st.st_size > cap:
            return None
        return _none_if_over(fh.read(cap + 1), cap)


def _none_if_over(raw: bytes, cap: int) -> bytes | None:
    return None if len(raw) > cap else raw


def html_to_text(html: str) -> str:
    """Main text of a web page, boilerplate (menus, footers, comments) dropped."""
    import trafilatura

    return trafilatura.extract(html, include_comments=False, include_tables=False, favor_precision=True) or ""


def _read_article(item: str, cap: int, on_skip: OnSkip | None) -> Article | None:
    is_html = Path(item).suffix.lower() in HTML_SUFFIXES
    # trafilatura's own limit: markup is often several times the text, and the page, not the
    # text, is what trafilatura holds in memory (4 x 5 MB = its own 20 MB download limit).
    limit = cap * HTML_PAGE_FACTOR if is_html else cap
    raw = _read_capped(item, limit)
    if raw is None:
        _skip(on_skip, item, None, "oversized HTML page" if is_html else "oversized article",
              f"over the {_mb(limit)} limit{' for HTML pages' if is_html else ''} (--max-article-mb), skipped")
        return None
    text = _decode(raw, item, None, on_skip)
    if text is None:
        return None
    if not is_html:
        return Article(item, text)
    text = html_to_text(text)
    if not text.strip():
        _skip(on_skip, item, None, "no text extracted from HTML", "trafilatura found no main text, skipped")
        return None
    if len(text.encode("utf-8")) > cap:
        _skip(on_skip, item, None, "oversized article",
              f"main text over the {_mb(cap)} limit (--max-article-mb), skipped")
        return None
    return Article(item, text)


class BadRow(StanceError):
    """A JSONL line that is no article: an error for `stance predict`, a counted skip under ``strict=False``."""

    def __init__(self, path: str, lineno: int, reason: str, detail: str) -> None:
        super().__init__(f"{path}:{lineno}: {detail}")
        self.reason, self.detail = reason, detail


def jsonl_articles(fh: BinaryIO, path: str, cap: int = DEFAULT_MAX_ARTICLE_BYTES, on_skip: OnSkip | None = None,
                   text_key: str = "text", id_key: str = "id", strict: bool = True) -> Iterator[Article]:
    """The articles of a JSONL file opened in binary (``path`` names it in messages and default ids).

    ``strict=False`` skips and reports a line of broken JSON, or one without a ``text_key`` string,
    instead of raising :class:`BadRow`: a distributed run over millions of rows goes on.
    """
    # Line by line with a bounded readline: a JSONL input may hold millions of articles, or one
    # line of gigabytes.  json.dumps escapes non-ASCII by default, and a \uXXXX escape takes 6 bytes
    # for a character of 2-3 in UTF-8, so a text at the cap can fill twice as much on its line;
    # 64 KiB more leave room for the id and other fields.
    line_cap = 2 * cap + 64 * 1024
    lineno = 0
    while raw := fh.readline(line_cap + 1):
        lineno += 1
        if len(raw) > line_cap and not raw.endswith(b"\n"):
            while (rest := fh.readline(1 << 16)) and not rest.endswith(b"\n"):
                pass  # skip to the next line in bounded chunks
            _skip(on_skip, path, lineno, "oversized JSONL line",
                  f"line over {_mb(line_cap)} (--max-article-mb), skipped")
            continue
        if not raw.strip():
            continue
        line = _decode(raw, path, lineno, on_skip)
        try:
            article = None if line is None else _jsonl_row(line, path, lineno, text_key, id_key)
        except BadRow as e:
            if strict:
                raise
            _skip(on_skip, path, lineno, e.reason, f"{e.detail}, line skipped")
            continue
        if article is not None and _text_fits(article.text, path, lineno, cap, on_skip):
            yield article


def _jsonl_row(line: str, path: str, lineno: int, text_key: str, id_key: str) -> Article:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise BadRow(path, lineno, "broken JSON", f"broken JSON ({e.msg})") from None
    except RecursionError:
        raise BadRow(path, lineno, "broken JSON", "broken JSON (nested too deeply)") from None
    if not isinstance(row, dict) or not isinstance(row.get(text_key), str):
        raise BadRow(path, lineno, f"no '{text_key}' string", f"expected an object with a '{text_key}' string")
    doc_id = row.get(id_key)
    return Article(str(doc_id) if doc_id is not None else f"{path}:{lineno}", row[text_key])


def _text_fits(text: str, path: str, lineno: int, cap: int, on_skip: OnSkip | None) -> bool:
    """Checks a JSONL text as the bytes of a .txt file are checked: escapes can smuggle in what raw bytes can't."""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as e:  # a lone surrogate escape such as "\ud800": no UTF-8 text holds one
        _skip(on_skip, path, lineno, "not UTF-8",
              f"not UTF-8 text (lone surrogate at character {e.start}), line skipped")
        return False
    if "\x00" in text:
        _skip(on_skip, path, lineno, "binary", "binary line skipped (NUL character)")
        return False
    if size > cap:
        _skip(on_skip, path, lineno, "oversized article",
              f"text over the {_mb(cap)} limit (--max-article-mb), line skipped")
        return False
    return True


def iter_articles(
    inputs: Sequence[str],
    text_key: str = "text",
    id_key: str = "id",
    on_skip: OnSkip | None = None,
    max_article_bytes: int = DEFAULT_MAX_ARTICLE_BYTES,
) -> Iterator[Article]:
    """Yield articles from files as returned by :func:`expand_inputs`, in order.

    An input (or JSONL line) that is binary, not UTF-8, over ``max_article_bytes`` of text, or an
    HTML page with no main text is skipped with a one-line warning and reported as
    ``on_skip(path, line or None, reason)``; the run goes on.
    """
    for item in inputs:
        if Path(item).suffix.lower() in JSONL_SUFFIXES:
            with open(item, "rb") as fh:
                yield from jsonl_articles(fh, item, max_article_bytes, on_skip, text_key, id_key)
            continue
        article = _read_article(item, max_article_bytes, on_skip)
        if article is not None:
            yield article

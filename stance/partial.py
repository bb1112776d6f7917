"""An output file built window by window that survives being killed: ``predict --resume``.

While ``stance predict --out FILE`` runs, rows go to ``.FILE.partial`` beside
it.  After each window of whole articles the rows are flushed to disk and
``.FILE.progress.json`` records how many bytes and how many input articles are
done.  A run that dies (Ctrl-C, SIGTERM, SIGKILL, a full disk) leaves both;
``--resume`` cuts the partial file back to the last recorded byte (dropping a
half-written window), skips the recorded articles and appends the rest.  Only
a finished run renames the partial file onto FILE, so FILE is always either
the previous output or a complete new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import IO, Any

from stance.errors import StanceError
from stance.io import current_umask, fsync_dir, os_error, write_json


def input_fingerprint(files: list[str], settings: dict[str, Any]) -> str:
    """What must not change between a run and its resumption: inputs (size, mtime) and settings."""
    stats = []
    for f in files:
        st = os.stat(f)
        stats.append([f, st.st_size, st.st_mtime_ns])
    blob = json.dumps({"inputs": stats, "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class PartialOutput:
    """Rows appended to ``.NAME.partial``, committed per window, renamed onto ``path`` at the end."""

    def __init__(self, path: str | Path, fingerprint: str) -> None:
        self.path = Path(path)
        self.part = self.path.with_name(f".{self.path.name}.partial")
        self.progress = self.path.with_name(f".{self.path.name}.progress.json")
        self.fingerprint = fingerprint
        self.fh: IO[str] | None = None

    def open(self, resume: bool) -> int:
        """Open for appending; return how many input articles are already done (0 for a fresh run)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            done = self._resume_point() if resume else None
            if done is None:
                fd = os.open(self.part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666 & ~current_umask())
                self.progress.unlink(missing_ok=True)
                done = {"articles": 0, "bytes": 0, "rows": 0}
            else:
                fd = os.open(self.part, os.O_WRONLY)
                os.ftruncate(fd, done["bytes"])  # drop a window written after the last commit
                os.lseek(fd, done["bytes"], os.SEEK_SET)
            self.fh = open(fd, "w", encoding="utf-8", newline="")
        except OSError as e:
            raise os_error(self.part, e) from None
        self.rows = done["rows"]
        return int(done["articles"])

    def _resume_point(self) -> dict[str, int] | None:
        if not self.progress.is_file() or not self.part.is_file():
            print(f"note: {self.path}: no interrupted run to resume; starting from the first article",
                  file=sys.stderr)
            return None
        try:
            state = json.loads(self.progress.read_text(encoding="utf-8"))
            done = {k: int(state[k]) for k in ("articles", "bytes", "rows")}
        except (OSError, ValueError, KeyError, TypeError):
            raise StanceError(f"{self.progress}: unreadable; run again without --resume") from None
        if state.get("fingerprint") != self.fingerprint:
            raise StanceError(f"{self.path}: the interrupted run had other inputs, model or options; "
                              "run again without --resume, or with the same ones")
        if self.part.stat().st_size < done["bytes"]:
            raise StanceError(f"{self.part}: shorter than its progress record; run again without --resume")
        return done

    @property
    def is_fresh(self) -> bool:
        assert self.fh is not None
        return self.fh.tell() == 0

    def commit(self, articles_done: int, rows: int) -> None:
        """Make everything written so far durable and record it as done."""
        assert self.fh is not None
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.rows += rows
        write_json(self.progress, {"fingerprint": self.fingerprint, "articles": articles_done,
                                   "bytes": self.fh.tell(), "rows": self.rows})

    def finish(self) -> None:
        """Publish the complete file at ``path`` and forget the progress record."""
        assert self.fh is not None
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.replace(self.part, self.path)
        self.progress.unlink(missing_ok=True)
        fsync_dir(self.path.parent)

    def discard(self) -> None:
        """Remove the partial file and its record (the run cannot be resumed)."""
        self.close()
        self.part.unlink(missing_ok=True)
        self.progress.unlink(missing_ok=True)

    def close(self) -> None:
        if self.fh is not None and not self.fh.closed:
            with contextlib.suppress(OSError):
                self.fh.close()

"""Batch inference over articles: split, classify, write — streaming.

Articles are read lazily, split into sentences, and gathered into windows of a
few thousand sentences.  Each window is classified in length-sorted batches
and its rows written before the next window is read, so memory stays flat
however many articles come in.  Output goes to a temporary file that is
renamed onto ``--out`` only when the run succeeds.
"""

from __future__ import annotations

import csv
import json
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from stance.articles import DEFAULT_MAX_ARTICLE_BYTES, expand_inputs, iter_articles
from stance.errors import StanceError
from stance.io import atomic_open
from stance.sentences import MAX_SENTENCE_CHARS, split_sentences

FIELDS = ["doc_id", "sent_idx", "start", "end", "text", "label", "score", "scores"]


@dataclass
class PredictSummary:
    articles: int = 0
    sentences: int = 0
    truncated: int = 0
    cut: int = 0  # sentences over MAX_SENTENCE_CHARS, written as several rows
    skipped_files: list[str] = field(default_factory=list)  # whole inputs skipped
    skipped: Counter = field(default_factory=Counter)  # reason -> inputs or JSONL lines skipped
    labels: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def skip(self, path: str, line: int | None, reason: str) -> None:
        """Count an input (``line`` None) or one JSONL line passed over, by reason."""
        self.skipped[reason] += 1
        if line is None:
            self.skipped_files.append(path)

    def format(self) -> str:
        rate = f", {self.sentences / self.seconds:.0f} sentences/s" if self.seconds else ""
        labels = ", ".join(f"{k} {v}" for k, v in sorted(self.labels.items()))
        parts = [f"{self.articles} articles, {self.sentences} sentences{rate}", labels or "no sentences"]
        if self.truncated:
            parts.append(f"{self.truncated} sentences truncated to max_length")
        if self.cut:
            parts.append(f"{self.cut} long sentences cut into rows of at most {MAX_SENTENCE_CHARS} characters")
        if self.skipped:
            parts.append("skipped " + ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items())))
        return "; ".join(parts)


@dataclass
class _Pending:
    doc_id: str
    sent_idx: int
    start: int
    end: int
    text: str


class _Writer:
    def __init__(self, fh: IO[str], fmt: str, labels: list[str]) -> None:
        self.fh, self.fmt, self.labels = fh, fmt, labels
        if fmt == "csv":
            # One column per label keeps the CSV flat for spreadsheets.
            self.csv = csv.writer(fh)
            self.csv.writerow(FIELDS[:-1] + [f"score_{lab}" for lab in labels])

    def write(self, p: _Pending, label: str, probs: np.ndarray) -> None:
        score = round(float(probs.max()), 4)
        if self.fmt == "csv":
            self.csv.writerow([p.doc_id, p.sent_idx, p.start, p.end, p.text, label, score,
                               *(round(float(x), 4) for x in probs)])
        else:
            row = {"doc_id": p.doc_id, "sent_idx": p.sent_idx, "start": p.start, "end": p.end,
                   "text": p.text, "label": label, "score": score,
                   "scores": {lab: round(float(x), 4) for lab, x in zip(self.labels, probs)}}
            self.fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def iter_sentences(articles: Iterable, summary: PredictSummary) -> Iterator[_Pending]:
    for art in articles:
        summary.articles += 1
        for i, s in enumerate(split_sentences(art.text)):
            summary.cut += s.part == 1
            yield _Pending(art.doc_id, i, s.start, s.end, s.text)


def _windows(items: Iterator[_Pending], size: int) -> Iterator[list[_Pending]]:
    window: list[_Pending] = []
    for item in items:
        window.append(item)
        if len(window) >= size:
            yield window
            window = []
    if window:
        yield window


def _prefetch(clf: Any, windows: Iterator[list[_Pending]], depth: int = 2):
    """Read, split and tokenize the next windows in a thread while the model runs.

    The model's matrix kernels release the GIL, so splitting (pure Python) and
    tokenizing (Rust) overlap with inference instead of leaving a core idle.
    The queue is bounded, so memory stays flat.  Errors (a broken JSONL row)
    are re-raised in the caller.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for chunk in windows:
                if stop.is_set():
                    return
                ids, truncated = clf.tokenize([c.text for c in chunk])
                q.put((chunk, ids, truncated))
            q.put(done)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(e)

    t = threading.Thread(target=work, name="stance-reader", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.05)


def predict_articles(
    clf: Any,
    inputs: Sequence[str],
    out: str | Path | None = None,
    fmt: str | None = None,
    batch_size: int = 64,
    min_score: float | None = None,
    window: int = 1024,
    quiet: bool = False,
    max_article_bytes: int = DEFAULT_MAX_ARTICLE_BYTES,
) -> PredictSummary:
    """Classify every sentence of every article in ``inputs``; write one row per sentence.

    ``out`` None or "-" writes to stdout.  ``fmt`` defaults to the suffix of
    ``out`` (``.csv`` -> csv, else jsonl).  ``min_score`` None uses the model's
    own threshold (chosen on dev by ``stance train``); 0 is plain argmax.  Inputs
    over ``max_article_bytes`` of text are skipped and counted in the summary.
    """
    from tqdm import tqdm

    if fmt is None:
        fmt = "csv" if out and str(out).lower().endswith(".csv") else "jsonl"
    if fmt not in ("jsonl", "csv"):
        raise StanceError(f"--format: must be jsonl or csv, got {fmt!r}")
    if min_score is not None and not 0.0 <= min_score <= 1.0:
        raise StanceError(f"--min-score: must be between 0 and 1, got {min_score}")
    if batch_size < 1:
        raise StanceError(f"--batch-size: must be at least 1, got {batch_size}")
    summary = PredictSummary()
    # Resolve every input before opening the output: a missing file fails fast.
    articles = iter_articles(expand_inputs(inputs), on_skip=summary.skip, max_article_bytes=max_article_bytes)
    to_stdout = out is None or str(out) == "-"
    sink = nullcontext(sys.stdout) if to_stdout else atomic_open(out)
    t0 = time.perf_counter()
    with sink as fh, tqdm(unit=" sent", disable=quiet, desc="Classifying") as bar:
        writer = _Writer(fh, fmt, clf.labels)
        for chunk, ids, truncated in _prefetch(clf, _windows(iter_sentences(articles, summary), window)):
            probs = np.empty((len(chunk), len(clf.labels)), dtype=np.float32)
            for rows, p in clf.iter_token_scores(ids, batch_size=batch_size):
                probs[rows] = p
            summary.truncated += int(truncated.sum())
            labels = clf.decide(probs, min_score)
            for item, label, p in zip(chunk, labels, probs):
                writer.write(item, label, p)
            summary.labels.update(labels)
            summary.sentences += len(chunk)
            bar.update(len(chunk))
    summary.seconds = time.perf_counter() - t0
    return summary

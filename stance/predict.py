"""Batch inference over articles: split, classify, write — streaming.

Articles are read lazily, split into sentences, and gathered into windows of
about a thousand sentences that end between articles.  Each window is
classified in length-sorted batches and its rows written before the next window
is read, so memory stays flat however many articles come in.  With ``--out``,
rows go to a partial file committed after every window (``stance.partial``) and
renamed onto ``--out`` only when the run succeeds; an interrupted run resumes.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import itertools
import json
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from stance.articles import DEFAULT_MAX_ARTICLE_BYTES, expand_inputs, iter_articles
from stance.errors import StanceError
from stance.io import fault_point, os_error, output_lock, write_text
from stance.partial import PartialOutput, input_fingerprint
from stance.render import Doc
from stance.sentences import MAX_SENTENCE_CHARS, split_sentences

FIELDS = ["doc_id", "sent_idx", "start", "end", "text", "label", "score", "scores"]
# Added by a model with a span head: each null or {"text", "start", "end"} with article offsets;
# in CSV, flat columns (SPAN_COLUMNS) after the score columns.
SPAN_FIELDS = ["holder", "target"]
SPAN_COLUMNS = [f"{role}{part}" for role in SPAN_FIELDS for part in ("", "_start", "_end")]


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
    resumed_after: int = 0  # articles a resumed run found already done

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
        if self.resumed_after:
            parts.append(f"resumed after {self.resumed_after} articles already done")
        return "; ".join(parts)


@dataclass
class Pending:
    """A sentence waiting to be classified: where it sits in its article."""

    doc_id: str
    sent_idx: int
    start: int
    end: int
    text: str
    art_no: int = 0  # ordinal of the article in this run's input stream


@dataclass
class _Window:
    items: list[Pending]
    articles_done: int  # articles of this run's stream fully inside this and earlier windows


class _Writer:
    def __init__(self, fh: IO[str], fmt: str, labels: list[str], header: bool = True, spans: bool = False) -> None:
        self.fh, self.fmt, self.labels, self.spans = fh, fmt, labels, spans
        if fmt == "csv":
            # One column per label keeps the CSV flat for spreadsheets.
            self.csv = csv.writer(fh)
            if header:  # not again when a resumed run appends
                self.csv.writerow(FIELDS[:-1] + [f"score_{lab}" for lab in labels] + (SPAN_COLUMNS if spans else []))

    def write(self, p: Pending, row: dict[str, Any]) -> None:
        """One row (``classify_items``'s); a span model's rows carry holder and target, null ones included."""
        if self.fmt == "csv":
            cells = [c for role in ("holder", "target") if self.spans for c in
                     ((row[role]["text"], row[role]["start"], row[role]["end"]) if row[role] else ("", "", ""))]
            self.csv.writerow([*(row[f] for f in FIELDS[:-1]), *(row["scores"][lab] for lab in self.labels), *cells])
        else:
            self.fh.write(json.dumps(row, ensure_ascii=False) + "\n")


NO_ROLES = {"holder": None, "target": None}


def make_row(p: Pending, label: str, probs: np.ndarray, labels: Sequence[str],
             roles: dict | None = None) -> dict[str, Any]:
    """One prediction row (``FIELDS``, plus holder/target when ``roles`` is given): the JSONL line, the HTML
    report's input, `stance serve`'s answer and the Ray path's (stance.distributed) row.  Roles come in
    sentence offsets and leave in article offsets (the sentence is article[p.start:p.end])."""
    row = {"doc_id": p.doc_id, "sent_idx": p.sent_idx, "start": p.start, "end": p.end,
           "text": p.text, "label": label, "score": round(float(probs.max()), 4),
           "scores": {lab: round(float(x), 4) for lab, x in zip(labels, probs)}}
    if roles is not None:
        row.update({role: None if s is None else {"text": s["text"], "start": p.start + s["start"],
                                                  "end": p.start + s["end"]} for role, s in roles.items()})
    return row


def classify_items(clf: Any, items: Sequence[Pending], ids: list[list[int]], batch_size: int,
                   min_score: float | None, offsets: Sequence | None = None) -> list[dict[str, Any]]:
    """The rows of sentences already tokenized (``ids``; with ``offsets``, the tokens' characters, a span
    model's rows get holder and target), scored in length-sorted batches."""
    probs = np.empty((len(items), len(clf.labels)), dtype=np.float32)
    roles: list = [NO_ROLES if clf.has_spans else None] * len(items)
    for rows, p, spans in clf.iter_outputs(ids, batch_size=batch_size):
        probs[rows] = p
        if spans is not None and offsets is not None:  # decoded per group: no window-sized span array is kept
            found = clf.roles(clf.decide(p, min_score), spans, [offsets[i] for i in rows],
                              [items[i].text for i in rows])
            for i, r in zip(rows, found):
                roles[i] = r
    labels = clf.decide(probs, min_score)
    return [make_row(item, label, p, clf.labels, r) for item, label, p, r in zip(items, labels, probs, roles)]


def iter_sentences(articles: Iterable, summary: PredictSummary) -> Iterator[Pending]:
    for art_no, art in enumerate(articles):
        summary.articles += 1
        for i, s in enumerate(split_sentences(art.text)):
            summary.cut += s.part == 1
            yield Pending(art.doc_id, i, s.start, s.end, s.text, art_no)


def _windows(items: Iterator[Pending], size: int, summary: PredictSummary) -> Iterator[_Window]:
    """Windows of at least ``size`` sentences that end only between articles.

    Ending on article boundaries makes every window a function of the articles
    from its start on, so a resumed run (which starts at a boundary) batches, and
    therefore scores, every sentence exactly as an uninterrupted run would.
    """
    window: list[Pending] = []
    for item in items:
        if len(window) >= size and item.art_no != window[-1].art_no:
            yield _Window(window, item.art_no)
            window = []
        window.append(item)
    yield _Window(window, summary.articles)  # may be empty: it still records trailing empty articles


def _prefetch(clf: Any, windows: Iterator[_Window], depth: int = 2):
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
                # Token offsets only where spans are decoded: they cost a list per sentence.
                q.put((chunk, *clf.encode([c.text for c in chunk.items], offsets=clf.has_spans)))
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
    resume: bool = False,
    max_article_bytes: int = DEFAULT_MAX_ARTICLE_BYTES,
) -> PredictSummary:
    """Classify every sentence of every article in ``inputs``; write one row per sentence.

    ``out`` None or "-" writes to stdout.  ``fmt`` defaults to the suffix of
    ``out`` (``.csv`` -> csv, else jsonl).  ``min_score`` None uses the model's
    own threshold (chosen on dev by ``stance train``); 0 is plain argmax.  Inputs
    over ``max_article_bytes`` of text are skipped and counted in the summary.
    ``resume`` continues a run on the same ``out`` that was interrupted
    (``stance.partial``): finished articles are skipped, never written twice.
    """
    if fmt is None:
        suffix = Path(str(out or "")).suffix.lower()
        fmt = "csv" if suffix == ".csv" else "html" if suffix in (".html", ".htm") else "jsonl"
    if fmt not in ("jsonl", "csv", "html"):
        raise StanceError(f"--format: must be jsonl, csv or html, got {fmt!r}")
    if min_score is not None and not 0.0 <= min_score <= 1.0:
        raise StanceError(f"--min-score: must be between 0 and 1, got {min_score}")
    if batch_size < 1:
        raise StanceError(f"--batch-size: must be at least 1, got {batch_size}")
    summary = PredictSummary()
    # Resolve every input before opening the output: a missing file fails fast.
    files = expand_inputs(inputs)
    read = functools.partial(iter_articles, files, on_skip=summary.skip, max_article_bytes=max_article_bytes)
    if fmt == "html":
        if resume:
            raise StanceError("--resume: not available with --format html (the report is written whole at the end)")
        _predict_html(clf, read, out, summary, batch_size, min_score, window, quiet)
        return summary
    if out is None or str(out) == "-":
        if resume:
            raise StanceError("--resume: needs --out FILE (stdout cannot be resumed)")
        _run(clf, read(), _StdoutSink(fmt, clf.labels, clf.has_spans), summary, batch_size, min_score, window, quiet)
        return summary
    if resume and not all(Path(f).is_file() for f in files):
        raise StanceError("--resume: stdin and pipes cannot be read again; save the input to a file first")
    settings = {"model": str(Path(clf.source).resolve()) if getattr(clf, "source", None) else None,
                "labels": clf.labels, "backend": clf.backend.name, "min_score": min_score,
                "temperature": clf.temperature, "format": fmt, "window": window, "max_article_bytes": max_article_bytes}
    if clf.has_spans:  # the rows have more fields; older partial files keep their fingerprint
        settings["spans"] = True
    fingerprint = input_fingerprint([f for f in files if Path(f).is_file()], settings)
    with output_lock(out):
        sink = _FileSink(PartialOutput(out, fingerprint), fmt, clf.labels, resume, clf.has_spans)
        _run_to_file(clf, read, sink, out, summary, batch_size, min_score, window, quiet)
    summary.resumed_after = sink.skip
    return summary


def _run_to_file(clf: Any, read: Any, sink: _FileSink, out: str | Path, summary: PredictSummary,
                 batch_size: int, min_score: float | None, window: int, quiet: bool) -> None:
    """``_run`` into a resumable partial file, published at the end; a failure keeps what can resume."""
    try:
        articles = itertools.islice(read(), sink.skip, None)
        _run(clf, articles, sink, summary, batch_size, min_score, window, quiet)
        sink.output.finish()
    except StanceError:
        sink.output.discard()  # bad input: a resumed run would stop at the same place
        raise
    except OSError as e:
        err = os_error(out, e)
        if isinstance(err, StanceError):  # disk full or permissions: what is done stays resumable
            raise StanceError(f"{err}; finished articles are kept: rerun with --resume to continue") from None
        raise
    finally:
        sink.output.close()


class _HtmlSink:
    """Rows and article texts kept for the HTML report, which is rendered whole at the end."""

    def __init__(self, labels: list[str]) -> None:
        self.skip, self.writer, self.labels = 0, self, labels
        self.docs: list[Doc] = []

    def keep(self, articles: Iterable) -> Iterator:
        for art in articles:  # in the reader thread; sentences come after their article, so docs[art_no] exists
            self.docs.append(Doc(art.doc_id, text=art.text))
            yield art

    def write(self, p: Pending, row: dict[str, Any]) -> None:
        self.docs[p.art_no].rows.append(row)

    def commit(self, articles_done: int, rows: int) -> None:
        pass


def _predict_html(clf: Any, read: Any, out: str | Path | None, summary: PredictSummary, batch_size: int,
                  min_score: float | None, window: int, quiet: bool) -> None:
    """Classify everything, then write the report atomically (or to stdout); a failed run writes nothing."""
    from stance.render import render_report

    to_stdout = out is None or str(out) == "-"
    if to_stdout and sys.stdout is None:
        raise StanceError("standard output is closed; write to a file with --out FILE")
    with contextlib.nullcontext() if to_stdout else output_lock(out):
        sink = _HtmlSink(clf.labels)
        _run(clf, sink.keep(read()), sink, summary, batch_size, min_score, window, quiet)
        name = f"{Path(clf.source).name} ({clf.backend.name})" if getattr(clf, "source", None) else None
        page = render_report([d for d in sink.docs if d.rows], model=name,
                             threshold=clf.min_score if min_score is None else min_score, labels=clf.labels)
        if to_stdout:
            sys.stdout.write(page)
            sys.stdout.flush()
        else:
            write_text(out, page)


class _StdoutSink:
    def __init__(self, fmt: str, labels: list[str], spans: bool = False) -> None:
        if sys.stdout is None:  # started with stdout closed (`>&-`)
            raise StanceError("standard output is closed; write to a file with --out FILE")
        self.skip, self.writer = 0, _Writer(sys.stdout, fmt, labels, header=True, spans=spans)

    def commit(self, articles_done: int, rows: int) -> None:
        sys.stdout.flush()


class _FileSink:
    """Rows to a resumable partial file; committed after every window."""

    def __init__(self, output: PartialOutput, fmt: str, labels: list[str], resume: bool, spans: bool = False) -> None:
        self.output = output
        self.skip = output.open(resume)
        self.writer = _Writer(output.fh, fmt, labels, header=output.is_fresh, spans=spans)

    def commit(self, articles_done: int, rows: int) -> None:
        self.output.commit(self.skip + articles_done, rows)


def _run(clf: Any, articles: Iterable, sink: Any, summary: PredictSummary, batch_size: int,
         min_score: float | None, window: int, quiet: bool) -> None:
    """Split, classify and write every window; commit the sink after each one."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    windows = _windows(iter_sentences(articles, summary), window, summary)
    with tqdm(unit=" sent", disable=quiet, desc="Classifying") as bar:
        for n, (chunk, ids, truncated, offsets) in enumerate(_prefetch(clf, windows), start=1):
            rows = classify_items(clf, chunk.items, ids, batch_size, min_score, offsets)
            summary.truncated += int(truncated.sum())
            for item, row in zip(chunk.items, rows):
                sink.writer.write(item, row)
            fault_point(f"predict-window-{n}")  # rows written, not yet committed
            sink.commit(chunk.articles_done, len(chunk.items))
            summary.labels.update(row["label"] for row in rows)
            summary.sentences += len(chunk.items)
            bar.update(len(chunk.items))
    summary.seconds = time.perf_counter() - t0

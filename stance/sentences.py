"""Sentence splitting with character offsets.

pysbd handles most newswire abbreviations ("U.S.", "Sen.", "Jan. 5"), but it
still splits in a few known places, e.g. after a closing quote followed by a
lowercase verb (``"We will win," he said.``) or inside "D-Mass.)".  A fragment
that starts with a lowercase letter or with ``, ; : )`` is never a sentence of
its own in news prose, so we re-join such fragments to the previous sentence.

Paragraphs (line breaks) are hard boundaries: headlines and datelines carry no
final punctuation, and pysbd would otherwise glue them to the first sentence.
Offsets always index into the original text: ``text[start:end] == sentence``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

_PARAGRAPH = re.compile(r"[^\n]+")
_JOIN_START = re.compile(r"^[\s\"'“”‘’]*[a-z,;:)\]]")
# A trailing "(D-" / "(R-" is a party-state tag cut in two, never a sentence end.
_OPEN_TAG = re.compile(r"\([A-Z]-?[A-Za-z.]*$")
# Where a long paragraph may be cut before pySBD sees it: after . ! or ? (and closing quotes or
# brackets), at the spaces before anything but a lowercase letter ("e.g. the" is no sentence end).
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*(\s+)(?=[^\sa-z])")
_SPACE = re.compile(r"\s+")

# pySBD's time grows with the square of a paragraph's sentence count (48,000 characters of short
# sentences take ~8 s; a megabyte, hours), so longer paragraphs reach it in pieces of at most this.
PARAGRAPH_CHARS = 3000
# The tokenizer keeps 128 tokens (~600 characters) anyway; a longer "sentence" is a run-on line
# (a table, a list, a page without punctuation) and goes out as pieces of at most this many characters.
MAX_SENTENCE_CHARS = 2000

# pySBD issue 79 (https://github.com/nipunsadvilkar/pySBD/issues/79, open; pysbd 0.3.4): its
# NUMBERED_REFERENCE_REGEX backtracks exponentially over the digits after ".[", so 43 characters
# ("..[111 111 ... 111]") run for minutes and no length cap can bound it.  In a run of brackets
# and digits holding more digits than any footnote reference ("[12]", "[3][4]", "[1, 2, 5-7]"),
# pySBD is shown "{" for each "[": the regex needs "[" and no English rule reads "{".  Only the
# copy pySBD sees changes, so offsets still index the original.  Ten digits cost it under 1 ms.
_REF_RUN = re.compile(r"\[[\[\]\d,\s-]*")
_REF_DIGITS = 10


@dataclass(frozen=True)
class Sentence:
    """A sentence and its character span in the article it came from.

    ``part`` is 0 for a whole sentence, and 1, 2, ... for the pieces of one longer than
    ``MAX_SENTENCE_CHARS``, cut at whitespace (or anywhere, where it has none).
    """

    start: int
    end: int
    text: str
    part: int = 0


_local = threading.local()


def _segmenter():
    # One per thread: pySBD's Segmenter keeps the text it is splitting on itself
    # (``original_text``), so threads sharing one would get each other's sentences.
    seg = getattr(_local, "segmenter", None)
    if seg is None:
        import pysbd

        seg = _local.segmenter = pysbd.Segmenter(language="en", clean=False)
    return seg


def _spans_in_paragraph(text: str, start: int, end: int) -> list[tuple[int, int]]:
    para = _defuse_references(text[start:end])
    spans: list[tuple[int, int]] = []
    cursor = 0
    for seg in _segmenter().segment(para):
        stripped = seg.strip()
        if not stripped:
            continue
        # pysbd with clean=False returns substrings of the input; locating each
        # one from a moving cursor is robust to repeated sentences.
        pos = para.find(stripped, cursor)
        if pos < 0:  # pysbd altered the text; fall back to the whole remainder
            pos = cursor
            stripped = para[cursor:].strip()
            if not stripped:
                break
            pos = para.find(stripped, cursor)
        s, e = pos, pos + len(stripped)
        cursor = e
        if spans and (_JOIN_START.match(stripped) or _OPEN_TAG.search(para[spans[-1][0] : spans[-1][1]])):
            spans[-1] = (spans[-1][0], e)
        else:
            spans.append((s, e))
    return [(start + s, start + e) for s, e in spans]


def _defuse_references(para: str) -> str:
    if "[" not in para:
        return para

    def mask(m: re.Match) -> str:
        run = m.group()
        return run.replace("[", "{") if sum(c.isdecimal() for c in run) > _REF_DIGITS else run

    return _REF_RUN.sub(mask, para)


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _chunks(text: str, start: int, end: int) -> Iterator[tuple[int, int, bool]]:
    """Cut a paragraph into pieces of at most PARAGRAPH_CHARS at sentence ends, as (start, end, run_on).

    Where PARAGRAPH_CHARS hold no sentence end, everything up to the next one is a single run-on
    sentence: it is flagged and never goes to pySBD.
    """
    while end - start > PARAGRAPH_CHARS:
        last = None
        for last in _SENTENCE_END.finditer(text, start, start + PARAGRAPH_CHARS):  # noqa: B007 - want the last
            pass
        if last is not None:
            yield start, last.start(1), False
        else:
            last = _SENTENCE_END.search(text, start + PARAGRAPH_CHARS, end)
            if last is None:
                yield start, end, True
                return
            yield start, last.start(1), True
        start = last.end(1)
    yield start, end, False


def _cut_at_spaces(text: str, start: int, end: int, limit: int) -> Iterator[tuple[int, int]]:
    """Pieces of at most ``limit`` characters, cut at the last whitespace that fits (anywhere if none)."""
    while end - start > limit:
        last = None
        for last in _SPACE.finditer(text, start + 1, start + limit + 1):  # noqa: B007 - want the last
            pass
        cut, start_next = (last.start(), last.end()) if last else (start + limit, start + limit)
        yield _strip(text, start, cut)
        start = _strip(text, start_next, end)[0]
    if start < end:
        yield start, end


def split_sentences(text: str) -> list[Sentence]:
    """Split an article into sentences with exact character offsets.

    Costs stay linear in the text: long paragraphs reach pySBD in bounded pieces, and
    sentences longer than ``MAX_SENTENCE_CHARS`` come back cut into parts.
    """
    out: list[Sentence] = []
    for m in _PARAGRAPH.finditer(text):
        if m.group().isspace():
            continue
        for start, end, run_on in _chunks(text, m.start(), m.end()):
            for s, e in [_strip(text, start, end)] if run_on else _spans_in_paragraph(text, start, end):
                if e - s <= MAX_SENTENCE_CHARS:
                    out.append(Sentence(s, e, text[s:e]))
                    continue
                for part, (a, b) in enumerate(_cut_at_spaces(text, s, e, MAX_SENTENCE_CHARS), start=1):
                    out.append(Sentence(a, b, text[a:b], part))
    return out

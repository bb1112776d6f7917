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
from dataclasses import dataclass
from functools import lru_cache

_PARAGRAPH = re.compile(r"[^\n]+")
_JOIN_START = re.compile(r"^[\s\"'“”‘’]*[a-z,;:)\]]")
# A trailing "(D-" / "(R-" is a party-state tag cut in two, never a sentence end.
_OPEN_TAG = re.compile(r"\([A-Z]-?[A-Za-z.]*$")


@dataclass(frozen=True)
class Sentence:
    """A sentence and its character span in the article it came from."""

    start: int
    end: int
    text: str


@lru_cache(maxsize=1)
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


def _spans_in_paragraph(text: str, start: int, end: int) -> list[tuple[int, int]]:
    para = text[start:end]
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


def split_sentences(text: str) -> list[Sentence]:
    """Split an article into sentences with exact character offsets."""
    out: list[Sentence] = []
    for m in _PARAGRAPH.finditer(text):
        if not m.group().strip():
            continue
        for s, e in _spans_in_paragraph(text, m.start(), m.end()):
            out.append(Sentence(s, e, text[s:e]))
    return out

"""Holder and target spans as BIO tags on tokens: encoding gold spans for training, decoding logits.

Tags are per token of the fast tokenizer, aligned to characters through its
offsets (``offset_mapping``).  Decoding finds, per role, the highest-scoring
valid span (it starts with B or I and continues with I), scored as the log-odds
of its tags against O, so a role gets a span only where the model finds one
likelier than none.  Spans come back as sentence character offsets, widened to
whole words and trimmed of outer whitespace and punctuation.  Nothing here
imports torch: the ONNX serving path decodes too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from stance.data import ROLES

TAGS = ("O", "B-HOLDER", "I-HOLDER", "B-TARGET", "I-TARGET")
IGNORE = -100  # cross-entropy's ignore_index: special tokens and rows without span annotation
_B = {role: TAGS.index(f"B-{role.upper()}") for role in ROLES}
_I = {role: TAGS.index(f"I-{role.upper()}") for role in ROLES}
# Stripped from both ends of a decoded span: the guidelines mark phrases without outer punctuation.
_EDGE = set(" \t\n\r\f\v.,;:!?\"'“”‘’«»()[]{}-–—…/*")
# "U.S", "D.C", "Jr": an abbreviation whose last dot the trimming (or the tokenizer) cut off.
_ABBREVIATION = re.compile(r"(?:(?:^|[\s.])[A-Z]\.[A-Z]|\b(?:Jr|Sr|Inc|Corp|Co|Ltd|Bros|St))$")
_CLOSERS = {")": "(", "]": "["}
# Log-odds of a token no span may cover (special tokens; the other role's span): no span wins through it.
_BARRED = -1e4


def bio_tags(offsets: Sequence[tuple[int, int]], spans: dict | None) -> list[int]:
    """Tag ids per token for a row's gold ``spans`` (None = not annotated: every token ignored).

    A token is inside a span when its characters overlap it; the first such token is B, the rest I.
    Special tokens (no characters) are ignored.
    """
    if spans is None:
        return [IGNORE] * len(offsets)
    tags = [IGNORE if end <= start else 0 for start, end in offsets]
    for role in ROLES:
        span = spans.get(role)
        if span is None:
            continue
        first = True
        for k, (start, end) in enumerate(offsets):
            if end > start and start < span["end"] and end > span["start"]:
                tags[k] = _B[role] if first else _I[role]
                first = False
    return tags


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _best_run(start: np.ndarray, cont: np.ndarray) -> tuple[float, int, int]:
    """Highest ``start[i] + cont[i+1] + ... + cont[j]`` over i <= j: (score, i, j).

    With C the running sum of ``cont``, that is ``(start[i] - C[i]) + C[j]``: a running
    maximum finds it in a few array operations, no Python loop over tokens.
    """
    total = np.cumsum(cont)
    lead = start - total
    best = np.maximum.accumulate(lead) + total
    j = int(best.argmax())
    return float(best[j]), int(lead[:j + 1].argmax()), j


def _role_scores(logp: np.ndarray, role: str, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per token: log-odds against O of starting (B or I) and of continuing (I) a span of ``role``."""
    begin = np.maximum(logp[:, _B[role]], logp[:, _I[role]]) - logp[:, 0]
    inside = logp[:, _I[role]] - logp[:, 0]
    # A large finite penalty, not -inf: the running sums in _best_run must stay finite.
    return np.where(allowed, begin, _BARRED), np.where(allowed, inside, _BARRED)


def _to_chars(text: str, start: int, end: int) -> dict | None:
    """Token-boundary characters -> a span of whole words with no outer whitespace or punctuation."""
    while start > 0 and text[start - 1].isalnum() and text[start].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum() and text[end - 1].isalnum():
        end += 1
    while start < end and text[start] in _EDGE:
        start += 1
    while end > start and text[end - 1] in _EDGE:
        closer = text[end - 1]
        # "Sen. Jane Roe (D-Mass.)": a bracket the span opened is part of it.
        if closer in _CLOSERS and text.count(_CLOSERS[closer], start, end) >= text.count(closer, start, end):
            break
        end -= 1
    if end < len(text) and text[end] == "." and _ABBREVIATION.search(text[start:end]):
        end += 1
    return {"text": text[start:end], "start": start, "end": end} if end > start else None


def decode(logits: np.ndarray, offsets: Sequence[tuple[int, int]], text: str) -> dict[str, dict | None]:
    """Holder and target of one sentence from its tag logits (tokens x TAGS; padding beyond ``offsets`` ignored).

    Holder and target never overlap: where the best spans would, the likelier one
    stays and the other role takes its best span among the remaining tokens.
    """
    n = len(offsets)
    logp = _log_softmax(np.asarray(logits)[:n])
    chars = np.asarray(offsets, dtype=np.int64).reshape(n, 2)
    real = chars[:, 1] > chars[:, 0]
    found = {role: _best_run(*_role_scores(logp, role, real)) for role in ROLES}
    (h_score, hi, hj), (t_score, ti, tj) = found["holder"], found["target"]
    if h_score > 0 and t_score > 0 and hi <= tj and ti <= hj:
        keep, other = ("holder", "target") if h_score >= t_score else ("target", "holder")
        _, ki, kj = found[keep]
        allowed = real.copy()
        allowed[ki:kj + 1] = False
        found[other] = _best_run(*_role_scores(logp, other, allowed))
    out: dict[str, dict | None] = {}
    for role, (score, i, j) in found.items():
        out[role] = _to_chars(text, offsets[i][0], offsets[j][1]) if score > 0 else None
    return out

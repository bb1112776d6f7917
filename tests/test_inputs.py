"""Hostile and broken inputs to `stance predict` (issue 18, items 9-13).

Each input here once hung the run, exhausted memory, aborted it, or slipped
garbage into the output.  Real files, real pipes and real subprocesses: the
point is what happens to bytes the way a shell delivers them.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stance.modeling import StanceClassifier
from stance.predict import predict_articles
from stance.sentences import MAX_SENTENCE_CHARS, split_sentences

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
MB = 1_000_000


@pytest.fixture(scope="module")
def clf(trained_model):
    return StanceClassifier.load(trained_model)


# -- item 9: caps on a sentence ----------------------------------------------------------------------------------


def test_a_megabyte_without_punctuation_is_cut_into_bounded_pieces_with_exact_offsets():
    for text in ("word " * 200_000, "x" * MB):  # with spaces to cut at, and with none
        sents = split_sentences(text)
        assert len(sents) >= MB // MAX_SENTENCE_CHARS
        assert all(0 < len(s.text) <= MAX_SENTENCE_CHARS and text[s.start:s.end] == s.text for s in sents)
        assert "".join(s.text for s in sents).replace(" ", "") == text.replace(" ", "")
        assert [s.part for s in sents] == list(range(1, len(sents) + 1))


def test_long_sentences_cut_are_rows_with_exact_offsets_and_counted(clf, tmp_path):
    text = "The minister " + "really " * 1000 + "denied it. Short one here."
    art = tmp_path / "long.txt"
    art.write_text(text)
    summary = predict_articles(clf, [str(art)], out=tmp_path / "o.jsonl", quiet=True)
    rows = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert rows[-1]["text"] == "Short one here." and len(rows) >= 4
    assert all(text[r["start"]:r["end"]] == r["text"] and len(r["text"]) <= MAX_SENTENCE_CHARS for r in rows)
    assert summary.cut == 1 and "1 long sentences cut" in summary.format()


# -- item 10: pySBD's catastrophic backtracking -------------------------------------------------------------

# Reported to hang pySBD with clean=False: https://github.com/nipunsadvilkar/pySBD/issues/79
# (the first from the report, the second from a comment, the third the Wikipedia text it came from).
PYSBD_HANGS = [
    "..[111 111 111 111 111 111 111 111 111 111]",
    "......[289852000000260698,289852000000260744",
    "It is a dialect of Lisp...[484 216 622 139 651 592 379 228 242 355] It runs on the JVM.",
]


def test_pysbd_inputs_reported_to_hang_split_in_seconds_with_exact_offsets(tmp_path):
    """pySBD issue 79 (https://github.com/nipunsadvilkar/pySBD/issues/79, open) hangs for minutes on 43
    characters: NUMBERED_REFERENCE_REGEX backtracks exponentially over digits after ".[".  A paragraph of
    thousands of sentences costs pySBD quadratic time.  Both are split here in a subprocess under a timeout."""
    texts = PYSBD_HANGS + [" ".join(["Labour backed the plan."] * 8000)]  # one 190 KB paragraph
    src = tmp_path / "texts.json"
    src.write_text(json.dumps(texts))
    code = ("import json, sys; from stance.sentences import split_sentences; "
            "print(json.dumps([[(s.start, s.end, s.text) for s in split_sentences(t)] "
            "for t in json.load(open(sys.argv[1]))]))")
    try:
        r = subprocess.run([sys.executable, "-c", code, str(src)], capture_output=True, text=True, timeout=60,
                           env=ENV)
    except subprocess.TimeoutExpired:
        pytest.fail("split_sentences still running after 60 s")
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)
    for text, sents in zip(texts, results):
        assert sents and all(text[s:e] == t for s, e, t in sents)
    assert "[484 216" in "".join(t for _, _, t in results[2])
    assert [t for _, _, t in results[-1]] == ["Labour backed the plan."] * 8000


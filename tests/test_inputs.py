"""Hostile and broken inputs to `stance predict` (issue 18, items 9-13).

Each input here once hung the run, exhausted memory, aborted it, or slipped
garbage into the output.  Real files, real pipes and real subprocesses: the
point is what happens to bytes the way a shell delivers them.
"""

import json
import os
import subprocess
import sys
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

from stance.articles import iter_articles
from stance.errors import StanceError
from stance.modeling import StanceClassifier
from stance.predict import PredictSummary, predict_articles
from stance.sentences import MAX_SENTENCE_CHARS, split_sentences
from tests.test_cli import assert_one_line_error, run

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
MB = 1_000_000


@pytest.fixture(scope="module")
def clf(trained_model):
    return StanceClassifier.load(trained_model)


def read_all(inputs, **kw):
    """Articles and the skips reported for them, as (path, line, reason)."""
    skips = []
    arts = list(iter_articles([str(p) for p in inputs], on_skip=lambda *a: skips.append(a), **kw))
    return arts, skips


def stance_in_bash(script: str, model: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run `script` in bash with $STANCE as the real CLI, the way a user's shell runs it."""
    cli = f'"{sys.executable}" -m stance.cli'
    return subprocess.run(["bash", "-c", script.replace("$STANCE", cli).replace("$MODEL", f'"{model}"')],
                          capture_output=True, text=True, timeout=timeout, env=ENV, cwd=ROOT)


# -- item 9: caps on an article, a JSONL line and a sentence --------------------------------------------------


def test_an_oversized_file_is_skipped_and_counted_without_being_read(tmp_path):
    big = tmp_path / "big.txt"
    big.write_bytes(b"word " * (4 * MB))  # 20 MB
    ok = tmp_path / "ok.txt"
    ok.write_text("Labour backed the plan.")
    tracemalloc.start()
    try:
        arts, skips = read_all([big, ok], max_article_bytes=MB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [a.doc_id for a in arts] == [str(ok)]
    assert skips == [(str(big), None, "oversized article")]
    assert peak < 2 * MB


def test_an_oversized_jsonl_line_is_skipped_and_the_next_line_still_read(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    with open(src, "w") as fh:
        fh.write(json.dumps({"id": "a", "text": "Labour backed the plan."}) + "\n")
        fh.write(json.dumps({"id": "huge", "text": "word " * (2 * MB)}) + "\n")  # a 10 MB line
        fh.write(json.dumps({"id": "long", "text": "word " * 300_000}) + "\n")  # line fits, text over the cap
        fh.write(json.dumps({"id": "b", "text": "Police blamed him."}) + "\n")
    tracemalloc.start()
    try:
        arts, skips = read_all([src], max_article_bytes=MB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [a.doc_id for a in arts] == ["a", "b"]
    assert skips == [(str(src), 2, "oversized JSONL line"), (str(src), 3, "oversized article")]
    assert peak < 8 * MB  # a capped line buffer and one 1.5 MB text in three forms, never the 10 MB line
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"warning: {src}:2: ") and err[1].startswith(f"warning: {src}:3: ")


def test_stdin_over_the_cap_is_skipped_after_reading_no_more_than_the_cap(trained_model, tmp_path):
    """`--max-article-mb` bounds what is read from stdin: the file offset shows how far the child read."""
    src = tmp_path / "in.txt"
    src.write_bytes(b"Labour backed the plan. " * 125_000)  # 3 MB
    with open(src, "rb") as fh:
        r = subprocess.run([sys.executable, "-m", "stance.cli", "predict", str(trained_model), "-",
                            "--max-article-mb", "1", "-q", "--out", str(tmp_path / "o.jsonl")],
                           stdin=fh, capture_output=True, text=True, timeout=120, env=ENV)
        consumed = os.lseek(fh.fileno(), 0, os.SEEK_CUR)
    assert r.returncode == 0, r.stderr
    assert "-: " in r.stderr and "skipped" in r.stderr and "Traceback" not in r.stderr
    assert "1 oversized article" in r.stderr
    assert consumed <= MB + 64 * 1024
    assert (tmp_path / "o.jsonl").read_text() == ""


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


def test_a_max_article_mb_that_is_not_positive_is_one_line_error(trained_model, tmp_path):
    art = tmp_path / "a.txt"
    art.write_text("Hello there.")
    assert_one_line_error(run("predict", trained_model, art, "--max-article-mb", "0"), "--max-article-mb")
    assert_one_line_error(run("predict", trained_model, art, "--max-article-mb", "nan"), "--max-article-mb")


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


# -- item 11: HTML ------------------------------------------------------------------------------------------


def test_an_html_page_with_no_extractable_text_is_skipped_with_a_reason(tmp_path, capsys):
    page = tmp_path / "photo.html"  # a photo page: a title, an image, a script, no text
    page.write_text("<html><head><title>Photo</title></head><body><div><img src='a.png'></div>"
                    "<script>track()</script></body></html>")
    arts, skips = read_all([page])
    assert arts == [] and skips == [(str(page), None, "no text extracted from HTML")]
    assert f"warning: {page}: " in capsys.readouterr().err


def test_an_html_page_over_its_own_size_limit_never_reaches_trafilatura(tmp_path):
    para = "<p>The minister accused the union of lying about the strike figures on Monday.</p>"
    small, big = tmp_path / "small.html", tmp_path / "big.html"
    # Markup bloat: a page three times the article cap still holds a text well under it.
    small.write_text("<html><body><article>" + para + "<div class='x'></div>" * 15_000 + "</article></body></html>")
    big.write_text("<html><body><article>" + para * 6000 + "</article></body></html>")
    assert 100_000 < small.stat().st_size < 400_000 < big.stat().st_size
    arts, skips = read_all([small, big], max_article_bytes=100_000)
    assert [a.doc_id for a in arts] == [str(small)] and "accused the union" in arts[0].text
    assert skips == [(str(big), None, "oversized HTML page")]


# -- item 12: NUL bytes and bad UTF-8 -----------------------------------------------------------------------


def test_a_nul_byte_late_in_a_file_marks_it_binary(tmp_path):
    late = tmp_path / "late.txt"
    late.write_bytes(b"Labour backed the plan. " * 1000 + b"\x00 Police blamed him.")
    arts, skips = read_all([late])
    assert arts == [] and skips == [(str(late), None, "binary")]


def test_a_bad_utf8_line_in_jsonl_is_skipped_with_a_warning_naming_file_and_line(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"id": "a", "text": "Labour backed the plan."}\n'
                    b'{"id": "b", "text": "caf\xe9"}\n'
                    b'{"id": "c", "text": "Police blamed \\ud800 him."}\n'
                    b'{"id": "d", "text": "nul \\u0000 here"}\n'
                    b'{"id": "e", "text": "raw nul \x00 here"}\n'
                    b'{"id": "f", "text": "The mayor denied it."}\n')
    arts, skips = read_all([src])
    assert [a.doc_id for a in arts] == ["a", "f"]
    assert skips == [(str(src), 2, "not UTF-8"), (str(src), 3, "not UTF-8"), (str(src), 4, "binary"),
                     (str(src), 5, "binary")]
    err = capsys.readouterr().err
    assert f"warning: {src}:2: not UTF-8" in err and f"warning: {src}:3: " in err


def test_json_nested_too_deeply_is_a_one_line_error_not_a_crash(tmp_path):
    src = tmp_path / "deep.jsonl"
    src.write_text('{"id": 1, "text": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(StanceError, match="deep.jsonl:1: broken JSON"):
        read_all([src])


def test_the_summary_counts_skips_by_reason_and_keeps_skipped_files(clf, tmp_path):
    (tmp_path / "late.txt").write_bytes(b"Fine words. " * 1000 + b"\x00")
    (tmp_path / "latin.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (tmp_path / "photo.html").write_text("<html><body><img src='a.png'></body></html>")
    (tmp_path / "ok.txt").write_text("Labour backed the plan.")
    summary = predict_articles(clf, [str(tmp_path)], out=tmp_path / "o.jsonl", quiet=True)
    assert summary.skipped == Counter({"binary": 1, "not UTF-8": 1, "no text extracted from HTML": 1})
    assert sorted(Path(p).name for p in summary.skipped_files) == ["late.txt", "latin.txt", "photo.html"]
    assert summary.articles == 1 and summary.sentences == 1
    assert "skipped 1 binary, 1 no text extracted from HTML, 1 not UTF-8" in summary.format()
    assert "skipped" not in PredictSummary(articles=1).format()


# -- item 13: closed stdin, process substitution, broken pipes ----------------------------------------------


def test_closed_stdin_fails_with_one_line(trained_model):
    r = stance_in_bash("$STANCE predict $MODEL - -q <&-", trained_model)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: -: ") and r.stderr.count("\n") == 1, r.stderr


def test_process_substitution_is_read_like_a_file(trained_model):
    r = stance_in_bash("$STANCE predict $MODEL <(printf 'Labour backed the plan. Police blamed him.') -q",
                       trained_model)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["text"] for x in rows] == ["Labour backed the plan.", "Police blamed him."]
    assert rows[0]["doc_id"].startswith("/dev/fd/")


def test_a_reader_that_stops_early_ends_the_run_quietly(trained_model, tmp_path):
    """Python's "Note on SIGPIPE": exit 1, nothing on stderr, for a reader gone mid-run or before the first row."""
    big = tmp_path / "big.txt"
    big.write_text("Labour backed the plan. Police blamed him.\n" * 3000)
    for reader in ("head -n 1", "true"):
        r = stance_in_bash(f'$STANCE predict $MODEL "{big}" -q | {reader} >/dev/null; echo "${{PIPESTATUS[0]}}"',
                           trained_model)
        assert r.stdout.strip() == "1" and r.stderr == "", (reader, r.stdout, r.stderr)


def test_closed_stdout_fails_with_one_line(trained_model, tmp_path):
    art = tmp_path / "a.txt"
    art.write_text("Police praised the mayor.")
    root = Path(__file__).resolve().parents[1]
    cmd = f'"{sys.executable}" -m stance.cli predict "{trained_model}" "{art}" --quiet >&-'
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(root)})
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip() == "error: standard output is closed; write to a file with --out FILE"
